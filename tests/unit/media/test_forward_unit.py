"""softphone.media.forward against the real aiortc classes (no sockets): the version guard, the aiortc
source it relies on, the receive tap on both decoder paths, and the forwarding track's timeline.

A failure in ``test_aiortc_source_still_fits`` or ``test_tested_aiortc_is_installed`` means aiortc
changed: re-read the functions named, check forward.py still fits them, then update
``forward.TESTED_AIORTC`` / ``forward.REQUIRED_SOURCE``.
"""

from __future__ import annotations

import asyncio
import fractions
import queue
from types import SimpleNamespace
from typing import Any

import aiortc
import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecParameters, RTCRtpReceiveParameters
from aiortc.rtcrtpreceiver import RemoteStreamTrack, RTCRtpReceiver
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.rtp import RtpPacket

from softphone.media import aiortc_shim, forward
from softphone.media.frames import to_av_frame

OPUS = RTCRtpCodecParameters(mimeType="audio/opus", clockRate=48000, channels=2, payloadType=111)
PCMU = RTCRtpCodecParameters(mimeType="audio/PCMU", clockRate=8000, channels=1, payloadType=0)


# -- the guard ------------------------------------------------------------------------------------


def test_tested_aiortc_is_installed() -> None:
    assert aiortc.__version__ in forward.TESTED_AIORTC, (
        f"aiortc {aiortc.__version__} is not in forward.TESTED_AIORTC {forward.TESTED_AIORTC}: see the docstring")
    assert forward.ENABLED


def test_version_guard() -> None:
    assert forward.version_ok(forward.TESTED_AIORTC[0], env={})
    with pytest.raises(forward.AiortcVersionError, match="SOFTPHONE_AIORTC_UNTESTED=1"):
        forward.version_ok("0.9.0", env={})
    assert forward.version_ok("0.9.0", env={forward.UNTESTED_ENV: "1"}) is False


def test_aiortc_source_still_fits() -> None:
    assert forward.source_mismatches() == {}


# -- a receiver and a sender on a transport that sends nowhere -------------------------------------


class _Transport:
    """Just what RTCRtpReceiver/RTCRtpSender touch of an RTCDtlsTransport here."""

    state = "new"
    _stats_id = "transport"

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def _register_rtp_receiver(self, receiver: Any, parameters: Any) -> None: ...

    def _unregister_rtp_receiver(self, receiver: Any) -> None: ...

    def _register_rtp_sender(self, sender: Any, parameters: Any) -> None: ...

    def _unregister_rtp_sender(self, sender: Any) -> None: ...

    async def _send_rtp(self, data: bytes) -> None:
        self.sent.append(data)

    def _get_stats(self) -> dict[str, Any]:
        return {}


class _Tone(MediaStreamTrack):
    """A PCM track: 20 ms 48 kHz mono frames, its own pts (as SourceTrack), no pacing."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self.pts = 0

    async def recv(self) -> av.AudioFrame:
        t = (np.arange(960) + self.pts) / 48000
        frame = to_av_frame((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16), self.pts)
        self.pts += 960
        return frame


def _opus_payloads(n: int) -> list[bytes]:
    enc = av.CodecContext.create("libopus", "w")
    enc.bit_rate, enc.format, enc.layout, enc.sample_rate = 32000, "s16", "mono", 48000
    enc.time_base = fractions.Fraction(1, 48000)
    out: list[bytes] = []
    pts = 0
    while len(out) < n:
        t = (np.arange(960) + pts) / 48000
        frame = av.AudioFrame.from_ndarray((np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16).reshape(1, -1),
                                           format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, pts
        pts += 960
        out += [bytes(p) for p in enc.encode(frame)]
    return out[:n]


async def _receiver(lean: bool) -> tuple[RTCRtpReceiver, _Transport]:
    transport = _Transport()
    receiver = RTCRtpReceiver("audio", transport)  # type: ignore[arg-type]
    receiver._track = RemoteStreamTrack(kind="audio")
    if lean:
        aiortc_shim.lean_receiver(receiver, jitter_hold=1)
    return receiver, transport


async def _start(receiver: RTCRtpReceiver) -> None:
    await receiver.receive(RTCRtpReceiveParameters(codecs=[OPUS]))


async def _feed(receiver: RTCRtpReceiver, payloads: list[bytes], seq0: int = 1000, ts0: int = 5000) -> None:
    for i, data in enumerate(payloads):
        packet = RtpPacket(payload_type=111, sequence_number=seq0 + i, timestamp=ts0 + 960 * i, ssrc=1234)
        packet.payload = data
        await receiver._handle_rtp_packet(packet, arrival_time_ms=0)


async def _drain(track: RemoteStreamTrack, wait: float = 0.3) -> int:
    await asyncio.sleep(wait)  # the stock path decodes on a thread
    return track._queue.qsize()


@pytest.mark.parametrize("lean", [False, True], ids=["stock-decoder-thread", "lean-inline-decoder"])
async def test_tap_forwards_without_decoding_then_decodes(lean: bool) -> None:
    receiver, transport = await _receiver(lean)
    sender = RTCRtpSender(_Tone(), transport)  # type: ignore[arg-type]
    tap, track = forward.install(SimpleNamespace(sender=sender, receiver=receiver))
    queue_now = getattr(receiver, forward.RECEIVER_DECODER_QUEUE)
    assert (type(queue_now) is not queue.Queue) and sender.track is track
    await _start(receiver)
    remote = receiver._track
    assert remote is not None
    payloads = _opus_payloads(12)
    try:
        # forwarding: every frame reaches the other leg's track, none is decoded
        tap.target, tap.codec = track, ("opus", 48000)
        track.set_packet_mode(True)
        await _feed(receiver, payloads[:6])
        held_back = 0 if lean else 4  # aiortc's stock audio jitter buffer holds 4 frames (prefetch)
        assert tap.forwarded == 6 - held_back and tap.decoded == 0
        assert await _drain(remote) == 0
        got = [await asyncio.wait_for(track.recv(), 1) for _ in range(tap.forwarded)]
        assert all(isinstance(p, av.Packet) for p in got)
        assert [bytes(p) for p in got if isinstance(p, av.Packet)] == payloads[: len(got)]
        pts = [int(p.pts) for p in got]  # type: ignore[arg-type]
        assert pts == [pts[0] + 960 * i for i in range(len(pts))]
        # nobody listening: dropped, not decoded
        tap.target, tap.decode = None, False
        await _feed(receiver, payloads[6:8], seq0=1006, ts0=5000 + 6 * 960)
        assert tap.decoded == 0 and tap.idle >= 2 and await _drain(remote) == 0
        # decoding again: frames reach the remote track
        tap.decode = True
        await _feed(receiver, payloads[8:], seq0=1008, ts0=5000 + 8 * 960)
        assert tap.decoded >= 3
        assert await _drain(remote) >= 3
    finally:
        await receiver.stop()


async def test_sender_packs_forwarded_packets_without_encoding() -> None:
    """aiortc's own (stock) sender: a packet from the track goes out as it came, at our timestamp."""
    transport = _Transport()
    sender = RTCRtpSender(_Tone(), transport)  # type: ignore[arg-type]
    track = forward.ForwardingTrack(sender.track)
    sender.replaceTrack(track)
    payload = _opus_payloads(1)[0]
    track.set_packet_mode(True)
    track.feed(payload, 123_456, 48000)
    encoded = await sender._next_encoded_frame(OPUS)
    assert encoded is not None and encoded.payloads == [payload]
    assert encoded.timestamp == 0  # the track's own timeline starts at 0, whatever the upstream's was
    assert encoded.audio_level is None


async def test_lean_sender_packs_forwarded_packets() -> None:
    transport = _Transport()
    sender = RTCRtpSender(_Tone(), transport)  # type: ignore[arg-type]
    inline = aiortc_shim.lean_sender(sender)
    assert inline is not None
    track = forward.ForwardingTrack(sender.track)
    sender.replaceTrack(track)
    payload = _opus_payloads(1)[0]
    track.set_packet_mode(True)
    track.feed(payload, 99, 48000)
    encoded = await sender._next_encoded_frame(OPUS)
    assert encoded is not None and encoded.payloads == [payload] and inline.frames_encoded == 0


async def test_timeline_is_continuous_across_switch_overs() -> None:
    inner = _Tone()
    inner.pts = 777_000  # the PCM track's own clock: not what goes out
    track = forward.ForwardingTrack(inner)
    out: list[int] = []
    for _ in range(3):
        frame = await track.recv()
        out.append(int(frame.pts))  # type: ignore[arg-type]
    track.set_packet_mode(True)
    for i in range(3):  # an upstream timeline far from ours, with a 40 ms gap (a lost packet) at the end
        track.feed(b"x", 10_000_000 + 960 * i + (960 if i == 2 else 0), 48000)
        out.append(int((await track.recv()).pts))  # type: ignore[arg-type]
    track.set_packet_mode(False)
    for _ in range(2):
        out.append(int((await track.recv()).pts))  # type: ignore[arg-type]
    assert out[:5] == [0, 960, 1920, 2880, 3840]
    assert out[5] == 3840 + 1920  # the gap kept
    assert out[6] in (out[5] + 960, out[5] + 1920)  # back to frames: the next slot (a scheduling hiccup at most)
    assert out[7] - out[6] == 960
    assert track.frames_sent == 5 and track.packets_sent == 3


async def test_other_codec_and_frame_mode_feeds_are_dropped() -> None:
    track = forward.ForwardingTrack(_Tone())
    track.feed(b"x", 0, 48000)  # frame mode: not queued
    assert track.dropped == 1
    tap = forward.EncodedTap()
    tap.target, tap.codec = track, ("opus", 48000)
    track.set_packet_mode(True)
    assert tap.handle(PCMU, SimpleNamespace(data=b"\xff" * 160, timestamp=0)) is True  # never decoded either
    assert tap.idle == 1 and tap.forwarded == 0
    assert tap.handle(OPUS, SimpleNamespace(data=b"ok", timestamp=0)) is True and tap.forwarded == 1
    packet = await asyncio.wait_for(track.recv(), 1)
    assert isinstance(packet, av.Packet) and bytes(packet) == b"ok"


async def test_stop_ends_both_tracks() -> None:
    inner = _Tone()
    track = forward.ForwardingTrack(inner)
    track.set_packet_mode(True)
    waiting = asyncio.ensure_future(track.recv())
    await asyncio.sleep(0.01)
    track.stop()
    with pytest.raises(aiortc.mediastreams.MediaStreamError):
        await asyncio.wait_for(waiting, 1)
    assert inner.readyState == "ended"


class _PacedTone(_Tone):
    """A PCM track that paces itself like SourceTrack (an absolute 20 ms schedule), counting its waits."""

    def __init__(self, phase_s: float) -> None:
        super().__init__()
        self.start: float | None = None
        self.phase_s = phase_s
        self.waits = 0

    async def recv(self) -> av.AudioFrame:
        loop = asyncio.get_running_loop()
        if self.start is None:
            self.start = loop.time() + self.phase_s
        due = self.start + self.pts / 48000
        if due > loop.time():
            self.waits += 1
            await asyncio.sleep(due - loop.time())
        return await super().recv()


async def test_frame_mode_follows_a_self_paced_track_without_double_waits() -> None:
    """After a packet-mode spell the wrapper paces; once the PCM track paces itself again, the wrapper
    takes its phase, so each frame costs one wait, and the rate stays 50 frames/s (no drift)."""
    inner = _PacedTone(phase_s=0.011)  # its slots fall 11 ms after the wrapper's
    track = forward.ForwardingTrack(inner)
    track.set_packet_mode(True)
    track.feed(b"x", 0, 48000)
    await track.recv()
    track.set_packet_mode(False)
    times = []
    for _ in range(30):
        await track.recv()
        times.append(asyncio.get_running_loop().time())
    assert inner.waits <= 3, inner.waits  # without following its phase it waits for every frame
    span = times[-1] - times[5]
    assert 24 * 0.020 * 0.9 < span < 24 * 0.020 * 1.5, span


async def test_a_quiet_upstream_is_filled_with_pcm_frames_then_packets_resume() -> None:
    """Packet mode with nothing to forward: after 100 ms the PCM track's frames keep RTP flowing (every
    20 ms), and the next packet starts a new run on the same, increasing timeline."""
    track = forward.ForwardingTrack(_Tone())
    track.set_packet_mode(True)
    track.feed(b"a", 1000, 48000)
    first = await track.recv()
    assert isinstance(first, av.Packet)
    t0 = asyncio.get_running_loop().time()
    fillers = [await asyncio.wait_for(track.recv(), 1) for _ in range(3)]
    assert all(isinstance(f, av.AudioFrame) for f in fillers) and track.filler_frames == 3
    assert asyncio.get_running_loop().time() - t0 < 0.5  # 100 ms, then one per 20 ms
    track.feed(b"b", 1000 + 960 * 50, 48000)  # the upstream comes back (its clock moved on)
    back = await asyncio.wait_for(track.recv(), 1)
    assert isinstance(back, av.Packet) and bytes(back) == b"b"
    pts = [int(p.pts) for p in (first, *fillers, back)]  # type: ignore[arg-type]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)
