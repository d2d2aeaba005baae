# ruff: noqa: F811  (the cc/catcher fixtures are imported from ccfixtures)
"""The switch forwards encoded RTP where nothing needs PCM, and decodes exactly while a feature does
(issue 14 item 1): the real switch, real aiortc clients, audio judged by dominant frequency and level.

Each switch-over is checked before, during and after: the switch's legs report what they do with
what they receive (``MediaLeg.mode``: forward / decode / idle; ``packets_forwarded``,
``packets_decoded``) and whether their sender sends forwarded packets (``sends_packets``).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "callcontrol"))

from ccfixtures import AGENTS, API_KEY, WebhookCatcher, catcher, cc  # noqa: F401
from phones import Phone as CCPhone
from phones import PhoneCall, api, wait_hz

from softphone.client.client import AudioConfig, Client
from softphone.media.dsp import dominant_frequency
from softphone.media.sinks import BufferSink
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts
from softphone.switch.callcontrol.engine import CallControl
from softphone.switch.calls import Call
from softphone.switch.media_legs import FORWARD_ENV, MediaLeg

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

DEMO = Credentials(login="demo", password="demo-secret")
ALICE = Credentials(login="alice", password="alice-secret")
MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        yield sw


@pytest.fixture
async def make_client(switch: Switch) -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(creds: Credentials, tone: float, **kw: Any) -> Client:
        kw.setdefault("random", lambda: 0.0)
        client = Client(switch.url, creds, audio=AudioConfig(backend="tone", tone_hz=tone), **kw)
        clients.append(client)
        await client.connect()
        return client

    yield make
    for client in clients:
        await client.close()


async def wait_for(pred: Callable[[], bool], timeout: float = 8.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met in {timeout} s")
        await asyncio.sleep(0.05)


def level(samples: np.ndarray[Any, Any]) -> float:
    s = samples.astype(np.float64)
    return float(np.sqrt(np.mean(s * s))) if s.size else 0.0


async def hears(buf: BufferSink, hz: float, timeout: float = 8.0) -> None:
    """``buf`` hears ``hz`` (dominant, within 15 Hz) at a real level in its last 0.4 s."""
    await wait_for(lambda: buf.duration_s >= 0.4 and abs(dominant_frequency(buf.samples(0.4)) - hz) <= 15
                   and level(buf.samples(0.4)) > 300, timeout, f"hearing {hz} Hz")


def longest_silence_frames(samples: np.ndarray[Any, Any]) -> int:
    """The longest run of 20 ms frames (at 48 kHz) below a faint level: a gap in what was heard."""
    n = samples.size // 960
    rms = np.sqrt(np.mean(samples[: n * 960].astype(np.float64).reshape(n, 960) ** 2, axis=1))
    longest = run = 0
    for quiet in rms < 100:
        run = run + 1 if quiet else 0
        longest = max(longest, run)
    return longest


GAP_FRAMES = 5
"""A switch-over may cost a few frames (brief: "no audible glitch beyond a few frames"): 100 ms at most."""


def only_call(sw: Switch) -> Call:
    calls = sw._calls
    assert len(calls) == 1, calls
    return calls[0]


def forwarding(leg: MediaLeg, into: MediaLeg) -> bool:
    """``leg`` forwards encoded frames and ``into`` sends them on (no decode, no encode)."""
    return leg.mode == "forward" and into.sends_packets


async def forwards_without_decoding(leg: MediaLeg, into: MediaLeg) -> None:
    await wait_for(lambda: forwarding(leg, into), what=f"{leg.label} forwarding")
    decoded, forwarded = leg.packets_decoded, leg.packets_forwarded
    await asyncio.sleep(0.4)
    assert leg.packets_decoded == decoded, "a forwarding leg decoded"
    assert leg.packets_forwarded >= forwarded + 10, (forwarded, leg.packets_forwarded)


async def bridged(make_client: MakeClient, switch: Switch, *, caller_codecs: list[str] | None = None,
                  callee_codecs: list[str] | None = None) -> tuple[Any, Any, BufferSink, BufferSink, Call]:
    demo = await make_client(DEMO, 660.0, **({"codecs": caller_codecs} if caller_codecs else {}))
    alice = await make_client(ALICE, 880.0, **({"codecs": callee_codecs} if callee_codecs else {}))
    out = await demo.new_call("alice")
    d_buf, a_buf = BufferSink(10.0), BufferSink(10.0)
    out.set_output(d_buf)
    await wait_for(lambda: any(c.state == CallState.RINGING and c.direction == "inbound"
                               for c in alice.calls.values()), what="ringing")
    inbound = next(c for c in alice.calls.values() if c.direction == "inbound")
    inbound.set_output(a_buf)
    await inbound.answer()
    await out.wait_state(CallState.ACTIVE)
    return out, inbound, d_buf, a_buf, only_call(switch)


# --- forwarding ----------------------------------------------------------------------------------


async def test_echo_forwards_and_the_caller_hears_its_tone(make_client: MakeClient, switch: Switch) -> None:
    client = await make_client(DEMO, 440.0)
    call = await client.new_call("echo")
    buf = BufferSink(5.0)
    call.set_output(buf)
    await call.wait_state(CallState.ACTIVE)
    await hears(buf, 440.0)
    leg = only_call(switch).a.media
    await forwards_without_decoding(leg, leg)
    assert leg.packets_decoded == 0 and leg.frames_in == 0  # never decoded a frame
    assert leg.packets_forwarded > 20
    await hears(buf, 440.0)
    await call.hangup()


async def test_kill_switch_decodes_as_before(make_client: MakeClient, switch: Switch,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FORWARD_ENV, "0")
    client = await make_client(DEMO, 440.0)
    call = await client.new_call("echo")
    buf = BufferSink(5.0)
    call.set_output(buf)
    await call.wait_state(CallState.ACTIVE)
    await hears(buf, 440.0)
    leg = only_call(switch).a.media
    assert leg.mode == "decode" and not leg.sends_packets and leg.packets_forwarded == 0 and leg.frames_in > 20
    await call.hangup()


async def test_bridge_forwards_both_ways_then_hold_dtmf_switch_over(make_client: MakeClient, switch: Switch) -> None:
    out, _inbound, d_buf, a_buf, sw_call = await bridged(make_client, switch)
    assert sw_call.b is not None
    a, b = sw_call.a.media, sw_call.b.media
    await hears(d_buf, 880.0)
    await hears(a_buf, 660.0)
    await forwards_without_decoding(a, b)
    await forwards_without_decoding(b, a)
    assert a.frames_in == 0 and b.frames_in == 0

    # hold: the held party (alice) hears the hold tone (decoded mix), nothing is forwarded, nobody decodes
    assert await out.hold() is True
    await hears(a_buf, 440.0)
    await wait_for(lambda: level(d_buf.samples(0.3)) < 100, what="the holder hears silence")
    assert not b.sends_packets and not a.sends_packets
    assert a.mode == "idle" and b.mode == "idle"  # what the legs receive goes nowhere: not decoded either
    idle_decoded = a.packets_decoded + b.packets_decoded
    await asyncio.sleep(0.3)
    assert a.packets_decoded + b.packets_decoded == idle_decoded
    assert await out.unhold() is False
    await hears(a_buf, 660.0)
    await hears(d_buf, 880.0)
    await forwards_without_decoding(a, b)
    await forwards_without_decoding(b, a)

    # in-band DTMF from demo: the switch plays tones into alice's leg: demo->alice decodes while they play
    decoded = a.packets_decoded
    seen_decoding = asyncio.Event()

    async def watch() -> None:
        while not seen_decoding.is_set():
            if a.mode == "decode" and not b.sends_packets:
                seen_decoding.set()
            await asyncio.sleep(0.01)

    watcher = asyncio.ensure_future(watch())
    a_buf.clear()  # from here on alice hears demo's tone all the time (with or without the digits)
    await out.dtmf("1234567890")  # ~1.7 s of tones
    await asyncio.wait_for(seen_decoding.wait(), 5)
    watcher.cancel()
    await asyncio.sleep(0.5)
    assert a.packets_decoded > decoded
    with_tones = a_buf.samples(0.5)
    assert level(with_tones) > 300  # alice hears through the switch-over (tones over demo's tone)
    await hears(d_buf, 880.0)  # the other direction kept forwarding
    assert forwarding(b, a)
    # after the digits: forwarding again, alice hears demo's tone; no gap across both switch-overs
    await forwards_without_decoding(a, b)
    await hears(a_buf, 660.0)
    assert longest_silence_frames(a_buf.samples()) <= GAP_FRAMES
    await out.hangup()


async def test_a_pcmu_bridge_forwards_both_ways(make_client: MakeClient, switch: Switch) -> None:
    """G.711 on both legs (an 8 kHz RTP clock): forwarded as it came, both ways."""
    out, _inbound, d_buf, a_buf, sw_call = await bridged(make_client, switch, caller_codecs=["PCMU"],
                                                         callee_codecs=["PCMU"])
    assert sw_call.b is not None
    a, b = sw_call.a.media, sw_call.b.media
    assert a.codec.upper().startswith("PCMU") and b.codec.upper().startswith("PCMU")
    await hears(d_buf, 880.0)
    await hears(a_buf, 660.0)
    await forwards_without_decoding(a, b)
    await forwards_without_decoding(b, a)
    assert a.frames_in == 0 and b.frames_in == 0
    await hears(d_buf, 880.0)
    await hears(a_buf, 660.0)
    await out.hangup()


async def test_different_codecs_decode_and_still_work(make_client: MakeClient, switch: Switch) -> None:
    out, _inbound, d_buf, a_buf, sw_call = await bridged(make_client, switch, caller_codecs=["PCMU"])
    assert sw_call.b is not None
    a, b = sw_call.a.media, sw_call.b.media
    assert a.codec.upper().startswith("PCMU") and b.codec.lower().startswith("opus")
    await hears(d_buf, 880.0)
    await hears(a_buf, 660.0)
    assert a.mode == "decode" and b.mode == "decode"
    assert not a.sends_packets and not b.sends_packets
    assert a.packets_forwarded == 0 and b.packets_forwarded == 0 and a.frames_in > 0 and b.frames_in > 0
    await out.hangup()


# --- Call Control features on a forwarded bridge -------------------------------------------------


async def cc_bridge(cc: CallControl, catcher: WebhookCatcher, p1: CCPhone, p2: CCPhone,
                    ) -> tuple[str, str, PhoneCall, PhoneCall]:
    call = await p1.dial("+18005550177")
    init = await catcher.wait("call.initiated", lambda p: p["to"] == "+18005550177")
    a_id = init["payload"]["call_control_id"]
    _, body = await api(cc.api_url, "POST", "/v2/calls", {"connection_id": "app", "to": p2.user, "from": "x"}, API_KEY)
    b_id = body["data"]["call_control_id"]
    inc = await p2.next_incoming()
    await p2.answer(inc)
    await catcher.wait("call.answered", lambda p: p["call_control_id"] == b_id)
    st, _ = await api(cc.api_url, "POST", f"/v2/calls/{a_id}/actions/bridge", {"call_control_id": b_id}, API_KEY)
    assert st == 200
    await p1.wait_state(call, "active")
    return a_id, b_id, call, inc


def endpoint(cc: CallControl, ccid: str) -> MediaLeg:
    ep = cc.leg(ccid).endpoint
    assert isinstance(ep, MediaLeg)
    return ep


async def test_recording_and_playback_overlay_switch_over(cc: CallControl, catcher: WebhookCatcher) -> None:
    url = cc.switch.url
    async with CCPhone(url, "agent1", AGENTS["agent1"], 600) as p1, CCPhone(url, "agent2", AGENTS["agent2"], 900) as p2:
        a_id, b_id, call, inc = await cc_bridge(cc, catcher, p1, p2)
        a, b = endpoint(cc, a_id), endpoint(cc, b_id)
        await wait_hz(inc, 600)
        await wait_hz(call, 900)
        await forwards_without_decoding(a, b)
        await forwards_without_decoding(b, a)

        # a recording taps leg A: both directions through A decode while it runs (its taps see both)
        inc.sink.clear()
        call.sink.clear()
        st, _ = await api(cc.api_url, "POST", f"/v2/calls/{a_id}/actions/record_start",
                          {"format": "wav", "channels": "dual"}, API_KEY)
        assert st == 200
        await wait_for(lambda: a.mode == "decode" and not a.sends_packets and not b.sends_packets,
                       what="decoding for the recording")
        await wait_hz(inc, 600)
        await wait_hz(call, 900)
        await asyncio.sleep(1.0)
        st, _ = await api(cc.api_url, "POST", f"/v2/calls/{a_id}/actions/record_stop", {}, API_KEY)
        assert st == 200
        saved = await catcher.wait("call.recording.saved", lambda p: p["call_control_id"] == a_id)
        assert saved["payload"]["channels"] == "dual"
        await forwards_without_decoding(a, b)
        await forwards_without_decoding(b, a)
        await wait_hz(inc, 600)
        await wait_hz(call, 900)
        for heard in (inc.sink.samples(), call.sink.samples()):  # across both switch-overs, both ways
            assert longest_silence_frames(heard) <= GAP_FRAMES

        # a playback overlay on leg A: what A hears is decoded and mixed, the other way keeps forwarding
        st, _ = await api(cc.api_url, "POST", f"/v2/calls/{a_id}/actions/playback_start",
                          {"audio_url": "tone:1500", "overlay": True}, API_KEY)
        assert st == 200
        await wait_for(lambda: b.mode == "decode" and not a.sends_packets, what="decoding for the overlay")
        await wait_hz(call, 1500, tol=20)  # the overlay (louder than the far tone)
        assert forwarding(a, b)
        await wait_hz(inc, 600)
        st, _ = await api(cc.api_url, "POST", f"/v2/calls/{a_id}/actions/playback_stop", {"overlay": True},
                          API_KEY)
        assert st == 200
        await forwards_without_decoding(b, a)
        await wait_hz(call, 900)
        await wait_hz(inc, 600)
        await p1.hangup(call)
