# ruff: noqa: F811  (the cc/catcher fixtures are imported from ccfixtures)
"""Pattern 2 pieces: outside (simulated PSTN) callers, queues with hold tone, gather, ringing directly."""

from __future__ import annotations

import asyncio

import numpy as np
from ccfixtures import AGENTS, API_KEY, APP_NUMBER, WebhookCatcher, catcher, cc  # noqa: F401
from phones import Phone, api, wait_hz

from softphone.media.dsp import dominant_frequency
from softphone.switch import Switch
from softphone.switch.callcontrol.apps import CallControlOptions
from softphone.switch.callcontrol.engine import CallControl
from softphone.switch.callcontrol.pstn import PstnEndpoint


async def pstn_hears(ep: PstnEndpoint, hz: float, tol: float = 15.0, timeout: float = 8.0) -> float:
    got = 0.0
    for _ in range(int(timeout / 0.2)):
        await asyncio.sleep(0.2)
        got = dominant_frequency(ep.heard(0.6))
        if abs(got - hz) <= tol:
            return got
    raise AssertionError(f"outside caller heard {got:.0f} Hz, wanted {hz:.0f}")


async def test_outside_call_queue_then_bridge(cc: CallControl, catcher: WebhookCatcher) -> None:
    st, body = await api(
        cc.api_url, "POST", "/switch/pstn_calls", {"from": "+15557654321", "to": APP_NUMBER, "audio_url": "tone:700"}
    )
    assert st == 200, body
    ccid = body["data"]["call_control_id"]
    init = await catcher.wait("call.initiated", lambda p: p["call_control_id"] == ccid)
    assert init["payload"]["direction"] == "incoming" and init["payload"]["from"] == "+15557654321"
    leg = cc.legs[ccid]
    assert isinstance(leg.endpoint, PstnEndpoint)

    assert (await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/answer", {}, API_KEY))[0] == 200
    st, _ = await api(cc.api_url, "POST", f"/v2/calls/{ccid}/actions/enqueue", {"queue_name": "support"}, API_KEY)
    assert st == 200
    enq = await catcher.wait("call.enqueued")
    assert enq["payload"]["queue"] == "support" and enq["payload"]["current_position"] == 1
    # While queued the caller hears the hold tone (440 Hz beeps), checked over a full cadence.
    await asyncio.sleep(2.2)
    assert abs(dominant_frequency(leg.endpoint.heard(2.0)) - 440) < 15

    async with Phone(cc.switch.url, "agent1", AGENTS["agent1"], 900) as a1:
        st, body = await api(
            cc.api_url, "POST", "/v2/calls", {"connection_id": "app", "to": "agent1", "from": "+15557654321"}, API_KEY
        )
        b_id = body["data"]["call_control_id"]
        inc = await a1.next_incoming()
        assert inc.params["caller_id_number"] == "+15557654321"
        await a1.answer(inc)
        await catcher.wait("call.answered", lambda p: p["call_control_id"] == b_id)
        st, _ = await api(cc.api_url, "POST", f"/v2/calls/{b_id}/actions/bridge", {"queue": "support"}, API_KEY)
        assert st == 200
        deq = await catcher.wait("call.dequeued")
        assert deq["payload"]["reason"] == "bridged"
        await wait_hz(inc, 700)
        await pstn_hears(leg.endpoint, 900)
        await a1.hangup(inc)
        hup = await catcher.wait("call.hangup", lambda p: p["call_control_id"] == ccid)
        assert hup["payload"]["hangup_source"] == "unknown"


async def test_gather_from_outside_and_from_client(cc: CallControl, catcher: WebhookCatcher) -> None:
    leg = await cc.outside_call("+15557654321", APP_NUMBER, dtmf="42#", dtmf_delay=0.3)
    await catcher.wait("call.initiated")
    await api(cc.api_url, "POST", f"/v2/calls/{leg.call_control_id}/actions/answer", {}, API_KEY)
    st, _ = await api(
        cc.api_url,
        "POST",
        f"/v2/calls/{leg.call_control_id}/actions/gather",
        {"maximum_digits": 5, "timeout_millis": 8000, "terminating_digit": "#"},
        API_KEY,
    )
    assert st == 200
    ended = await catcher.wait("call.gather.ended")
    assert ended["payload"]["digits"] == "42" and ended["payload"]["status"] == "valid"
    assert [e["payload"]["digit"] for e in catcher.events("call.dtmf.received")] == ["4", "2", "#"]

    async with Phone(cc.switch.url, "agent1", AGENTS["agent1"]) as a1:
        call = await a1.dial("+18005550100")
        init = await catcher.wait("call.initiated", lambda p: p["to"] == "+18005550100")
        cid = init["payload"]["call_control_id"]
        await api(cc.api_url, "POST", f"/v2/calls/{cid}/actions/answer", {}, API_KEY)
        await a1.wait_state(call, "active")
        await api(
            cc.api_url,
            "POST",
            f"/v2/calls/{cid}/actions/gather",
            {"maximum_digits": 3, "timeout_millis": 8000},
            API_KEY,
        )
        await a1.dtmf(call, "123")
        g = await catcher.wait("call.gather.ended", lambda p: p["call_control_id"] == cid)
        assert g["payload"]["digits"] == "123"
        await api(
            cc.api_url, "POST", f"/v2/calls/{cid}/actions/gather", {"maximum_digits": 3, "timeout_millis": 300}, API_KEY
        )
        g2 = await catcher.wait("call.gather.ended", lambda p: p["call_control_id"] == cid and p["status"] == "timeout")
        assert g2["payload"]["digits"] == ""


async def test_outside_call_without_webhook_rings_the_client(catcher: WebhookCatcher) -> None:
    opts = CallControlOptions(api_port=0, outside_ring_s=0.2)
    async with Switch(port=0, call_control=opts) as sw:  # built-in accounts: alice has no webhook
        assert sw.call_control is not None
        async with Phone(sw.url, "alice", "alice-secret", 523) as alice:
            leg = await sw.call_control.outside_call("+15557654321", "+13125550111", audio="tone:800")
            inc = await alice.next_incoming()
            assert inc.params["caller_id_number"] == "+15557654321"
            await alice.answer(inc)
            await wait_hz(inc, 800)
            assert isinstance(leg.endpoint, PstnEndpoint)
            await pstn_hears(leg.endpoint, 523)
            await alice.hangup(inc)
            await asyncio.wait_for(leg.ended.wait(), 5)
        assert sw.call_control.webhooks.deliveries == []


async def test_pstn_recording(cc: CallControl, catcher: WebhookCatcher, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import wave

    path = tmp_path / "heard.wav"
    leg = await cc.outside_call("+15557654321", APP_NUMBER, record_path=path)
    await api(cc.api_url, "POST", f"/v2/calls/{leg.call_control_id}/actions/answer", {}, API_KEY)
    await api(
        cc.api_url,
        "POST",
        f"/v2/calls/{leg.call_control_id}/actions/playback_start",
        {"audio_url": "tone:1200:600"},
        API_KEY,
    )
    ended = await catcher.wait("call.playback.ended")
    assert ended["payload"]["status"] == "completed"
    assert catcher.events("call.playback.started")
    await cc.hangup_leg(leg)
    with wave.open(str(path)) as wf:
        data = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2")
    assert len(data) > 48000 * 0.5
    assert abs(dominant_frequency(data) - 1200) < 15


async def test_dial_service_and_outside_number(cc: CallControl, catcher: WebhookCatcher) -> None:
    caller = await cc.outside_call("+15557654321", APP_NUMBER, audio="tone:700")
    await api(cc.api_url, "POST", f"/v2/calls/{caller.call_control_id}/actions/answer", {}, API_KEY)
    st, body = await api(cc.api_url, "POST", "/v2/calls", {"connection_id": "app", "to": "echo", "from": "x"}, API_KEY)
    assert st == 200
    echo_id = body["data"]["call_control_id"]
    await catcher.wait("call.answered", lambda p: p["call_control_id"] == echo_id)
    await api(
        cc.api_url, "POST", f"/v2/calls/{caller.call_control_id}/actions/bridge", {"call_control_id": echo_id}, API_KEY
    )
    assert isinstance(caller.endpoint, PstnEndpoint)
    await pstn_hears(caller.endpoint, 700)  # its own voice, back from the echo service

    st, body = await api(
        cc.api_url,
        "POST",
        "/v2/calls",
        {"connection_id": "app", "to": "+15559990000", "from": APP_NUMBER, "audio_url": "tone:1500"},
        API_KEY,
    )
    far_id = body["data"]["call_control_id"]
    await catcher.wait("call.answered", lambda p: p["call_control_id"] == far_id)
    await api(
        cc.api_url, "POST", f"/v2/calls/{caller.call_control_id}/actions/bridge", {"call_control_id": far_id}, API_KEY
    )
    await pstn_hears(caller.endpoint, 1500)
    # The echo leg lost its bridge by a re-bridge (not a hangup): it stays up, unbridged.
    assert cc.legs[echo_id].alive and cc.legs[echo_id].bridged_to is None
    st, body = await api(cc.api_url, "GET", f"/v2/calls/{far_id}", None, API_KEY)
    assert body["data"]["is_alive"] and body["data"]["state"] == "bridged"
    st, body = await api(cc.api_url, "POST", "/v2/calls", {"connection_id": "app", "to": "busy", "from": "x"}, API_KEY)
    busy = await catcher.wait("call.hangup", lambda p: p["call_control_id"] == body["data"]["call_control_id"])
    assert busy["payload"]["hangup_cause"] == "user_busy"


async def test_park_after_unbridge(cc: CallControl, catcher: WebhookCatcher) -> None:
    a = await cc.outside_call("+15550000001", APP_NUMBER)
    b = await cc.outside_call("+15550000002", APP_NUMBER)
    for leg in (a, b):
        await api(cc.api_url, "POST", f"/v2/calls/{leg.call_control_id}/actions/answer", {}, API_KEY)
    st, _ = await api(
        cc.api_url,
        "POST",
        f"/v2/calls/{a.call_control_id}/actions/bridge",
        {"call_control_id": b.call_control_id, "park_after_unbridge": "self"},
        API_KEY,
    )
    assert st == 200 and a.bridged_to is b
    await cc.hangup_leg(b)
    await asyncio.sleep(0.2)
    assert a.alive and a.state == "parked" and a.bridged_to is None
    st, _ = await api(cc.api_url, "POST", f"/v2/calls/{b.call_control_id}/actions/answer", {}, API_KEY)
    assert st == 422  # that leg is gone
