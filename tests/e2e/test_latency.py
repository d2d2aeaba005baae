"""softphone latency end to end: chirps through the switch's echo, to a far end that delays by a known
amount, and one way from a call to its own login.

Tolerance for an added known delay: the measured growth is within 25 ms of what was added (a 20 ms
frame of phase between the far end's receive and send clocks, plus scheduling on a shared CPU). The
delay is switched on for every other chirp of one call and the growth is the median over neighbouring
pairs, so the slow drift of a loaded machine's buffers cancels out (on a machine with load 12 on 2
cores, two separate calls differed by 30 to 240 ms for the same 100 ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import statistics
from collections.abc import AsyncIterator, Callable
from typing import Literal

import cliutil
import pytest
from cliutil import PASSWORD, sp
from test_selftest import far_echo

from softphone.client.client import AudioConfig, Client
from softphone.diag.latency import LatencyReport, measure_one_way, measure_round_trip
from softphone.diag.precall import ECHO_NUMBER
from softphone.media.impair import ImpairSpec, parse
from softphone.media.peer import MediaPeer
from softphone.protocol import Credentials
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

switch_port, token, env = cliutil.switch_port, cliutil.token, cliutil.env  # a `softphone switch serve` subprocess

TOLERANCE_MS = 25.0


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        yield sw


@contextlib.asynccontextmanager
async def demo(switch: Switch, impair: str | None = None) -> AsyncIterator[Client]:
    c = Client(switch.url, Credentials(login="demo", password=PASSWORD), audio=AudioConfig(backend="null"),
               reconnect=False, impair=parse(impair) if impair else None)
    await c.connect()
    try:
        yield c
    finally:
        await c.close()


def median(report: LatencyReport) -> float:
    assert report.found >= report.sent - 1 and report.found >= 3, report.rows()
    return statistics.median(report.delays_ms)


async def test_round_trip_through_the_echo_is_plausible(switch: Switch) -> None:
    async with demo(switch) as client:
        report = await measure_round_trip(client, ECHO_NUMBER, count=4)
    rtt = median(report)
    assert 0 < rtt < 500, report.rows()
    f = report.figures()
    # the figures are rounded to 0.1 ms; with forwarding every chirp may come back alike (median == max)
    assert f["min_ms"] is not None and f["max_ms"] is not None and f["min_ms"] - 0.05 <= rtt <= f["max_ms"] + 0.05
    assert all(c > 0.5 for c in report.correlations)


def alternate(set_delay: Callable[[bool], None], period: float = 1.0) -> Callable[[int], None]:
    """A chirp hook: half a period after chirp i left (it is back; the next has not left), the added
    delay goes on for odd chirps and off for even ones. Pairs of neighbouring chirps then see the same
    load and buffers but one of them the added delay: a shared CPU's slow drift cancels out."""
    loop = asyncio.get_running_loop()

    def on_chirp(i: int) -> None:
        loop.call_later(period / 2, set_delay, i % 2 == 0)

    return on_chirp


def added(report: LatencyReport) -> float:
    """The median over (chirp 2k+1 - chirp 2k) pairs."""
    by = dict(zip(report.chirps, report.delays_ms, strict=True))
    diffs = [by[i + 1] - by[i] for i in range(0, report.sent - 1, 2) if i in by and i + 1 in by]
    assert len(diffs) >= 2, report.rows()
    return statistics.median(diffs)


def only_call(client: Client) -> MediaPeer:
    (call,) = [c for c in client.calls.values() if c.direction == "outbound"]
    assert isinstance(call.peer, MediaPeer)
    return call.peer


def delay_switch(client: Client, direction: Literal["in", "out"]) -> Callable[[bool], None]:
    """Turns 100 ms of impairment delay on and off on the client's outbound call, packets kept in order
    (reorder=no also when off: packets sent after the switch-off never overtake the ones still held)."""
    on = ImpairSpec(delay_ms=100.0, reorder=False, direction=direction)
    off = ImpairSpec(reorder=False, direction=direction)

    def set_delay(delayed: bool) -> None:
        only_call(client).set_impairment(on if delayed else off)

    return set_delay


async def test_a_known_network_delay_adds_to_the_round_trip(switch: Switch) -> None:
    async with demo(switch) as client:  # what we receive is held 100 ms, every other chirp
        set_delay = delay_switch(client, "in")

        report = await measure_round_trip(client, ECHO_NUMBER, count=8, on_chirp=alternate(set_delay))
    assert added(report) == pytest.approx(100.0, abs=TOLERANCE_MS), report.rows()


async def test_a_far_end_that_echoes_100_ms_late_adds_100_ms(switch: Switch) -> None:
    """A second softphone echoes what it hears through a delay line, 100 ms for every other chirp."""
    async with demo(switch) as client, far_echo(switch) as far:
        def set_delay(on: bool) -> None:
            far.lines[0].set_delay(0.1 if on else 0.0)

        report = await measure_round_trip(client, "alice", count=8, on_chirp=alternate(set_delay))
    assert 0 < median(report) < 600
    assert added(report) == pytest.approx(100.0, abs=TOLERANCE_MS), report.rows()


async def test_one_way_to_our_own_login(switch: Switch) -> None:
    async with demo(switch) as client:
        one_way = await measure_one_way(client, count=4)
        assert one_way.destination == "demo" and one_way.mode == "one_way"
        assert 0 < median(one_way) < 300, one_way.rows()
        set_delay = delay_switch(client, "out")  # what the outbound call sends is held: one way only
        delayed = await measure_one_way(client, count=8, on_chirp=alternate(set_delay))
    assert added(delayed) == pytest.approx(100.0, abs=TOLERANCE_MS), delayed.rows()


def test_cli_json_and_lines(env: dict[str, str]) -> None:
    r = sp(env, "latency", "--count", "3", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["type"] == "latency" and doc["mode"] == "round_trip" and doc["sent"] == 3
    assert doc["found"] >= 2 and 0 < doc["median_ms"] < 500 and len(doc["delays_ms"]) == doc["found"]
    r = sp(env, "latency", "--one-way", "--count", "3")
    assert r.returncode == 0, r.stderr
    rows = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    assert rows["mode"] == "one way" and rows["median"].endswith(" ms")
    assert PASSWORD not in r.stdout + r.stderr


def test_cli_one_way_to_a_number_that_does_not_ring_us(env: dict[str, str]) -> None:
    r = sp(env, "latency", "--one-way", ECHO_NUMBER, "--count", "2")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "did not ring this login" in r.stderr
