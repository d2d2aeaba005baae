"""aiortc plumbing: the outgoing track and the receiving pump.

:class:`SourceTrack` is an aiortc ``MediaStreamTrack`` of kind audio that pulls
from the current :class:`~softphone.media.sources.AudioSource` on a 20 ms
real-time clock. It never waits for the source: a source with nothing ready
yields silence, so a slow microphone cannot stall the event loop (aiortc
#880, #483).

:class:`ReceiverPump` is a task that reads the remote track, normalises every
decoded frame to 48 kHz mono, meters it and hands it to the current sink.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import av
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from softphone.media.frames import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Frame,
    FrameResampler,
    Normalizer,
    level_dbfs,
    silence,
    to_av_frame,
)
from softphone.media.sinks import AudioSink, NullSink
from softphone.media.sources import AudioSource, NullSource

logger = logging.getLogger(__name__)

_FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
_MAX_LAG_S = 0.2  # after a stall longer than this, skip ahead rather than burst


class LevelMeter:
    """Per-frame RMS level with a fast attack / slow release, for meters."""

    def __init__(self) -> None:
        self.db = -120.0
        """Smoothed level in dBFS."""
        self.last_db = -120.0
        """Level of the last frame in dBFS."""

    def update(self, frame: Frame) -> None:
        """Account for one frame."""
        db = level_dbfs(frame)
        self.last_db = db
        # Rise immediately, fall by at most 1.5 dB per 20 ms: readable meters.
        self.db = db if db > self.db else max(db, self.db - 1.5)


class SourceTrack(MediaStreamTrack):
    """Outgoing audio track fed by a swappable :class:`AudioSource`."""

    kind = "audio"

    def __init__(self, source: AudioSource | None = None) -> None:
        super().__init__()
        self.source: AudioSource = source or NullSource()
        """The current source; assign to switch mid-call."""
        self.muted = False
        """When true, silence is sent (the source is still read, so it keeps its pace)."""
        self.meter = LevelMeter()
        """Level of what is actually sent."""
        self.tap: AudioSink | None = None
        """Optional sink that sees every frame sent (e.g. a stereo recorder)."""
        self.frames_sent = 0
        self._start: float | None = None
        self._pts = 0
        self._send_rate = SAMPLE_RATE
        self._downsampler: FrameResampler | None = None
        self._stereo = False

    def set_send_rate(self, rate: int) -> None:
        """Hand the encoder frames at ``rate`` (8000 for PCMU/PCMA) instead of 48 kHz.

        aiortc's G.711 encoder resamples with libswresample and a fixed 160-sample
        frame size, which delays every packet by about 18 ms; resampling here
        with :class:`FrameResampler` avoids that. Call before media flows.
        """
        if rate == SAMPLE_RATE or SAMPLE_RATE % rate:
            self._send_rate, self._downsampler = SAMPLE_RATE, None
        else:
            self._send_rate, self._downsampler = rate, FrameResampler(SAMPLE_RATE, rate)

    def set_send_stereo(self, stereo: bool) -> None:
        """Hand the encoder stereo frames (the mono signal on both channels, full level).

        For Opus: aiortc's encoder takes stereo, and upmixing a mono frame there
        costs 3 dB (see :func:`~softphone.media.frames.to_av_frame`). The layout
        must not change once media flows (the encoder's resampler is fixed to its
        first input), so call this before, as :class:`MediaPeer` does on answer.
        """
        self._stereo = stereo

    async def recv(self) -> av.AudioFrame:
        """Return the next 20 ms frame, paced to real time."""
        if self.readyState != "live":
            raise MediaStreamError
        now = time.monotonic()
        if self._start is None:
            self._start = now
        else:
            self._pts += FRAME_SAMPLES
            due = self._start + self._pts / SAMPLE_RATE
            wait = due - now
            if wait > 0:
                await asyncio.sleep(wait)
            elif wait < -_MAX_LAG_S:
                # The loop stalled: jump the clock forward (the far end sees a
                # gap in RTP timestamps) instead of sending a burst.
                skipped = int(-wait / _FRAME_S)
                self._pts += skipped * FRAME_SAMPLES
        try:
            data = self.source.read_frame()
        except Exception:
            logger.exception("audio source %r failed; sending silence", self.source)
            data = None
        if data is None or self.muted:
            data = silence()
        self.meter.update(data)
        if self.tap is not None:
            self.tap.write_frame(data)
        self.frames_sent += 1
        if self._downsampler is not None:
            ratio = SAMPLE_RATE // self._send_rate
            return to_av_frame(self._downsampler.process(data), self._pts // ratio, self._send_rate)
        return to_av_frame(data, self._pts, stereo=self._stereo)


class ReceiverPump:
    """Reads a remote aiortc track and feeds the current sink until the track ends."""

    def __init__(self, sink: AudioSink | None = None) -> None:
        self.sink: AudioSink = sink or NullSink()
        """The current sink; assign to switch mid-call."""
        self.meter = LevelMeter()
        """Level of what is received."""
        self.frames_received = 0
        self.first_frame_at: float | None = None
        """``time.monotonic()`` of the first decoded frame, or ``None``."""
        self._normalizer = Normalizer()
        self._task: asyncio.Task[None] | None = None

    def start(self, track: MediaStreamTrack) -> None:
        """Start pumping ``track`` (a second call replaces the previous track)."""
        if self._task is not None:
            self._task.cancel()
        self._normalizer = Normalizer()
        self._task = asyncio.get_running_loop().create_task(self._run(track), name="media-receiver")

    async def stop(self) -> None:
        """Stop pumping and wait for the task to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if not isinstance(frame, av.AudioFrame):
                continue
            try:
                frames = self._normalizer.convert(frame)
            except (av.error.FFmpegError, ValueError):
                logger.exception("cannot convert received audio frame")
                continue
            for data in frames:
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
                self.frames_received += 1
                self.meter.update(data)
                try:
                    self.sink.write_frame(data)
                except Exception:
                    logger.exception("audio sink %r failed", self.sink)
