"""Frame format of the media engine and conversions to and from PyAV.

Everything inside :mod:`softphone.media` moves audio as **48 kHz, mono, signed
16-bit** samples in **20 ms frames** (960 samples), as one-dimensional
``numpy.int16`` arrays. Conversions to :class:`av.AudioFrame` always set
``pts``, ``sample_rate`` and ``time_base``: frames without timing come out of
aiortc's encoders as noise or silence (aiortc issues #571, #1357).
"""

from __future__ import annotations

import fractions
import math
from typing import Any

import av
import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 48_000
"""Sample rate of every frame inside the engine (Hz)."""
FRAME_MS = 20
"""Duration of one frame (ms)."""
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
"""Samples in one frame: 960."""
TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
"""The ``time_base`` put on every outgoing :class:`av.AudioFrame`."""

Frame = npt.NDArray[np.int16]
"""One 20 ms frame: shape ``(960,)``, dtype ``int16``."""

_SILENCE: Frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
_SILENCE.flags.writeable = False


def silence() -> Frame:
    """Return a frame of silence (a shared read-only array; copy before writing)."""
    return _SILENCE


def to_av_frame(samples: Frame, pts: int, sample_rate: int = SAMPLE_RATE, *, stereo: bool = False) -> av.AudioFrame:
    """Wrap mono s16 samples in an :class:`av.AudioFrame` with full timing.

    ``pts`` counts samples at ``sample_rate`` (time base ``1/sample_rate``). With
    ``stereo`` the frame is packed stereo with the samples on both channels, at
    the same level: what aiortc's Opus encoder wants. Handed a mono frame, its
    resampler upmixes with libswresample's centre mix level (-3 dB per channel),
    and the far end's decoder (stereo, averaged back to mono) keeps that loss.
    """
    if stereo:
        frame = av.AudioFrame.from_ndarray(np.repeat(samples, 2).reshape(1, -1), format="s16", layout="stereo")
    else:
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = pts
    frame.time_base = TIME_BASE if sample_rate == SAMPLE_RATE else fractions.Fraction(1, sample_rate)
    return frame


def as_frame(data: Any) -> Frame:
    """Coerce an array-like to a one-dimensional int16 frame of exactly 960 samples.

    Float input is taken as -1.0..1.0 full scale. Shorter input is padded with
    silence, longer input truncated.
    """
    arr = np.asarray(data)
    if arr.dtype.kind == "f":
        arr = np.clip(arr * 32767.0, -32768, 32767)
    arr = arr.astype(np.int16, copy=False).reshape(-1)
    n = arr.shape[0]
    if n == FRAME_SAMPLES:
        return arr
    if n > FRAME_SAMPLES:
        return arr[:FRAME_SAMPLES]
    out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    out[:n] = arr
    return out


class FrameAssembler:
    """Cut a stream of arbitrary-length sample blocks into 960-sample frames."""

    def __init__(self) -> None:
        self._pending: Frame = np.zeros(0, dtype=np.int16)

    def push(self, samples: Frame) -> list[Frame]:
        """Add samples; return every complete frame now available, oldest first."""
        if self._pending.shape[0] == 0 and samples.shape[0] == FRAME_SAMPLES:
            return [samples]  # the common case: no copy
        buf = np.concatenate((self._pending, samples)) if self._pending.shape[0] else samples
        count = buf.shape[0] // FRAME_SAMPLES
        frames = [buf[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(count)]
        self._pending = buf[count * FRAME_SAMPLES :].copy()
        return frames

    def clear(self) -> None:
        """Drop any partial frame."""
        self._pending = np.zeros(0, dtype=np.int16)


class Normalizer:
    """Turn any decoded :class:`av.AudioFrame` into engine frames (48 kHz mono s16).

    The common decoder outputs take a fast numpy path: Opus gives 48 kHz packed
    stereo s16 (channels are averaged), anything already 48 kHz mono s16 passes
    through. Everything else (PCMU/PCMA at 8 kHz, G722 at 16 kHz, float formats)
    goes through :class:`av.AudioResampler`, rebuilt if the input format changes.
    """

    def __init__(self) -> None:
        self._assembler = FrameAssembler()
        self._resampler: Any = None
        self._resampler_key: tuple[str, str, int] | None = None
        self._fixed: FrameResampler | None = None

    def convert(self, frame: av.AudioFrame) -> list[Frame]:
        """Convert one decoded frame; returns zero or more complete engine frames."""
        fmt = frame.format.name
        layout = frame.layout.name
        rate = frame.sample_rate
        if fmt == "s16" and rate == SAMPLE_RATE and layout in ("mono", "stereo"):
            arr: Frame = np.asarray(frame.to_ndarray(), dtype=np.int16).reshape(-1)
            if layout == "stereo":
                pairs = arr.reshape(-1, 2).astype(np.int32)
                arr = ((pairs[:, 0] + pairs[:, 1]) >> 1).astype(np.int16)
            return self._assembler.push(arr)
        if fmt == "s16" and layout == "mono" and SAMPLE_RATE % rate == 0:
            # PCMU/PCMA (8 kHz) and friends: a low-delay per-frame resampler.
            if self._fixed is None or self._fixed.in_rate != rate:
                self._fixed = FrameResampler(rate, SAMPLE_RATE)
            arr = np.asarray(frame.to_ndarray(), dtype=np.int16).reshape(-1)
            return self._assembler.push(self._fixed.process(arr))
        key = (fmt, layout, rate)
        if self._resampler is None or key != self._resampler_key:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
            self._resampler_key = key
        out: list[Frame] = []
        for resampled in self._resampler.resample(frame):
            out.extend(self._assembler.push(resampled.to_ndarray().reshape(-1)))
        return out


def pcm_to_frames(samples: Frame, sample_rate: int, channels: int) -> Frame:
    """Convert interleaved s16 PCM at any rate/channel count to 48 kHz mono samples.

    Used for files and devices; returns one long array (cut it with
    :class:`FrameAssembler`).
    """
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    if sample_rate == SAMPLE_RATE or samples.shape[0] == 0:
        return samples
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = sample_rate
    frame.pts = 0
    frame.time_base = fractions.Fraction(1, sample_rate)
    parts = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    parts += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def level_dbfs(samples: Frame) -> float:
    """RMS level of ``samples`` in dBFS (full-scale sine ≈ -3 dBFS; silence = -120)."""
    if samples.shape[0] == 0:
        return -120.0
    x = samples.astype(np.float32)
    rms = math.sqrt(float(np.dot(x, x)) / x.shape[0]) / 32768.0
    if rms <= 1e-6:
        return -120.0
    return max(-120.0, 20.0 * math.log10(rms))


class StreamResampler:
    """Resample a continuous mono s16 stream between two rates, keeping filter state."""

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=out_rate)
        self._pts = 0
        self._time_base = fractions.Fraction(1, in_rate)

    def process(self, samples: Frame) -> Frame:
        """Feed samples at ``in_rate``; return whatever is ready at ``out_rate``."""
        if self.in_rate == self.out_rate:
            return samples
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = self.in_rate
        frame.pts = self._pts
        frame.time_base = self._time_base
        self._pts += samples.shape[0]
        parts: list[Frame] = [
            np.asarray(f.to_ndarray(), dtype=np.int16).reshape(-1) for f in self._resampler.resample(frame)
        ]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


class FrameResampler:
    """Per-frame resampler with minimal delay: N samples in, exactly N*out/in out.

    libswresample holds back its filter delay, so its first output is short (864
    of 960 samples for 8 kHz -> 48 kHz); cutting such a stream into fixed frames
    then delays every frame by almost a whole frame. Here the first output is
    padded at the front instead, so the added delay is only the filter's own
    (about 2 ms). Used on the PCMU/PCMA paths in both directions.
    """

    def __init__(self, in_rate: int, out_rate: int) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self._stream = StreamResampler(in_rate, out_rate)
        self._fifo: Frame = np.zeros(0, dtype=np.int16)
        self._started = False

    def process(self, samples: Frame) -> Frame:
        """Resample one block; the result has exactly ``len(samples) * out / in`` samples."""
        need = samples.shape[0] * self.out_rate // self.in_rate
        out = self._stream.process(samples)
        if not self._started:
            self._started = True
            if out.shape[0] < need:
                out = np.concatenate((np.zeros(need - out.shape[0], dtype=np.int16), out))
        fifo = np.concatenate((self._fifo, out)) if self._fifo.shape[0] else out
        if fifo.shape[0] < need:  # should not happen after the first block
            fifo = np.concatenate((np.zeros(need - fifo.shape[0], dtype=np.int16), fifo))
        self._fifo = fifo[need:]
        return fifo[:need]
