"""``softphone latency``: mouth-to-ear delay measured with a chirp train and cross-correlation.

Round trip (default): a call to an echo (:func:`~softphone.diag.precall.default_destination` unless a
destination is given). The call's source sends a 100 ms linear chirp (500 to 3000 Hz, -12 dBFS)
every :data:`PERIOD_S` seconds and silence in between; what comes back is kept with the arrival
time of each 20 ms frame. Each chirp is found in the received audio by normalised cross-correlation
(FFT, :func:`find_bursts`; a match needs a correlation of at least :data:`MIN_NCC`) and its delay is
the time it reached the call's sink minus the time its first frame left the call's source, both
read from ``time.monotonic()``, plus the one 20 ms frame a microphone fills before the sender gets
it (:data:`CAPTURE_FRAME_S`; bench/compare_sdk.py counts its round trip the same way). So the figure
covers the whole software path: capture framing, encoder, the network and whatever the far end
adds, the receive jitter buffer and the decoder; not the sound card's own buffers (the source and
sink are the call's, devices are not used).

One way (``--one-way``): the client calls a destination that rings *this same login* (by default
its own user) and answers that call itself: the outbound call sends the chirps, the inbound call
receives them, both in one process on one monotonic clock.

Figures: every delay, their median, the spread (p25 / p75, min / max, standard deviation) and how
many chirps were sent and found. Delays longer than the period cannot be told apart from the next
chirp; they are not measured. Exit codes: 0 when at least half the chirps were found, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from softphone.client import events as ce
from softphone.errors import CallError
from softphone.media.frames import FRAME_SAMPLES, SAMPLE_RATE, Frame
from softphone.media.sinks import BaseSink
from softphone.media.sources import BaseSource
from softphone.protocol.states import CallState

if TYPE_CHECKING:
    from softphone.client.call import Call
    from softphone.client.client import Client
    from softphone.config import Profile

__all__ = [
    "ChirpSource", "LatencyReport", "TimedSink", "chirp", "find_bursts", "measure_one_way", "measure_round_trip",
    "ncc", "pair_chirps", "pair_delays", "run",
]

PERIOD_S = 1.0
CHIRP_S = 0.1
CHIRP_F0, CHIRP_F1 = 500.0, 3000.0
CHIRP_AMPLITUDE = 0.25  # about -12 dBFS peak
MIN_NCC = 0.5
DEFAULT_COUNT = 6
CAPTURE_FRAME_S = FRAME_SAMPLES / SAMPLE_RATE
"""Counted into every delay: the frame a microphone fills before the sender gets it (20 ms)."""


def chirp(seconds: float = CHIRP_S, f0: float = CHIRP_F0, f1: float = CHIRP_F1,
          amplitude: float = CHIRP_AMPLITUDE, rate: int = SAMPLE_RATE) -> Frame:
    """A linear chirp from ``f0`` to ``f1`` with 5 ms raised-cosine ramps (int16)."""
    n = int(seconds * rate)
    t = np.arange(n) / rate
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
    wave = np.sin(phase)
    ramp = min(n // 2, int(0.005 * rate))
    if ramp:
        window = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        wave[:ramp] *= window
        wave[n - ramp:] *= window[::-1]
    out: Frame = (wave * amplitude * 32767).astype(np.int16)
    return out


def ncc(signal: np.ndarray[Any, Any], template: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Normalised cross-correlation of ``template`` at every offset of ``signal`` ('valid' offsets).

    ``out[k]`` is the correlation coefficient (-1 .. 1, no mean removal: audio has none) of
    ``signal[k:k+len(template)]`` with ``template``, computed with one FFT product, so a few seconds
    of 48 kHz audio take milliseconds.
    """
    x = np.asarray(signal, dtype=np.float64)
    h = np.asarray(template, dtype=np.float64)
    m = h.size
    if x.size < m or m == 0:
        return np.zeros(0)
    size = 1 << int(np.ceil(np.log2(x.size + m)))
    corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(h, size)), size)[: x.size - m + 1]
    energy = np.concatenate(([0.0], np.cumsum(x * x)))
    window = energy[m:] - energy[:-m]
    denom = np.sqrt(np.maximum(window, 1e-9) * float(np.dot(h, h)))
    out: np.ndarray[Any, Any] = corr / denom
    out[window < 1e-6 * float(np.dot(h, h))] = 0.0  # digital silence: no match
    return out


def find_bursts(signal: np.ndarray[Any, Any], template: np.ndarray[Any, Any], *, min_gap: int,
                threshold: float = MIN_NCC) -> list[tuple[int, float]]:
    """Where ``template`` occurs in ``signal``: (sample offset, correlation), in order.

    Peaks of :func:`ncc` above ``threshold``, the best one first, each suppressing others within
    ``min_gap`` samples (a chirp train's period is much longer than a chirp).
    """
    c = ncc(signal, template)
    found: list[tuple[int, float]] = []
    work = c.copy()
    while work.size:
        k = int(np.argmax(work))
        value = float(work[k])
        if value < threshold:
            break
        found.append((k, value))
        work[max(0, k - min_gap): k + min_gap] = -1.0
    return sorted(found)


def pair_chirps(sent: list[float], received: list[float], period: float) -> list[tuple[int, float]]:
    """Each received time paired with the latest chirp sent before it (within ``period``): (chirp, delay)."""
    out = []
    for t in received:
        before = [i for i, s in enumerate(sent) if s <= t]
        if before and t - sent[before[-1]] < period:
            out.append((before[-1], t - sent[before[-1]]))
    return out


def pair_delays(sent: list[float], received: list[float], period: float) -> list[float]:
    """The delays of :func:`pair_chirps`."""
    return [d for _, d in pair_chirps(sent, received, period)]


class ChirpSource(BaseSource):
    """A chirp every ``period`` seconds (silence between), noting when each chirp's first frame is read."""

    def __init__(self, count: int, period: float = PERIOD_S, lead: float = 0.5,
                 on_chirp: Callable[[int], None] | None = None) -> None:
        self.on_chirp = on_chirp
        """Called with each chirp's index as its first frame is read (tests change the path between chirps)."""
        self.template = chirp()
        frames_per_period = round(period * SAMPLE_RATE / FRAME_SAMPLES)
        lead_frames = round(lead * SAMPLE_RATE / FRAME_SAMPLES)
        self._starts = {lead_frames + i * frames_per_period for i in range(count)}
        self._chirp_frames = -(-self.template.size // FRAME_SAMPLES)
        self._index = 0
        self._current: int | None = None  # frame index where the chirp being sent began
        self.sent_at: list[float] = []
        self.count = count
        self.period = period
        self.total_frames = lead_frames + count * frames_per_period

    @property
    def finished(self) -> bool:
        return self._index >= self.total_frames

    def read_frame(self) -> Frame | None:
        i = self._index
        self._index += 1
        if i in self._starts:
            self._current = i
            self.sent_at.append(time.monotonic())
            if self.on_chirp is not None:
                self.on_chirp(len(self.sent_at) - 1)
        out = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        if self._current is not None and i - self._current < self._chirp_frames:
            part = self.template[(i - self._current) * FRAME_SAMPLES:(i - self._current + 1) * FRAME_SAMPLES]
            out[: part.size] = part
        return out


class TimedSink(BaseSink):
    """Keeps every frame it is given with its arrival time (``time.monotonic()``)."""

    def __init__(self) -> None:
        self.frames: list[Frame] = []
        self.times: list[float] = []

    def write_frame(self, frame: Frame) -> None:
        self.times.append(time.monotonic())
        self.frames.append(np.array(frame, dtype=np.int16, copy=True))

    def samples(self) -> Frame:
        if not self.frames:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.frames)

    def time_of(self, sample: int) -> float:
        """When the audio at ``sample`` arrived: its frame's arrival plus its offset in the frame."""
        sizes = np.cumsum([f.size for f in self.frames])
        k = int(np.searchsorted(sizes, sample, side="right"))
        start = int(sizes[k - 1]) if k else 0
        return self.times[min(k, len(self.times) - 1)] + (sample - start) / SAMPLE_RATE


@dataclass
class LatencyReport:
    """Delays measured by one run."""

    mode: str  # "round_trip" | "one_way"
    destination: str
    sent: int = 0
    delays_ms: list[float] = field(default_factory=list)
    codec: str | None = None
    correlations: list[float] = field(default_factory=list)
    chirps: list[int] = field(default_factory=list)
    """The index of the chirp each delay belongs to (0 = the first sent)."""

    @property
    def title(self) -> str:
        return "Latency (" + ("one way" if self.mode == "one_way" else "round trip") + ")"

    @property
    def found(self) -> int:
        return len(self.delays_ms)

    @property
    def exit_code(self) -> int:
        return 0 if self.sent and self.found * 2 >= self.sent else 1

    def figures(self) -> dict[str, float | None]:
        d = sorted(self.delays_ms)
        if not d:
            return {k: None for k in ("median_ms", "p25_ms", "p75_ms", "min_ms", "max_ms", "stdev_ms")}
        q = np.percentile(d, [25, 50, 75])
        return {"median_ms": round(float(q[1]), 1), "p25_ms": round(float(q[0]), 1), "p75_ms": round(float(q[2]), 1),
                "min_ms": round(d[0], 1), "max_ms": round(d[-1], 1),
                "stdev_ms": round(statistics.pstdev(d), 1) if len(d) > 1 else 0.0}

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` document (README "softphone latency")."""
        return {"v": 1, "type": "latency", "ts": time.time(), "mode": self.mode, "destination": self.destination,
                "codec": self.codec, "sent": self.sent, "found": self.found, **self.figures(),
                "capture_frame_ms": 1000.0 * CAPTURE_FRAME_S,
                "delays_ms": [round(x, 1) for x in self.delays_ms], "chirps": self.chirps, "exit_code": self.exit_code}

    def rows(self) -> list[tuple[str, str]]:
        f = self.figures()

        def ms(x: float | None) -> str:
            return "-" if x is None else f"{x:.1f} ms"

        return [
            ("mode", "one way" if self.mode == "one_way" else "round trip"),
            ("destination", self.destination),
            ("codec", self.codec or "-"),
            ("median", ms(f["median_ms"])),
            ("spread", f"p25 {ms(f['p25_ms'])}, p75 {ms(f['p75_ms'])}, stdev {ms(f['stdev_ms'])}"),
            ("min / max", f"{ms(f['min_ms'])} / {ms(f['max_ms'])}"),
            ("chirps found", f"{self.found} of {self.sent}"),
            ("delays", ", ".join(f"{x:.1f}" for x in self.delays_ms) or "-"),
        ]


def analyse(source: ChirpSource, sink: TimedSink, report: LatencyReport) -> LatencyReport:
    """Find the chirps in what ``sink`` received and pair them with what ``source`` sent."""
    bursts = find_bursts(sink.samples(), source.template, min_gap=int(source.period * SAMPLE_RATE / 2))
    received = [sink.time_of(k) for k, _ in bursts]
    report.sent = len(source.sent_at)
    # A microphone fills a frame for 20 ms before handing it over: the chirp's first sample left the
    # mouth one frame before the sender pulled it (as bench/compare_sdk.py counts its round trip).
    mouth = [t - CAPTURE_FRAME_S for t in source.sent_at]
    pairs = pair_chirps(mouth, received, source.period)
    report.chirps = [i for i, _ in pairs]
    report.delays_ms = [1000.0 * d for _, d in pairs]
    report.correlations = [round(c, 3) for _, c in bursts]
    return report


async def _until_sent(source: ChirpSource, call: Call, tail: float) -> None:
    """Wait until the source has sent its whole train, then ``tail`` seconds for the last chirp to arrive."""
    while not source.finished:
        if call.state.is_terminal:
            raise CallError(f"the call ended during the measurement ({call.cause or call.state.value})")
        await asyncio.sleep(0.1)
    await asyncio.sleep(tail)


async def measure_round_trip(client: Client, destination: str, *, count: int = DEFAULT_COUNT,
                             period: float = PERIOD_S, on_chirp: Callable[[int], None] | None = None
                             ) -> LatencyReport:
    """Chirps through an echo at ``destination``: the round trip."""
    from softphone.diag.precall import test_call

    source, sink = ChirpSource(count, period, on_chirp=on_chirp), TimedSink()
    report = LatencyReport("round_trip", destination)
    async with test_call(client, destination, source=source, sink=sink) as call:
        await _until_sent(source, call, period)
        report.codec = call.codec
    return analyse(source, sink, report)


async def measure_one_way(client: Client, destination: str | None = None, *, count: int = DEFAULT_COUNT,
                          period: float = PERIOD_S, timeout: float = 15.0,
                          on_chirp: Callable[[int], None] | None = None) -> LatencyReport:
    """Chirps from an outbound call to its inbound copy on the same client: one way."""
    dest = destination or client.user
    if not dest:
        raise CallError("--one-way needs a destination that rings this login (no user name known)")
    source, sink = ChirpSource(count, period, on_chirp=on_chirp), TimedSink()
    report = LatencyReport("one_way", dest)
    loop = asyncio.get_running_loop()
    incoming: asyncio.Future[str] = loop.create_future()

    def on_event(event: ce.Event) -> None:
        if isinstance(event, ce.CallIncoming) and not incoming.done():
            incoming.set_result(event.call_id)

    unsubscribe = client.subscribe(on_event)
    try:
        outbound = await client.new_call(dest)
        try:
            try:
                inbound_id = await asyncio.wait_for(asyncio.shield(incoming), timeout)
            except TimeoutError:
                raise CallError(f"{dest}: the call did not ring this login in {timeout:g} s "
                                f"({outbound.cause or outbound.state.value}); --one-way needs a destination "
                                "that rings the caller's own login") from None
            inbound = client.calls[inbound_id]
            inbound.set_output(sink)
            await inbound.answer()
            await outbound.wait_state(CallState.ACTIVE, timeout)
            outbound.set_input(source)
            await _until_sent(source, outbound, period)
            report.codec = outbound.codec
        finally:
            for call in list(client.calls.values()):
                with contextlib.suppress(Exception):
                    await call.hangup()
            with contextlib.suppress(TimeoutError):
                await outbound.wait_ended(5)
    finally:
        unsubscribe()
    return analyse(source, sink, report)


async def run(profile: Profile, destination: str | None, *, one_way: bool, count: int = DEFAULT_COUNT
              ) -> LatencyReport:
    """``softphone latency``: log in with ``profile`` and measure (softphone.cli.diagview prints it)."""
    from softphone.client.client import Client
    from softphone.diag.precall import default_destination

    client = Client.from_profile(profile, reconnect=False)
    try:
        await client.connect()
        if one_way:
            return await measure_one_way(client, destination, count=count)
        return await measure_round_trip(client, destination or default_destination(profile), count=count)
    finally:
        await client.close()
