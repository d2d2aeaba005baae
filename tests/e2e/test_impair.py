"""Impairments (issue 15 item 4) through the real switch's echo: what was asked is what the far end measures.

Tolerances (documented in the README, section Impairments):

* loss: the measured loss is the asked loss +- 6 points over >= 300 packets (binomial: 2.3 points is one
  standard deviation at 20 % over 300 packets; a seed makes the drop sequence repeatable).
* delay: ``delay=D`` (both directions) raises the RTCP round trip by 2D +- 60 ms; ``dir=out`` by D.
* jitter: ``jitter=J`` makes the receiver's RFC 3550 jitter (aiortc counts in-order packets only)
  land between J/5 and 1.5 J (measured ~0.35 J..0.55 J on this machine); without it, under 5 ms.
* MOS: ``congested`` scores at least 0.5 below ``good``.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from cliutil import free_port, wait_port

from softphone.client.call import Call
from softphone.client.client import AudioConfig, Client
from softphone.media.dsp import dominant_frequency
from softphone.media.impair import ImpairSpec, parse
from softphone.media.peer import MediaPeer
from softphone.media.sinks import BufferSink
from softphone.media.sources import ToneSource
from softphone.media.stats import MediaStats
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


@dataclass
class Echo:
    sw: Switch
    client: Client
    call: Call
    heard: BufferSink

    async def stats(self) -> tuple[MediaStats, MediaStats]:
        """(the softphone's, the switch leg's)."""
        assert self.call.peer is not None
        leg = self.sw.leg_media(self.call.id)
        assert leg is not None and leg.peer is not None
        return await self.call.peer.stats(), await leg.peer.stats()


@asynccontextmanager
async def echo_call(client_impair: ImpairSpec | None = None,
                    switch_impair: ImpairSpec | None = None) -> AsyncIterator[Echo]:
    async with Switch(accounts=default_accounts(), port=0, impair=switch_impair) as sw:
        client = Client(sw.url, Credentials(login="demo", password="demo-secret"),
                        audio=AudioConfig(backend="null"), impair=client_impair)
        try:
            await client.connect()
            call = await client.new_call("echo")
            heard = BufferSink()
            call.set_output(heard)
            call.set_input(ToneSource(440, 0.5))
            await call.wait_state(CallState.ACTIVE, timeout=15)
            yield Echo(sw, client, call, heard)
            assert call.state == CallState.ACTIVE  # the call stayed up
            await call.hangup()
            await call.wait_ended(10)
        finally:
            await client.close()


def _audio_arrives(heard: BufferSink) -> None:
    tail = heard.samples(1.0)
    assert tail.shape[0] > 0
    assert float(np.sqrt(np.mean(tail.astype(np.float64) ** 2))) > 300
    assert abs(dominant_frequency(tail) - 440) < 10


async def _wait_packets(echo: Echo, n: int, timeout: float = 40.0) -> tuple[MediaStats, MediaStats]:
    """Stats once both ends have accounted for >= n packets (received + lost)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        mine, leg = await echo.stats()
        if min(mine.packets_received + mine.packets_lost, leg.packets_received + leg.packets_lost) >= n:
            return mine, leg
        assert asyncio.get_running_loop().time() < deadline, f"only {mine.packets_received} packets"
        await asyncio.sleep(0.5)


async def test_loss_is_measured_at_both_ends() -> None:
    async with echo_call(parse("loss=20%,seed=7")) as echo:
        mine, leg = await _wait_packets(echo, 300)
        # dir=both: the switch measures what we send, we measure what it sends; both lose 20 %.
        assert abs(leg.packet_loss_pct - 20) <= 6, leg
        assert abs(mine.packet_loss_pct - 20) <= 6, mine
        peer = echo.call.peer
        assert isinstance(peer, MediaPeer) and peer.impairment is not None
        counted = peer.impairment.stats()
        assert counted["out"]["dropped"] > 0 and counted["in"]["dropped"] > 0
        _audio_arrives(echo.heard)


async def test_burst_loss_on_the_switch_leg() -> None:
    async with echo_call(switch_impair=parse("loss=15%,burst=4,seed=3,dir=out")) as echo:
        mine, leg = await _wait_packets(echo, 300)
        # bursts: ~11 bursts in 300 packets, one standard deviation is ~4.5 points (the rate itself: unit tests)
        assert 5 <= mine.packet_loss_pct <= 28, mine
        assert leg.packet_loss_pct == 0  # dir=out: what the leg receives is untouched
        _audio_arrives(echo.heard)


async def _rtt(echo: Echo, timeout: float = 20.0) -> float:
    deadline = asyncio.get_running_loop().time() + timeout
    values: list[float] = []
    while len(values) < 3:
        mine, _ = await echo.stats()
        if mine.rtt_ms is not None:
            values.append(mine.rtt_ms)
        assert asyncio.get_running_loop().time() < deadline, "no RTT from RTCP"
        await asyncio.sleep(1.0)
    return float(np.median(values))


@pytest.mark.parametrize(("spec", "added"), [("delay=100ms", 200.0), ("delay=100ms,dir=out", 100.0)])
async def test_delay_raises_the_round_trip(spec: str, added: float) -> None:
    async with echo_call(parse(spec)) as echo:
        rtt = await _rtt(echo)
        assert added - 40 <= rtt <= added + 60, f"{spec}: RTT {rtt:.0f} ms"
        _audio_arrives(echo.heard)


async def test_jitter_raises_the_measured_jitter() -> None:
    async with echo_call(parse("jitter=40ms,seed=5")) as echo:
        samples = []
        for _ in range(5):
            await asyncio.sleep(1.0)
            mine, leg = await echo.stats()
            samples.append((mine.jitter_ms or 0.0, leg.jitter_ms or 0.0))
        mine_j = float(np.median([s[0] for s in samples]))
        leg_j = float(np.median([s[1] for s in samples]))
        assert 8 <= mine_j <= 60 and 8 <= leg_j <= 60, samples
        assert echo.call.state == CallState.ACTIVE


async def _mos(spec: str) -> float:
    """The softphone's MOS after 300 packets (its figures are cumulative: loss over the whole call)."""
    async with echo_call(switch_impair=parse(spec)) as echo:
        mine, _ = await _wait_packets(echo, 300)
        leg = echo.sw.leg_media(echo.call.id)
        assert leg is not None and leg.peer is not None and leg.peer.impairment is not None
        counted = leg.peer.impairment.stats()["out"]
        assert counted["delayed"] > 0, counted  # the switch's leg did impair what it sent
        assert mine.mos is not None
        return mine.mos


async def test_mos_falls_with_congestion() -> None:
    good, congested = await _mos("good,seed=1"), await _mos("congested,seed=1")
    assert good >= 4.0, good
    assert congested <= good - 0.5, (good, congested)


async def test_switch_impairs_one_leg_and_lifts_it() -> None:
    async with echo_call() as echo:
        assert echo.sw.set_impairment(parse("loss=50%,seed=2,dir=out"), echo.call.id) == 1
        before, _ = await echo.stats()
        await asyncio.sleep(3.0)
        during, _ = await echo.stats()
        assert during.packets_lost - before.packets_lost >= 30, (before, during)
        assert echo.sw.set_impairment(None, echo.call.id) == 1
        await asyncio.sleep(1.0)
        lifted, _ = await echo.stats()
        await asyncio.sleep(3.0)
        after, _ = await echo.stats()
        assert after.packets_lost == lifted.packets_lost
        assert after.packets_received - lifted.packets_received >= 100
        _audio_arrives(echo.heard)


def _softphone(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "softphone", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv", [["--impair", "loss=abc", "dial", "echo", "--local"],
                                  ["--impair", "lossy", "precall", "--local"],
                                  ["switch", "serve", "--port", "0", "--impair", "jitter=3parsecs"]])
def test_bad_spec_is_refused(argv: list[str]) -> None:
    done = _softphone(*argv)
    assert done.returncode == 2, done
    assert "bad --impair" in done.stderr and "good, wifi, congested, satellite" in done.stderr.replace("\n", " ")


def test_the_impair_command_changes_a_live_call(tmp_path: Path) -> None:
    """`impair SPEC` in a command file (the shell has it too): the live call loses packets, `impair none` ends it."""
    flow = tmp_path / "flow.txt"
    flow.write_text("login\ndial echo\nwait call active 10\nimpair loss=50%,dir=in,seed=3\nsleep 5\n"
                    "impair none\nsleep 5\nhangup\nwait call hangup 5\n")
    done = _softphone("--json", "run", str(flow), "--local")
    assert done.returncode == 0, done.stderr[-2000:]
    objs = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    types = [o["type"] for o in objs]
    assert "call.warning" in types and "call.warning_cleared" in types, types
    raised = types.index("call.warning")
    assert any(o["type"] == "call.warning_cleared" for o in objs[raised:])
    bad = tmp_path / "bad.txt"
    bad.write_text("login\nimpair loss=lots\n")
    refused = _softphone("run", str(bad), "--local")
    assert refused.returncode == 2 and f"{bad}:2" in refused.stderr and "bad --impair" in refused.stderr


async def test_switch_serve_impairs_every_leg(tmp_path: Path) -> None:
    """`softphone switch serve --impair ...` (its media legs in worker processes by default)."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "softphone", "switch", "serve", "--port", str(port),
                             "--records", str(tmp_path / "records.jsonl"), "--api-port", str(free_port()),
                             "--impair", "loss=30%,seed=2,dir=out"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_port(port, proc)
        client = Client(f"ws://127.0.0.1:{port}", Credentials(login="demo", password="demo-secret"),
                        audio=AudioConfig(backend="null"))
        try:
            await client.connect()
            call = await client.new_call("echo")
            call.set_input(ToneSource(440, 0.5))
            await call.wait_state(CallState.ACTIVE, timeout=15)
            deadline = asyncio.get_running_loop().time() + 40
            while True:
                await asyncio.sleep(0.5)
                assert call.peer is not None
                mine = await call.peer.stats()
                if mine.packets_received + mine.packets_lost >= 300:
                    break
                assert asyncio.get_running_loop().time() < deadline, mine
            assert abs(mine.packet_loss_pct - 30) <= 7, mine
            await call.hangup()
            await call.wait_ended(10)
        finally:
            await client.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
