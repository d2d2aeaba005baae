"""Offline speech recognition with pocketsphinx (its wheel ships a US English model).

Two entry points:

- :func:`recognize` decodes a whole clip at once: ``recognize(samples, rate) -> "lower case words"``.
- :class:`Recognizer` decodes a live stream: :meth:`Recognizer.feed` takes blocks of any size
  and returns the utterances that ended in them (pocketsphinx's voice-activity endpointer
  splits the stream at pauses of about 0.3 s); :meth:`Recognizer.finish` flushes the last one.

Input is mono int16 at any rate; it is resampled to the model's 16 kHz with libswresample
(through :class:`softphone.media.frames.StreamResampler`). Nothing touches the network.
Decoding is CPU work that blocks: callers on an event loop run it with ``asyncio.to_thread``.
A decoder costs about 0.35 CPU seconds and some 30 MB to build, so :func:`recognize` reuses
one per thread and a :class:`Recognizer` builds one for its lifetime.

Measured with flite's ``slt`` voice: "Welcome to the test line. Press one for sales, press two
for support." is heard as "welcome to the test line press line for sales press two for support".
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from softphone.errors import MediaError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["MODEL_RATE", "Recognizer", "Utterance", "recognize"]

MODEL_RATE = 16000
"""The sample rate pocketsphinx's default English model expects."""

# pocketsphinx marks non-speech with fillers like <s>, </s>, <sil>, [NOISE], and
# alternate pronunciations as word(2); none of that belongs in a transcript.
_FILLER_PREFIXES = ("<", "[", "+")


@dataclass(frozen=True, slots=True)
class Utterance:
    """One recognised utterance: lower-case words and a confidence in [0, 1]."""

    text: str
    confidence: float


def _new_decoder() -> Any:
    try:
        from pocketsphinx import Decoder  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - pocketsphinx is a hard dependency
        raise MediaError("speech recognition needs the pocketsphinx package") from exc
    # loglevel ERROR: pocketsphinx logs its whole configuration to stderr otherwise.
    return Decoder(loglevel="ERROR")


def _as_int16(samples: NDArray[Any]) -> NDArray[np.int16]:
    arr: NDArray[Any] = np.asarray(samples).reshape(-1)
    if arr.dtype == np.int16:
        return arr.astype(np.int16, copy=False)
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr * 32767.0
    clipped: NDArray[Any] = np.clip(arr, -32768, 32767)
    return clipped.astype(np.int16)


class _To16k:
    """Continuous resampler to the model rate (identity at 16 kHz)."""

    def __init__(self, rate: int) -> None:
        if rate <= 0:
            raise ValueError(f"sample rate must be positive, got {rate}")
        self.rate = rate
        self._stream: Any = None
        if rate != MODEL_RATE:
            from softphone.media.frames import StreamResampler

            self._stream = StreamResampler(rate, MODEL_RATE)

    def process(self, samples: NDArray[np.int16]) -> NDArray[np.int16]:
        if self._stream is None or samples.shape[0] == 0:
            return samples
        out: NDArray[np.int16] = self._stream.process(samples)
        return out


def _words(hypstr: str) -> str:
    words = []
    for word in hypstr.split():
        if word.startswith(_FILLER_PREFIXES):
            continue
        paren = word.find("(")
        if paren > 0:
            word = word[:paren]
        words.append(word.lower())
    return " ".join(words)


def _decode(decoder: Any, audio: bytes) -> Utterance:
    decoder.start_utt()
    decoder.process_raw(audio, no_search=False, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    if hyp is None:
        return Utterance("", 0.0)
    text = _words(hyp.hypstr)
    # Confidence: the mean posterior probability of the words (the bindings give
    # segment posteriors already as linear probabilities), fillers left out.
    posteriors = [float(seg.prob) for seg in decoder.seg() if not seg.word.startswith(_FILLER_PREFIXES)]
    posteriors = [p for p in posteriors if math.isfinite(p)]
    confidence = sum(posteriors) / len(posteriors) if posteriors else 0.0
    return Utterance(text, round(min(1.0, max(0.0, confidence)), 3))


# Below this RMS (about -60 dBFS) a clip is silence, not quiet speech.
_SILENCE_RMS = 32.0


def _has_sound(audio: NDArray[np.int16]) -> bool:
    if audio.shape[0] == 0:
        return False
    x = audio.astype(np.float32)
    return float(np.sqrt(np.dot(x, x) / x.shape[0])) > _SILENCE_RMS


_local = threading.local()


def _thread_decoder() -> Any:
    decoder = getattr(_local, "decoder", None)
    if decoder is None:
        decoder = _new_decoder()
        _local.decoder = decoder
    return decoder


def recognize(samples: NDArray[Any], rate: int) -> str:
    """Recognise a whole clip of mono audio; return its words in lower case ("" for none).

    ``samples`` are int16 (or float in [-1, 1]) at ``rate`` Hz. Blocks for roughly a
    fifth of the clip's duration in CPU time.
    """
    return recognize_utterance(samples, rate).text


def recognize_utterance(samples: NDArray[Any], rate: int) -> Utterance:
    """Like :func:`recognize`, with the decoder's confidence."""
    audio = _To16k(rate).process(_as_int16(samples))
    if not _has_sound(audio):
        return Utterance("", 0.0)  # the model hears words (often "dog") in digital silence
    # Half a second of silence either side: the decoder's noise floor estimate and
    # its end-of-word decisions both need some non-speech around the words.
    pad = np.zeros(MODEL_RATE // 2, dtype=np.int16)
    return _decode(_thread_decoder(), np.concatenate((pad, audio, pad)).tobytes())


class Recognizer:
    """Streaming recogniser for one audio stream at ``rate`` Hz.

    Feed it blocks as they arrive; each utterance (speech between pauses found by
    pocketsphinx's voice-activity endpointer) is decoded when it ends. Not thread-safe:
    use one from one thread at a time.
    """

    def __init__(self, rate: int, *, pause: float = 0.5) -> None:
        """``pause`` is how long a silence (in seconds) ends an utterance."""
        from pocketsphinx import Endpointer

        self.rate = rate
        self._resampler = _To16k(rate)
        self._decoder = _new_decoder()
        self._endpointer = Endpointer(window=pause, ratio=0.9, sample_rate=MODEL_RATE)
        self._frame_bytes: int = self._endpointer.frame_bytes
        self._pending = b""
        self._speech: list[bytes] = []
        self._results: list[Utterance] = []
        self.samples_in = 0
        """How many input samples (at ``rate``) have been fed so far."""

    @property
    def in_speech(self) -> bool:
        """Whether an utterance is under way."""
        return bool(self._endpointer.in_speech)

    def feed(self, samples: NDArray[Any]) -> list[str]:
        """Feed a block of samples; return the utterances (text) that ended in it."""
        return [u.text for u in self.feed_utterances(samples) if u.text]

    def feed_utterances(self, samples: NDArray[Any]) -> list[Utterance]:
        """Like :meth:`feed`, with confidences; empty utterances (noise only) included."""
        block = _as_int16(samples)
        self.samples_in += block.shape[0]
        data = self._pending + self._resampler.process(block).tobytes()
        size = self._frame_bytes
        done: list[Utterance] = []
        end = len(data) - len(data) % size
        for start in range(0, end, size):
            speech = self._endpointer.process(data[start : start + size])
            if speech is not None:
                self._speech.append(speech)
                if not self._endpointer.in_speech:
                    done.append(self._close())
        self._pending = data[end:]
        return done

    def finish(self) -> str:
        """End the stream: decode whatever utterance is still open and return its text."""
        utterance = self.finish_utterance()
        return utterance.text if utterance is not None else ""

    def finish_utterance(self) -> Utterance | None:
        """Like :meth:`finish`; ``None`` when no speech was open."""
        if self._endpointer.in_speech:
            # end_stream refuses an empty buffer; a zero-padded frame is the same as no more audio.
            tail = self._endpointer.end_stream(self._pending.ljust(self._frame_bytes, b"\0"))
            if tail is not None:
                self._speech.append(tail)
        self._pending = b""
        if not self._speech:
            return None
        return self._close()

    def _close(self) -> Utterance:
        audio = b"".join(self._speech)
        self._speech = []
        if not _has_sound(np.frombuffer(audio, dtype=np.int16)):
            return Utterance("", 0.0)
        return _decode(self._decoder, audio)
