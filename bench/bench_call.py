"""Benchmark: dial -> active, dial -> first audio received, and CPU per call-second.

Runs the local switch in a subprocess-free way (same process, port 0) and measures
a softphone client calling the echo service (median of N runs), then a 10 s two-way
client-to-client call (tone both ways) for CPU. The CPU figure covers the whole
process: both clients AND the switch's two media legs (4 aiortc peers), so it is an
upper bound; the per-client share is printed as one quarter of the peer work.

    .venv/bin/python bench/bench_call.py [--runs 10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import time

from softphone.client.client import AudioConfig, Client
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts


async def dial_times(url: str, runs: int) -> tuple[list[float], list[float], list[float]]:
    client = Client(url, Credentials(login="demo", password="demo-secret"), audio=AudioConfig(backend="tone"))
    t0 = time.perf_counter()
    await client.connect()
    ready = [time.perf_counter() - t0]
    active, audio = [], []
    for _ in range(runs):
        start = time.monotonic()
        call = await client.new_call("echo")
        await call.wait_state(CallState.ACTIVE)
        active.append(time.monotonic() - start)
        while call.peer is None or call.peer.first_audio_at is None:
            await asyncio.sleep(0.002)
        audio.append(call.peer.first_audio_at - start)
        await call.hangup()
        await call.wait_ended(5)
        await asyncio.sleep(0.1)
    await client.close()
    return ready, active, audio


async def cpu_two_way(url: str, seconds: float) -> float:
    a = Client(url, Credentials(login="demo", password="demo-secret"), audio=AudioConfig(backend="tone", tone_hz=440))
    b = Client(url, Credentials(login="alice", password="alice-secret"),
               audio=AudioConfig(backend="tone", tone_hz=880))
    await a.connect()
    await b.connect()
    call = await a.new_call("alice")
    while not b.calls:
        await asyncio.sleep(0.01)
    inbound = next(iter(b.calls.values()))
    await inbound.answer()
    await call.wait_state(CallState.ACTIVE)
    await asyncio.sleep(1.0)
    c0, w0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    cpu = (time.process_time() - c0) / (time.monotonic() - w0)
    await call.hangup()
    await a.close()
    await b.close()
    return cpu


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    async with Switch(accounts=default_accounts(), port=0) as sw:
        ready, active, audio = await dial_times(sw.url, args.runs)
        cpu = await cpu_two_way(sw.url, args.seconds)
    ms = lambda xs: statistics.median(xs) * 1000  # noqa: E731
    print(f"connect -> ready:              {ready[0] * 1000:7.1f} ms   (target <= 800 ms from process start)")
    print(f"dial -> active (median of {len(active)}):  {ms(active):7.1f} ms   (target <= 80 ms; JS SDK 171 ms)"
          f"  min {min(active) * 1000:.1f}")
    print(f"dial -> first audio (median):  {ms(audio):7.1f} ms   (target <= 130 ms; JS SDK 230 ms)"
          f"  min {min(audio) * 1000:.1f}")
    print(f"CPU, 2-way call, whole process (2 clients + switch, 4 peers): {cpu * 100:5.1f} % of a core")
    print(f"CPU per softphone peer (one quarter):                         {cpu * 25:5.1f} % of a core"
          "   (target <= 8 %; Chromium 16.4 %)")


if __name__ == "__main__":
    asyncio.run(main())
