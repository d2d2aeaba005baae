"""The lean aiortc path: inline Opus mono, inline decode, a zero-delay jitter buffer.

aiortc (a dependency, not ours to patch) costs a softphone call more than it must
(issue 14, PERFORMANCE.md):

* its Opus encoder is stereo at 96 kbit/s, run on an executor thread per 20 ms frame
  (``RTCRtpSender._next_encoded_frame`` -> ``loop.run_in_executor``), and the RFC 6464
  audio level of every frame is a pure-Python loop over the samples
  (``rtp.compute_audio_level_dbov``);
* every received frame goes to a decoder thread through a ``queue.Queue`` and comes
  back with ``run_coroutine_threadsafe`` (two thread wake-ups per packet);
* its audio jitter buffer releases a frame only once ``prefetch`` later packets have
  arrived (at least one: 20 ms per receiver even on loopback, in order).

libopus encodes a 20 ms frame in about 50 us, far less than a thread hop, so this
module runs the codecs inline on the event loop. Everything that touches aiortc's
internals lives here and is applied from one place, :func:`apply`, called by
:class:`~softphone.media.peer.MediaPeer` for its transceiver:

* the sender: an instance-level replacement of ``_next_encoded_frame`` (the method
  ``_run_rtp`` awaits for each frame) that encodes inline, with Opus **mono at
  32 kbit/s** (what Chromium sends for voice: its offer's fmtp has no ``stereo=1``)
  and a numpy audio level. Already-encoded ``av.Packet`` s from the track are packed
  exactly as aiortc does (``Encoder.pack``), so a forwarding track keeps working;
* the receiver: its decoder queue is replaced, before ``receive()`` starts the decoder
  thread, by :class:`InlineDecoder`, whose ``put`` decodes on the loop and hands the
  frames straight to the remote track's queue. The decoder thread aiortc still starts
  blocks in ``InlineDecoder.get`` until the receiver stops (no per-frame wake-ups) and
  then ends the track as before;
* the receiver's audio jitter buffer becomes :class:`LeanJitterBuffer` when the peer
  asks for a small one: packets in sequence are released at once, a gap is waited for
  while at most ``hold`` later packets are held.

Tested aiortc versions are pinned in :data:`TESTED_AIORTC`: importing this module
with any other version raises :class:`AiortcVersionError` (set
``SOFTPHONE_AIORTC_UNTESTED=1`` to run with aiortc's stock media path instead, the shim
then does nothing). ``tests/unit/media/test_aiortc_shim_unit.py`` fingerprints the
aiortc source this relies on (:data:`FINGERPRINTS`) and fails when it changes. The
upstream proposal that would make this module unnecessary: ``docs/aiortc-upstream.md``.
"""

from __future__ import annotations

import collections
import fractions
import hashlib
import inspect
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any

import aiortc
import av
import numpy as np

logger = logging.getLogger(__name__)

TESTED_AIORTC = ("1.16.0",)
"""aiortc versions this shim was written against and tested with."""
UNTESTED_ENV = "SOFTPHONE_AIORTC_UNTESTED"
"""Set to ``1`` to run an untested aiortc with its stock media path (this shim disabled)."""

OPUS_BITRATE = 32_000
"""Opus target bitrate (bit/s): Chromium's default for a mono voice stream."""
OPUS_FMTP = {"minptime": "10", "useinbandfec": "1", "stereo": "0", "sprop-stereo": "0"}
"""What our SDP says about Opus: Chromium's own fmtp plus an explicit mono in both directions
(RFC 7587 §7.1: ``stereo=0`` asks the far end to send mono, ``sprop-stereo=0`` says we send mono)."""

_SAMPLE_RATE = 48_000
_FRAME = 960
_MAX_MISORDER = 100  # as aiortc.jitterbuffer: further behind than this is a restarted stream
_MAX_JUMP = 3000  # packets (60 s): further ahead than this is a restarted stream too

# aiortc internals this module reads or replaces (name-mangled privates spelt out once).
SENDER_NEXT_FRAME = "_next_encoded_frame"
SENDER_ENABLED = "_enabled"
RECEIVER_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
RECEIVER_DECODER_ERROR = "_RTCRtpReceiver__decoder_error"
RECEIVER_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
TRACK_QUEUE = "_queue"

FINGERPRINTS: dict[str, str] = {
    # sha256 (first 16 hex digits) of inspect.getsource(...) in aiortc 1.16.0. A change means: re-read the
    # function, check this module still fits it, re-run the tests, then update the hash and TESTED_AIORTC.
    "aiortc.rtcrtpsender.RTCRtpSender._next_encoded_frame": "89dd9fa4fb33741c",
    "aiortc.rtcrtpsender.RTCRtpSender._run_rtp": "ff597a1d554cb373",
    "aiortc.rtcrtpsender.RTCEncodedFrame": "a1d4ac96ce48582e",
    "aiortc.rtcrtpreceiver.RTCRtpReceiver.__init__": "3e3b7b5cefbaac6f",
    "aiortc.rtcrtpreceiver.RTCRtpReceiver.receive": "d6d8d8d7a0bf4e95",
    "aiortc.rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet": "4e54983d021a6336",
    "aiortc.rtcrtpreceiver.RTCRtpReceiver._RTCRtpReceiver__stop_decoder": "108105d17e257dba",
    "aiortc.rtcrtpreceiver.decoder_worker": "d500d4e567d6846c",
    "aiortc.rtcrtpreceiver.RemoteStreamTrack": "a69be688b066c569",
    "aiortc.jitterbuffer.JitterFrame": "387bd33b13a7f10a",
}
"""The aiortc source the shim depends on, fingerprinted (see :func:`fingerprint_mismatches`)."""


class AiortcVersionError(ImportError):
    """The installed aiortc is not one the lean path was tested with."""


def version_ok(version: str, *, env: dict[str, str] | None = None) -> bool:
    """True if the shim applies to ``version``; False (stock aiortc path) when overridden.

    Raises :class:`AiortcVersionError` for an untested version unless ``SOFTPHONE_AIORTC_UNTESTED=1``.
    """
    if version in TESTED_AIORTC:
        return True
    if (os.environ if env is None else env).get(UNTESTED_ENV) == "1":
        logger.warning("aiortc %s is untested with softphone (tested: %s): using aiortc's stock media path",
                       version, ", ".join(TESTED_AIORTC))
        return False
    raise AiortcVersionError(
        f"softphone's media path was tested with aiortc {' / '.join(TESTED_AIORTC)}, but aiortc {version} is "
        f"installed: install a tested version (pip install 'aiortc=={TESTED_AIORTC[-1]}'), or set "
        f"{UNTESTED_ENV}=1 to run with aiortc's stock (slower) media path"
    )


ENABLED = version_ok(str(aiortc.__version__))
"""Whether :func:`apply` changes anything (False only for an untested aiortc with the override set)."""


def _source_of(dotted: str) -> str:
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return inspect.getsource(obj)
    raise ImportError(dotted)


def fingerprint(dotted: str) -> str:
    """The short sha256 of one aiortc object's source (as recorded in :data:`FINGERPRINTS`)."""
    return hashlib.sha256(_source_of(dotted).encode()).hexdigest()[:16]


def fingerprint_mismatches() -> dict[str, str]:
    """``{name: current fingerprint}`` for every aiortc internal whose source changed (empty: all match)."""
    out = {}
    for name, expected in FINGERPRINTS.items():
        try:
            got = fingerprint(name)
        except (ImportError, AttributeError, OSError, TypeError) as exc:
            got = f"missing ({exc})"
        if got != expected:
            out[name] = got
    return out


# -- codecs ---------------------------------------------------------------------------------------


def audio_level_dbov(samples: np.ndarray[Any, Any]) -> int:
    """RFC 6465 Appendix A level of s16 samples, in dBov (-127 .. 0), vectorised."""
    if samples.size == 0:
        return -127
    x = samples.astype(np.float32).reshape(-1)
    rms = math.sqrt(float(np.dot(x, x)) / x.shape[0]) / 32767.0
    if rms <= 0.0:
        return -127
    return round(min(0.0, max(-127.0, 20.0 * math.log10(rms))))


class OpusMonoEncoder:
    """libopus, mono, ``bitrate`` bit/s, VoIP mode: one packet per 20 ms frame, no resampler on the fast path."""

    def __init__(self, bitrate: int = OPUS_BITRATE) -> None:
        ctx: Any = av.CodecContext.create("libopus", "w")
        ctx.bit_rate = bitrate
        ctx.format = "s16"
        ctx.layout = "mono"
        ctx.sample_rate = _SAMPLE_RATE
        ctx.time_base = fractions.Fraction(1, _SAMPLE_RATE)
        ctx.options = {"application": "voip"}
        self.codec = ctx
        self._resampler: Any = None
        self._first_pts: int | None = None

    def encode(self, frame: av.AudioFrame) -> tuple[list[bytes], int | None]:
        """Encode one frame; returns ``(payloads, RTP timestamp offset at 48 kHz)``."""
        if (frame.format.name == "s16" and frame.layout.name == "mono" and frame.sample_rate == _SAMPLE_RATE
                and frame.samples == _FRAME and frame.pts is not None):
            # The engine's own frames: their pts already counts 48 kHz samples (gaps included).
            return [bytes(p) for p in self.codec.encode(frame)], int(frame.pts)
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=_SAMPLE_RATE, frame_size=_FRAME)
        packets = []
        for part in self._resampler.resample(frame):
            packets += self.codec.encode(part)
        if not packets:
            return [], None
        if self._first_pts is None:
            self._first_pts = int(packets[0].pts)
        return [bytes(p) for p in packets], int(packets[0].pts) - self._first_pts


class OpusMonoDecoder:
    """libopus decoding to 48 kHz mono s16 (a stereo stream is downmixed by libopus)."""

    def __init__(self) -> None:
        ctx: Any = av.CodecContext.create("libopus", "r")
        ctx.format = "s16"
        ctx.layout = "mono"
        ctx.sample_rate = _SAMPLE_RATE
        self.codec = ctx
        self._time_base = fractions.Fraction(1, _SAMPLE_RATE)

    def decode(self, encoded: Any) -> list[av.AudioFrame]:
        packet = av.Packet(encoded.data)
        packet.pts = encoded.timestamp
        packet.time_base = self._time_base
        return list(self.codec.decode(packet))


def _is_opus(codec: Any) -> bool:
    return str(codec.mimeType).lower() == "audio/opus"


# -- the sender -----------------------------------------------------------------------------------


class InlineEncoder:
    """What the replaced ``_next_encoded_frame`` uses: one encoder per codec, run on the loop."""

    def __init__(self, opus_bitrate: int = OPUS_BITRATE) -> None:
        self.opus_bitrate = opus_bitrate
        self.frames_encoded = 0
        """Frames encoded inline (a test counts them)."""
        self._codec_name: str | None = None
        self._encoder: Any = None
        self._packer: Any = None

    def _for(self, codec: Any) -> Any:
        from aiortc.codecs import get_encoder

        name = str(codec.mimeType).lower()
        if name != self._codec_name:
            self._codec_name = name
            self._encoder = OpusMonoEncoder(self.opus_bitrate) if _is_opus(codec) else get_encoder(codec)
            self._packer = get_encoder(codec)
        return self._encoder

    def encode(self, codec: Any, data: Any) -> tuple[list[bytes], Any, Any]:
        """``(payloads, timestamp, audio level dBov or None)`` for a frame or an already-encoded packet."""
        encoder = self._for(codec)
        if isinstance(data, av.AudioFrame):
            level = audio_level_dbov(data.to_ndarray())
            payloads, timestamp = encoder.encode(data) if isinstance(encoder, OpusMonoEncoder) else encoder.encode(
                data, False)
            self.frames_encoded += 1
            return payloads, timestamp, level
        if isinstance(data, av.Packet):
            payloads, timestamp = self._packer.pack(data)
            return payloads, timestamp, None
        # Video frames never reach an audio sender; anything else goes through aiortc's encoder.
        payloads, timestamp = encoder.encode(data, False)
        return payloads, timestamp, None


def lean_sender(sender: Any, *, opus_bitrate: int = OPUS_BITRATE) -> InlineEncoder | None:
    """Make ``sender`` (an audio ``RTCRtpSender``) encode inline; returns the encoder (None if disabled)."""
    if not ENABLED:
        return None
    from aiortc.rtcrtpsender import RTCEncodedFrame

    inline = InlineEncoder(opus_bitrate)

    async def next_encoded_frame(codec: Any) -> Any:
        # Same contract as aiortc's RTCRtpSender._next_encoded_frame (see FINGERPRINTS), minus the executor.
        data = await sender.track.recv()
        if not getattr(sender, SENDER_ENABLED):
            return None  # disabled: read the track so frames do not pile up, send nothing
        payloads, timestamp, level = inline.encode(codec, data)
        if not payloads:
            return None
        return RTCEncodedFrame(payloads, timestamp, level)

    setattr(sender, SENDER_NEXT_FRAME, next_encoded_frame)
    return inline


# -- the receiver ---------------------------------------------------------------------------------


class LeanJitterBuffer:
    """An audio jitter buffer that adds no delay to packets that arrive in order.

    aiortc's ``JitterBuffer`` releases frame *n* when packet *n + prefetch* arrives (20 ms
    or more per receiver). Here a packet that is the next in sequence is released at
    once; after a gap up to ``hold`` later packets are kept waiting for the missing one
    (reordering), then the gap is skipped. Late and duplicate packets are dropped.
    ``add`` returns one frame, as aiortc's receiver expects; frames that become ready
    together (a gap filled) wait in :meth:`pop_ready` for :class:`InlineDecoder`.
    Audio only: one RTP packet is one frame.
    """

    def __init__(self, hold: int = 1) -> None:
        from aiortc.jitterbuffer import JitterFrame

        self._frame_cls = JitterFrame
        self.hold = max(0, hold)
        self._expected: int | None = None
        self._held: dict[int, Any] = {}
        self._ready: collections.deque[Any] = collections.deque()
        self.dropped = 0
        """Late or duplicate packets dropped."""
        self.skipped = 0
        """Sequence numbers given up on (lost, or later than ``hold`` packets)."""
        self.released_timestamp: int | None = None
        """RTP timestamp of the frame :meth:`add` returned last."""

    @property
    def capacity(self) -> int:
        return self.hold + 1

    def _frame(self, packet: Any) -> Any:
        return self._frame_cls(data=getattr(packet, "_data", packet.payload), timestamp=packet.timestamp)

    def _drain_held(self) -> None:
        while self._expected in self._held:
            self._ready.append(self._frame(self._held.pop(self._expected)))
            self._expected = (self._expected + 1) & 0xFFFF

    def add(self, packet: Any) -> tuple[bool, Any]:
        seq = int(packet.sequence_number)
        if self._expected is None:
            self._expected = seq
        ahead = (seq - self._expected) & 0xFFFF
        if ahead >= 0x8000:  # behind what we released: late or a duplicate, or the stream restarted
            if (self._expected - seq) & 0xFFFF < _MAX_MISORDER:
                self.dropped += 1
                return False, None
            ahead = self._restart(seq)
        elif ahead > _MAX_JUMP:  # far ahead: a new stream, start over
            ahead = self._restart(seq)
        if ahead == 0:
            out = self._frame(packet)
            self._expected = (seq + 1) & 0xFFFF
            self._drain_held()
            self.released_timestamp = int(packet.timestamp)
            return False, out
        if seq in self._held:
            self.dropped += 1
            return False, None
        self._held[seq] = packet
        if len(self._held) <= self.hold:
            return False, None
        # Give up on the gap: release from the oldest held packet on.
        expected = self._expected
        first = min(self._held, key=lambda s: (s - expected) & 0xFFFF)
        self.skipped += (first - expected) & 0xFFFF
        packet = self._held.pop(first)
        self._expected = (first + 1) & 0xFFFF
        self._drain_held()
        self.released_timestamp = int(packet.timestamp)
        return False, self._frame(packet)

    def _restart(self, seq: int) -> int:
        self._held.clear()
        self._ready.clear()
        self._expected = seq
        return 0

    def pop_ready(self) -> Any | None:
        """The next frame released together with the last one, or None."""
        return self._ready.popleft() if self._ready else None


class InlineDecoder:
    """Stands in for ``RTCRtpReceiver``'s decoder ``queue.Queue``: ``put`` decodes on the event loop.

    aiortc's receiver calls ``put((codec, encoded_frame))`` for each complete frame and
    ``put(None)`` to stop; its decoder thread calls ``get()``. Here ``put`` decodes at
    once and hands each frame to the remote track's ``asyncio.Queue``; ``get`` blocks the
    (otherwise idle) thread until ``put(None)``, then returns ``None`` so that thread ends
    the track exactly as aiortc's own worker does.
    """

    def __init__(self, receiver: Any, jitter: LeanJitterBuffer | None = None) -> None:
        self._receiver = receiver
        self._jitter = jitter
        self._stopped = threading.Event()
        self._codec_name: str | None = None
        self._decoder: Any = None
        self.frames_decoded = 0
        """Frames decoded inline (a test counts them)."""
        self.first_frame_at: float | None = None
        """``time.monotonic()`` when the first complete encoded frame arrived (the first RTP packet)."""
        self.on_encoded: Callable[[Any, Any], bool] | None = None
        """Optional hook ``(codec, JitterFrame) -> handled``: return True to skip decoding that frame."""

    # queue.Queue's interface, as aiortc uses it
    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        del block, timeout
        if item is None:
            self._stopped.set()
            return
        codec, encoded = item
        if self.first_frame_at is None:
            self.first_frame_at = time.monotonic()
        self._handle(codec, encoded)
        if self._jitter is not None:
            base = self._jitter.released_timestamp
            while (extra := self._jitter.pop_ready()) is not None:
                if base is not None:  # map like the receiver mapped the first one
                    extra.timestamp = (encoded.timestamp + ((extra.timestamp - base) & 0xFFFFFFFF)) & 0xFFFFFFFF
                self._handle(codec, extra)

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        del block
        self._stopped.wait(timeout)
        return None

    def _handle(self, codec: Any, encoded: Any) -> None:
        hook = self.on_encoded
        if hook is not None and hook(codec, encoded):
            return
        name = str(codec.mimeType).lower()
        if name != self._codec_name:
            from aiortc.codecs import get_decoder

            self._codec_name = name
            self._decoder = OpusMonoDecoder() if _is_opus(codec) else get_decoder(codec)
        try:
            frames = self._decoder.decode(encoded)
        except av.FFmpegError as exc:
            logger.warning("failed to decode a %s frame: %s", codec.mimeType, exc)
            getattr(self._receiver, RECEIVER_DECODER_ERROR).set()
            return
        track = self._receiver.track
        if track is None:
            return
        queue = getattr(track, TRACK_QUEUE)
        for frame in frames:
            self.frames_decoded += 1
            queue.put_nowait(frame)


def lean_receiver(receiver: Any, *, jitter_hold: int | None) -> InlineDecoder | None:
    """Make ``receiver`` (an audio ``RTCRtpReceiver``, before ``receive()``) decode inline.

    ``jitter_hold`` None keeps aiortc's audio jitter buffer (4 frames); a number installs
    :class:`LeanJitterBuffer` with that many packets of reordering tolerance.
    """
    if not ENABLED:
        return None
    jitter = None
    if jitter_hold is not None:
        jitter = LeanJitterBuffer(jitter_hold)
        setattr(receiver, RECEIVER_JITTER_BUFFER, jitter)
    decoder = InlineDecoder(receiver, jitter)
    setattr(receiver, RECEIVER_DECODER_QUEUE, decoder)
    return decoder


class LeanPath:
    """What :func:`apply` installed on one transceiver (for counters and tests)."""

    def __init__(self, encoder: InlineEncoder | None, decoder: InlineDecoder | None) -> None:
        self.encoder = encoder
        self.decoder = decoder

    @property
    def active(self) -> bool:
        return self.encoder is not None


def apply(transceiver: Any, *, jitter_hold: int | None, opus_bitrate: int = OPUS_BITRATE) -> LeanPath:
    """The one place the lean path is applied: an audio transceiver, right after ``addTransceiver``."""
    return LeanPath(lean_sender(transceiver.sender, opus_bitrate=opus_bitrate),
                    lean_receiver(transceiver.receiver, jitter_hold=jitter_hold))

