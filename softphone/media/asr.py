"""Offline speech recognition with pocketsphinx (its wheel ships a US English model).

Entry points:

- :func:`recognize` decodes a whole clip at once: ``recognize(samples, rate) -> "lower case words"``.
- :class:`Recognizer` decodes a live stream: :meth:`Recognizer.feed` takes blocks of any size
  and returns the utterances that ended in them (pocketsphinx's voice-activity endpointer
  splits the stream at pauses of about 0.5 s); :meth:`Recognizer.finish` flushes the last one.
- :class:`RecognizerProcess` is a :class:`Recognizer` in a child process
  (``python -m softphone.media.asr RATE``), for an event loop that must not stall.

Input is mono int16 at any rate; it is resampled to the model's 16 kHz with libswresample
(through :class:`softphone.media.frames.StreamResampler`). Nothing touches the network.
Decoding is CPU work that blocks, and pocketsphinx's bindings hold the GIL while they decode:
audio is fed in 0.1 s pieces so other threads get turns, but the final search of an utterance
still holds the GIL for tens of milliseconds (over 100 ms on a loaded machine). An event loop
that carries live media should use :class:`RecognizerProcess`; elsewhere ``asyncio.to_thread``
is fine. A decoder costs about 0.35 CPU seconds and some 30 MB to build, so :func:`recognize`
reuses one per thread and a :class:`Recognizer` builds one for its lifetime.

Measured with flite's ``slt`` voice: "Welcome to the test line. Press one for sales, press two
for support." is heard as "welcome to the test line press line for sales press two for support".
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from softphone.errors import MediaError

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["MODEL_RATE", "Recognizer", "RecognizerProcess", "Utterance", "recognize"]

MODEL_RATE = 16000
"""The sample rate pocketsphinx's default English model expects."""

# pocketsphinx marks non-speech with fillers like <s>, </s>, <sil>, [NOISE], and
# alternate pronunciations as word(2); none of that belongs in a transcript.
_FILLER_PREFIXES = ("<", "[", "+")


@dataclass(frozen=True, slots=True)
class Utterance:
    """One recognised utterance: lower-case words and a confidence in [0, 1].

    ``final`` is false for an interim result (the words so far of an utterance under way).
    """

    text: str
    confidence: float
    final: bool = True


def _new_decoder() -> Any:
    try:
        from pocketsphinx import Decoder  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - pocketsphinx is a hard dependency
        raise MediaError("speech recognition needs the pocketsphinx package") from exc
    # loglevel ERROR: pocketsphinx logs its whole configuration to stderr otherwise.
    decoder = Decoder(loglevel="ERROR")
    decoder.set_cmn(SPEECH_CMN)
    return decoder


SPEECH_CMN = "52.05,3.62,13.78,14.49,0.06,3.16,3.47,-0.53,1.22,5.18,1.63,6.68,5.93"
"""Where the decoder's cepstral mean starts, instead of the model's generic ``40,3,-1``.

Fed in pieces (live mode), pocketsphinx normalises each utterance with a running cepstral mean
that the utterances before it shaped, so a fresh decoder mishears its first words. This is the
mean after five of the test prompts (flite's slt voice). Measured on ten other prompts: mean word
accuracy 0.53 -> 0.82 with slt, 0.87 -> 0.88 rms, 0.63 -> 0.92 awb, 0.93 -> 0.84 kal16 (0.74 ->
0.87 over the four voices). :func:`recognize` restarts from it for every clip, so a clip's result
does not depend on the clips before; a :class:`Recognizer` adapts from it as its stream goes on.
"""


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


CHUNK_BYTES = 3200
"""Audio handed to pocketsphinx per call (0.1 s at 16 kHz). Its bindings hold the GIL while they
decode, so feeding small pieces lets other threads (the event loop) run in between."""


def _feed(decoder: Any, audio: bytes) -> None:
    for start in range(0, len(audio), CHUNK_BYTES):
        decoder.process_raw(audio[start : start + CHUNK_BYTES], no_search=False, full_utt=False)


def _result(decoder: Any) -> Utterance:
    """The utterance just ended (``end_utt`` called)."""
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


def _decode(decoder: Any, audio: bytes) -> Utterance:
    decoder.start_utt()
    _feed(decoder, audio)
    decoder.end_utt()
    return _result(decoder)


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
    decoder = _thread_decoder()
    decoder.set_cmn(SPEECH_CMN)
    return _decode(decoder, np.concatenate((pad, audio, pad)).tobytes())


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
        self._open = False
        self._energy = 0.0
        self.samples_in = 0
        """How many input samples (at ``rate``) have been fed so far."""

    @property
    def in_speech(self) -> bool:
        """Whether an utterance is under way."""
        return bool(self._endpointer.in_speech)

    def partial(self) -> str:
        """The words heard so far of the utterance under way ("" between utterances)."""
        if not self._open:
            return ""
        hyp = self._decoder.hyp()
        return _words(hyp.hypstr) if hyp is not None else ""

    def feed(self, samples: NDArray[Any]) -> list[str]:
        """Feed a block of samples; return the utterances (text) that ended in it."""
        return [u.text for u in self.feed_utterances(samples) if u.text]

    def feed_utterances(self, samples: NDArray[Any]) -> list[Utterance]:
        """Like :meth:`feed`, with confidences; empty utterances (noise only) included.

        Speech is decoded as it arrives (pocketsphinx's live mode), so when an utterance ends
        only the final search is left: the result comes about ``pause`` after the last word.
        """
        block = _as_int16(samples)
        self.samples_in += block.shape[0]
        data = self._pending + self._resampler.process(block).tobytes()
        size = self._frame_bytes
        done: list[Utterance] = []
        end = len(data) - len(data) % size
        for start in range(0, end, size):
            speech = self._endpointer.process(data[start : start + size])
            if speech is not None:
                self._speak(speech)
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
                self._speak(tail)
        self._pending = b""
        if not self._open:
            return None
        return self._close()

    def _speak(self, speech: bytes) -> None:
        if not self._open:
            self._decoder.start_utt()
            self._open = True
            self._energy = 0.0
        x = np.frombuffer(speech, dtype=np.int16).astype(np.float32)
        if x.shape[0]:
            self._energy = max(self._energy, float(np.sqrt(np.dot(x, x) / x.shape[0])))
        _feed(self._decoder, speech)

    def _close(self) -> Utterance:
        self._open = False
        self._decoder.end_utt()
        if self._energy <= _SILENCE_RMS:
            return Utterance("", 0.0)  # the model hears words (often "dog") in digital silence
        return _result(self._decoder)


# --- a recogniser in a child process --------------------------------------------------------------
#
# The worker protocol (``python -m softphone.media.asr RATE``): stdin carries raw little-endian
# int16 mono samples at RATE, in any pieces; EOF ends the stream. stdout carries one JSON object
# per line: ``{"ready": true}`` once the decoder is built, ``{"text", "confidence"}`` per utterance
# (empty ones left out), with ``--interim`` also ``{"text", "final": false}`` when the words so far
# of an utterance under way change, and ``{"end": true}`` last; every line has ``"cpu"``, the
# worker's CPU seconds so far.


def _worker(rate: int, *, interim: bool = False) -> None:
    out = sys.stdout.buffer
    stdin = sys.stdin.fileno()

    def say(**fields: Any) -> None:
        fields["cpu"] = round(time.process_time(), 3)
        out.write(json.dumps(fields).encode() + b"\n")
        out.flush()

    recognizer = Recognizer(rate)
    say(ready=True)
    odd = b""
    partial = ""
    while True:
        data = os.read(stdin, 65536)
        if not data:
            break
        data, odd = odd + data, b""
        if len(data) % 2:
            data, odd = data[:-1], data[-1:]
        for u in recognizer.feed_utterances(np.frombuffer(data, dtype="<i2")):
            if u.text:
                say(text=u.text, confidence=u.confidence)
            partial = ""
        if interim:
            now = recognizer.partial()
            if now and now != partial:
                partial = now
                say(text=now, confidence=0.0, final=False)
    last = recognizer.finish_utterance()
    if last is not None and last.text:
        say(text=last.text, confidence=last.confidence)
    say(end=True)


MAX_BACKLOG_BYTES = 8 << 20
"""Audio waiting for the child beyond this (about 90 s at 48 kHz) is dropped."""


class RecognizerProcess:
    """A :class:`Recognizer` in a child process, driven from asyncio.

    ``on_utterance`` is called on the event loop with each recognised :class:`Utterance`.
    :meth:`feed` never blocks (it queues for the child's stdin); :meth:`finish` ends the
    stream and waits for the last result. :attr:`cpu_seconds` is the child's CPU time
    (its start-up, about 0.5 s, included).
    """

    def __init__(self, rate: int, on_utterance: Callable[[Utterance], Any], *, interim: bool = False) -> None:
        """``interim``: also report the words so far of utterances under way (``final`` false)."""
        self.rate = rate
        self.interim = interim
        self.on_utterance = on_utterance
        self.cpu_seconds = 0.0
        self.samples_in = 0
        self.samples_dropped = 0
        self.ready = asyncio.Event()
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the child (returns at once; audio fed meanwhile waits in the pipe)."""
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "softphone.media.asr",
            str(self.rate),
            *(["--interim"] if self.interim else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        self._reader = asyncio.get_running_loop().create_task(self._read(), name="asr-worker")

    def feed(self, samples: NDArray[Any]) -> None:
        """Queue samples (at ``rate``) for recognition."""
        proc = self._proc
        if proc is None or proc.stdin is None or proc.stdin.is_closing():
            return
        block = _as_int16(samples)
        self.samples_in += block.shape[0]
        if proc.stdin.transport.get_write_buffer_size() > MAX_BACKLOG_BYTES:
            self.samples_dropped += block.shape[0]  # the child fell far behind: drop, never grow without bound
            return
        proc.stdin.write(block.astype("<i2").tobytes())

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        while True:
            line = await self._proc.stdout.readline()
            if not line:
                return
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            self.cpu_seconds = float(msg.get("cpu", self.cpu_seconds))
            if msg.get("ready"):
                self.ready.set()
            if isinstance(msg.get("text"), str):
                final = msg.get("final", True) is not False
                self.on_utterance(Utterance(msg["text"], float(msg.get("confidence", 0.0)), final))

    async def finish(self, timeout: float = 10.0) -> None:
        """End the stream; wait (up to ``timeout``) for the last utterance and the child's exit."""
        proc = self._proc
        if proc is None:
            return
        if proc.stdin is not None and not proc.stdin.is_closing():
            try:
                await proc.stdin.drain()
            except (ConnectionError, BrokenPipeError):
                pass
            proc.stdin.close()
        try:
            if self._reader is not None:
                await asyncio.wait_for(asyncio.shield(self._reader), timeout)
            await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            self.kill()
            await proc.wait()

    @property
    def pid(self) -> int | None:
        """The child's process id (None before :meth:`start`)."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """The child has been started and has not exited."""
        return self._proc is not None and self._proc.returncode is None

    def kill(self) -> None:
        """Stop the child at once (no last result)."""
        if self._proc is not None and self._proc.returncode is None:
            self._proc.kill()

    async def close(self) -> None:
        """Kill the child if it still runs, and reap it (so no transport outlives the loop)."""
        self.kill()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._proc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._proc.wait(), 5.0)


if __name__ == "__main__":
    _worker(int(sys.argv[1]) if len(sys.argv) > 1 else MODEL_RATE, interim="--interim" in sys.argv[2:])
