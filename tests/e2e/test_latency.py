"""softphone latency end to end: chirps through the switch's echo, to a far end that delays by a known
amount, and one way from a call to its own login.

Tolerance for an added known delay: the measured growth is within 25 ms of what was added (a 20 ms
frame of phase between the far end's receive and send clocks, plus scheduling on a shared CPU).
"""

from __future__ import annotations

import contextlib
import json
import statistics
from collections.abc import AsyncIterator

import cliutil
import pytest
from cliutil import PASSWORD, sp
from test_selftest import far_echo

from softphone.client.client import AudioConfig, Client
from softphone.diag.latency import LatencyReport, measure_one_way, measure_round_trip
from softphone.diag.precall import ECHO_NUMBER
from softphone.media.impair import parse
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
    assert f["min_ms"] is not None and f["max_ms"] is not None and f["min_ms"] <= rtt <= f["max_ms"]
    assert all(c > 0.5 for c in report.correlations)


async def test_a_known_network_delay_adds_to_the_round_trip(switch: Switch) -> None:
    async with demo(switch) as client:
        base = median(await measure_round_trip(client, ECHO_NUMBER, count=4))
    async with demo(switch, "delay=100ms,dir=in") as client:  # what we receive is held 100 ms
        delayed = median(await measure_round_trip(client, ECHO_NUMBER, count=4))
    assert delayed - base == pytest.approx(100.0, abs=TOLERANCE_MS), (base, delayed)


async def test_a_far_end_that_echoes_100_ms_late_adds_100_ms(switch: Switch) -> None:
    """A second softphone echoes what it hears through a 5-frame (100 ms) buffer instead of at once."""
    async with demo(switch) as client:
        async with far_echo(switch, delay_frames=0):
            base = median(await measure_round_trip(client, "alice", count=4))
        async with far_echo(switch, delay_frames=5):
            delayed = median(await measure_round_trip(client, "alice", count=4))
    assert 0 < base < 500
    assert delayed - base == pytest.approx(100.0, abs=TOLERANCE_MS), (base, delayed)


async def test_one_way_to_our_own_login(switch: Switch) -> None:
    async with demo(switch) as client:
        one_way = await measure_one_way(client, count=4)
        assert one_way.destination == "demo" and one_way.mode == "one_way"
        assert 0 < median(one_way) < 300, one_way.rows()
    async with demo(switch, "delay=100ms,dir=out") as client:  # what we send is held 100 ms: one way only
        delayed = await measure_one_way(client, count=4)
    assert median(delayed) - median(one_way) == pytest.approx(100.0, abs=TOLERANCE_MS)


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
