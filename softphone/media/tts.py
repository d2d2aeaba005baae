"""Offline text to speech: Debian's ``flite`` for English, ``espeak-ng`` for other languages.

This is what the switch's ``speak`` / ``gather_using_speak`` actions and TeXML ``<Say>``
play. Telnyx voice names are mapped onto the local engines (the audio will not sound
like Polly or Azure, but a male voice stays male and a language stays that language):

- ``female`` (Telnyx's ``basic`` service level) and every female provider voice
  (``AWS.Polly.Joanna``, ``Polly.Amy-Neural``, ``Azure.en-US-AvaNeural``, ...)
  -> flite ``slt``, the voice pocketsphinx recognises best;
- ``male`` and male provider voices (``Polly.Matthew``, ``Azure.en-US-GuyNeural``,
  ...) -> flite ``rms``;
- a bare local voice name (``slt``, ``rms``, ``awb``, ``kal``) or
  ``flite.<voice>`` picks that flite voice; ``espeak.<voice>`` forces espeak-ng.

A ``language`` that is not English (``de-DE``, ``fr-FR``, ``cmn-CN``, ``arb``, ...)
speaks with espeak-ng in that language (``+f3`` variant for female voices).

The functions are blocking (they run a subprocess): call them through
:func:`asyncio.to_thread` on an event loop. A missing engine or an engine failure
raises :class:`~softphone.errors.MediaError` naming the binary and the package.
"""

from __future__ import annotations

import functools
import html
import re
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from softphone.errors import MediaError

if TYPE_CHECKING:
    from softphone.media.sources import ArraySource

__all__ = [
    "FLITE_VOICES",
    "MAX_CHARS",
    "Voice",
    "resolve_voice",
    "speech_source",
    "ssml_parts",
    "strip_ssml",
    "synthesize",
    "synthesize_ssml",
]

MAX_CHARS = 3000
"""Telnyx's limit on a ``speak`` payload."""

FLITE_VOICES = ("slt", "rms", "awb", "kal", "kal16", "awb_time")
"""Voices compiled into Debian's flite (``flite -lv``)."""

_TIMEOUT_S = 60.0

# Provider voice ids we know to be male (everything else counts as female, Telnyx's default).
_MALE_IDS = frozenset(
    name.lower()
    for name in (
        # AWS Polly
        "Matthew", "Joey", "Justin", "Kevin", "Brian", "Russell", "Geraint", "Arthur", "Gregory",
        "Stephen", "Aditi-male", "Hans", "Daniel", "Enrique", "Miguel", "Pedro", "Andres", "Mathieu",
        "Remi", "Liam", "Giorgio", "Adriano", "Takumi", "Cristiano", "Ricardo", "Thiago", "Maxim",
        "Jacek", "Jan", "Ruben", "Mads", "Karl", "Filiz-male", "Zhiyu-male", "Hiujin-male",
        # Azure (the part after the locale)
        "GuyNeural", "DavisNeural", "TonyNeural", "JasonNeural", "BrianNeural", "AndrewNeural",
        "ChristopherNeural", "EricNeural", "RogerNeural", "SteffanNeural", "RyanNeural",
        "WilliamNeural", "LiamNeural", "ConradNeural", "HenriNeural", "AlvaroNeural",
        "BrianMultilingualNeural", "AndrewMultilingualNeural",
        # Telnyx / xAI / Humain
        "am_adam", "am_michael", "bm_george", "bm_lewis", "rex", "sal", "leo", "Ahmed",
        "abdulaziz-en", "abdulaziz-ar", "abdullah-ar",
    )
)

_ESPEAK_ALIASES = {"arb": "ar", "es-mx": "es-419", "es-us": "es-419", "cmn-cn": "cmn", "fr-ca": "fr-fr"}


@dataclass(frozen=True)
class Voice:
    """A resolved voice: which engine, which engine voice, and the language."""

    engine: str
    """``"flite"`` or ``"espeak-ng"``."""
    name: str
    """The engine's voice name (``slt``; ``de+f3``)."""
    language: str
    female: bool


def _is_english(language: str) -> bool:
    return language.lower() == "en" or language.lower().startswith("en-")


def resolve_voice(voice: str = "female", language: str = "en-US") -> Voice:
    """Map a Telnyx ``voice`` / ``language`` pair onto a local engine voice.

    Raises :class:`ValueError` for an empty voice or an unknown local voice name
    given explicitly (``flite.xyz``).
    """
    v = voice.strip()
    if not v:
        raise ValueError("voice must not be empty")
    low = v.lower()
    language = language.strip() or "en-US"
    if low.startswith("espeak.") or low.startswith("espeak-ng."):
        name = v.split(".", 1)[1]
        if not name:
            raise ValueError(f"no espeak-ng voice in {voice!r}")
        return Voice("espeak-ng", name, language, female="+f" in name)
    if low.startswith("flite."):
        name = low.split(".", 1)[1]
        if name not in FLITE_VOICES:
            raise ValueError(f"unknown flite voice {name!r} (have: {', '.join(FLITE_VOICES)})")
        return Voice("flite", name, language, female=name == "slt")
    if low in FLITE_VOICES:
        return Voice("flite", low, language, female=low == "slt")
    if low in ("female", "male"):
        female = low == "female"
    else:
        # <Provider>.<Model>.<VoiceId> or <Provider>.<VoiceId>; Azure ids carry a locale.
        ident = low.rsplit(".", 1)[-1]
        ident = ident.split(":", 1)[0]  # Azure "Ava:DragonHDLatestNeural"
        ident = ident.removesuffix("-neural")  # Polly "Joanna-Neural"
        parts = ident.split("-")
        if len(parts) >= 3 and len(parts[0]) in (2, 3):  # Azure "en-US-GuyNeural"
            ident = "-".join(parts[2:])
        female = ident not in _MALE_IDS
    if _is_english(language):
        return Voice("flite", "slt" if female else "rms", language, female)
    return Voice("espeak-ng", _espeak_language(language) + ("+f3" if female else ""), language, female)


def _espeak_language(language: str) -> str:
    low = language.lower()
    low = _ESPEAK_ALIASES.get(low, low)
    have = _espeak_voices()
    if low in have:
        return low
    primary = low.split("-", 1)[0]
    if primary in have or not have:
        return primary
    raise ValueError(f"espeak-ng has no voice for language {language!r}")


@functools.lru_cache(maxsize=1)
def _espeak_voices() -> frozenset[str]:
    exe = shutil.which("espeak-ng")
    if exe is None:
        return frozenset()
    try:
        out = subprocess.run([exe, "--voices"], capture_output=True, text=True, timeout=_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    names = set()
    for line in out.stdout.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 2:
            names.add(cols[1].lower())
    return frozenset(names)


_TAG = re.compile(r"<[^>]*>")


def _parse_ssml(payload: str) -> str:
    import xml.etree.ElementTree as ET

    text = payload.strip()
    try:
        ET.fromstring(text if text.startswith("<speak") else f"<speak>{text}</speak>")
    except ET.ParseError as exc:
        raise ValueError(f"SSML is not well-formed XML: {exc}") from exc
    return text


def _plain(fragment: str) -> str:
    fragment = re.sub(r"</(p|s)>", ". ", fragment)
    fragment = _TAG.sub(" ", fragment)
    return " ".join(html.unescape(fragment).split())


def strip_ssml(payload: str) -> str:
    """Return the spoken text of an SSML document: tags dropped, entities decoded.

    ``<break/>`` and paragraph/sentence ends become a comma or full stop so the
    engine pauses there. Raises :class:`ValueError` when the payload is not
    well-formed XML (the caller answers 422).
    """
    text = _BREAK.sub(", ", _parse_ssml(payload))
    return _plain(text)


_BREAK = re.compile(r"<break\b([^>]*?)/?>")
_BREAK_STRENGTH = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.4, "strong": 0.75, "x-strong": 1.2}
MAX_BREAK_S = 10.0
"""SSML's longest ``<break>``."""


def _break_seconds(attrs: str) -> float:
    m = re.search(r"""time\s*=\s*["']\s*([0-9.]+)\s*(ms|s)\s*["']""", attrs)
    if m:
        try:
            value = float(m.group(1))
        except ValueError:
            value = 0.4
        seconds = value / 1000.0 if m.group(2) == "ms" else value
        return min(max(0.0, seconds), MAX_BREAK_S)
    m = re.search(r"""strength\s*=\s*["']([a-z-]+)["']""", attrs)
    return _BREAK_STRENGTH.get(m.group(1), 0.4) if m else 0.4


def ssml_parts(payload: str) -> list[str | float]:
    """An SSML document as the text to speak and the pauses between (seconds, from
    ``<break time="500ms"/>`` or ``strength="strong"``); other tags are dropped. Raises
    :class:`ValueError` when it is not well-formed XML."""
    text = _parse_ssml(payload)
    parts: list[str | float] = []
    pos = 0
    for m in _BREAK.finditer(text):
        parts.append(_plain(text[pos : m.start()]))
        parts.append(_break_seconds(m.group(1)))
        pos = m.end()
    parts.append(_plain(text[pos:]))
    out: list[str | float] = []
    for part in parts:
        if part == "" or part == 0.0:
            continue
        if isinstance(part, float) and out and isinstance(out[-1], float):
            out[-1] = min(MAX_BREAK_S, out[-1] + part)
        else:
            out.append(part)
    return out


def synthesize_ssml(
    payload: str, *, voice: str = "female", language: str = "en-US", speed: float = 1.0
) -> tuple[np.ndarray, int]:
    """Speak an SSML document like :func:`synthesize`, with its ``<break>`` pauses as real silence."""
    parts = ssml_parts(payload)
    if not any(isinstance(p, str) for p in parts):
        raise ValueError("the SSML holds no text to speak")
    pieces: list[np.ndarray] = []
    pauses: list[tuple[int, float]] = []
    rate = 0
    for part in parts:
        if isinstance(part, str):
            samples, rate = synthesize(part, voice=voice, language=language, speed=speed)
            pieces.append(samples)
        else:
            pauses.append((len(pieces), part))
            pieces.append(np.zeros(0, np.int16))
    for index, seconds in pauses:
        pieces[index] = np.zeros(int(seconds * rate), np.int16)
    return np.concatenate(pieces), rate


def _binary(name: str) -> str:
    exe = shutil.which(name)
    if exe is None:
        raise MediaError(f"text to speech needs {name}, which is not installed (apt install {name})")
    return exe


def synthesize(
    text: str, *, voice: str = "female", language: str = "en-US", speed: float = 1.0
) -> tuple[np.ndarray, int]:
    """Speak ``text``; return ``(samples, sample_rate)``: int16 mono at the engine's rate.

    flite gives 16 kHz for its voices, espeak-ng 22.05 kHz; the engine's leading silence is cut
    (10 ms kept), so the speech starts at once. ``speed`` (0.5-2.0, Telnyx's ``voice_speed``)
    speaks faster or slower. Blocking.
    Raises :class:`ValueError` for empty or over-long text or an unknown voice, and
    :class:`~softphone.errors.MediaError` when the engine is missing or fails.
    """
    words = " ".join(text.split())
    if not words:
        raise ValueError("nothing to speak")
    if len(words) > MAX_CHARS:
        raise ValueError(f"text is longer than {MAX_CHARS} characters")
    if not 0.5 <= speed <= 2.0:
        raise ValueError("speed must be between 0.5 and 2.0")
    v = resolve_voice(voice, language)
    exe = _binary(v.engine)
    raw, rate = _speak_cached(exe, v.engine, v.name, words, round(speed, 3))
    # A read-only view of the cached audio: a caller that wants to change it copies it.
    return np.frombuffer(raw, dtype=np.int16), rate


CACHE_ENTRIES = 64
"""Synthesised prompts kept (IVR menus repeat: a cached one starts ~45 ms sooner)."""


@functools.lru_cache(maxsize=CACHE_ENTRIES)
def _speak_cached(exe: str, engine: str, name: str, words: str, speed: float) -> tuple[bytes, int]:
    """Run the engine once per (binary, voice, text, speed); failures are not cached (they raise)."""
    samples, rate = _run_engine(exe, engine, name, words, speed)
    return samples.astype("<i2").tobytes(), rate


def _run_engine(exe: str, engine: str, name: str, words: str, speed: float) -> tuple[np.ndarray, int]:
    v = Voice(engine, name, "", False)
    with tempfile.TemporaryDirectory(prefix="softphone-tts-") as tmp:
        src = Path(tmp) / "text.txt"
        out = Path(tmp) / "speech.wav"
        src.write_text(words + "\n", encoding="utf-8")
        if v.engine == "flite":
            stretch = f"duration_stretch={1.0 / speed:.3f}"
            cmd = [exe, "-voice", v.name, "--setf", stretch, "-f", str(src), "-o", str(out)]
        else:
            cmd = [exe, "-v", v.name, "-s", str(round(175 * speed)), "-f", str(src), "-w", str(out)]
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise MediaError(f"{v.engine} failed: {exc}") from exc
        if proc.returncode != 0 or not out.is_file():
            msg = proc.stderr.decode(errors="replace").strip().splitlines()
            raise MediaError(f"{v.engine} failed ({proc.returncode}): {msg[-1] if msg else 'no output'}")
        try:
            with wave.open(str(out), "rb") as wf:
                rate = wf.getframerate()
                channels = wf.getnchannels()
                width = wf.getsampwidth()
                raw = wf.readframes(wf.getnframes())
        except (wave.Error, EOFError) as exc:
            raise MediaError(f"{v.engine} wrote an unreadable WAV: {exc}") from exc
    if width != 2:
        raise MediaError(f"{v.engine} wrote {8 * width}-bit audio; expected 16-bit")
    samples = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
    return _trim_lead(samples, rate), rate


def _trim_lead(samples: np.ndarray, rate: int, *, keep_ms: int = 10, dbfs: float = -45.0) -> np.ndarray:
    """Drop the engine's leading silence (flite starts with ~220 ms of it), keeping ``keep_ms``,
    so speech starts as soon as the command plays it."""
    win = max(1, rate // 100)
    threshold = 32768.0 * 10 ** (dbfs / 20)
    n = samples.shape[0] // win
    if n == 0:
        return samples
    peaks = np.abs(samples[: n * win].astype(np.int32)).reshape(n, win).max(axis=1)
    loud = np.flatnonzero(peaks > threshold)
    if loud.size == 0:
        return samples
    start = max(0, int(loud[0]) * win - keep_ms * rate // 1000)
    return samples[start:]


def speech_source(
    text: str, *, voice: str = "female", language: str = "en-US", loop: bool = False, speed: float = 1.0
) -> ArraySource:
    """Speak ``text`` into a 48 kHz :class:`~softphone.media.sources.ArraySource` a leg can play.

    It finishes (``finished`` turns true) at the end of the speech unless ``loop``.
    Blocking, like :func:`synthesize`.
    """
    from softphone.media.frames import pcm_to_frames
    from softphone.media.sources import ArraySource

    samples, rate = synthesize(text, voice=voice, language=language, speed=speed)
    return ArraySource(pcm_to_frames(samples, rate, 1), loop=loop)
