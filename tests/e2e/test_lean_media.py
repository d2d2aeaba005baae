"""The lean aiortc path end to end (issue 14 item 3): real switch, real aiortc, real audio.

* A call to the switch's echo negotiates mono Opus in both SDPs (``stereo=0;sprop-stereo=0``), the
  softphone encodes and decodes inline (the shim's counters move), and the tone comes back at the
  level it was sent (no 3 dB mono/stereo loss) and at its frequency.
* PCMU calls still work through the same path.
* Two peers with no switch: each side hears the other's tone at the sent level, with inline codecs.
"""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from softphone.client.client import AudioConfig, Client
from softphone.media.dsp import dominant_frequency
from softphone.media.peer import MediaPeer, PeerOptions
from softphone.media.sinks import BufferSink
from softphone.media.sources import ToneSource
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

AMPLITUDE = 0.5


def rms(samples: np.ndarray) -> float:
    x = samples.astype(np.float64)
    return float(np.sqrt(np.mean(x * x)))


def sent_rms(freq: float) -> float:
    src = ToneSource(freq, AMPLITUDE)
    return rms(np.concatenate([src.read_frame() for _ in range(50)]))  # type: ignore[misc]


def opus_fmtp(sdp: str) -> dict[str, str]:
    lines = sdp.replace("\r\n", "\n").split("\n")
    pts = [ln.split(":", 1)[1].split(" ", 1)[0] for ln in lines if ln.startswith("a=rtpmap:") and " opus/" in ln]
    assert pts, "no Opus in the SDP"
    for ln in lines:
        if ln.startswith(f"a=fmtp:{pts[0]} "):
            return dict(kv.split("=", 1) for kv in ln.split(" ", 1)[1].split(";") if "=" in kv)
    raise AssertionError(f"no fmtp for Opus payload type {pts[0]}")


async def wait_heard(sink: BufferSink, seconds: float, timeout: float = 20.0) -> np.ndarray:
    """The last ``seconds`` of what ``sink`` got, once it holds that much loud audio (CPU may be busy)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        tail = sink.samples(seconds)
        if tail.shape[0] >= int(seconds * 48000 * 0.9) and rms(tail[: tail.shape[0] // 4]) > 1000:
            return tail
        if asyncio.get_running_loop().time() > deadline:
            return tail
        await asyncio.sleep(0.1)


async def test_echo_call_is_mono_opus_inline_at_full_level() -> None:
    sent = sent_rms(440)
    async with Switch(accounts=default_accounts(), port=0) as sw:
        client = Client(sw.url, Credentials(login="demo", password="demo-secret"),
                        audio=AudioConfig(backend="null"), codecs=["opus"])
        try:
            await client.connect()
            call = await client.new_call("echo")
            heard = BufferSink()
            call.set_output(heard)
            call.set_input(ToneSource(440, AMPLITUDE))
            await call.wait_state(CallState.ACTIVE)
            await asyncio.sleep(1.0)
            tail = await wait_heard(heard, 0.6)
            peer = call.peer
            assert peer is not None and (call.codec or "").lower().startswith("opus")
            offer, answer = peer.sent_sdp, peer.received_sdp
            assert offer is not None and answer is not None
            for sdp in (offer, answer):
                fmtp = opus_fmtp(sdp)
                assert fmtp.get("stereo") == "0" and fmtp.get("sprop-stereo") == "0", fmtp
            assert peer.lean.active and peer.lean.encoder is not None and peer.lean.decoder is not None
            assert peer.lean.encoder.frames_encoded > 25 and peer.lean.decoder.frames_decoded > 25
            assert tail.shape[0] > 0 and abs(dominant_frequency(tail) - 440) < 5
            loss = 20 * math.log10(rms(tail) / sent)
            assert abs(loss) < 1.0, f"sent RMS {sent:.0f}, heard {rms(tail):.0f} ({loss:+.1f} dB)"
            await call.hangup()
            await call.wait_ended(5)
        finally:
            await client.close()


async def test_pcmu_call_through_echo_still_works() -> None:
    sent = sent_rms(600)
    async with Switch(accounts=default_accounts(), port=0) as sw:
        client = Client(sw.url, Credentials(login="demo", password="demo-secret"),
                        audio=AudioConfig(backend="null"), codecs=["PCMU"])
        try:
            await client.connect()
            call = await client.new_call("echo")
            heard = BufferSink()
            call.set_output(heard)
            call.set_input(ToneSource(600, AMPLITUDE))
            await call.wait_state(CallState.ACTIVE)
            await asyncio.sleep(1.0)
            tail = await wait_heard(heard, 0.6)
            assert (call.codec or "").upper().startswith("PCMU")
            assert call.peer is not None and call.peer.lean.decoder is not None
            assert call.peer.lean.decoder.frames_decoded > 25
            assert abs(dominant_frequency(tail) - 600) < 8
            assert abs(20 * math.log10(rms(tail) / sent)) < 1.0
            await call.hangup()
            await call.wait_ended(5)
        finally:
            await client.close()


async def test_two_peers_hear_each_other_at_the_sent_level() -> None:
    heard_a, heard_b = BufferSink(), BufferSink()
    a = MediaPeer(PeerOptions.loopback(jitter_prefetch=1), source=ToneSource(440, AMPLITUDE), sink=heard_a)
    b = MediaPeer(PeerOptions.loopback(jitter_prefetch=1), source=ToneSource(880, AMPLITUDE), sink=heard_b)
    try:
        answer = await b.accept_offer(await a.create_offer())
        await a.set_answer(answer)
        await a.wait_connected(10)
        await asyncio.sleep(1.0)
        for sink, freq in ((heard_b, 440), (heard_a, 880)):
            tail = await wait_heard(sink, 0.6)
            assert abs(dominant_frequency(tail) - freq) < 8
            assert abs(20 * math.log10(rms(tail) / sent_rms(freq))) < 1.0
        for peer in (a, b):
            assert peer.lean.encoder is not None and peer.lean.encoder.frames_encoded > 25
            assert peer.lean.decoder is not None and peer.lean.decoder.frames_decoded > 25
    finally:
        await a.close()
        await b.close()
