"""softphone latency's signal processing on synthetic signals: the chirp, normalised cross-correlation,
finding a chirp train in noise, pairing and the report (no call)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from softphone.diag.latency import (
    ChirpSource,
    LatencyReport,
    TimedSink,
    analyse,
    chirp,
    find_bursts,
    ncc,
    pair_delays,
)
from softphone.media.frames import FRAME_SAMPLES, SAMPLE_RATE


def test_the_chirp_sweeps_its_band_at_its_level() -> None:
    c = chirp()
    assert c.size == int(0.1 * SAMPLE_RATE) and c.dtype == np.int16
    assert 0.2 * 32767 < np.abs(c).max() <= 0.25 * 32767 + 1
    spectrum = np.abs(np.fft.rfft(c.astype(float)))
    freqs = np.fft.rfftfreq(c.size, 1 / SAMPLE_RATE)
    in_band = spectrum[(freqs > 500) & (freqs < 3000)].sum()
    assert in_band > 0.9 * spectrum.sum()


def test_ncc_is_one_at_the_template_scale_free_and_zero_on_silence() -> None:
    rng = np.random.default_rng(1)
    t = chirp().astype(float)
    x = np.concatenate([np.zeros(6000), 0.1 * t, np.zeros(3000)])
    c = ncc(x, t)
    assert c.size == x.size - t.size + 1
    assert int(np.argmax(c)) == 6000 and c[6000] == pytest.approx(1.0, abs=1e-6)
    assert np.all(c[:1000] == 0.0)  # windows of digital silence never match
    noisy = x + rng.normal(0, 300, x.size)
    assert int(np.argmax(ncc(noisy, t))) == 6000
    assert ncc(np.zeros(10), t).size == 0


def test_a_chirp_train_is_found_in_noise_with_a_sample_accurate_offset() -> None:
    rng = np.random.default_rng(7)
    t = chirp()
    period = SAMPLE_RATE  # 1 s
    starts = [12_345 + i * period for i in range(5)]
    x = rng.normal(0, 200, 6 * period)  # about -44 dBFS of noise under a -12 dBFS chirp at half level
    for s in starts:
        x[s:s + t.size] += 0.5 * t
    found = find_bursts(x, t, min_gap=period // 2)
    assert [k for k, _ in found] == starts
    assert all(c > 0.9 for _, c in found)
    assert find_bursts(rng.normal(0, 2000, period), t, min_gap=period // 2) == []  # noise alone: nothing


def test_a_distorted_copy_still_matches() -> None:
    """A low-passed (as through PCMU's 4 kHz band) and phase-shifted copy keeps a high correlation."""
    t = chirp().astype(float)
    kernel = np.hanning(9) / np.hanning(9).sum()
    distorted = np.convolve(t, kernel)[: t.size]
    x = np.concatenate([np.zeros(500), distorted, np.zeros(500)])
    (k, c), = find_bursts(x, t, min_gap=1000)
    assert abs(k - 504) <= 4 and c > 0.9


def test_pairing_takes_the_latest_chirp_sent_before_each_arrival() -> None:
    sent = [0.0, 1.0, 2.0, 3.0]
    assert pair_delays(sent, [0.05, 1.06, 3.04], period=1.0) == pytest.approx([0.05, 0.06, 0.04])
    assert pair_delays(sent, [-0.1], period=1.0) == []  # before anything was sent
    assert pair_delays([0.0], [1.5], period=1.0) == []  # longer than the period: not measured


def test_source_and_sink_analysis_recovers_a_known_delay() -> None:
    """Frames read every 20 ms; the sink gets them 3 frames + 7 ms later; analysis says 67 ms + the 20 ms
    capture frame."""
    source, sink = ChirpSource(count=4, period=0.5, lead=0.2), TimedSink()
    delay = 3 * FRAME_SAMPLES / SAMPLE_RATE + 0.007
    clock = 100.0
    pending: list[tuple[float, np.ndarray[Any, Any]]] = []
    while not source.finished:
        frame = source.read_frame()
        assert frame is not None and frame.size == FRAME_SAMPLES
        pending.append((clock + delay, frame))
        clock += FRAME_SAMPLES / SAMPLE_RATE
    # the source stamped with time.monotonic(); restamp on the synthetic clock
    frames_per_period = round(0.5 * SAMPLE_RATE / FRAME_SAMPLES)
    lead = round(0.2 * SAMPLE_RATE / FRAME_SAMPLES)
    source.sent_at = [100.0 + (lead + i * frames_per_period) * FRAME_SAMPLES / SAMPLE_RATE for i in range(4)]
    for at, frame in pending:
        sink.frames.append(frame)
        sink.times.append(at)
    report = analyse(source, sink, LatencyReport("round_trip", "echo"))
    assert report.sent == 4 and report.found == 4
    assert report.delays_ms == pytest.approx([1000 * delay + 20.0] * 4, abs=0.5)
    f = report.figures()
    assert f["median_ms"] == pytest.approx(87.0, abs=0.5) and f["stdev_ms"] == pytest.approx(0.0, abs=0.1)
    assert report.exit_code == 0
    d = report.as_dict()
    assert d["type"] == "latency" and d["mode"] == "round_trip" and d["found"] == 4
    assert set(d) >= {"median_ms", "p25_ms", "p75_ms", "min_ms", "max_ms", "stdev_ms", "delays_ms", "sent"}


def test_a_report_with_nothing_found_fails() -> None:
    r = LatencyReport("one_way", "demo", sent=5)
    assert r.exit_code == 1 and r.figures()["median_ms"] is None
    assert dict(r.rows())["chirps found"] == "0 of 5"
