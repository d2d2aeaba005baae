"""softphone precall end to end against the local switch's echo: figures, verdicts and the command.

Real parts: the switch over websockets, aiortc media both ways through its echo service, a 1 kHz
tone sent; the bad network is an in-process impairment of the caller's RTP (softphone.media.impair,
Client(impair=...)).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

import cliutil
import pytest
from cliutil import PASSWORD, sp

from softphone.client.client import AudioConfig, Client
from softphone.diag.precall import ECHO_NUMBER, Verdict, measure
from softphone.media.impair import parse
from softphone.protocol import Credentials
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

switch_port, token, env = cliutil.switch_port, cliutil.token, cliutil.env  # a `softphone switch serve` subprocess


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        yield sw


@contextlib.asynccontextmanager
async def demo(switch: Switch, impair: str | None = None) -> AsyncIterator[Client]:
    c = Client(switch.url, Credentials(login="demo", password=PASSWORD),
               audio=AudioConfig(backend="tone", tone_hz=1000.0), reconnect=False,
               impair=parse(impair) if impair else None)
    await c.connect()
    try:
        yield c
    finally:
        await c.close()


async def test_a_clean_path_through_the_echo(switch: Switch) -> None:
    async with demo(switch) as client:
        report = await measure(client, ECHO_NUMBER, seconds=3)
    d = report.as_dict()
    assert d["samples"] >= 3 and d["codec"] == "opus/48000"
    assert d["verdict"] in ("excellent", "good"), report.rows()  # loopback: MOS 4.4 unless the CPU is starved
    assert report.exit_code == 0
    assert d["mos"]["avg"] >= 4.1 and d["loss_pct"] < 2
    assert d["rtt_ms"]["avg"] is not None and 0 <= d["rtt_ms"]["avg"] < 100
    assert d["jitter_ms"]["avg"] is not None and d["jitter_ms"]["avg"] < 30
    assert d["packets"]["sent"] > 100 and d["packets"]["received"] > 100
    for way in ("sent", "received"):
        assert d["bitrate_kbps"][way]["avg"] > 10  # Opus carrying a tone
    sent, received = d["level_dbfs"]["sent"], d["level_dbfs"]["received"]
    assert -20 < sent < -8 and abs(sent - received) < 3  # the tone comes back at the level it left


async def test_loss_on_the_path_makes_the_verdict_bad(switch: Switch) -> None:
    async with demo(switch, "loss=20%,dir=in,seed=3") as client:
        report = await measure(client, ECHO_NUMBER, seconds=3)
    v, reasons = report.verdict()
    assert 10 < report.loss_pct < 32, report.rows()  # 20 % asked, over ~150 packets
    assert v == Verdict.BAD and report.exit_code == 12
    assert any(r.startswith("loss above 10 %") for r in reasons) or any(r.startswith("MOS") for r in reasons)


async def test_loss_on_the_way_out_is_seen_in_the_far_ends_reports(switch: Switch) -> None:
    """20 % of what we send is dropped: what comes back is whole (the echo's leg sends its own stream),
    the echo leg's RTCP receiver reports tell the loss, and the verdict judges the worse direction."""
    async with demo(switch, "loss=20%,dir=out,seed=4") as client:
        report = await measure(client, ECHO_NUMBER, seconds=4)
    assert report.loss_sent_pct is not None and 10 < report.loss_sent_pct < 32, report.rows()
    assert report.loss_pct < 5, report.rows()
    assert report.verdict()[0] == Verdict.BAD and report.exit_code == 12


async def test_a_congested_network_rates_worse_than_a_good_one(switch: Switch) -> None:
    async with demo(switch, "good") as client:
        good = await measure(client, ECHO_NUMBER, seconds=3)
    async with demo(switch, "congested,seed=5") as client:
        congested = await measure(client, ECHO_NUMBER, seconds=3)
    assert good.verdict()[0].rank < congested.verdict()[0].rank, (good.rows(), congested.rows())
    assert congested.verdict()[0] in (Verdict.POOR, Verdict.BAD)
    assert (good.summary(lambda s: s.mos).avg or 0) > (congested.summary(lambda s: s.mos).avg or 5)
    assert congested.loss_pct > good.loss_pct  # (RTT may still be unknown after 3 s: RTCP is lost and late too)


def test_cli_json(env: dict[str, str]) -> None:
    r = sp(env, "precall", "--seconds", "2", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["type"] == "precall" and doc["v"] == 1 and doc["destination"] == ECHO_NUMBER
    assert doc["verdict"] in ("excellent", "good") and doc["exit_code"] == 0
    assert set(doc["mos"]) == {"min", "avg", "max"} and doc["packets"]["received"] > 0
    assert set(doc["bitrate_kbps"]) == set(doc["level_dbfs"]) == {"sent", "received"}
    assert PASSWORD not in r.stdout + r.stderr


def test_cli_piped_lines(env: dict[str, str]) -> None:
    r = sp(env, "precall", "--seconds", "2", "--tone")
    assert r.returncode == 0, r.stderr
    rows = dict(line.split("\t", 1) for line in r.stdout.splitlines())
    assert rows["verdict"] in ("excellent", "good") and rows["codec"] == "opus/48000"
    assert rows["MOS"].endswith(")") and "avg" in rows["RTT"] and rows["level sent"].endswith("dBFS")


def test_cli_failures(env: dict[str, str]) -> None:
    busy = sp(env, "precall", "+15550001004", "--seconds", "1")
    assert busy.returncode == 1 and "USER_BUSY" in busy.stderr and busy.stdout == ""
    wrong = sp(env, "-p", "bad", "precall", "--seconds", "1")
    assert wrong.returncode == 7, wrong.stderr  # login refused
    down = sp(env, "-p", "closed", "precall", "--seconds", "1")
    assert down.returncode == 8, down.stderr  # nothing listens
    assert "wrong-password-123" not in wrong.stdout + wrong.stderr
