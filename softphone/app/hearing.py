"""What a call hears: a per-call listener for ``expect speech|tone|silence|audio``, ``wait prompt-end``
and ``transcript``.

A :class:`Hearing` is an audio sink that the :class:`~softphone.app.phone.Phone` tees off a call's
received audio (:meth:`Phone.hearing`). For every 20 ms frame it keeps the level and, when the frame
is loud, its dominant frequency (cheap: one 960-point FFT); with speech on, the frames also go, in
0.1 s pieces, to a :class:`~softphone.media.asr.RecognizerProcess` (pocketsphinx in a child
process, so recognition never holds the event loop's GIL). The child reports interim words of the
utterance under way and the final words of each utterance; both are matched.

Matching speech (:func:`phrase_score`, :func:`letter_score`): the phrase and the heard text are
lower-cased, stripped of punctuation, digits spelled out ("1" -> "one"); the phrase matches when
at least :data:`MATCH_RATIO` (75 %) of its words are found **in order** (a longest common
subsequence) within a stretch of heard words no longer than the phrase plus half of it plus two,
**or** (a phrase of three words or more) when its letters (spaces left out) are found in the heard
letters with at most 1 - :data:`LETTER_RATIO` (20 %) of them changed, added or dropped (an
approximate substring match: "the office is closed" heard as "the offices closed" is 1 letter off,
though only 3 of its 5 words match). ``"a|b"`` is a choice: any one alternative matching is enough.
Each expectation looks at the speech heard since the last matched ``expect speech`` (so an earlier
prompt does not satisfy a later one), including speech heard before the command started.

Voice activity: a frame is loud at or above :data:`AUDIO_DBFS` (-45 dBFS); ``expect audio`` needs
:data:`AUDIO_MIN` (0.1 s) of loud frames in a row (``expect audio`` and ``expect tone`` also count the
last :data:`LOOKBACK`, 0.5 s, before the command); ``expect silence S`` needs S seconds with no loud
frame (frames that do not arrive at all count as silence, e.g. a held call); ``wait prompt-end`` waits
until the far end has spoken since the last prompt end and then been quiet :data:`PROMPT_GAP` (0.8 s).
``expect tone F±T`` needs :data:`TONE_MIN` (0.2 s) of loud frames in a row whose dominant frequency is
within T Hz of F (default T: 2 % of F, at least 10 Hz).

Everything runs on the event loop that delivers the frames (aiortc's); times are ``loop.time()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from softphone.errors import CommandError
from softphone.media.frames import FRAME_MS, SAMPLE_RATE, Frame, level_dbfs
from softphone.media.sinks import BaseSink

if TYPE_CHECKING:
    from softphone.media.asr import Utterance

__all__ = [
    "AUDIO_DBFS",
    "MATCH_RATIO",
    "Heard",
    "Hearing",
    "best_choice",
    "letter_score",
    "normalize_words",
    "parse_tone",
    "phrase_score",
]

logger = logging.getLogger("softphone.app.hearing")

AUDIO_DBFS = -45.0
"""A received frame at or above this level counts as audio (voice activity)."""
AUDIO_MIN = 0.1
"""Seconds of loud frames in a row that ``expect audio`` needs."""
TONE_MIN = 0.2
"""Seconds of loud frames in a row at the expected frequency that ``expect tone`` needs."""
LOOKBACK = 0.5
"""``expect tone`` and ``expect audio`` also count what arrived this long before the command (a tone
sent by a blocking ``play`` just before comes back from an echo while ``play`` still runs)."""
PROMPT_GAP = 0.8
"""Seconds of quiet after speech that end a prompt (``wait prompt-end``)."""
MATCH_RATIO = 0.75
"""The share of a phrase's words that must be heard in order for ``expect speech`` to match."""
LETTER_RATIO = 0.8
"""Or: the share of a phrase's letters that must be heard (1 - edits / letters, best substring)."""
HISTORY_S = 60.0
"""Seconds of per-frame levels kept."""
_FRAME_S = FRAME_MS / 1000
_FEED_FRAMES = 5  # frames per write to the recogniser (0.1 s)

_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def normalize_words(text: str) -> list[str]:
    """Lower-case words without punctuation; each digit spelled out ("press 1" -> press one)."""
    words: list[str] = []
    for raw in re.findall(r"[a-z0-9']+", text.lower()):
        word = raw.strip("'")
        if not word:
            continue
        if word.isdigit():
            words.extend(_DIGITS[int(d)] for d in word)
        else:
            words.append(word)
    return words


def _lcs(a: Sequence[str], b: Sequence[str]) -> int:
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    return prev[-1]


def phrase_score(phrase: str | Sequence[str], heard: str | Sequence[str]) -> float:
    """The best share (0..1) of ``phrase``'s words found in order in a stretch of ``heard``.

    The stretch is at most ``len(phrase) * 1.5 + 2`` heard words long (so words scattered over a long
    transcript do not add up to a match).
    """
    want = normalize_words(phrase) if isinstance(phrase, str) else list(phrase)
    got = normalize_words(heard) if isinstance(heard, str) else list(heard)
    if not want:
        return 1.0
    if not got:
        return 0.0
    span = int(len(want) * 1.5) + 2
    best = 0
    for start in range(max(1, len(got) - span + 1)):
        best = max(best, _lcs(want, got[start : start + span]))
        if best == len(want):
            break
    return best / len(want)


def letter_score(phrase: str | Sequence[str], heard: str | Sequence[str]) -> float:
    """1 - (edits to find ``phrase``'s letters in ``heard``'s letters) / (the phrase's letters), >= 0.

    Sellers' approximate substring match: the phrase may start and end anywhere in the heard text.
    """
    want = "".join(normalize_words(phrase) if isinstance(phrase, str) else phrase)
    got = "".join(normalize_words(heard) if isinstance(heard, str) else heard)
    if not want:
        return 1.0
    if not got:
        return 0.0
    prev = list(range(len(want) + 1))  # column over the phrase; a free start anywhere in `got`
    best = prev[-1]
    for ch in got:
        cur = [0]
        for i, w in enumerate(want):
            cur.append(min(prev[i] + (w != ch), prev[i + 1] + 1, cur[i] + 1))
        prev = cur
        best = min(best, cur[-1])
    return max(0.0, 1.0 - best / len(want))


def best_choice(choices: str, heard: str | Sequence[str], ratio: float = MATCH_RATIO,
                letters: float = LETTER_RATIO) -> tuple[str, float] | None:
    """The first alternative of ``"a|b|c"`` that ``heard`` matches (words or letters), else None.

    The score returned is the word share, or the letter score when only that one passed.
    """
    for alt in (c.strip() for c in choices.split("|")):
        if not alt:
            continue
        score = phrase_score(alt, heard)
        if score >= ratio:
            return alt, score
        by_letters = letter_score(alt, heard) if len(normalize_words(alt)) >= 3 else 0.0
        if by_letters >= letters:
            return alt, by_letters
    return None


def parse_tone(spec: str) -> tuple[float, float]:
    """``FREQ[±TOL]`` (also ``FREQ+-TOL`` or ``FREQ~TOL``) -> (frequency, tolerance) in Hz."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:(?:±|\+-|\+/-|~)\s*(\d+(?:\.\d+)?))?\s*(?:hz)?\s*", spec, re.I)
    if m is None:
        raise CommandError(f"expect tone: {spec!r} is not FREQ or FREQ±TOL (Hz)")
    freq = float(m.group(1))
    if not 50 <= freq <= 4000:
        raise CommandError(f"expect tone: frequency {freq:g} Hz is outside 50-4000 Hz")
    tol = float(m.group(2)) if m.group(2) else max(10.0, freq * 0.02)
    return freq, tol


@dataclass(frozen=True, slots=True)
class Heard:
    """One recognised utterance: words, when its result arrived, and the last audio before it."""

    text: str
    at: float
    speech_end: float
    confidence: float = 0.0


@dataclass
class _Frame:
    at: float
    level: float
    freq: float  # 0.0 when quiet


@dataclass
class _Prompt:
    start: float
    end: float


@dataclass
class _Stats:
    first_audio: float | None = None
    first_audio_wall: float | None = None  #: epoch seconds (``time.time()``)
    prompts: list[_Prompt] = field(default_factory=list)


class Hearing(BaseSink):
    """The listener of one call. Feed it received frames (``write_frame``); ask it with the ``expect_*``
    coroutines, each of which returns ``None`` on success or a description of what was heard instead."""

    def __init__(
        self,
        *,
        speech: bool = True,
        recognizer_factory: Callable[[int, Callable[..., object]], object] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.speech = speech
        self._clock = clock
        self._frames: deque[_Frame] = deque(maxlen=int(HISTORY_S / _FRAME_S))
        self._last_loud: float | None = None
        self._loud_run = 0  # frames in a row at/above AUDIO_DBFS
        self._pending: list[Frame] = []
        self.finals: list[Heard] = []
        self.partial = ""
        #: Where the last matched ``expect speech`` ended: (index into finals, words into it); an index
        #: of len(finals) points into the utterance under way (its final keeps the place).
        self._cursor = (0, 0)
        self._changed = asyncio.Event()
        self._prompt_mark: float | None = None  # wait prompt-end: speech counts after this
        self.stats = _Stats()
        self.started_at: float | None = None
        self._recognizer: object | None = None
        self._child: object | None = None  # the recogniser while stop() finishes it
        self._factory = recognizer_factory
        self._closed = False

    # --- lifecycle -----------------------------------------------------------------------

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            return time.monotonic()

    async def start(self) -> None:
        """Start the recogniser child (speech on); audio that arrives meanwhile waits in its pipe."""
        self.started_at = self._now()
        if self.speech:
            await self.enable_speech()

    async def enable_speech(self) -> None:
        """Recognise speech from now on (a listener attached for levels only gains a recogniser)."""
        self.speech = True
        if self._recognizer is not None or self._closed:
            return
        if self._factory is not None:
            rec = self._factory(SAMPLE_RATE, self._on_utterance)
        else:
            from softphone.media.asr import RecognizerProcess

            rec = RecognizerProcess(SAMPLE_RATE, self._on_utterance, interim=True)
        self._recognizer = rec
        await rec.start()  # type: ignore[attr-defined]

    async def stop(self) -> None:
        """Flush the last utterance and stop the recogniser (the transcript stays)."""
        if self._closed:
            return
        self._closed = True
        rec, self._recognizer = self._recognizer, None
        if rec is None:
            return
        self._child = rec
        self._flush(rec)
        try:
            await rec.finish(timeout=5.0)  # type: ignore[attr-defined]
        except Exception:  # pragma: no cover - a dead child: nothing left to hear
            logger.debug("recogniser finish failed", exc_info=True)
        with contextlib.suppress(Exception):
            await rec.close()  # type: ignore[attr-defined]

    async def abort(self) -> None:
        """Stop the recogniser child at once (no last result) and reap it; for shutting down."""
        self._closed = True
        rec = self._recognizer or self._child
        self._recognizer = self._child = None
        if rec is not None:
            with contextlib.suppress(Exception):
                await rec.close()  # type: ignore[attr-defined]

    # --- input ---------------------------------------------------------------------------

    def write_frame(self, frame: Frame) -> None:
        now = self._now()
        level = level_dbfs(frame)
        loud = level >= AUDIO_DBFS
        freq = 0.0
        if loud:
            from softphone.media.dsp import dominant_frequency

            freq = dominant_frequency(frame)
            self._loud_run += 1
            if self._loud_run * _FRAME_S >= AUDIO_MIN - 1e-9:
                if self.stats.first_audio is None:
                    self.stats.first_audio = now - (self._loud_run - 1) * _FRAME_S
                    self.stats.first_audio_wall = time.time() - (self._loud_run - 1) * _FRAME_S
                self._note_prompt(now)
            self._last_loud = now
        else:
            self._loud_run = 0
        self._frames.append(_Frame(now, level, freq))
        if self._recognizer is not None:
            self._pending.append(frame)
            if len(self._pending) >= _FEED_FRAMES:
                self._flush(self._recognizer)
        self._changed.set()

    def _flush(self, rec: object) -> None:
        if self._pending:
            block = np.concatenate(self._pending)
            self._pending = []
            rec.feed(block)  # type: ignore[attr-defined]

    def _note_prompt(self, now: float) -> None:
        prompts = self.stats.prompts
        if prompts and now - prompts[-1].end < PROMPT_GAP:
            prompts[-1].end = now
        else:
            prompts.append(_Prompt(now - AUDIO_MIN, now))

    def _on_utterance(self, utterance: Utterance) -> None:
        text = utterance.text
        final = utterance.final
        if final:
            if text:
                heard = Heard(text, self._now(), self._last_loud or self._now(),
                              utterance.confidence)
                self.finals.append(heard)
            elif self._cursor[0] == len(self.finals):
                self._cursor = (len(self.finals), 0)  # the utterance under way came to nothing
            self.partial = ""
        else:
            self.partial = text
        self._changed.set()

    # --- reading -------------------------------------------------------------------------

    def transcript(self) -> str:
        """Everything heard so far (finals, then the words of the utterance under way)."""
        return " ".join([h.text for h in self.finals] + ([self.partial] if self.partial else []))

    def _segments(self) -> list[list[str]]:
        """The words of each final from the cursor's on, then of the utterance under way."""
        return [normalize_words(h.text) for h in self.finals[self._cursor[0] :]] + [normalize_words(self.partial)]

    def _unconsumed_words(self) -> list[str]:
        segments = self._segments()
        segments[0] = segments[0][self._cursor[1] :]
        return [w for seg in segments for w in seg]

    def _unconsumed(self) -> str:
        return " ".join(self._unconsumed_words())

    def _advance(self, count: int) -> None:
        """Move the cursor ``count`` words on (past a matched phrase)."""
        index, offset = self._cursor
        segments = self._segments()
        for k, seg in enumerate(segments):
            left = len(seg) - offset
            if count < left or k == len(segments) - 1:
                self._cursor = (index + k, offset + max(0, min(count, left)))
                return
            count -= left
            offset = 0

    async def _until(self, check: Callable[[], object], timeout: float) -> object:
        """Wait until ``check()`` returns something other than None (returned), or None at the timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            verdict = check()
            if verdict is not None:
                return verdict
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))

    async def expect_speech(self, choices: str, timeout: float) -> tuple[bool, str, float | None]:
        """Wait for the phrase (or one of ``"a|b"``); ``(matched, what, latency)``.

        On success ``what`` is the alternative matched and ``latency`` the seconds from the end of the
        far end's audio to the match (None when the far end is still talking); on failure ``what`` is
        the transcript heard since the last matched phrase.
        """
        if not self.speech:
            raise CommandError("expect speech: this call was not listened to with speech recognition")

        last_text: list[str] = []  # the text already judged (checks run on every frame)

        def check() -> tuple[str, float | None] | None:
            words = self._unconsumed_words()
            text = " ".join(words)
            if last_text and last_text[0] == text:
                return None
            last_text[:] = [text]
            found = best_choice(choices, words)
            if found is None:
                return None
            now = self._now()
            quiet = self._last_loud is not None and now - self._last_loud > 0.1
            latency = (now - self._last_loud) if quiet and self._last_loud is not None else None
            # consume up to the end of the match (the shortest prefix that still matches), so the rest of
            # the same utterance ("... press two for support") is left for the next expectation
            end = next(k for k in range(1, len(words) + 1) if best_choice(found[0], words[:k]) is not None)
            self._advance(end)
            return found[0], latency

        got = await self._until(check, timeout)
        if got is None:
            return False, self._unconsumed(), None
        assert isinstance(got, tuple)
        return True, str(got[0]), got[1]

    async def expect_audio(self, timeout: float) -> bool:
        """True when :data:`AUDIO_MIN` of loud frames in a row arrive within ``timeout`` from now
        (or :data:`LOOKBACK` before)."""
        since = self._now() - LOOKBACK
        need = max(1, round(AUDIO_MIN / _FRAME_S))

        def check() -> bool | None:
            run = 0
            for f in reversed(self._frames):
                if f.at < since:
                    break
                run = run + 1 if f.level >= AUDIO_DBFS else 0
                if run >= need:
                    return True
            return None

        return await self._until(check, timeout) is True

    async def expect_silence(self, seconds: float, timeout: float) -> float:
        """Wait for ``seconds`` with no loud frame (starting from now); returns the longest quiet run
        reached (>= ``seconds`` on success)."""
        start = self._now()
        best = 0.0

        def check() -> bool | None:
            nonlocal best
            now = self._now()
            quiet_from = max(start, self._last_loud + _FRAME_S if self._last_loud is not None else start)
            best = max(best, now - quiet_from)
            return True if now - quiet_from >= seconds - 1e-6 else None

        await self._until(check, timeout)
        return best

    async def expect_tone(self, freq: float, tol: float, timeout: float) -> tuple[bool, float]:
        """Wait for :data:`TONE_MIN` of ``freq``±``tol`` (from :data:`LOOKBACK` before now);
        ``(matched, dominant frequency heard last)``."""
        since = self._now() - LOOKBACK
        need = max(1, round(TONE_MIN / _FRAME_S))
        heard = 0.0

        def check() -> bool | None:
            nonlocal heard
            run = 0
            for f in self._frames:
                if f.at < since:
                    continue
                if f.freq:
                    heard = f.freq
                run = run + 1 if f.level >= AUDIO_DBFS and abs(f.freq - freq) <= tol else 0
                if run >= need:
                    return True
            return None

        ok = await self._until(check, timeout) is True
        return ok, heard

    async def wait_prompt_end(self, timeout: float) -> bool:
        """Wait until the far end has spoken since the last prompt end and then been quiet :data:`PROMPT_GAP`."""
        mark = self._prompt_mark

        def check() -> bool | None:
            last = self._last_loud
            if last is None or (mark is not None and last <= mark):
                return None
            return True if self._now() - last >= PROMPT_GAP else None

        ok = await self._until(check, timeout) is True
        if ok:
            self._prompt_mark = self._last_loud
        return ok

    def prompt_durations(self) -> list[float]:
        """Seconds of each stretch of far-end audio (gaps under :data:`PROMPT_GAP` joined)."""
        return [round(p.end - p.start + _FRAME_S, 3) for p in self.stats.prompts]
