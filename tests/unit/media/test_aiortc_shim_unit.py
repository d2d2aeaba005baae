"""The lean aiortc path (softphone.media.aiortc_shim): version guard, the aiortc source it relies on,
the low-delay jitter buffer, inline Opus mono and the inline decoder's queue protocol.

``test_aiortc_internals_unchanged`` is the loud one: it fails whenever aiortc's code that the shim
replaces or depends on changes, naming each function, so an upgrade is re-read before it ships.
"""

from __future__ import annotations

import asyncio
import fractions
import math
from typing import Any

import aiortc
import av
import numpy as np
import pytest
from aiortc.rtp import RtpPacket, compute_audio_level_dbov

from softphone.media import aiortc_shim as shim


def tone(n_frames: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(960 * n_frames) / 48000.0
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


def av_frame(samples: np.ndarray, pts: int, rate: int = 48000) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    frame.pts = pts
    frame.time_base = fractions.Fraction(1, rate)
    return frame


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


# -- the version guard ------------------------------------------------------------------------------


def test_installed_aiortc_is_a_tested_one() -> None:
    assert aiortc.__version__ in shim.TESTED_AIORTC, (
        f"aiortc {aiortc.__version__} is installed; the lean path was tested with {shim.TESTED_AIORTC}")
    assert shim.ENABLED


def test_an_untested_version_fails_loudly_with_the_way_out() -> None:
    with pytest.raises(shim.AiortcVersionError) as err:
        shim.version_ok("1.99.0", env={})
    text = str(err.value)
    assert "1.99.0" in text and "1.16.0" in text and shim.UNTESTED_ENV in text
    assert isinstance(err.value, ImportError)  # raised at import of softphone.media.aiortc_shim


def test_the_override_runs_the_stock_path() -> None:
    assert shim.version_ok("1.99.0", env={shim.UNTESTED_ENV: "1"}) is False
    assert shim.version_ok("1.16.0", env={}) is True


def test_aiortc_internals_unchanged() -> None:
    changed = shim.fingerprint_mismatches()
    assert not changed, (
        "aiortc changed code the lean media path (softphone/media/aiortc_shim.py) depends on; re-read each, "
        "check the shim still fits, re-test, then update FINGERPRINTS and TESTED_AIORTC:\n  "
        + "\n  ".join(f"{name}: now {fp}" for name, fp in changed.items()))


def test_internal_names_exist_on_this_aiortc() -> None:
    from aiortc.rtcrtpreceiver import RemoteStreamTrack
    from aiortc.rtcrtpsender import RTCRtpSender

    assert callable(getattr(RTCRtpSender, shim.SENDER_NEXT_FRAME))
    assert hasattr(RemoteStreamTrack("audio"), shim.TRACK_QUEUE)
    for name in ("__decoder_queue", "__decoder_error", "__jitter_buffer"):
        assert f"self.{name}" in shim.inspect.getsource(aiortc.rtcrtpreceiver.RTCRtpReceiver.__init__)
    assert shim.RECEIVER_DECODER_QUEUE == "_RTCRtpReceiver__decoder_queue"


# -- the jitter buffer --------------------------------------------------------------------------------


def packet(seq: int, ts: int | None = None) -> RtpPacket:
    p = RtpPacket(payload_type=96, sequence_number=seq & 0xFFFF, timestamp=(960 * seq if ts is None else ts))
    p.payload = bytes([seq & 0xFF]) * 3
    p._data = p.payload  # type: ignore[attr-defined]  # aiortc's receiver sets it before add()
    return p


def released(jb: shim.LeanJitterBuffer, seq: int) -> list[int]:
    """Sequence bytes of the frames released by adding ``seq`` (add's frame, then pop_ready's)."""
    out = []
    _, frame = jb.add(packet(seq))
    if frame is not None:
        out.append(frame.data[0])
        while (extra := jb.pop_ready()) is not None:
            out.append(extra.data[0])
    return out


def test_in_order_packets_are_released_at_once() -> None:
    jb = shim.LeanJitterBuffer(hold=1)
    assert [released(jb, s) for s in range(100, 105)] == [[100], [101], [102], [103], [104]]


def test_a_reordered_packet_is_waited_for_then_both_go() -> None:
    jb = shim.LeanJitterBuffer(hold=1)
    assert released(jb, 10) == [10]
    assert released(jb, 12) == []  # 11 missing: hold one
    assert released(jb, 11) == [11, 12]
    assert released(jb, 13) == [13]


def test_a_lost_packet_is_given_up_after_hold_packets() -> None:
    jb = shim.LeanJitterBuffer(hold=1)
    released(jb, 10)
    assert released(jb, 12) == []
    assert released(jb, 13) == [12, 13]  # 11 given up
    assert jb.skipped == 1
    assert released(jb, 11) == []  # late now: dropped
    assert jb.dropped == 1


def test_hold_zero_never_waits_and_duplicates_are_dropped() -> None:
    jb = shim.LeanJitterBuffer(hold=0)
    assert released(jb, 5) == [5]
    assert released(jb, 7) == [7]
    assert released(jb, 7) == []
    assert released(jb, 8) == [8]


def test_sequence_wraps_and_a_restarted_stream_is_followed() -> None:
    jb = shim.LeanJitterBuffer(hold=1)
    assert [released(jb, s) for s in (65534, 65535, 65536, 65537)] == [[0xFE], [0xFF], [0x00], [0x01]]
    assert released(jb, 30000) == [30000 & 0xFF]  # far ahead: a new stream
    assert released(jb, 500) == [500 & 0xFF]  # far behind: restarted again


# -- codecs ------------------------------------------------------------------------------------------------


def test_numpy_level_matches_aiortcs_loop() -> None:
    for amp in (0.0, 0.001, 0.1, 0.5, 1.0):
        frame = av_frame(tone(1, amplitude=amp), 0)
        assert shim.audio_level_dbov(frame.to_ndarray()) == compute_audio_level_dbov(frame)


def test_opus_mono_at_32_kbits_keeps_the_level() -> None:
    enc, dec = shim.OpusMonoEncoder(), shim.OpusMonoDecoder()
    x = tone(50)
    sizes, out, stamps = [], [], []
    for i in range(50):
        payloads, ts = enc.encode(av_frame(x[i * 960:(i + 1) * 960], i * 960))
        assert len(payloads) == 1  # one packet per frame, no buffering
        sizes.append(len(payloads[0]))
        stamps.append(ts)
        frames = dec.decode(type("F", (), {"data": payloads[0], "timestamp": ts})())
        out += [f.to_ndarray().reshape(-1) for f in frames]
        assert frames[0].layout.name == "mono"
    assert stamps == [960 * i for i in range(50)]
    assert 60 <= float(np.median(sizes)) <= 100, sizes  # ~80 bytes per 20 ms = 32 kbit/s
    y = np.concatenate(out)
    loss_db = 20 * math.log10(rms(y[9600:]) / rms(x[9600:]))
    assert abs(loss_db) < 0.5


def test_inline_encoder_packs_packets_like_aiortc() -> None:
    from aiortc.codecs import CODECS

    opus = CODECS["audio"][0]
    inline = shim.InlineEncoder()
    payloads, ts, level = inline.encode(opus, av_frame(tone(1), 4800))
    assert len(payloads) == 1 and ts == 4800 and -10 < level < 0
    pkt = av.Packet(b"\x01\x02\x03")
    pkt.pts = 96
    pkt.time_base = fractions.Fraction(1, 48000)
    assert inline.encode(opus, pkt) == ([b"\x01\x02\x03"], 96, None)
    assert inline.frames_encoded == 1


class FakeTrack:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()


class FakeReceiver:
    def __init__(self) -> None:
        import threading

        self.track = FakeTrack()
        self._RTCRtpReceiver__decoder_error = threading.Event()


async def test_inline_decoder_speaks_the_decoder_queue_protocol() -> None:
    from aiortc.codecs import CODECS, PCMU_CODEC
    from aiortc.jitterbuffer import JitterFrame

    receiver = FakeReceiver()
    jitter = shim.LeanJitterBuffer(hold=1)
    decoder = shim.InlineDecoder(receiver, jitter)
    enc = shim.OpusMonoEncoder()
    payloads, _ = enc.encode(av_frame(tone(1), 0))
    decoder.put((CODECS["audio"][0], JitterFrame(payloads[0], 0)))
    frame = receiver.track._queue.get_nowait()
    assert frame.samples == 960 and frame.layout.name == "mono" and decoder.frames_decoded == 1
    decoder.put((PCMU_CODEC, JitterFrame(b"\xff" * 160, 160)))  # another codec: aiortc's decoder
    assert receiver.track._queue.get_nowait().samples == 160
    decoder.put((CODECS["audio"][0], JitterFrame(b"\xff\xff\xff", 320)))  # not Opus: logged, flagged
    assert receiver._RTCRtpReceiver__decoder_error.is_set()
    # the hook M1's forwarding uses: a frame taken there is not decoded
    decoder.on_encoded = lambda codec, encoded: True
    decoder.put((CODECS["audio"][0], JitterFrame(payloads[0], 960)))
    assert receiver.track._queue.empty()
    # stop: put(None) releases the receiver's (idle) decoder thread, whose get() returns None
    loop = asyncio.get_running_loop()
    waiter = loop.run_in_executor(None, decoder.get)
    decoder.put(None)
    assert await asyncio.wait_for(waiter, 5) is None


async def test_apply_hooks_a_real_transceiver() -> None:
    from aiortc import RTCPeerConnection

    pc = RTCPeerConnection()
    try:
        transceiver = pc.addTransceiver("audio", direction="sendrecv")
        path = shim.apply(transceiver, jitter_hold=1)
        assert path.active and path.encoder is not None and path.decoder is not None
        assert getattr(transceiver.receiver, shim.RECEIVER_DECODER_QUEUE) is path.decoder
        assert isinstance(getattr(transceiver.receiver, shim.RECEIVER_JITTER_BUFFER), shim.LeanJitterBuffer)
        assert transceiver.sender.__dict__[shim.SENDER_NEXT_FRAME] is not None  # instance-level, not the class
        assert shim.SENDER_NEXT_FRAME not in type(transceiver.sender).__dict__ or (
            type(transceiver.sender).__dict__[shim.SENDER_NEXT_FRAME] is not transceiver.sender.__dict__[
                shim.SENDER_NEXT_FRAME])
        other = pc.addTransceiver("audio", direction="sendrecv")
        stock = shim.apply(other, jitter_hold=None)  # None: aiortc's own jitter buffer stays
        assert not isinstance(getattr(other.receiver, shim.RECEIVER_JITTER_BUFFER), shim.LeanJitterBuffer)
        assert stock.decoder is not None
    finally:
        await pc.close()
