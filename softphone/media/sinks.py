"""Audio sinks: where a :class:`~softphone.media.peer.MediaPeer` delivers what it hears.

``write_frame`` is called on the event loop with every received 20 ms frame
(48 kHz mono int16, 960 samples) and must not block. As with sources, the
creator owns a sink's lifecycle (``start``/``stop``); peers never close sinks.
"""

from __future__ import annotations

import collections
import logging
import threading
import wave
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

import numpy as np

from softphone.config import RECORD_MODES as RECORD_MODES  # the one list (config validates profiles with it)
from softphone.errors import MediaError
from softphone.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Frame

logger = logging.getLogger(__name__)


@runtime_checkable
class AudioSink(Protocol):
    """Anything that accepts 20 ms frames.

    ``write_frame`` gets a ``numpy.int16`` array of shape ``(960,)``; it must
    return quickly and must not keep a reference it will mutate.
    """

    def write_frame(self, frame: Frame) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class BaseSink:
    """Convenience base with no-op ``start``/``stop``."""

    def write_frame(self, frame: Frame) -> None:  # pragma: no cover - overridden
        """Consume one frame."""

    async def start(self) -> None:
        """Acquire resources (nothing to do here)."""

    async def stop(self) -> None:
        """Release resources (nothing to do here)."""


class NullSink(BaseSink):
    """Discards everything."""

    def write_frame(self, frame: Frame) -> None:
        """Drop the frame."""


class CallbackSink(BaseSink):
    """Calls ``fn(frame)`` for every frame (exceptions are logged, not raised)."""

    def __init__(self, fn: Callable[[Frame], object]) -> None:
        self._fn = fn

    def write_frame(self, frame: Frame) -> None:
        """Pass the frame to the callback."""
        try:
            self._fn(frame)
        except Exception:
            logger.exception("audio callback failed")


class TeeSink(BaseSink):
    """Fan one stream out to several sinks; add/remove while running."""

    def __init__(self, sinks: Iterable[AudioSink] = ()) -> None:
        self._sinks: list[AudioSink] = list(sinks)

    @property
    def sinks(self) -> tuple[AudioSink, ...]:
        """The current outputs."""
        return tuple(self._sinks)

    def add(self, sink: AudioSink) -> None:
        """Add an output."""
        self._sinks.append(sink)

    def remove(self, sink: AudioSink) -> None:
        """Remove an output (no error if absent)."""
        if sink in self._sinks:
            self._sinks.remove(sink)

    def write_frame(self, frame: Frame) -> None:
        """Write to every output; one failing output does not starve the others."""
        for sink in list(self._sinks):
            try:
                sink.write_frame(frame)
            except Exception:
                logger.exception("audio sink %r failed", sink)


class BufferSink(BaseSink):
    """Keeps the last ``seconds`` of audio in memory (tests, analysis, meters)."""

    def __init__(self, seconds: float = 10.0) -> None:
        self._frames: collections.deque[Frame] = collections.deque(
            maxlen=max(1, int(seconds * SAMPLE_RATE / FRAME_SAMPLES))
        )
        self._lock = threading.Lock()
        self.frames_written = 0
        """Total frames ever written (not capped)."""

    def write_frame(self, frame: Frame) -> None:
        """Append a copy of the frame."""
        with self._lock:
            self._frames.append(np.array(frame, dtype=np.int16, copy=True))
            self.frames_written += 1

    def clear(self) -> None:
        """Forget everything buffered."""
        with self._lock:
            self._frames.clear()

    def samples(self, last_seconds: float | None = None) -> Frame:
        """Return buffered audio as one array (optionally only the last N seconds)."""
        with self._lock:
            frames = list(self._frames)
        if not frames:
            return np.zeros(0, dtype=np.int16)
        data = np.concatenate(frames)
        if last_seconds is not None:
            data = data[-int(last_seconds * SAMPLE_RATE) :]
        return data

    @property
    def duration_s(self) -> float:
        """Seconds of audio currently buffered."""
        return len(self._frames) * FRAME_SAMPLES / SAMPLE_RATE




class WavRecorder(BaseSink):
    """Record a call to a 48 kHz 16-bit WAV file.

    ``mode`` (one of :data:`RECORD_MODES`): ``remote`` (the default) records
    mono, whatever reaches this sink (the far end). ``stereo`` records the local
    side on the left and the far end on the right; ``mixed`` records both summed
    to mono. Feed the local side with :meth:`write_local`, e.g.
    ``MediaPeer.set_send_tap(recorder.local_sink)``.

    One clock: the local side's steady 20 ms send clock drives the file. Each
    local frame is written next to the oldest far-end frame waiting (silence if
    none), so a frame we send and its echo are as far apart in the file as they
    were in time, to the sample. Until a first local frame arrives, or when the
    local side stalls for :attr:`MAX_FAR_QUEUE` frames, far-end frames are
    written with local silence.

    The header is rewritten with every write (``Wave_write.writeframes``), so the
    file is a valid WAV even if the process dies; :meth:`close` (or ``stop``)
    writes what is still queued and closes the file. Writes go to a buffered file
    on the loop (about 1.9 kB per frame, cheap enough not to need a thread).
    """

    MAX_FAR_QUEUE = 25
    """Far-end frames held waiting for the local clock (500 ms) before writing them alone."""

    def __init__(self, path: str | Path, *, mode: str = "remote") -> None:
        if mode not in RECORD_MODES:
            raise MediaError(f"unknown record mode {mode!r} (choose from {', '.join(RECORD_MODES)})")
        self.path = Path(path)
        self.mode = mode
        self.channels = 2 if mode == "stereo" else 1
        try:
            self._file: BinaryIO | None = open(self.path, "wb")  # closed in close()
        except OSError as exc:
            raise MediaError(f"cannot record to {self.path}: {exc}") from exc
        self._wav: wave.Wave_write | None = wave.open(self._file, "wb")
        self._wav.setnchannels(self.channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self._wav.writeframes(b"")  # a valid (empty) WAV from the start
        self._far: collections.deque[Frame] = collections.deque()
        self._local_seen = False
        self._zeros = np.zeros(FRAME_SAMPLES, np.int16)
        self._lock = threading.Lock()
        self.frames_written = 0
        """20 ms frames written so far."""
        self.local_sink: AudioSink = _LocalSide(self)
        """A sink whose ``write_frame`` is :meth:`write_local` (for ``MediaPeer.set_send_tap``)."""

    @property
    def closed(self) -> bool:
        """True once the file is finished."""
        return self._wav is None

    def _write(self, local: Frame, far: Frame) -> None:
        if self._wav is None:
            return
        if self.mode == "stereo":
            out = np.empty((FRAME_SAMPLES, 2), "<i2")
            out[:, 0] = local[:FRAME_SAMPLES]
            out[:, 1] = far[:FRAME_SAMPLES]
        elif self.mode == "mixed":
            total = local[:FRAME_SAMPLES].astype(np.int32) + far[:FRAME_SAMPLES]
            out = np.clip(total, -32768, 32767).astype("<i2")
        else:
            out = far.astype("<i2", copy=False)
        self._wav.writeframes(out.tobytes())
        self.frames_written += 1

    def write_local(self, frame: Frame) -> None:
        """Supply one frame of the local side (ignored in ``remote`` mode)."""
        if self.mode == "remote":
            return
        with self._lock:
            self._local_seen = True
            far = self._far.popleft() if self._far else self._zeros
            self._write(frame, far)

    def write_frame(self, frame: Frame) -> None:
        """Append one far-end frame (with a local side: queued for the next local frame)."""
        with self._lock:
            if self._wav is None:
                return
            if self.mode == "remote" or not self._local_seen:
                self._write(self._zeros, frame)
                return
            self._far.append(np.array(frame, dtype=np.int16, copy=True))
            while len(self._far) > self.MAX_FAR_QUEUE:
                self._write(self._zeros, self._far.popleft())

    def close(self) -> None:
        """Write what is queued and finish the file (idempotent)."""
        with self._lock:
            while self._far:
                self._write(self._zeros, self._far.popleft())
            wav, file, self._wav, self._file = self._wav, self._file, None, None
            try:
                if wav is not None:
                    wav.close()  # writes the final header
            finally:
                if file is not None:
                    file.close()

    async def stop(self) -> None:
        """Finish the file."""
        self.close()


class _LocalSide(BaseSink):
    """Adapter: the local side of a stereo :class:`WavRecorder` as a sink."""

    def __init__(self, recorder: WavRecorder) -> None:
        self.recorder = recorder

    def write_frame(self, frame: Frame) -> None:
        self.recorder.write_local(frame)
