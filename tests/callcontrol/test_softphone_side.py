# ruff: noqa: F811  (the cc/catcher fixtures are imported from ccfixtures)
"""The softphone (softphone.client.client.Client) facing Call Control: parked calls, backend-placed calls."""

from __future__ import annotations

import asyncio
from typing import Any

from ccfixtures import AGENTS, API_KEY, WebhookCatcher, catcher, cc  # noqa: F401
from phones import api

from softphone.client.client import Client
from softphone.media.hub import AudioConfig
from softphone.protocol import CallState, Credentials
from softphone.switch.callcontrol.engine import CallControl


def client(cc: CallControl, user: str) -> Client:
    return Client(
        url=cc.switch.url,
        credentials=Credentials(login=user, password=AGENTS[user]),
        audio=AudioConfig(backend="null"),
        ice_servers=[],
    )


async def test_parked_call_shows_early_with_telnyx_ids(cc: CallControl, catcher: WebhookCatcher) -> None:
    c = client(cc, "agent1")
    await c.connect()
    try:
        call = await c.new_call("+18005550199", client_state="c3RhdGU=")
        init = await catcher.wait("call.initiated")
        await call.wait_state(CallState.EARLY, timeout=10)
        assert call.telnyx_call_control_id == init["payload"]["call_control_id"]
        assert init["payload"]["client_state"] == "c3RhdGU="
        await asyncio.sleep(0.5)
        assert call.state == CallState.EARLY  # still parked: nothing answered it
        ccid = init["payload"]["call_control_id"]
        await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/answer", {}, API_KEY)
        await call.wait_state(CallState.ACTIVE, timeout=10)
        await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/hangup", {}, API_KEY)
        await call.wait_ended(timeout=10)
        assert call.cause == "NORMAL_CLEARING"
    finally:
        await c.close()


async def test_backend_placed_call_carries_client_state_and_headers(cc: CallControl, catcher: WebhookCatcher) -> None:
    c = client(cc, "agent2")
    got: asyncio.Queue[Any] = asyncio.Queue()
    c.on("call.incoming", lambda e: got.put_nowait(e.call_id))
    await c.connect()
    try:
        st, body = await api(
            cc.api_url,
            "POST",
            "/v2/calls",
            {
                "connection_id": "app",
                "to": "agent2",
                "from": "+15557654321",
                "client_state": "eyJhIjoxfQ==",
                "custom_headers": [{"name": "X-Ticket", "value": "42"}],
            },
            API_KEY,
        )
        assert st == 200, body
        call = c.calls[await asyncio.wait_for(got.get(), 10)]
        assert call.client_state == "eyJhIjoxfQ=="
        assert ("X-Ticket", "42") in call.custom_headers
        assert call.telnyx_call_control_id == body["data"]["call_control_id"]
        assert call.remote_number == "+15557654321"
        await call.answer()
        await catcher.wait("call.answered", lambda p: p["call_control_id"] == body["data"]["call_control_id"])
        await call.hangup()
        hup = await catcher.wait("call.hangup", lambda p: p["call_control_id"] == body["data"]["call_control_id"])
        assert hup["payload"]["hangup_source"] == "callee"
    finally:
        await c.close()


async def test_dial_timeout_and_unregistered(cc: CallControl, catcher: WebhookCatcher) -> None:
    st, body = await api(
        cc.api_url, "POST", "/v2/calls", {"connection_id": "app", "to": "agent3", "from": "+1555"}, API_KEY
    )
    assert st == 200
    hup = await catcher.wait("call.hangup", lambda p: p["call_control_id"] == body["data"]["call_control_id"])
    assert hup["payload"]["hangup_cause"] == "not_found"
    c = client(cc, "agent3")
    await c.connect()
    try:
        st, body = await api(
            cc.api_url,
            "POST",
            "/v2/calls",
            {"connection_id": "app", "to": "agent3", "from": "+1555", "timeout_secs": 1},
            API_KEY,
        )
        hup = await catcher.wait("call.hangup", lambda p: p["call_control_id"] == body["data"]["call_control_id"])
        assert hup["payload"]["hangup_cause"] == "timeout"
    finally:
        await c.close()
