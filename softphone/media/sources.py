"""Audio sources: what a :class:`~softphone.media.peer.MediaPeer` sends.

A source hands out engine frames (48 kHz mono int16, 960 samples) on demand.
``read_frame()`` never blocks: it returns ``None`` when nothing is ready and the
sender then sends silence for that 20 ms. Sources are owned by whoever created
them: a peer never starts or stops a source it is given, so one source can be
moved between peers or shared by a mixer.
"""

from __future__ import annotations

import collections
import logging
import math
import shutil
import subprocess
import threading
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from softphone.errors import MediaError
from softphone.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Frame, as_frame, pcm_to_frames

logger = logging.getLogger(__name__)


@runtime_checkable
class AudioSource(Protocol):
    """Anything that can feed 20 ms frames to a peer.

    ``read_frame`` is called on the event loop every 20 ms and must return
    quickly: a frame (``numpy.int16``, shape ``(960,)``) or ``None`` for "nothing
    now" (sent as silence). ``start``/``stop`` acquire and release resources
    (devices, files); simple sources work without them.
    """

    def read_frame(self) -> Frame | None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class FiniteSource(AudioSource, Protocol):
    """A source that ends (a timed tone, a file or array without ``loop``): ``finished`` turns true."""

    @property
    def finished(self) -> bool: ...


class BaseSource:
    """Convenience base with no-op ``start``/``stop``."""

    def read_frame(self) -> Frame | None:  # pragma: no cover - overridden
        """Return the next frame or ``None``."""
        return None

    async def start(self) -> None:
        """Acquire resources (nothing to do here)."""

    async def stop(self) -> None:
        """Release resources (nothing to do here)."""


class NullSource(BaseSource):
    """Always silent."""

    def read_frame(self) -> Frame | None:
        """Return ``None`` (the sender fills in silence)."""
        return None


class ToneSource(BaseSource):
    """A phase-continuous sum of sine tones, optionally cadenced.

    ``ToneSource(440)`` is a steady 440 Hz tone; ``ToneSource((440, 480),
    on_ms=2000, off_ms=4000)`` is US ringback. ``amplitude`` is the peak of the
    sum as a fraction of full scale (each tone gets ``amplitude / len(freqs)``).
    ``duration_ms`` (optional) ends the source: it returns ``None`` afterwards and
    :attr:`finished` turns true.
    """

    def __init__(
        self,
        freq_hz: float | Sequence[float],
        amplitude: float = 0.3,
        *,
        on_ms: int | None = None,
        off_ms: int = 0,
        duration_ms: int | None = None,
    ) -> None:
        freqs = [float(freq_hz)] if isinstance(freq_hz, int | float) else [float(f) for f in freq_hz]
        if not freqs:
            raise ValueError("ToneSource needs at least one frequency")
        self.freqs = tuple(freqs)
        self.amplitude = float(amplitude)
        self._on: int | None = None
        self._period: int | None = None
        if on_ms is not None:
            self._on = max(1, on_ms * SAMPLE_RATE // 1000)
            self._period = self._on + max(0, off_ms) * SAMPLE_RATE // 1000
        self._total = None if duration_ms is None else duration_ms * SAMPLE_RATE // 1000
        self._pos = 0  # samples produced so far
        self._omega = np.array([2.0 * math.pi * f / SAMPLE_RATE for f in freqs])
        self._n = np.arange(FRAME_SAMPLES, dtype=np.float64)

    @property
    def finished(self) -> bool:
        """True once ``duration_ms`` has elapsed."""
        return self._total is not None and self._pos >= self._total

    def reset(self) -> None:
        """Restart from phase zero and the start of the cadence."""
        self._pos = 0

    def read_frame(self) -> Frame | None:
        """Return the next 20 ms of the tone (``None`` once finished)."""
        if self.finished:
            return None
        start = self._pos
        self._pos += FRAME_SAMPLES
        idx = self._n + start
        # Phase comes from the absolute sample index, so it is continuous
        # across frames whatever the frequency.
        wave_ = np.sin(np.outer(self._omega, idx)).sum(axis=0)
        scale = 32767.0 * self.amplitude / len(self.freqs)
        out = wave_ * scale
        if self._period is not None and self._on is not None:
            out = np.where((idx % self._period) < self._on, out, 0.0)
        if self._total is not None:
            out = np.where(idx < self._total, out, 0.0)
        result: Frame = out.astype(np.int16)
        return result


class ArraySource(BaseSource):
    """Play an array of 48 kHz mono int16 samples, once or looping.

    Without ``loop``, :attr:`finished` turns true at the end and ``read_frame``
    returns ``None`` (a :class:`MixSource` then drops it).
    """

    def __init__(self, samples: Frame, *, loop: bool = False) -> None:
        self.loop = loop
        self._samples: Frame = np.asarray(samples, dtype=np.int16).reshape(-1)
        self._pos = 0

    @property
    def finished(self) -> bool:
        """True once a non-looping array has played to its end."""
        return not self.loop and self._pos >= self._samples.shape[0]

    @property
    def duration_s(self) -> float:
        """Length of the audio in seconds."""
        return float(self._samples.shape[0]) / SAMPLE_RATE

    def read_frame(self) -> Frame | None:
        """Return the next 20 ms, or ``None`` at the end."""
        total = self._samples.shape[0]
        if total == 0 or self.finished:
            return None
        end = self._pos + FRAME_SAMPLES
        if end <= total:
            out = self._samples[self._pos : end]
            self._pos = end
            if self.loop and self._pos >= total:
                self._pos = 0
            return out
        head = self._samples[self._pos :]
        if self.loop:
            need = FRAME_SAMPLES - head.shape[0]
            tail = np.tile(self._samples, need // total + 1)[:need]
            self._pos = need % total
            return np.concatenate((head, tail))
        self._pos = total
        return as_frame(head)


class FileSource(ArraySource):
    """Play an audio file: WAV through the stdlib, anything else through ffmpeg.

    The whole file is decoded to 48 kHz mono at construction (build it with
    ``asyncio.to_thread`` for long files). With ``loop=True`` it repeats.
    Raises :class:`~softphone.errors.MediaError` for missing or undecodable
    files, or for non-WAV files when ffmpeg is not installed.
    """

    def __init__(self, path: str | Path, *, loop: bool = False) -> None:
        self.path = Path(path)
        super().__init__(_load_audio(self.path), loop=loop)


def _load_audio(path: Path) -> Frame:
    if not path.is_file():
        raise MediaError(f"audio file not found: {path}")
    if path.suffix.lower() in (".wav", ".wave"):
        try:
            return _load_wav(path)
        except (wave.Error, EOFError, ValueError) as exc:
            logger.debug("stdlib wave cannot read %s (%s); trying ffmpeg", path, exc)
    return _load_ffmpeg(path)


def _load_wav(path: Path) -> Frame:
    with wave.open(str(path), "rb") as wf:
        width = wf.getsampwidth()
        channels = wf.getnchannels()
        rate = wf.getframerate()
        raw = wf.readframes(wf.getnframes())
    if width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    elif width == 1:
        data = ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    elif width == 4:
        data = (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    else:
        raise ValueError(f"unsupported WAV sample width {width}")
    return pcm_to_frames(data, rate, channels)


def _load_ffmpeg(path: Path) -> Frame:
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise MediaError(f"cannot play {path.name}: only WAV is supported without ffmpeg installed")
    cmd = [exe, "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1", "-ar",
           str(SAMPLE_RATE), "-"]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MediaError(f"cannot decode {path}: {exc}") from exc
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise MediaError(f"cannot decode {path}: {msg[-1] if msg else 'ffmpeg failed'}")
    return np.frombuffer(proc.stdout, dtype="<i2").astype(np.int16)


class PushSource(BaseSource):
    """A bounded FIFO of frames fed from outside; also usable as a sink.

    ``push(frame)`` (or ``write_frame(frame)``) appends; when the queue is full
    the **oldest** frame is dropped, so latency stays bounded. This is how the
    switch bridges legs (leg A's sink is leg B's ``PushSource``) and injects
    audio. Thread-safe, so a PortAudio thread may push too. ``max_frames`` of 10
    bounds the added delay to 200 ms; ``prebuffer`` frames are collected before
    the first frame is handed out (a small cushion against scheduling jitter).
    """

    def __init__(self, max_frames: int = 10, *, prebuffer: int = 0) -> None:
        self._queue: collections.deque[Frame] = collections.deque(maxlen=max(1, max_frames))
        self._lock = threading.Lock()
        self._prebuffer = prebuffer
        self._primed = prebuffer == 0
        self.dropped = 0
        """Frames dropped because the queue was full."""

    def __len__(self) -> int:
        return len(self._queue)

    def push(self, frame: Frame) -> None:
        """Queue one frame (any length is coerced to 960 samples)."""
        frame = as_frame(frame)
        with self._lock:
            if len(self._queue) == self._queue.maxlen:
                self.dropped += 1
            self._queue.append(frame)

    write_frame = push

    def clear(self) -> None:
        """Drop everything queued."""
        with self._lock:
            self._queue.clear()
            self._primed = self._prebuffer == 0

    def read_frame(self) -> Frame | None:
        """Pop the oldest frame, or ``None`` if empty (or still prebuffering)."""
        with self._lock:
            if not self._primed:
                if len(self._queue) < self._prebuffer:
                    return None
                self._primed = True
            if not self._queue:
                return None
            return self._queue.popleft()


class MixSource(BaseSource):
    """Sum of several sources with saturation (conferences, tones over speech).

    Sources can be added and removed while running. A finished ``ToneSource`` or
    ``FileSource`` is removed automatically when ``auto_remove`` is true, which
    makes one-shot overlays (DTMF feedback, beeps) fire-and-forget.
    """

    def __init__(self, sources: Iterable[AudioSource] = (), *, auto_remove: bool = True) -> None:
        self._sources: list[AudioSource] = list(sources)
        self.auto_remove = auto_remove

    @property
    def sources(self) -> tuple[AudioSource, ...]:
        """The current inputs."""
        return tuple(self._sources)

    def add(self, source: AudioSource) -> None:
        """Add an input."""
        self._sources.append(source)

    def remove(self, source: AudioSource) -> None:
        """Remove an input (no error if absent)."""
        if source in self._sources:
            self._sources.remove(source)

    def read_frame(self) -> Frame | None:
        """Read every input once and return their saturated sum (``None`` if all idle)."""
        acc: np.ndarray | None = None
        for src in list(self._sources):
            frame = src.read_frame()
            if frame is None:
                if self.auto_remove and getattr(src, "finished", False):
                    self._sources.remove(src)
                continue
            if acc is None:
                acc = frame.astype(np.int32)
            else:
                acc += frame
        if acc is None:
            return None
        mixed: Frame = np.clip(acc, -32768, 32767).astype(np.int16)
        return mixed
