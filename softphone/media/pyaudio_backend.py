"""Microphone and speaker through PortAudio (PyAudio), without blocking the loop.

Streams run in PortAudio's callback mode on its own thread:

* :class:`PyAudioSource` (microphone): the callback hands each captured buffer
  to the event loop with ``loop.call_soon_threadsafe``; the loop converts it
  to 48 kHz mono frames into a small bounded queue (oldest dropped) that
  ``read_frame`` drains.
* :class:`PyAudioSink` (speaker): ``write_frame`` appends to a thread-safe,
  bounded sample FIFO; the callback takes what it needs and pads with silence
  on underrun.

Streams are opened at an explicit 48000 Hz with the channel count we need
(ALSA's pulse plugin advertises 32 channels at 44.1 kHz); if the device refuses
48 kHz, it is opened at its default rate and audio is resampled. Opening and
closing run in ``asyncio.to_thread``. A watchdog notices a stream that stops
(device unplugged, server gone) and calls ``on_error`` once, so the owner can
fall back to another device or to silence: it never raises into the call.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from softphone.errors import DeviceBusy, MediaError
from softphone.media.devices import (
    AudioDevice,
    Direction,
    devices_of,
    find_device,
    open_pyaudio,
    quiet_stderr,
)
from softphone.media.frames import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Frame,
    FrameAssembler,
    StreamResampler,
)

logger = logging.getLogger(__name__)

ErrorCallback = Callable[[MediaError], object]
_WATCHDOG_S = 0.5
_STALL_S = 1.5  # no callback for this long while running = device gone


class _Stream:
    """Shared open/close/watchdog logic for one PortAudio stream."""

    direction: Direction

    def __init__(self, device: int | str | None, on_error: ErrorCallback | None) -> None:
        self.device_spec = device
        self.on_error = on_error
        self.device: AudioDevice | None = None
        """The device actually opened (after :meth:`start`)."""
        self.rate = SAMPLE_RATE
        """The rate the stream runs at (48000 unless the device refused it)."""
        self.channels = 1
        self.failed: MediaError | None = None
        """The error reported through ``on_error``, if any."""
        self._pa: Any = None
        self._stream: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._last_callback = 0.0

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop` or a device failure."""
        return self._stream is not None and self.failed is None

    async def start(self) -> None:
        """Open the device (in a thread). Raises DeviceNotFound / DeviceBusy / MediaError."""
        if self._stream is not None:
            return
        self._loop = asyncio.get_running_loop()
        self.failed = None
        await asyncio.to_thread(self._open)
        self._last_callback = time.monotonic()
        self._watchdog = self._loop.create_task(self._watch(), name=f"pyaudio-{self.direction}-watchdog")

    async def stop(self) -> None:
        """Close the device (in a thread); idempotent."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
            self._watchdog = None
        if self._stream is not None or self._pa is not None:
            await asyncio.to_thread(self._close)

    def _open(self) -> None:
        import pyaudio

        pa = open_pyaudio()
        try:
            with quiet_stderr():
                devices = devices_of(pa)
            dev = find_device(self.device_spec, self.direction, devices)
            max_ch = dev.max_input_channels if self.direction == "input" else dev.max_output_channels
            last_exc: Exception | None = None
            rates = [SAMPLE_RATE]
            if int(dev.default_sample_rate) not in (0, SAMPLE_RATE):
                rates.append(int(dev.default_sample_rate))
            for rate in rates:
                for channels in sorted({1, min(2, max_ch)}):
                    try:
                        with quiet_stderr():
                            stream = pa.open(
                                format=pyaudio.paInt16,
                                channels=channels,
                                rate=rate,
                                input=self.direction == "input",
                                output=self.direction == "output",
                                input_device_index=dev.index if self.direction == "input" else None,
                                output_device_index=dev.index if self.direction == "output" else None,
                                frames_per_buffer=rate * 20 // 1000,
                                stream_callback=self._callback,
                                start=False,
                            )
                    except (OSError, ValueError) as exc:
                        last_exc = exc
                        continue
                    self.rate, self.channels = rate, channels
                    self._configure()
                    with quiet_stderr():
                        stream.start_stream()
                    self._pa, self._stream, self.device = pa, stream, dev
                    logger.info("opened %s device %r at %d Hz, %d ch", self.direction, dev.name, rate, channels)
                    return
            raise DeviceBusy(f"cannot open audio {self.direction} device {dev.name!r}: {last_exc}")
        except BaseException:
            with quiet_stderr():
                pa.terminate()
            raise

    def _close(self) -> None:
        stream, pa = self._stream, self._pa
        self._stream = self._pa = None
        with quiet_stderr():
            if stream is not None:
                # close() alone stops a running stream at once; stop_stream() first waits for
                # buffers to drain, which blocks for ~40 s on a stalled (suspended) device.
                with contextlib.suppress(Exception):
                    stream.close()
            if pa is not None:
                with contextlib.suppress(Exception):
                    pa.terminate()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(_WATCHDOG_S)
            stream = self._stream
            if stream is None:
                return
            try:
                active = bool(stream.is_active())
            except Exception:
                active = False
            if not active or time.monotonic() - self._last_callback > _STALL_S:
                name = self.device.name if self.device else "?"
                self._report(MediaError(f"audio {self.direction} device {name!r} stopped"))
                await asyncio.to_thread(self._close)
                return

    def _report(self, error: MediaError) -> None:
        if self.failed is not None:
            return
        self.failed = error
        logger.warning("%s", error)
        if self.on_error is not None:
            try:
                self.on_error(error)
            except Exception:
                logger.exception("audio device error handler failed")

    def _configure(self) -> None:
        """Set up conversion state once rate/channels are known."""

    def _callback(self, in_data: bytes | None, frame_count: int, time_info: Any, status: int) -> Any:
        raise NotImplementedError


class PyAudioSource(_Stream):
    """Microphone as an :class:`~softphone.media.sources.AudioSource`.

    ``max_frames`` bounds the queue (5 frames = 100 ms); when the consumer falls
    behind, the oldest audio is dropped to keep latency low.
    """

    direction: Direction = "input"

    def __init__(
        self,
        device: int | str | None = None,
        *,
        on_error: ErrorCallback | None = None,
        max_frames: int = 5,
    ) -> None:
        super().__init__(device, on_error)
        self._frames: collections.deque[Frame] = collections.deque(maxlen=max(1, max_frames))
        self._assembler = FrameAssembler()
        self._resampler: StreamResampler | None = None
        self.overflows = 0

    def _configure(self) -> None:
        self._assembler.clear()
        self._frames.clear()
        self._resampler = StreamResampler(self.rate, SAMPLE_RATE) if self.rate != SAMPLE_RATE else None

    def _callback(self, in_data: bytes | None, frame_count: int, time_info: Any, status: int) -> Any:
        import pyaudio

        self._last_callback = time.monotonic()
        loop = self._loop
        if in_data and loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed while the device runs
                loop.call_soon_threadsafe(self._ingest, in_data)
        return (None, pyaudio.paContinue)

    def _ingest(self, data: bytes) -> None:
        samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
        if self.channels > 1:
            samples = samples.reshape(-1, self.channels)[:, 0].copy()
        if self._resampler is not None:
            samples = self._resampler.process(samples)
        for frame in self._assembler.push(samples):
            if len(self._frames) == self._frames.maxlen:
                self.overflows += 1
            self._frames.append(frame)

    def read_frame(self) -> Frame | None:
        """Oldest captured frame, or ``None`` (silence) if none is ready or the device failed."""
        if self._frames:
            return self._frames.popleft()
        return None


class _SampleFifo:
    """Thread-safe bounded FIFO of int16 samples; reads pad with silence."""

    def __init__(self, max_samples: int) -> None:
        self._chunks: collections.deque[Frame] = collections.deque()
        self._size = 0
        self._offset = 0
        self._max = max_samples
        self._lock = threading.Lock()
        self.underruns = 0
        self.dropped = 0

    def __len__(self) -> int:
        return self._size

    def write(self, samples: Frame) -> None:
        with self._lock:
            self._chunks.append(samples)
            self._size += samples.shape[0]
            while self._size > self._max and self._chunks:
                # Drop the oldest audio to keep latency bounded.
                head = self._chunks.popleft()
                self._size -= head.shape[0] - self._offset
                self.dropped += head.shape[0] - self._offset
                self._offset = 0

    def read(self, n: int) -> Frame:
        out = np.zeros(n, dtype=np.int16)
        filled = 0
        with self._lock:
            while filled < n and self._chunks:
                head = self._chunks[0]
                avail = head.shape[0] - self._offset
                take = min(avail, n - filled)
                out[filled : filled + take] = head[self._offset : self._offset + take]
                filled += take
                self._offset += take
                self._size -= take
                if self._offset >= head.shape[0]:
                    self._chunks.popleft()
                    self._offset = 0
        if filled < n:
            self.underruns += 1
        return out

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()
            self._size = self._offset = 0


class PyAudioSink(_Stream):
    """Speaker as an :class:`~softphone.media.sinks.AudioSink`.

    ``max_ms`` bounds the playout buffer (default 200 ms; the oldest audio is
    dropped beyond it). On underrun the device plays silence.
    """

    direction: Direction = "output"

    def __init__(
        self,
        device: int | str | None = None,
        *,
        on_error: ErrorCallback | None = None,
        max_ms: int = 200,
    ) -> None:
        super().__init__(device, on_error)
        self._max_ms = max_ms
        self._fifo = _SampleFifo(SAMPLE_RATE * max_ms // 1000)
        self._resampler: StreamResampler | None = None

    @property
    def underruns(self) -> int:
        """Device callbacks that found the buffer short."""
        return self._fifo.underruns

    @property
    def buffered_ms(self) -> float:
        """Audio waiting to be played (ms)."""
        return 1000.0 * len(self._fifo) / self.rate

    def _configure(self) -> None:
        self._fifo = _SampleFifo(self.rate * self._max_ms // 1000)
        self._resampler = StreamResampler(SAMPLE_RATE, self.rate) if self.rate != SAMPLE_RATE else None

    def write_frame(self, frame: Frame) -> None:
        """Queue one frame for playback (dropped silently while the device is not running)."""
        if not self.running:
            return
        samples = frame if self._resampler is None else self._resampler.process(frame)
        self._fifo.write(samples)

    def _callback(self, in_data: bytes | None, frame_count: int, time_info: Any, status: int) -> Any:
        import pyaudio

        self._last_callback = time.monotonic()
        samples = self._fifo.read(frame_count)
        if self.channels > 1:
            samples = np.repeat(samples, self.channels)
        return (samples.astype("<i2").tobytes(), pyaudio.paContinue)


__all__ = ["FRAME_SAMPLES", "PyAudioSink", "PyAudioSource"]
