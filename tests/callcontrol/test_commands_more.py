# ruff: noqa: F811  (the cc/catcher fixtures are imported from ccfixtures)
"""More commands: DTMF and hold across a bridge, queue positions and leave_queue, playback_stop, cancel."""

from __future__ import annotations

import asyncio

from ccfixtures import AGENTS, API_KEY, APP_NUMBER, WebhookCatcher, catcher, cc  # noqa: F401
from phones import Phone, PhoneCall, api, wait_hz

from softphone.switch.callcontrol.engine import CallControl


async def bridged_pair(
    cc: CallControl, catcher: WebhookCatcher, p1: Phone, p2: Phone
) -> tuple[str, PhoneCall, PhoneCall]:
    call = await p1.dial("+18005550123")
    init = await catcher.wait("call.initiated", lambda p: p["to"] == "+18005550123")
    a_id = init["payload"]["call_control_id"]
    _, body = await api(cc.api_url, "POST", "/v2/calls", {"connection_id": "app", "to": p2.user, "from": "x"}, API_KEY)
    inc = await p2.next_incoming()
    await p2.answer(inc)
    await catcher.wait("call.answered", lambda p: p["call_control_id"] == body["data"]["call_control_id"])
    st, _ = await api(
        cc.api_url,
        "POST",
        f"/v2/calls/{a_id}/actions/bridge",
        {"call_control_id": body["data"]["call_control_id"]},
        API_KEY,
    )
    assert st == 200  # bridging answers the parked caller implicitly
    await p1.wait_state(call, "active")
    return a_id, call, inc


async def test_dtmf_and_hold_across_a_bridge(cc: CallControl, catcher: WebhookCatcher) -> None:
    url = cc.switch.url
    async with Phone(url, "agent1", AGENTS["agent1"], 600) as p1, Phone(url, "agent2", AGENTS["agent2"], 900) as p2:
        a_id, call, inc = await bridged_pair(cc, catcher, p1, p2)
        await wait_hz(inc, 600)
        await p1.dtmf(call, "5")
        ev = await catcher.wait("call.dtmf.received", lambda p: p["call_control_id"] == a_id)
        assert ev["payload"]["digit"] == "5"
        for _ in range(50):  # the far leg gets the digit as telnyx_rtc.info (and in band)
            if "telnyx_rtc.info" in inc.methods:
                break
            await asyncio.sleep(0.05)
        assert "telnyx_rtc.info" in inc.methods
        res = await p1.request("telnyx_rtc.modify", {"action": "hold", "dialogParams": {"callID": call.call_id}})
        assert res["holdState"] == "held"
        await wait_hz(inc, 440, seconds=2.0, timeout=8)  # the held party hears the hold tone
        await p1.request("telnyx_rtc.modify", {"action": "unhold", "dialogParams": {"callID": call.call_id}})
        await wait_hz(inc, 600)
        await wait_hz(call, 900)


async def test_queue_positions_and_leave_queue(cc: CallControl, catcher: WebhookCatcher) -> None:
    legs = [await cc.outside_call(f"+1555000000{i}", APP_NUMBER) for i in range(2)]
    for leg in legs:
        await api(cc.api_url, "POST", f"/v2/calls/{leg.call_control_id}/actions/enqueue", {"queue_name": "q"}, API_KEY)
    await catcher.wait("call.enqueued", lambda p: p["current_position"] == 2)
    assert sorted(e["payload"]["current_position"] for e in catcher.events("call.enqueued")) == [1, 2]
    st, _ = await api(cc.api_url, "POST", f"/v2/calls/{legs[0].call_control_id}/actions/leave_queue", {}, API_KEY)
    assert st == 200
    deq = await catcher.wait("call.dequeued")
    assert deq["payload"]["reason"] == "leave" and cc.queues["q"].legs == [legs[1]]
    st, _ = await api(cc.api_url, "POST", f"/v2/calls/{legs[0].call_control_id}/actions/leave_queue", {}, API_KEY)
    assert st == 422


async def test_playback_stop_and_caller_cancel(cc: CallControl, catcher: WebhookCatcher) -> None:
    leg = await cc.outside_call("+15550000009", APP_NUMBER)
    await api(cc.api_url, "POST", f"/v2/calls/{leg.call_control_id}/actions/answer", {}, API_KEY)
    await api(
        cc.api_url,
        "POST",
        f"/v2/calls/{leg.call_control_id}/actions/playback_start",
        {"audio_url": "tone:300"},
        API_KEY,
    )
    await catcher.wait("call.playback.started")
    await api(cc.api_url, "POST", f"/v2/calls/{leg.call_control_id}/actions/playback_stop", {}, API_KEY)
    ended = await catcher.wait("call.playback.ended")
    assert ended["payload"]["status"] == "cancelled"
    st, body = await api(
        cc.api_url,
        "POST",
        f"/v2/calls/{leg.call_control_id}/actions/playback_start",
        {"audio_url": "/no/such.wav"},
        API_KEY,
    )
    assert st == 422 and "audio_url" in body["errors"][0]["title"]

    async with Phone(cc.switch.url, "agent1", AGENTS["agent1"]) as p1:
        call = await p1.dial("+18005550777")
        init = await catcher.wait("call.initiated", lambda p: p["to"] == "+18005550777")
        await p1.request(
            "telnyx_rtc.bye", {"cause": "USER_BUSY", "causeCode": 17, "dialogParams": {"callID": call.call_id}}
        )
        hup = await catcher.wait("call.hangup", lambda p: p["call_control_id"] == init["payload"]["call_control_id"])
        assert hup["payload"]["hangup_cause"] == "originator_cancel"
        assert hup["payload"]["hangup_source"] == "caller"
