"""softphone.media.tts without running an engine: voice mapping, SSML stripping, missing binaries."""

from __future__ import annotations

from pathlib import Path

import pytest

from softphone.errors import MediaError
from softphone.media import tts


@pytest.mark.parametrize(
    ("voice", "language", "engine", "name"),
    [
        ("female", "en-US", "flite", "slt"),
        ("male", "en-US", "flite", "rms"),
        ("AWS.Polly.Joanna", "en-US", "flite", "slt"),
        ("Polly.Joanna-Neural", "en-US", "flite", "slt"),
        ("AWS.Polly.Matthew-Neural", "en-US", "flite", "rms"),
        ("Azure.en-US-GuyNeural", "en-US", "flite", "rms"),
        ("Azure.en-US-AvaNeural", "en-US", "flite", "slt"),
        ("Azure.en-US-Ava:DragonHDLatestNeural", "en-US", "flite", "slt"),
        ("Telnyx.KokoroTTS.am_adam", "en-GB", "flite", "rms"),
        ("awb", "en-US", "flite", "awb"),
        ("flite.kal", "en-US", "flite", "kal"),
        ("female", "en-GB-WLS", "flite", "slt"),
    ],
)
def test_english_voices_map_to_flite(voice: str, language: str, engine: str, name: str) -> None:
    v = tts.resolve_voice(voice, language)
    assert (v.engine, v.name) == (engine, name)


def test_other_languages_map_to_espeak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tts, "_espeak_voices", lambda: frozenset({"de", "fr-fr", "es-419", "cmn", "ar"}))
    assert tts.resolve_voice("female", "de-DE").name == "de+f3"
    assert tts.resolve_voice("male", "de-DE").name == "de"
    assert tts.resolve_voice("female", "fr-FR").name == "fr-fr+f3"
    assert tts.resolve_voice("male", "es-MX").name == "es-419"
    assert tts.resolve_voice("male", "cmn-CN").name == "cmn"
    assert tts.resolve_voice("male", "arb").engine == "espeak-ng"
    assert tts.resolve_voice("espeak.en-us", "en-US").engine == "espeak-ng"
    with pytest.raises(ValueError, match="no voice for language"):
        tts.resolve_voice("female", "xx-YY")


def test_bad_voices() -> None:
    with pytest.raises(ValueError):
        tts.resolve_voice("", "en-US")
    with pytest.raises(ValueError, match="unknown flite voice"):
        tts.resolve_voice("flite.nobody", "en-US")


def test_strip_ssml() -> None:
    assert tts.strip_ssml("<speak>Hello <break time='1s'/> world &amp; you</speak>") == "Hello , world & you"
    assert tts.strip_ssml("<speak><p>One</p><p>two</p></speak>") == "One. two."
    assert tts.strip_ssml("plain <emphasis>words</emphasis>") == "plain words"
    with pytest.raises(ValueError, match="not well-formed"):
        tts.strip_ssml("<speak>unclosed")


def test_missing_engine_is_a_clear_media_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no flite, no espeak-ng
    with pytest.raises(MediaError, match=r"needs flite, which is not installed \(apt install flite\)"):
        tts.synthesize("hello")
    with pytest.raises(MediaError, match="needs espeak-ng"):
        tts.synthesize("hallo", voice="espeak.de")


def test_empty_and_long_text_are_refused() -> None:
    with pytest.raises(ValueError, match="nothing to speak"):
        tts.synthesize("   ")
    with pytest.raises(ValueError, match="longer than 3000"):
        tts.synthesize("a" * 3001)
    with pytest.raises(ValueError, match="speed"):
        tts.synthesize("hello", speed=3.0)


def test_ssml_parts_keep_breaks_as_pauses() -> None:
    doc = "<speak>Hello <break time='2s'/> world <break strength='weak'/><break/> and &amp; <p>you</p></speak>"
    assert tts.ssml_parts(doc) == ["Hello", 2.0, "world", 0.65, "and & you."]
    assert tts.ssml_parts("<speak><break time='250ms'/>hi<break time='99s'/></speak>") == [0.25, "hi", 10.0]
    assert tts.ssml_parts("no tags at all") == ["no tags at all"]
    with pytest.raises(ValueError, match="not well-formed"):
        tts.ssml_parts("<speak><break></speak>")
