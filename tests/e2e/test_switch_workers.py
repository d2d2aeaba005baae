"""Media legs in worker processes (softphone.switch.workers): the real switch with ``media_workers=2``,
real aiortc clients (the softphone's Client with a tone source), audio judged by frequency and level.

Placement, bridges inside a worker, hold, the PCM proxy (taps, a receiver and push from this
process), a worker killed mid-call (its calls end NORMAL_TEMPORARY_FAILURE, it is restarted),
no worker process left after the switch stops, also after SIGTERM of ``softphone switch serve``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from softphone.client.client import AudioConfig, Client
from softphone.media.dsp import dominant_frequency
from softphone.media.frames import Frame
from softphone.media.sinks import BufferSink
from softphone.media.sources import ToneSource
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts
from softphone.switch.workers import WORKER_LOST_CAUSE, RemoteMediaLeg

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

DEMO = Credentials(login="demo", password="demo-secret")
ALICE = Credentials(login="alice", password="alice-secret")

MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0, media_workers=2) as sw:
        yield sw


@pytest.fixture
async def make_client(switch: Switch) -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(creds: Credentials = DEMO, tone: float = 440.0) -> Client:
        client = Client(switch.url, creds, audio=AudioConfig(backend="tone", tone_hz=tone), random=lambda: 0.0)
        clients.append(client)
        await client.connect()
        return client

    yield make
    for client in clients:
        await client.close()


def level(buf: BufferSink, seconds: float = 0.4) -> float:
    s = buf.samples(seconds).astype(np.float64)
    return float(np.sqrt(np.mean(s * s))) if s.size else 0.0


async def wait_for(pred: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def hears(buf: BufferSink, hz: float, timeout: float = 15.0) -> None:
    """``buf`` carries a tone of ``hz`` (+-15 Hz) at a clear level (tolerant of a loaded CPU)."""
    await wait_for(
        lambda: buf.duration_s >= 0.4 and abs(dominant_frequency(buf.samples(0.4)) - hz) <= 15 and level(buf) > 300,
        timeout,
    )


async def incoming(client: Client, timeout: float = 10.0) -> Any:
    def ringing() -> bool:
        return any(c.direction == "inbound" and c.state == CallState.RINGING for c in client.calls.values())

    await wait_for(ringing, timeout)
    return next(c for c in client.calls.values() if c.direction == "inbound" and c.state == CallState.RINGING)


def remote(sw: Switch, call_id: str) -> RemoteMediaLeg:
    media = sw.media_of(call_id)
    assert isinstance(media, RemoteMediaLeg), media
    return media


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is not running media; /proc says so.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_echo_calls_are_spread_over_both_workers(switch: Switch, make_client: MakeClient) -> None:
    assert [w["alive"] for w in switch.media_workers()] == [True, True]
    one, two = await make_client(DEMO, 440.0), await make_client(ALICE, 660.0)
    calls = [await one.new_call("echo"), await two.new_call("echo")]
    bufs = [BufferSink(), BufferSink()]
    for call, buf in zip(calls, bufs, strict=True):
        call.set_output(buf)
        await call.wait_state(CallState.ACTIVE, 10)
    assert {remote(switch, c.id).worker for c in calls} == {0, 1}  # fewest legs first
    assert sorted(w["legs"] for w in switch.media_workers()) == [1, 1]
    await hears(bufs[0], 440.0)
    await hears(bufs[1], 660.0)
    # The worker's stats: echo forwards encoded packets inside the worker (MediaLeg's own decision).
    # (A few packets may be decoded between the answer and the wiring, more on a loaded machine.)
    await wait_for(lambda: all(remote(switch, c.id).packets_forwarded > 50 for c in calls))
    assert [remote(switch, c.id).mode for c in calls] == ["forward", "forward"]
    assert all(remote(switch, c.id).sends_packets for c in calls)
    assert all(remote(switch, c.id).packets_decoded < remote(switch, c.id).packets_forwarded for c in calls)
    for call in calls:
        await call.hangup()
        await call.wait_ended(10)
        assert call.cause == "NORMAL_CLEARING"
    await wait_for(lambda: [w["legs"] for w in switch.media_workers()] == [0, 0])
    assert [r.codec for r in switch.records] == ["opus/48000", "opus/48000"]


async def test_bridge_in_one_worker_with_hold(switch: Switch, make_client: MakeClient) -> None:
    demo, alice = await make_client(DEMO, 660.0), await make_client(ALICE, 880.0)
    out = await demo.new_call("alice")
    d_buf, a_buf = BufferSink(), BufferSink()
    out.set_output(d_buf)
    inbound = await incoming(alice)
    inbound.set_output(a_buf)
    await inbound.answer()
    await out.wait_state(CallState.ACTIVE, 10)
    a_leg, b_leg = remote(switch, out.id), remote(switch, inbound.id)
    assert a_leg.worker == b_leg.worker  # both legs of a call share a worker: the bridge stays inside it
    assert sorted(w["legs"] for w in switch.media_workers()) == [0, 2]
    await hears(d_buf, 880.0)
    await hears(a_buf, 660.0)
    # DTMF: telnyx_rtc.info to the far client, and in-band tones the worker plays into its leg
    digits: list[str] = []
    alice.on("call.dtmf", lambda e: digits.append(e.data["digits"]) if e.data["source"] == "info" else None)
    await out.dtmf("12#")
    await wait_for(lambda: "".join(digits) == "12#")
    # hold from demo: alice hears the hold tone (440 Hz, played by the worker), demo hears nothing
    assert await out.hold() is True
    await hears(a_buf, 440.0, 10)
    await wait_for(lambda: level(d_buf, 0.3) < 100, 5)
    assert await out.unhold() is False
    await hears(a_buf, 660.0)
    await hears(d_buf, 880.0)
    await inbound.hangup()
    await out.wait_ended(10)
    assert out.cause == "NORMAL_CLEARING"


async def test_ivr_and_unrouted_calls_stay_in_process(switch: Switch, make_client: MakeClient) -> None:
    """The placement policy: the ivr (taps and speech here) and calls with no route (Call Control may
    park them) keep their media in the signaling process; echo goes to a worker."""
    from softphone.switch.media_legs import MediaLeg

    client = await make_client(DEMO, 440.0)
    ivr = await client.new_call("ivr")
    await ivr.wait_state(CallState.ACTIVE, 15)
    assert isinstance(switch.media_of(ivr.id), MediaLeg)
    echo = await client.new_call("echo")
    await echo.wait_state(CallState.ACTIVE, 15)
    assert isinstance(switch.media_of(echo.id), RemoteMediaLeg)
    assert sum(w["legs"] for w in switch.media_workers()) == 1
    for call in (ivr, echo):
        await call.hangup()
        await call.wait_ended(10)
    await wait_for(lambda: sum(w["legs"] for w in switch.media_workers()) == 0)  # the worker closed it
    nowhere = await client.new_call("nobody-here")
    await nowhere.wait_ended(10)
    assert nowhere.cause == "UNALLOCATED_NUMBER"
    assert sum(w["legs"] for w in switch.media_workers()) == 0


async def test_pcm_proxy_taps_receiver_and_push(switch: Switch, make_client: MakeClient) -> None:
    """A feature in the signaling process gets a worker leg's PCM both ways (only while it is on)."""
    client = await make_client(DEMO, 440.0)
    call = await client.new_call("echo")
    buf = BufferSink()
    call.set_output(buf)
    await call.wait_state(CallState.ACTIVE, 10)
    await hears(buf, 440.0)
    leg = remote(switch, call.id)

    said: list[Frame] = []
    heard: list[Frame] = []

    class Tap:
        def said(self, frame: Frame | None) -> None:
            if frame is not None:
                said.append(frame)

        def heard(self, frame: Frame | None) -> None:
            if frame is not None:
                heard.append(frame)

    tap = Tap()
    leg.taps.append(tap)
    await wait_for(lambda: len(said) >= 25 and len(heard) >= 25)
    assert abs(dominant_frequency(np.concatenate(said[-20:])) - 440.0) < 15
    assert abs(dominant_frequency(np.concatenate(heard[-20:])) - 440.0) < 15  # echo: it hears itself
    leg.taps.remove(tap)
    await asyncio.sleep(0.5)
    n = len(said)
    await asyncio.sleep(0.5)
    assert len(said) <= n + 2  # the worker stopped sending once the last tap left

    # A receiver here instead of the echo, and audio pushed from here: the caller hears 880 Hz.
    got: list[Frame] = []
    leg.set_receiver(got.append)
    tone = ToneSource(880.0, 0.3)

    async def pump() -> None:
        while True:
            frame = tone.read_frame()
            if frame is not None:
                leg.push(frame)
            await asyncio.sleep(0.02)

    pumping = asyncio.create_task(pump())
    try:
        await hears(buf, 880.0)
        await wait_for(lambda: len(got) >= 20)
        assert abs(dominant_frequency(np.concatenate(got[-20:])) - 440.0) < 15
    finally:
        pumping.cancel()
    await call.hangup()
    await call.wait_ended(10)


async def test_worker_killed_mid_call_ends_its_calls_and_restarts(
    switch: Switch, make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="softphone.switch.workers")
    one, two = await make_client(DEMO, 440.0), await make_client(ALICE, 660.0)
    doomed, survivor = await one.new_call("echo"), await two.new_call("echo")
    bufs = [BufferSink(), BufferSink()]
    for call, buf in zip((doomed, survivor), bufs, strict=True):
        call.set_output(buf)
        await call.wait_state(CallState.ACTIVE, 10)
    await hears(bufs[0], 440.0)
    index = remote(switch, doomed.id).worker
    assert remote(switch, survivor.id).worker != index
    pid = next(w["pid"] for w in switch.media_workers() if w["index"] == index)

    os.kill(pid, signal.SIGKILL)
    await doomed.wait_ended(15)
    assert doomed.cause == WORKER_LOST_CAUSE == "NORMAL_TEMPORARY_FAILURE"
    assert doomed.cause_code == 41
    record = next(r for r in switch.records if r.call_id == doomed.id)
    assert record.cause == WORKER_LOST_CAUSE
    assert any(
        f"media worker {index} (pid {pid}) died (killed by SIGKILL)" in r.getMessage() for r in caplog.records
    ), [r.getMessage() for r in caplog.records]
    # The other worker's call goes on.
    bufs[1].clear()
    await hears(bufs[1], 660.0)
    assert survivor.state == CallState.ACTIVE

    # The dead worker comes back under a new pid, and a new call works (placed on it: fewest legs).
    assert switch.media_pool is not None
    await switch.media_pool.wait_ready(60)
    assert not alive(pid)
    new_pid = next(w["pid"] for w in switch.media_workers() if w["index"] == index)
    assert new_pid != pid
    again = await one.new_call("echo")
    buf = BufferSink()
    again.set_output(buf)
    await again.wait_state(CallState.ACTIVE, 15)
    assert remote(switch, again.id).worker == index
    await hears(buf, 440.0)
    await again.hangup()
    await again.wait_ended(10)


async def test_stop_leaves_no_worker_process() -> None:
    async with Switch(accounts=default_accounts(), port=0, media_workers=2) as sw:
        pids = [int(w["pid"]) for w in sw.media_workers()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        client = Client(sw.url, DEMO, audio=AudioConfig(backend="tone", tone_hz=440.0))
        await client.connect()
        call = await client.new_call("echo")
        await call.wait_state(CallState.ACTIVE, 10)
    # the switch stopped with the call up: the call got its bye, the workers are gone
    await call.wait_ended(10)
    assert call.cause == "NORMAL_CLEARING"
    await client.close()
    assert [p for p in pids if alive(p)] == []
    assert sw.media_workers() == []


def serve(tmp_path: Any, workers: int) -> tuple[subprocess.Popen[str], list[int]]:
    """``softphone switch serve --media-workers N`` on a free port, and its workers' pids (from its output)."""
    exe = os.path.join(os.path.dirname(sys.executable), "softphone")
    proc = subprocess.Popen(
        [exe, "switch", "serve", "--port", "0", "--media-workers", str(workers),
         "--records", str(tmp_path / "calls.jsonl")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "XDG_DATA_HOME": str(tmp_path)},
    )
    assert proc.stdout is not None
    pids: list[int] = []
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        m = re.match(r"media workers: (\d+) \(pids ([\d, ]+)\)", line)
        if m:
            assert int(m.group(1)) == workers
            pids = [int(p) for p in m.group(2).split(",")]
            break
    assert len(pids) == workers, lines
    assert all(alive(p) for p in pids)
    return proc, pids


def test_serve_killed_leaves_no_orphan_worker(tmp_path: Any) -> None:
    """Even a SIGKILL of the switch (no cleanup at all) leaves no worker: each sees its channel close."""
    proc, pids = serve(tmp_path, 1)
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.monotonic() + 20
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in pids if alive(p)] == []


def test_serve_sigterm_stops_the_workers(tmp_path: Any) -> None:
    proc, pids = serve(tmp_path, 2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "switch stopped" in out
    assert [p for p in pids if alive(p)] == []
