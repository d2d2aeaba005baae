"""Signal helpers: levels, frequency analysis, DTMF generation and detection.

Call-progress tones (ringback, ringtone, hold, busy) live in :mod:`softphone.media.tones`.

All functions take 48 kHz mono int16 samples (the engine format) unless told
otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from softphone.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Frame, level_dbfs
from softphone.media.sources import ArraySource

__all__ = [
    "DTMF_COLS",
    "DTMF_DIGITS",
    "DTMF_ROWS",
    "DtmfDetector",
    "detect_dtmf",
    "dominant_frequency",
    "dtmf_samples",
    "dtmf_source",
    "level_dbfs",
    "split_frames",
]

DTMF_ROWS = (697.0, 770.0, 852.0, 941.0)
DTMF_COLS = (1209.0, 1336.0, 1477.0, 1633.0)
_KEYPAD = ("123A", "456B", "789C", "*0#D")
DTMF_DIGITS = "0123456789*#ABCD"
_DIGIT_FREQS = {
    _KEYPAD[r][c]: (DTMF_ROWS[r], DTMF_COLS[c]) for r in range(4) for c in range(4)
}


def dominant_frequency(samples: Frame, sample_rate: int = SAMPLE_RATE) -> float:
    """Frequency (Hz) of the strongest spectral peak, with sub-bin interpolation.

    Uses a Hann-windowed FFT and a parabolic fit on the log magnitude around the
    peak, so one second of a tone gives its frequency to a fraction of a hertz.
    Returns 0.0 for empty or silent input.
    """
    x = np.asarray(samples, dtype=np.float64).reshape(-1)
    if x.shape[0] < 16 or not np.any(x):
        return 0.0
    x = x - x.mean()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.shape[0])))
    spectrum[0] = 0.0
    k = int(np.argmax(spectrum))
    offset = 0.0
    if 0 < k < spectrum.shape[0] - 1:
        a, b, c = (math.log(max(v, 1e-12)) for v in spectrum[k - 1 : k + 2])
        denom = a - 2 * b + c
        if denom != 0:
            offset = 0.5 * (a - c) / denom
    return float((k + offset) * sample_rate / x.shape[0])


def split_frames(samples: Frame) -> list[Frame]:
    """Cut samples into 960-sample frames, padding the last one with silence."""
    n = samples.shape[0]
    frames = []
    for i in range(0, n, FRAME_SAMPLES):
        chunk = samples[i : i + FRAME_SAMPLES]
        if chunk.shape[0] < FRAME_SAMPLES:
            chunk = np.concatenate((chunk, np.zeros(FRAME_SAMPLES - chunk.shape[0], np.int16)))
        frames.append(chunk)
    return frames


# -- DTMF generation ----------------------------------------------------------


def dtmf_samples(
    digits: str, *, tone_ms: int = 100, gap_ms: int = 100, amplitude: float = 0.5
) -> Frame:
    """Samples for a DTMF string: each digit ``tone_ms`` of its two tones then ``gap_ms`` silence.

    Unknown characters (``,`` or spaces) become a pause of ``tone_ms + gap_ms``.
    ``amplitude`` is the peak of the pair (each tone gets half).
    """
    tone_n = tone_ms * SAMPLE_RATE // 1000
    gap = np.zeros(gap_ms * SAMPLE_RATE // 1000, dtype=np.int16)
    t = np.arange(tone_n) / SAMPLE_RATE
    # A 2 ms raised-cosine ramp avoids clicks that smear energy across bins.
    ramp_n = min(96, tone_n // 2)
    envelope = np.ones(tone_n)
    if ramp_n:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, math.pi, ramp_n))
        envelope[:ramp_n] = ramp
        envelope[-ramp_n:] = ramp[::-1]
    parts: list[Frame] = []
    for ch in digits.upper():
        freqs = _DIGIT_FREQS.get(ch)
        if freqs is None:
            parts.append(np.zeros(tone_n, dtype=np.int16))
        else:
            wave = np.sin(2 * math.pi * freqs[0] * t) + np.sin(2 * math.pi * freqs[1] * t)
            parts.append((wave * envelope * (16383.0 * amplitude)).astype(np.int16))
        parts.append(gap)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def dtmf_source(
    digits: str, *, tone_ms: int = 100, gap_ms: int = 100, amplitude: float = 0.5
) -> ArraySource:
    """A one-shot source playing a DTMF string (finished afterwards; good for ``MixSource``)."""
    return ArraySource(dtmf_samples(digits, tone_ms=tone_ms, gap_ms=gap_ms, amplitude=amplitude))


# -- DTMF detection -----------------------------------------------------------


_TWIST_LOW = 10 ** (-8.0 / 10.0)
_TWIST_HIGH = 10 ** (4.0 / 10.0)


class DtmfDetector:
    """Streaming DTMF detector for 48 kHz frames (Goertzel power at the 8 DTMF tones).

    Each 20 ms frame is one analysis block. The power at each of the 8 exact
    DTMF frequencies is the Goertzel/single-bin-DFT value, computed as two small
    real float32 matrix products (cosine and sine parts), about 5 us a frame;
    blocks quieter than ``min_level_db`` are rejected before any projection.
    A block "has" a digit when:

    * the strongest row and column tones each carry at least ``min_level_db``;
    * together they hold most of the block's energy (``tone_ratio``: speech and
      noise spread energy elsewhere);
    * each dominates the other tones of its group by 6 dB (no ambiguity);
    * twist is within limits: column at most 8 dB weaker (normal twist) or 4 dB
      stronger (reverse twist) than the row.

    A key press is reported once, after ``min_blocks`` consecutive blocks with the
    same digit (2 blocks ≈ 40 ms), and re-armed after ``release_blocks`` blocks
    without it, so a long press is still one digit.
    """

    def __init__(
        self,
        on_digit: Callable[[str], object] | None = None,
        *,
        min_blocks: int = 2,
        release_blocks: int = 2,
        min_level_db: float = -36.0,
        tone_ratio: float = 0.6,
    ) -> None:
        self.on_digit = on_digit
        self.min_blocks = min_blocks
        self.release_blocks = release_blocks
        self.min_level_db = min_level_db
        self.tone_ratio = tone_ratio
        freqs = np.array(DTMF_ROWS + DTMF_COLS)
        w = 2.0 * np.pi * np.outer(freqs, np.arange(FRAME_SAMPLES)) / SAMPLE_RATE
        # Two real 8 x 960 float32 bases instead of one complex product: a quarter of the
        # arithmetic, no complex cast of the frame, and each product stays under OpenBLAS's
        # multithreading threshold (a 16 x 960 or complex 8 x 960 one does not, and waking
        # its threads on a busy 2-core machine cost up to milliseconds a frame).
        self._cos = np.ascontiguousarray(np.cos(w), dtype=np.float32)
        self._sin = np.ascontiguousarray(np.sin(w), dtype=np.float32)
        self._candidate: str | None = None
        self._count = 0
        self._absent = 0
        self._reported: str | None = None
        self.digits: list[str] = []
        """Every digit reported so far, in order."""

    def reset(self) -> None:
        """Forget the current press and the history."""
        self._candidate, self._count, self._absent, self._reported = None, 0, 0, None
        self.digits.clear()

    def classify(self, frame: Frame) -> str | None:
        """Return the digit present in one 960-sample block, or ``None``."""
        if frame.shape[0] < FRAME_SAMPLES:
            return None
        x = frame[:FRAME_SAMPLES].astype(np.float32)
        mean_square = float(np.dot(x, x)) / FRAME_SAMPLES
        # Two tones each at least ``floor`` need at least that much in the block: quiet
        # blocks (silence, background) stop here without any projection.
        floor = (32768.0**2) * 10 ** (self.min_level_db / 10.0)
        if mean_square < floor:
            return None
        re_, im = self._cos @ x, self._sin @ x
        # Normalised so a full-block sinusoid of amplitude A gives A**2 / 2
        # (its mean-square power).
        power = ((re_ * re_ + im * im) * (2.0 / FRAME_SAMPLES**2)).tolist()
        rows, cols = power[:4], power[4:]
        pr, pc = max(rows), max(cols)
        if pr < floor or pc < floor:
            return None
        if (pr + pc) < self.tone_ratio * mean_square:
            return None
        # Each tone dominates the rest of its group by 6 dB; the 0.25 * pr bound holds
        # for the winner itself only when pr == 0, excluded by the floor above.
        r, c = rows.index(pr), cols.index(pc)
        if sum(1 for p in rows if p * 4.0 > pr) > 1 or sum(1 for p in cols if p * 4.0 > pc) > 1:
            return None
        # Twist: column at most 8 dB weaker or 4 dB stronger than the row.
        if pc < pr * _TWIST_LOW or pc > pr * _TWIST_HIGH:
            return None
        return _KEYPAD[r][c]

    def feed(self, frame: Frame) -> list[str]:
        """Analyse one frame; return digits newly pressed (normally zero or one)."""
        digit = self.classify(frame)
        found: list[str] = []
        if digit is not None and digit == self._candidate:
            self._count += 1
        elif digit is not None:
            self._candidate, self._count = digit, 1
        if digit is None or digit != self._reported:
            self._absent += 1
        else:
            self._absent = 0
        if self._reported is not None and self._absent >= self.release_blocks:
            self._reported = None
        if (
            digit is not None
            and self._count >= self.min_blocks
            and self._reported is None
        ):
            self._reported = digit
            self._absent = 0
            found.append(digit)
            self.digits.append(digit)
            if self.on_digit is not None:
                self.on_digit(digit)
        if digit is None:
            self._candidate, self._count = None, 0
        return found

    def write_frame(self, frame: Frame) -> None:
        """Sink interface: analyse a frame (digits go to ``on_digit`` and :attr:`digits`)."""
        self.feed(frame)

    async def start(self) -> None:
        """Sink interface (nothing to do)."""

    async def stop(self) -> None:
        """Sink interface (nothing to do)."""


def detect_dtmf(samples: Frame, *, min_blocks: int = 2, min_level_db: float = -36.0) -> str:
    """Run a fresh :class:`DtmfDetector` over ``samples`` and return the digits found."""
    detector = DtmfDetector(min_blocks=min_blocks, min_level_db=min_level_db)
    for frame in split_frames(np.asarray(samples, dtype=np.int16)):
        detector.feed(frame)
    return "".join(detector.digits)
