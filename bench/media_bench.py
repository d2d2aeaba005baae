"""Media engine benchmark: two MediaPeers in one process on 127.0.0.1.

Prints, for Opus and PCMU:
  * offer -> connected (ICE + DTLS) and offer -> first audio frame, medians;
  * one-way mouth-to-ear delay (tone burst out of a source -> into the far sink),
    with aiortc's default jitter buffer (prefetch 4) and with prefetch 1;
  * CPU of a two-way Opus call (both peers in this process), % of one core.

usage: .venv/bin/python bench/media_bench.py [--runs 10] [--cpu-seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from softphone.media.frames import Frame, level_dbfs
from softphone.media.peer import MediaPeer, PeerOptions
from softphone.media.sinks import BufferSink, NullSink
from softphone.media.sources import ToneSource


async def connect(codec: str, **opts: object) -> tuple[MediaPeer, MediaPeer, float]:
    a = MediaPeer(PeerOptions.loopback(codecs=[codec], **opts), source=ToneSource(440), sink=NullSink())
    b = MediaPeer(PeerOptions.loopback(codecs=[codec], **opts), source=ToneSource(1000), sink=NullSink())
    t0 = time.monotonic()
    offer = await a.create_offer()
    answer = await b.accept_offer(offer)
    await a.set_answer(answer)
    await asyncio.gather(a.wait_connected(5), b.wait_connected(5))
    return a, b, t0


async def setup_times(codec: str, runs: int) -> tuple[float, float]:
    connected, first_audio = [], []
    for _ in range(runs):
        a, b, t0 = await connect(codec)
        assert a.connected_at is not None
        connected.append(a.connected_at - t0)
        while a.first_audio_at is None:
            await asyncio.sleep(0.005)
        first_audio.append(a.first_audio_at - t0)
        await a.close()
        await b.close()
    return statistics.median(connected) * 1000, statistics.median(first_audio) * 1000


class BurstSource:
    """Silence, then a tone burst every 500 ms; records when each burst leaves."""

    def __init__(self) -> None:
        self.tone = ToneSource(1000, 0.5)
        self.n = 0
        self.sent: list[float] = []

    def read_frame(self) -> Frame | None:
        self.n += 1
        phase = self.n % 25
        if phase == 0:
            self.sent.append(time.monotonic())
        return self.tone.read_frame() if phase < 5 else None

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class OnsetSink:
    def __init__(self) -> None:
        self.onsets: list[float] = []
        self._on = False

    def write_frame(self, frame: Frame) -> None:
        loud = level_dbfs(frame) > -35
        if loud and not self._on:
            self.onsets.append(time.monotonic())
        self._on = loud

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def mouth_to_ear(codec: str, prefetch: int | None, seconds: float = 5.0) -> float:
    a, b, _ = await connect(codec, jitter_prefetch=prefetch)
    src, sink = BurstSource(), OnsetSink()
    await asyncio.sleep(0.5)
    b.set_sink(sink)
    a.set_source(src)
    await asyncio.sleep(seconds)
    await a.close()
    await b.close()
    delays = []
    for sent in src.sent:
        later = [t for t in sink.onsets if t >= sent]
        if later and later[0] - sent < 0.4:
            delays.append(later[0] - sent)
    # The onset is detected at the end of the first loud frame's arrival; the
    # frame left the source at ``sent``, so this is source-to-sink delay.
    return statistics.median(delays) * 1000 if delays else float("nan")


async def cpu(seconds: float, prefetch: int | None = None) -> float:
    a, b, _ = await connect("opus", jitter_prefetch=prefetch)
    a.set_sink(BufferSink(1))
    b.set_sink(BufferSink(1))
    await asyncio.sleep(1.0)
    c0, w0 = time.process_time(), time.monotonic()
    await asyncio.sleep(seconds)
    c1, w1 = time.process_time(), time.monotonic()
    stats = await a.stats()
    await a.close()
    await b.close()
    print(f"  (sanity: {stats.packets_received} packets received by a, loss {stats.packet_loss_pct} %)")
    return 100.0 * (c1 - c0) / (w1 - w0)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--cpu-seconds", type=float, default=10.0)
    args = ap.parse_args()
    for codec in ("opus", "PCMU"):
        conn, first = await setup_times(codec, args.runs)
        print(
            f"{codec:5} offer->connected {conn:6.1f} ms   offer->first audio {first:6.1f} ms"
            f"  (median of {args.runs})"
        )
    for codec in ("opus", "PCMU"):
        for prefetch in (None, 1):
            d = await mouth_to_ear(codec, prefetch)
            label = "aiortc default (4)" if prefetch is None else f"prefetch {prefetch}"
            print(f"{codec:5} one-way source->sink delay, jitter buffer {label:18}: {d:6.1f} ms")
    total = await cpu(args.cpu_seconds)
    print(f"two-way Opus call, both peers in one process: {total:.1f} % of one core "
          f"(~{total / 2:.1f} % per side)")


if __name__ == "__main__":
    asyncio.run(main())
