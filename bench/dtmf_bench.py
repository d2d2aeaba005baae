"""Benchmark: DtmfDetector.feed cost per 20 ms frame (µs), by kind of frame.

Times the detector alone and again while a second thread keeps a core busy with
numpy work (as aiortc's codec threads do during a call), because BLAS thread
wake-ups, not arithmetic, were what made the detector expensive in calls.

    .venv/bin/python bench/dtmf_bench.py [--frames 3000] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time

import numpy as np

from softphone.media.dsp import DtmfDetector, dtmf_samples, split_frames
from softphone.media.frames import FRAME_SAMPLES, SAMPLE_RATE


def frames_by_kind() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    t = np.arange(FRAME_SAMPLES) / SAMPLE_RATE
    # "speech-like": a few harmonics of a 140 Hz voice plus a little noise.
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12)) * 4000 + rng.normal(0, 300, FRAME_SAMPLES)
    return {
        "silence": np.zeros(FRAME_SAMPLES, np.int16),
        "quiet noise (-50 dBFS)": rng.normal(0, 100, FRAME_SAMPLES).astype(np.int16),
        "noise (-21 dBFS)": rng.normal(0, 3000, FRAME_SAMPLES).astype(np.int16),
        "speech-like": voice.astype(np.int16),
        "dtmf digit": split_frames(dtmf_samples("5", tone_ms=200))[2],
    }


def time_feed(frame: np.ndarray, n: int) -> float:
    det = DtmfDetector()
    for _ in range(50):
        det.feed(frame)
    samples = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n // 5):
            det.feed(frame)
        samples.append((time.perf_counter() - t0) / (n // 5) * 1e6)
    return statistics.median(samples)


def run(n: int) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    kinds = frames_by_kind()
    for name, frame in kinds.items():
        out[name] = {"idle_us": time_feed(frame, n)}
    stop = threading.Event()

    def busy() -> None:
        a = np.random.default_rng(2).normal(size=(200, 200))
        while not stop.is_set():
            a = np.tanh(a @ a.T / 200.0)

    th = threading.Thread(target=busy, daemon=True)
    th.start()
    try:
        for name, frame in kinds.items():
            out[name]["busy_us"] = time_feed(frame, n)
    finally:
        stop.set()
        th.join()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    res = run(args.frames)
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{'DtmfDetector.feed per 20 ms frame':34s}{'idle µs':>10s}{'busy core µs':>14s}")
    for name, r in res.items():
        print(f"  {name:32s}{r['idle_us']:10.1f}{r['busy_us']:14.1f}")


if __name__ == "__main__":
    main()
