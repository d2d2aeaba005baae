"""softphone.media.tts with the real engines (flite, espeak-ng): speech-length, non-silent, recognisable."""

from __future__ import annotations

import numpy as np
import pytest

from softphone.media import tts
from softphone.media.frames import SAMPLE_RATE, level_dbfs


def _recognize(samples: np.ndarray, rate: int) -> str:
    """pocketsphinx's default model on one whole clip with a fresh decoder (see voicekit.recognize)."""
    import pocketsphinx  # type: ignore[import-untyped]

    assert rate == 16000
    decoder = pocketsphinx.Decoder(samprate=16000, loglevel="ERROR")
    decoder.start_utt()
    decoder.process_raw(samples.tobytes(), full_utt=True)
    decoder.end_utt()
    return decoder.hyp().hypstr if decoder.hyp() is not None else ""


def _voiced_seconds(samples: np.ndarray, rate: int) -> float:
    """Seconds of 20 ms windows louder than -40 dBFS."""
    win = rate // 50
    n = samples.shape[0] // win
    loud = sum(1 for i in range(n) if level_dbfs(samples[i * win : (i + 1) * win]) > -40.0)
    return loud / 50.0


def test_flite_speaks_english_that_pocketsphinx_recognises() -> None:
    samples, rate = tts.synthesize("Welcome to the test line. Press one for sales.")
    assert samples.dtype == np.int16 and samples.ndim == 1
    assert rate == 16000
    seconds = samples.shape[0] / rate
    assert 1.5 < seconds < 8.0, seconds
    assert _voiced_seconds(samples, rate) > 1.0
    assert level_dbfs(samples) > -30.0
    first_loud = next(i for i in range(0, samples.shape[0], 160) if level_dbfs(samples[i : i + 160]) > -40.0)
    assert first_loud / rate < 0.05  # flite's ~220 ms of leading silence is cut
    words = _recognize(np.concatenate([np.zeros(rate // 4, np.int16), samples]), rate).split()
    assert {"welcome", "press", "one", "sales"} <= set(words), words


def test_male_voice_is_a_different_voice() -> None:
    female, _ = tts.synthesize("Hello there", voice="female")
    male, _ = tts.synthesize("Hello there", voice="male")
    assert female.shape != male.shape or not np.array_equal(female, male)
    assert _voiced_seconds(male, 16000) > 0.3


def test_espeak_speaks_other_languages() -> None:
    samples, rate = tts.synthesize("Guten Tag, willkommen", voice="female", language="de-DE")
    assert rate == 22050
    assert _voiced_seconds(samples, rate) > 0.5


def test_speech_source_plays_48k_frames_and_finishes() -> None:
    src = tts.speech_source("one two three")
    frames = []
    while not src.finished:
        f = src.read_frame()
        assert f is not None and f.shape == (960,)
        frames.append(f)
    assert src.read_frame() is None
    audio = np.concatenate(frames)
    assert 0.8 < audio.shape[0] / SAMPLE_RATE < 4.0
    assert level_dbfs(audio) > -30.0


def test_ssml_breaks_are_silence() -> None:
    plain, rate = tts.synthesize("One two")
    paused, rate2 = tts.synthesize_ssml("<speak>One <break time='1500ms'/> two</speak>")
    assert rate == rate2
    assert 1.3 < (paused.shape[0] - plain.shape[0]) / rate < 2.0
    assert _voiced_seconds(paused, rate) > 0.3


def test_speed_changes_the_length() -> None:
    normal, _ = tts.synthesize("Hello there my friend")
    slow, _ = tts.synthesize("Hello there my friend", speed=0.7)
    fast, _ = tts.synthesize("Hello there my friend", speed=1.5)
    assert fast.shape[0] < 0.8 * normal.shape[0] < slow.shape[0] * 0.8
    de_fast, _ = tts.synthesize("Guten Tag", language="de-DE", speed=1.8)
    de, _ = tts.synthesize("Guten Tag", language="de-DE")
    assert de_fast.shape[0] < 0.8 * de.shape[0]


def test_a_repeated_prompt_comes_from_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    first, rate = tts.synthesize("This prompt is cached after its first synthesis")
    runs: list[object] = []
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: runs.append(a) or real_run(*a, **k))
    again, rate2 = tts.synthesize("This  prompt is cached after its first synthesis")  # same words
    assert runs == [] and rate2 == rate and np.array_equal(first, again)
    assert not again.flags.writeable  # shared: callers copy before changing it
    tts.synthesize("This prompt is cached after its first synthesis", voice="male")
    assert len(runs) == 1  # another voice is another prompt
