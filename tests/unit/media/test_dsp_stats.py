"""DSP helpers and call-quality maths."""

from __future__ import annotations

import numpy as np
import pytest

from softphone.media.dsp import (
    DTMF_DIGITS,
    DtmfDetector,
    detect_dtmf,
    dominant_frequency,
    dtmf_samples,
    level_dbfs,
    split_frames,
)
from softphone.media.frames import FRAME_SAMPLES, SAMPLE_RATE
from softphone.media.sources import ToneSource
from softphone.media.stats import MediaStats, StatsCollector, mos, quality_label, r_factor
from softphone.media.tones import busy_tone, hold_tone, ringback_tone, ringtone


def tone(freq: float, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (np.sin(2 * np.pi * freq * t) * amp * 32767).astype(np.int16)


@pytest.mark.parametrize("freq", [300.0, 440.0, 1000.0, 3400.0, 7000.0])
def test_dominant_frequency(freq: float) -> None:
    assert abs(dominant_frequency(tone(freq)) - freq) < 1.0


def test_dominant_frequency_of_silence_is_zero() -> None:
    assert dominant_frequency(np.zeros(4800, np.int16)) == 0.0


def test_level_dbfs() -> None:
    assert level_dbfs(np.zeros(960, np.int16)) == -120.0
    assert abs(level_dbfs(tone(1000, amp=1.0)) - (-3.01)) < 0.1
    assert abs(level_dbfs(tone(1000, amp=0.1)) - (-23.01)) < 0.1


def test_every_dtmf_digit_detected_once() -> None:
    assert detect_dtmf(dtmf_samples(DTMF_DIGITS)) == DTMF_DIGITS
    # 40 ms tones with 40 ms gaps are still caught, each once.
    assert detect_dtmf(dtmf_samples(DTMF_DIGITS, tone_ms=40, gap_ms=40)) == DTMF_DIGITS


def test_long_press_is_one_digit_and_repeats_need_a_gap() -> None:
    assert detect_dtmf(dtmf_samples("5", tone_ms=1000, gap_ms=100)) == "5"
    assert detect_dtmf(dtmf_samples("55", tone_ms=80, gap_ms=80)) == "55"


def test_dtmf_with_noise_and_level_limits() -> None:
    rng = np.random.default_rng(1)
    clean = dtmf_samples("159#", amplitude=0.5).astype(np.int32)
    noisy = np.clip(clean + rng.normal(0, 300, clean.shape), -32768, 32767).astype(np.int16)
    assert detect_dtmf(noisy) == "159#"
    # Too quiet, pure noise, a single tone, or speech-like tone mixtures: nothing.
    assert detect_dtmf(dtmf_samples("1", amplitude=0.01)) == ""
    assert detect_dtmf(rng.normal(0, 3000, 48000).astype(np.int16)) == ""
    assert detect_dtmf(tone(697)) == ""
    chord = tone(697) // 3 + tone(1209) // 3 + tone(500) // 3 + tone(2500) // 3
    assert detect_dtmf(chord.astype(np.int16)) == ""


def test_detector_streaming_callback() -> None:
    got: list[str] = []
    det = DtmfDetector(on_digit=got.append)
    for frame in split_frames(dtmf_samples("42")):
        det.write_frame(frame)
    assert got == ["4", "2"] and det.digits == ["4", "2"]
    det.reset()
    assert det.digits == []


def test_tone_source_is_phase_continuous() -> None:
    src = ToneSource(1234.5)
    data = np.concatenate([src.read_frame() for _ in range(10)])  # type: ignore[misc]
    expected = (np.sin(2 * np.pi * 1234.5 * np.arange(data.shape[0]) / SAMPLE_RATE) * 0.3 * 32767)
    assert np.max(np.abs(data - expected.astype(np.int16))) <= 1


def test_multi_tone_and_cadence() -> None:
    src = ToneSource((440, 480), on_ms=100, off_ms=100)
    frames = [src.read_frame() for _ in range(12)]
    assert all(f is not None for f in frames)
    levels = [level_dbfs(f) for f in frames]  # type: ignore[arg-type]
    assert levels[0] > -20 and levels[5] == -120.0 and levels[9] == -120.0 and levels[10] > -20
    spectrum = np.abs(np.fft.rfft(np.concatenate(frames[:5])))  # type: ignore[arg-type]
    peaks = sorted(np.argsort(spectrum)[-2:] * SAMPLE_RATE / (5 * FRAME_SAMPLES))
    assert peaks == [440.0, 480.0]
    finite = ToneSource(440, duration_ms=40)
    assert finite.read_frame() is not None and finite.read_frame() is not None
    assert finite.read_frame() is None and finite.finished


def test_call_progress_tones() -> None:
    # the one ringtone is the one calls play (480+620 Hz, 1 s / 3 s); dsp's unused C5+E5 chord is gone
    for src, freqs in ((ringback_tone(), (440, 480)), (busy_tone(), (480, 620)),
                       (ringtone(), (480, 620)), (hold_tone(), (480.0,))):
        assert src.freqs == tuple(float(f) for f in freqs)
        assert src.read_frame() is not None


def test_mos_sanity() -> None:
    perfect = mos(0, 0, 0)
    assert 4.3 <= perfect <= 4.5
    assert mos(20, 2, 0) > 4.3  # a good LAN call
    assert mos(300, 30, 0) < mos(100, 10, 0) < perfect  # latency hurts
    assert mos(50, 5, 5) < 3.6  # 5 % loss is poor
    assert mos(50, 5, 1) > mos(50, 5, 5)
    assert mos(2000, 500, 50) == 1.0
    assert 0 <= r_factor(10_000, 0, 100) <= 100
    assert quality_label(4.4) == "excellent" and quality_label(1.5) == "bad"
    assert quality_label(None) == "unknown"


class _Stat:
    def __init__(self, **kw: object) -> None:
        self.__dict__.update(kw)


def test_stats_collector_from_report() -> None:
    coll = StatsCollector()
    report = {
        "in": _Stat(type="inbound-rtp", kind="audio", packetsReceived=950, packetsLost=50, jitter=96),
        "out": _Stat(type="outbound-rtp", kind="audio", packetsSent=1000, bytesSent=100_000),
        "rin": _Stat(type="remote-inbound-rtp", kind="audio", roundTripTime=0.04),
        "t": _Stat(type="transport", bytesReceived=120_000, bytesSent=130_000),
    }
    first = coll.collect(report, codec="opus/48000", input_level_db=-20, output_level_db=-30, now=10.0)
    assert isinstance(first, MediaStats)
    assert first.packet_loss_pct == 5.0 and first.rtt_ms == pytest.approx(40.0)
    assert first.jitter_ms == pytest.approx(2.0)  # 96 ticks at 48 kHz
    assert first.bitrate_in_kbps is None and first.mos is not None
    report["t"] = _Stat(type="transport", bytesReceived=125_000, bytesSent=135_000)
    second = coll.collect(report, codec="PCMU/8000", input_level_db=-20, output_level_db=-30, now=11.0)
    assert second.bitrate_in_kbps == pytest.approx(40.0)
    assert second.jitter_ms == pytest.approx(12.0)  # 96 ticks at 8 kHz
