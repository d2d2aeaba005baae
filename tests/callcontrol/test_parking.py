# ruff: noqa: F811  (the cc/catcher fixtures are imported from ccfixtures)
"""Pattern 1 pieces: parking, webhooks, answer/dial/bridge with real audio, park timeout."""

from __future__ import annotations

import asyncio

from ccfixtures import AGENTS, API_KEY, WebhookCatcher, catcher, cc  # noqa: F401
from phones import Phone, api, wait_hz

from softphone.switch.callcontrol.engine import CallControl


async def test_park_answer_dial_bridge(cc: CallControl, catcher: WebhookCatcher) -> None:
    url = cc.switch.url
    async with Phone(url, "agent1", AGENTS["agent1"], 600) as a1, Phone(url, "agent2", AGENTS["agent2"], 900) as a2:
        call = await a1.dial("+18005550199", clientState="aGVsbG8=")
        init = await catcher.wait("call.initiated")
        p = init["payload"]
        assert p["direction"] == "incoming" and p["state"] == "parked"
        assert p["to"] == "+18005550199" and p["connection_id"] == "app" and p["client_state"] == "aGVsbG8="
        assert init["record_type"] == "event" and init["occurred_at"]
        ccid = p["call_control_id"]
        await a1.wait_state(call, "early")
        assert call.params["telnyx_call_control_id"] == ccid
        assert abs(await wait_hz(call, 440, tol=60) - 460) < 60  # ringback 440+480 as early media

        st, body = await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/answer", {}, API_KEY)
        assert st == 200 and body == {"data": {"result": "ok"}}
        await a1.wait_state(call, "active")
        await catcher.wait("call.answered", lambda q: q["call_control_id"] == ccid)

        st, body = await api(
            cc.api_url,
            "POST",
            "/v2/calls",
            {"connection_id": "app", "to": "agent2", "from": "+18005550199", "client_state": "Yg=="},
            API_KEY,
        )
        assert st == 200, body
        b_id = body["data"]["call_control_id"]
        inc = await a2.next_incoming()
        assert inc.params["client_state"] == "Yg==" and inc.params["telnyx_call_control_id"] == b_id
        await a2.answer(inc)
        await catcher.wait("call.answered", lambda q: q["call_control_id"] == b_id)
        st, _ = await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/bridge", {"call_control_id": b_id}, API_KEY)
        assert st == 200
        await catcher.wait("call.bridged", lambda q: q["call_control_id"] == b_id)
        await wait_hz(call, 900)
        await wait_hz(inc, 600)

        await a1.hangup(call)
        hup = await catcher.wait("call.hangup", lambda q: q["call_control_id"] == ccid)
        assert hup["payload"]["hangup_cause"] == "normal_clearing"
        assert hup["payload"]["hangup_source"] == "caller"
        await a2.wait_state(inc, "hangup")  # the other leg follows (no park_after_unbridge)


async def test_park_timeout(cc: CallControl, catcher: WebhookCatcher) -> None:
    cc.options.park_timeout = 0.5
    async with Phone(cc.switch.url, "agent1", AGENTS["agent1"]) as a1:
        call = await a1.dial("+18005550199")
        await a1.wait_state(call, "hangup", timeout=5)
        assert call.bye["cause"] == "RECOVERY_ON_TIMER_EXPIRE" and call.bye["sipCode"] == 408
        hup = await catcher.wait("call.hangup")
        assert hup["payload"]["hangup_cause"] == "timeout"


async def test_api_auth_and_errors(cc: CallControl) -> None:
    st, body = await api(cc.api_url, "POST", "/v2/calls/v3:nope/actions/answer", {}, API_KEY)
    assert st == 404 and body["errors"][0]["title"] == "Resource not found"
    async with Phone(cc.switch.url, "agent1", AGENTS["agent1"]) as a1:
        await a1.dial("+18005550199")
        await asyncio.sleep(0.3)
        (leg,) = cc.legs.values()
        st, body = await api(cc.api_url, "POST", f"/v2/calls/{leg.call_control_id}/actions/answer", {}, "wrong")
        assert st == 401
        st, body = await api(cc.api_url, "POST", f"/v2/calls/{leg.call_control_id}/actions/fly", {}, API_KEY)
        assert st == 404
        st, body = await api(cc.api_url, "POST", "/v2/calls", {"to": "agent2"}, API_KEY)
        assert st == 422


async def test_park_with_local_ringback_only(cc: CallControl, catcher: WebhookCatcher) -> None:
    """ringback = "ringing": telnyx_rtc.ringing only (the client rings locally); the answer carries the SDP."""
    cc.options.ringback = "ringing"
    async with Phone(cc.switch.url, "agent1", AGENTS["agent1"], 600) as a1:
        call = await a1.dial("+18005550199")
        init = await catcher.wait("call.initiated")
        await a1.wait_state(call, "ringing")
        await asyncio.sleep(0.3)
        assert "telnyx_rtc.media" not in call.methods
        ccid = init["payload"]["call_control_id"]
        await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/answer", {}, API_KEY)
        await a1.wait_state(call, "active")
        await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/playback_start", {"audio_url": "tone:1100"}, API_KEY)
        await wait_hz(call, 1100)
