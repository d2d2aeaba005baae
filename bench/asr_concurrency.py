"""Does speech recognition keep up with N concurrent calls on this machine? (issue 13, speed and scale)

N recognisers (asr.RecognizerProcess, one child process each, as `expect speech` and the switch's
transcription run them) are fed flite-spoken prompts in 20 ms blocks at real-time pace, all at
once, as N calls would deliver them. Printed per N: the lag from each phrase's end to its final
utterance (p50/p95/max), the words-right rate, and CPU seconds per call-second. Measured, not
asserted. Usage: python bench/asr_concurrency.py [N ...]   (default: 1 4 8 12)
"""

from __future__ import annotations

import asyncio
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

from softphone.media import asr

PROMPTS = [
    "welcome to the test line press one for sales press two for support",
    "please leave a message after the tone",
    "thank you for calling goodbye",
]


def flite(text: str, path: Path) -> np.ndarray:
    subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", str(path)], check=True)
    with wave.open(str(path)) as w:
        audio = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        rate = w.getframerate()
    return np.repeat(audio, 48000 // rate)  # 16 kHz -> 48 kHz by sample repetition (what a call's rate is)


def words_right(said: str, heard: str) -> float:
    want, got = said.split(), heard.split()
    hits = sum(1 for w in want if w in got)
    return hits / len(want)


async def one_call(clips: list[np.ndarray], lags: list[float], scores: list[float]) -> None:
    got: asyncio.Queue[tuple[float, str]] = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def on_utt(u: asr.Utterance) -> None:
        if u.final and u.text:
            loop.call_soon_threadsafe(got.put_nowait, (time.monotonic(), u.text))

    rec = asr.RecognizerProcess(48000, on_utt)
    await rec.start()
    gap = np.zeros(48000, np.int16)
    start = time.monotonic()
    sent = 0
    try:
        for text, clip in zip(PROMPTS, clips, strict=True):
            for chunk in (clip, gap):
                for i in range(0, chunk.shape[0], 960):
                    rec.feed(chunk[i : i + 960])
                    sent += 960
                    delay = start + sent / 48000 - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                if chunk is clip:
                    phrase_end = time.monotonic()
            t, heard = await asyncio.wait_for(got.get(), 20)
            lags.append(t - phrase_end)
            scores.append(words_right(text, heard))
    finally:
        await rec.close()


async def run(n: int, clips: list[np.ndarray]) -> None:
    lags: list[float] = []
    scores: list[float] = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.monotonic()
    await asyncio.gather(*(one_call(clips, lags, scores) for _ in range(n)))
    wall = time.monotonic() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    call_s = sum(c.shape[0] / 48000 + 1 for c in clips)
    lags.sort()
    print(f"{n:>3} calls  lag after phrase p50 {statistics.median(lags):.2f} s  "
          f"p95 {lags[int(0.95 * (len(lags) - 1))]:.2f} s  max {lags[-1]:.2f} s  "
          f"words right {100 * statistics.mean(scores):.0f} %  "
          f"CPU {cpu / (n * call_s):.3f} s per call-second  wall {wall:.1f} s", flush=True)


def main() -> None:
    ns = [int(a) for a in sys.argv[1:]] or [1, 4, 8, 12]
    with tempfile.TemporaryDirectory() as tmp:
        clips = [flite(t, Path(tmp) / f"{i}.wav") for i, t in enumerate(PROMPTS)]
    print(f"cores: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    for n in ns:
        asyncio.run(run(n, clips))


if __name__ == "__main__":
    main()
