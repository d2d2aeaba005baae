# ruff: noqa: F811  (the cc/catcher fixtures are imported from ccfixtures)
"""softphone.client.client.Client sees its parked call (Call Control pattern 1): ``call.parked``, then unparked."""

from __future__ import annotations

import time

from ccfixtures import AGENTS, API_KEY, WebhookCatcher, catcher, cc  # noqa: F401
from phones import api

from softphone.client.client import Client, ClientEvent
from softphone.media.hub import AudioConfig
from softphone.protocol import CallState, Credentials
from softphone.switch.callcontrol.engine import CallControl


async def test_parked_until_the_backend_answers(cc: CallControl, catcher: WebhookCatcher) -> None:
    c = Client(cc.switch.url, Credentials(login="agent1", password=AGENTS["agent1"]),
               audio=AudioConfig(backend="null"), ice_servers=[])
    events: list[ClientEvent] = []
    c.on("call.parked", events.append)
    await c.connect()
    try:
        before = time.time()
        call = await c.new_call("+18005550199")  # nobody owns it: parked on agent1's connection
        init = await catcher.wait("call.initiated")
        ccid = init["payload"]["call_control_id"]
        await call.wait_state(CallState.EARLY, timeout=10)  # ringback as early media
        assert call.parked and call.parked_since is not None and before <= call.parked_since <= time.time()
        assert call.telnyx_call_control_id == ccid and call.telnyx_session_id and call.telnyx_leg_id
        assert events and events[0].data["parked"] is True and events[0].data["call_control_id"] == ccid
        st, _ = await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/answer", {}, API_KEY)
        assert st == 200
        await call.wait_state(CallState.ACTIVE, timeout=10)
        assert not call.parked and call.parked_since is None
        assert [e.data["parked"] for e in events] == [True, False]
    finally:
        await c.close()


async def test_a_routed_call_is_never_parked(cc: CallControl, catcher: WebhookCatcher) -> None:
    c = Client(cc.switch.url, Credentials(login="agent1", password=AGENTS["agent1"]),
               audio=AudioConfig(backend="null"), ice_servers=[])
    events: list[ClientEvent] = []
    c.on("call.parked", events.append)
    await c.connect()
    try:
        call = await c.new_call("echo")
        await call.wait_state(CallState.ACTIVE, timeout=10)
        assert not call.parked and call.telnyx_call_control_id and not events
    finally:
        await c.close()
