"""Encoded-packet forwarding for the switch's legs (issue 14 item 1): RTP moves between legs as it came.

The switch terminates WebRTC on every leg, so an echo or a two-leg bridge used to decode every
packet a leg received and encode it again for the leg that sends it on. When nothing needs the
audio (no recording, no overlay, no tap...), :class:`~softphone.switch.media_legs.MediaLeg` now
moves the *encoded* frames instead, as a B2BUA does: each leg keeps its own SSRC, sequence
numbers, timestamps and RTCP (aiortc's sender and receiver of that leg do those as usual).

Two pieces, one per direction of a leg:

* :class:`EncodedTap` sits on a leg's ``RTCRtpReceiver`` where complete encoded frames leave the
  jitter buffer for the decoder. It hands each frame to a :class:`ForwardingTrack` (forwarding),
  lets it through to the decoder (decoding), or drops it (nobody needs what this leg says). A
  forwarding leg decodes nothing.
* :class:`ForwardingTrack` is the leg's ``RTCRtpSender`` track (installed with the public
  ``replaceTrack``), wrapping the PCM track the peer made. In frame mode it passes that track's
  frames on; in packet mode it returns ``av.Packet`` objects, which aiortc's sender packs without
  encoding (``RTCRtpSender._next_encoded_frame``: a non-frame goes through ``Encoder.pack``). It
  owns the leg's outgoing timeline, so RTP timestamps stay continuous across every switch-over.

aiortc has no public hook for encoded received frames, so :func:`install` touches one internal:
the receiver's decoder queue (``RTCRtpReceiver.__decoder_queue``, name-mangled), replaced before
``receive()`` starts the decoder thread by :class:`_GateQueue`, which asks the tap first. When the
lean path of :mod:`softphone.media.aiortc_shim` already replaced that queue with its inline decoder,
the tap uses that decoder's ``on_encoded`` hook instead (nothing more is touched). The aiortc
versions this was tested with are pinned in :data:`TESTED_AIORTC`; importing this module with
another version raises :class:`AiortcVersionError` unless ``SOFTPHONE_AIORTC_UNTESTED=1`` is set,
in which case :data:`ENABLED` is False and every leg decodes, as before.
``tests/unit/media/test_forward_unit.py`` fails loudly when the aiortc code this relies on changes;
the upstream proposal is in ``docs/aiortc-upstream.md`` ("encoded-packet receive hook").
"""

from __future__ import annotations

import asyncio
import collections
import fractions
import functools
import inspect
import logging
import os
import queue
import time
from collections.abc import Callable
from typing import Any

import aiortc
import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

logger = logging.getLogger(__name__)

TESTED_AIORTC = ("1.16.0",)
"""aiortc versions forwarding was written against and tested with."""
UNTESTED_ENV = "SOFTPHONE_AIORTC_UNTESTED"
"""Set to ``1`` to run an untested aiortc: forwarding is then off (every leg decodes)."""

RECEIVER_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
"""The one aiortc internal :func:`install` replaces (on aiortc's stock receive path)."""

REQUIRED_SOURCE: dict[str, tuple[str, ...]] = {
    # What forwarding relies on, as it reads in aiortc's source (checked by the unit test).
    "aiortc.rtcrtpsender.RTCRtpSender._next_encoded_frame": ("data = await self.__track.recv()",
                                                              "self.__encoder.pack(data)"),
    "aiortc.rtcrtpsender.RTCRtpSender.replaceTrack": ("self.__track = track",),
    "aiortc.rtcrtpreceiver.RTCRtpReceiver.__init__": ("self.__decoder_queue: queue.Queue = queue.Queue()",),
    "aiortc.rtcrtpreceiver.RTCRtpReceiver.receive": ("self.__decoder_queue,",),
    "aiortc.rtcrtpreceiver.RTCRtpReceiver._handle_rtp_packet": (
        "self.__decoder_queue.put((codec, encoded_frame))",),
    "aiortc.rtcrtpreceiver.RTCRtpReceiver._RTCRtpReceiver__stop_decoder": ("self.__decoder_queue.put(None)",),
    "aiortc.rtcrtpreceiver.decoder_worker": ("task = input_q.get()", "codec, encoded_frame = task"),
}

FRAME_S = 0.020
"""The frame duration forwarding assumes when a stream gives no better figure (20 ms)."""
_RESYNC_S = 0.060  # an output later than this behind its slot moves the timeline on (a stall)
_INNER_PACED_S = 0.001  # the PCM track's recv took this long: it slept to pace itself
_FILL_AFTER_S = 0.1  # packet mode with nothing to forward this long: send the PCM track's frames
_QUEUE_PACKETS = 8  # packets a ForwardingTrack holds at most (oldest dropped): 160 ms
_NEW_RUN_TICKS = 10 * 48_000  # a timestamp jump larger than 10 s (at 48 kHz) is a new stream


@functools.cache
def _time_base(rate: int) -> fractions.Fraction:
    return fractions.Fraction(1, rate)


class AiortcVersionError(ImportError):
    """The installed aiortc is not one forwarding was tested with."""


def version_ok(version: str, *, env: dict[str, str] | None = None) -> bool:
    """True for a tested aiortc; False (forwarding off) for another one when overridden, else raise."""
    if version in TESTED_AIORTC:
        return True
    if (os.environ if env is None else env).get(UNTESTED_ENV) == "1":
        logger.warning("aiortc %s is untested with the switch's RTP forwarding (tested: %s): legs decode",
                       version, ", ".join(TESTED_AIORTC))
        return False
    raise AiortcVersionError(
        f"the switch's RTP forwarding was tested with aiortc {' / '.join(TESTED_AIORTC)}, but aiortc "
        f"{version} is installed: install a tested version (pip install 'aiortc=={TESTED_AIORTC[-1]}'), or "
        f"set {UNTESTED_ENV}=1 to run with forwarding off (every switch leg decodes and re-encodes)"
    )


ENABLED = version_ok(str(aiortc.__version__))
"""Whether :func:`install` hooks anything (False only for an untested aiortc with the override set)."""


def _resolve(dotted: str) -> Any:
    import importlib

    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def source_mismatches() -> dict[str, str]:
    """``{aiortc function: what is missing}`` for every line of :data:`REQUIRED_SOURCE` not found."""
    out: dict[str, str] = {}
    for dotted, needles in REQUIRED_SOURCE.items():
        try:
            text = inspect.getsource(_resolve(dotted))
        except (ImportError, AttributeError, OSError, TypeError) as exc:
            out[dotted] = f"missing ({exc})"
            continue
        lost = [n for n in needles if n not in text]
        if lost:
            out[dotted] = "no longer contains: " + " | ".join(lost)
    return out


def codec_key(codec: Any) -> tuple[str, int]:
    """``("opus", 48000)``: what two legs must share to exchange encoded frames."""
    return str(codec.mimeType).split("/", 1)[-1].lower(), int(codec.clockRate)


# -- the sending side ---------------------------------------------------------------------------


class ForwardingTrack(MediaStreamTrack):
    """A leg's outgoing track: the PCM track's frames, or forwarded encoded frames (packet mode).

    Timestamps (``pts``) are this track's own, in units of :attr:`clock_rate`: continuous across
    mode changes, gaps (a stalled loop, a silent upstream) kept as gaps. Frame mode is paced to
    real time here too, so the wrapped track's catch-up after a packet-mode spell is not a burst.
    """

    kind = "audio"

    def __init__(self, inner: MediaStreamTrack, clock_rate: int = 48_000) -> None:
        super().__init__()
        self.inner = inner
        """The PCM track (``softphone.media.tracks.SourceTrack``) read in frame mode."""
        self.clock_rate = clock_rate
        """The RTP clock of the negotiated codec (48000 Opus, 8000 G.711)."""
        self.packets_sent = 0
        """Encoded frames handed to the sender without encoding (packet mode)."""
        self.frames_sent = 0
        """PCM frames handed to the sender (frame mode)."""
        self.dropped = 0
        """Encoded frames dropped: the queue was full, or they arrived in frame mode."""
        self.filler_frames = 0
        """PCM frames sent in packet mode because the upstream sent nothing for a while."""
        self._filling = False
        self._packet_mode = False
        self._queue: collections.deque[tuple[bytes, int, int]] = collections.deque(maxlen=_QUEUE_PACKETS)
        self._wake = asyncio.Event()
        self._next = 0  # pts of the next output, in clock_rate units
        self._due: float | None = None  # time.monotonic() when that output is due
        self._run_base: int | None = None  # packet mode: pts of the run's first packet
        self._run_t0 = 0
        self._last_ts: int | None = None

    @property
    def packet_mode(self) -> bool:
        """True while forwarded frames are sent (see :meth:`set_packet_mode`)."""
        return self._packet_mode

    def set_packet_mode(self, on: bool) -> None:
        """Send forwarded encoded frames (True) or the PCM track (False), from the next output on."""
        if on == self._packet_mode:
            return
        self._packet_mode = on
        self._filling = False
        self._queue.clear()
        self._run_base = None
        self._wake.set()

    def feed(self, data: bytes, timestamp: int, clock_rate: int) -> None:
        """One encoded frame from the upstream leg (its receiver's timeline); called on the loop."""
        if not self._packet_mode:
            self.dropped += 1
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append((data, timestamp, clock_rate))
        self._wake.set()

    def stop(self) -> None:
        super().stop()
        self.inner.stop()
        self._wake.set()

    async def recv(self) -> av.AudioFrame | av.Packet[Any]:
        """The next frame (frame mode) or encoded packet (packet mode)."""
        while True:
            if self.readyState != "live":
                raise MediaStreamError
            if not self._packet_mode:
                return await self._next_frame()
            if not self._queue:
                self._wake.clear()
                # Keep RTP flowing when the upstream goes quiet (not connected yet, a sender that
                # stopped): after FILL_AFTER_S, the PCM track's frames (silence: nothing is decoded
                # into the inbox meanwhile) every 20 ms until a packet comes.
                wait = _FILL_AFTER_S if not self._filling else max(0.0, (self._due or 0.0) - time.monotonic())
                try:
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                except TimeoutError:
                    if self._packet_mode and not self._queue and self.readyState == "live":
                        self._filling, self._run_base = True, None  # the packets after this start a new run
                        self.filler_frames += 1
                        return await self._next_frame()
                continue
            self._filling = False
            packet = self._next_packet(*self._queue.popleft())
            if packet is not None:
                return packet

    def _resync(self, now: float) -> None:
        """After a stall (or a silent spell) move the timeline on by the time that passed."""
        if self._due is None:
            self._due = now
            return
        late = now - self._due
        if late > _RESYNC_S:
            frames = int(late / FRAME_S)
            self._next += frames * int(self.clock_rate * FRAME_S)
            self._due += frames * FRAME_S

    async def _next_frame(self) -> av.AudioFrame:
        now = time.monotonic()
        if self._due is not None and self._due > now:
            await asyncio.sleep(self._due - now)
            now = time.monotonic()
        frame = await self.inner.recv()
        if not isinstance(frame, av.AudioFrame):  # the PCM track makes audio frames only
            raise MediaStreamError
        after = time.monotonic()
        if after - now > _INNER_PACED_S and self._due is not None:
            # The PCM track waited for its own 20 ms slot: follow its phase, so that only one of us
            # sleeps per frame (from then on it finds its slot already due and returns at once).
            self._due = after
        else:
            self._resync(after)
        clock = self.clock_rate
        rate = int(frame.sample_rate) or clock
        frame.pts = self._next * rate // clock
        frame.time_base = _time_base(rate)
        span = int(frame.samples) * clock // rate
        self._next += span
        assert self._due is not None
        self._due += span / clock
        self.frames_sent += 1
        return frame

    def _next_packet(self, data: bytes, timestamp: int, clock_rate: int) -> av.Packet[Any] | None:
        if clock_rate != self.clock_rate:
            self.dropped += 1
            return None
        now = time.monotonic()
        last = self._last_ts
        if self._run_base is None or last is None or not 0 <= timestamp - last < _NEW_RUN_TICKS:
            # A new run (first packet after frame mode, a new upstream, a restarted stream).
            self._resync(now)
            self._run_base, self._run_t0 = self._next, timestamp
            last = None
        pts = self._run_base + (timestamp - self._run_t0)
        step = timestamp - last if last is not None and timestamp > last else int(clock_rate * FRAME_S)
        self._last_ts = timestamp
        packet = av.Packet(data)
        packet.pts = pts
        packet.time_base = _time_base(clock_rate)
        self._next = pts + step
        self._due = now + step / clock_rate
        self.packets_sent += 1
        return packet


# -- the receiving side -------------------------------------------------------------------------


class EncodedTap:
    """Decides, per complete encoded frame a leg receives, where it goes (on the event loop).

    ``target`` set: forwarded to that :class:`ForwardingTrack` (frames of another codec are
    dropped), never decoded. Else ``decode`` True: to the decoder; False: dropped.
    """

    def __init__(self) -> None:
        self.target: ForwardingTrack | None = None
        self.codec: tuple[str, int] | None = None
        """The codec forwarded frames must have (``codec_key``); others are dropped while forwarding."""
        self.decode = True
        self.forwarded = 0
        """Encoded frames forwarded."""
        self.decoded = 0
        """Encoded frames let through to the decoder."""
        self.idle = 0
        """Encoded frames dropped (nobody needed them)."""

    def handle(self, codec: Any, encoded: Any) -> bool:
        """True: the frame was taken care of here (do not decode it)."""
        target = self.target
        if target is not None:
            key = codec_key(codec)
            if self.codec is None or key == self.codec:
                self.forwarded += 1
                target.feed(bytes(encoded.data), int(encoded.timestamp), key[1])
            else:
                self.idle += 1
            return True
        if self.decode:
            self.decoded += 1
            return False
        self.idle += 1
        return True


class _GateQueue(queue.Queue[Any]):
    """aiortc's decoder queue, asking an :class:`EncodedTap` before a frame goes to the decoder thread."""

    def __init__(self, tap: EncodedTap) -> None:
        super().__init__()
        self.tap = tap

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is not None:
            codec, encoded = item
            if self.tap.handle(codec, encoded):
                return
        super().put(item, block, timeout)


def install(transceiver: Any, inner_track: MediaStreamTrack | None = None) -> tuple[EncodedTap, ForwardingTrack]:
    """Hook one audio transceiver (before its remote description is applied): tap and track.

    Raises :class:`RuntimeError` when forwarding is off (:data:`ENABLED`) or the receiver is
    not one this module knows; the caller then keeps decoding.
    """
    if not ENABLED:
        raise RuntimeError("RTP forwarding is off for this aiortc version")
    sender, receiver = transceiver.sender, transceiver.receiver
    tap = EncodedTap()
    current = getattr(receiver, RECEIVER_DECODER_QUEUE, None)
    if type(current) is queue.Queue:  # aiortc's own: not started yet (receive() reads it)
        setattr(receiver, RECEIVER_DECODER_QUEUE, _GateQueue(tap))
    elif current is not None and hasattr(current, "on_encoded"):
        # softphone.media.aiortc_shim's inline decoder: it asks its hook before decoding.
        previous: Callable[[Any, Any], bool] | None = current.on_encoded
        if previous is None:
            current.on_encoded = tap.handle
        else:
            def chained(codec: Any, encoded: Any, _first: Callable[[Any, Any], bool] = previous) -> bool:
                return _first(codec, encoded) or tap.handle(codec, encoded)

            current.on_encoded = chained
    else:
        raise RuntimeError(f"unknown aiortc receiver decoder queue {type(current).__name__}")
    track = ForwardingTrack(inner_track if inner_track is not None else sender.track)
    sender.replaceTrack(track)
    return tap, track
