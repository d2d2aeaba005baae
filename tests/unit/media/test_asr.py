"""softphone.media.asr without a subprocess: input coercion, resampling, the streaming framing,
and that non-speech yields no words. Recognition of real (flite-spoken) speech is in
tests/media/test_asr_speech.py, because tests/unit may not start subprocesses."""

from __future__ import annotations

import numpy as np
import pytest

from softphone.media import asr


def tone(freq: float, seconds: float, *, rate: int = 48000, level: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * level * 32767).astype(np.int16)


def test_fillers_and_alternate_pronunciations_are_dropped() -> None:
    assert asr._words("<s> press(2) ONE <sil> [NOISE] for +breath+ sales </s>") == "press one for sales"


def test_silence_is_no_words() -> None:
    assert asr.recognize(np.zeros(16000, dtype=np.int16), 16000) == ""
    assert asr.recognize(np.zeros(0, dtype=np.int16), 48000) == ""


def test_float_and_int32_input_are_accepted() -> None:
    x = np.linspace(-2.0, 2.0, 5)
    assert asr._as_int16(x).tolist() == [-32768, -32767, 0, 32767, 32767]
    assert asr._as_int16(np.array([[1, -70000]], dtype=np.int32)).tolist() == [1, -32768]


@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_stream_is_resampled_to_16k(rate: int) -> None:
    to16 = asr._To16k(rate)
    total = sum(to16.process(np.zeros(rate // 50, dtype=np.int16)).shape[0] for _ in range(100))
    assert abs(total - 2 * asr.MODEL_RATE) < 200, total  # 2 s in, 2 s out (minus the filter delay)


def test_bad_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        asr.Recognizer(0)


def test_a_steady_tone_between_silences_is_one_utterance_whatever_the_block_size() -> None:
    # The endpointer takes fixed 30 ms frames; blocks of other sizes must be reassembled, so
    # 7-sample and 1-second blocks find the same utterance boundaries.
    audio = np.concatenate([np.zeros(48000, np.int16), tone(440.0, 1.0, level=0.3), np.zeros(48000, np.int16)]).astype(
        np.int16
    )
    ends = []
    for block in (7, 960, 48000):
        rec = asr.Recognizer(48000)
        n = 0
        for i in range(0, audio.shape[0], block):
            n += len(rec.feed_utterances(audio[i : i + block]))
        assert rec.samples_in == audio.shape[0]
        assert not rec.in_speech
        assert rec.finish_utterance() is None
        ends.append(n)
    assert ends == [1, 1, 1]


def test_finish_closes_an_open_utterance() -> None:
    rec = asr.Recognizer(16000)
    rec.feed_utterances(np.concatenate([np.zeros(8000, np.int16), tone(300.0, 1.0, rate=16000, level=0.3)]))
    assert rec.in_speech
    utt = rec.finish_utterance()
    assert utt is not None and 0.0 <= utt.confidence <= 1.0
    assert rec.finish_utterance() is None
