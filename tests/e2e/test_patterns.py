"""The two usage patterns end to end: switch + examples/backend.py (a subprocess) + real clients.

* Pattern 1: the official JS SDK (headless Chromium) is the client application. It calls a
  number nobody owns; the switch parks the call and posts ``call.initiated`` to the example
  backend, which answers, dials the agent (a raw telnyx_rtc client with a MediaPeer) and
  bridges on ``call.answered``. Audio is checked both ways across the bridge.
* Pattern 2: an outside caller (``softphone switch pstn-call``, a subprocess) dials the app's
  number; the backend (``--ivr``) gathers one digit, enqueues the caller (hold tone), dials
  the agent (:class:`softphone.client.client.Client`) and bridges on answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# Appended, not prepended: tests/switch imports its own ``conftest`` by name.
sys.path.append(str(Path(__file__).resolve().parents[1] / "callcontrol"))

from phones import Phone, wait_hz

from softphone.media.dsp import dominant_frequency
from softphone.switch import Switch
from softphone.switch.accounts import load_accounts
from softphone.switch.callcontrol.apps import CallControlOptions
from softphone.switch.callcontrol.engine import CallControl
from softphone.switch.callcontrol.pstn import PstnEndpoint

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
APP_NUMBER = "+13125550150"


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class Stack:
    switch: Switch
    cc: CallControl
    backend: subprocess.Popen[str]


@pytest.fixture
def backend_port() -> int:
    return free_port()


async def start_stack(port: int, *backend_args: str, park_timeout: float = 30.0) -> tuple[Switch, Any]:
    accounts = load_accounts(EXAMPLES / "accounts.toml")
    accounts.connections[:] = [
        dataclasses.replace(c, webhook_url=f"http://127.0.0.1:{port}/webhooks", webhook_failover_url="")
        if c.id == "app"
        else c
        for c in accounts.connections
    ]
    opts = CallControlOptions(api_port=0, outside_ring_s=0.3, park_timeout=park_timeout)
    sw = Switch(accounts=accounts, port=0, call_control=opts)
    await sw.start()
    assert sw.call_control is not None
    proc = subprocess.Popen(
        [
            sys.executable,
            str(EXAMPLES / "backend.py"),
            "--port",
            str(port),
            "--api",
            sw.api_url,
            "--api-key",
            "KEYlocal",
            "--agent",
            "agent",
            *backend_args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    line = await asyncio.to_thread(proc.stdout.readline)
    assert "backend listening" in line, line
    return sw, proc


@pytest.fixture
def stop_backend() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        p.terminate()
        p.wait(5)


def event_types(cc: CallControl, ccid: str) -> list[str]:
    return [e["event_type"] for e in cc.events(call_control_id=ccid)]


async def test_pattern1_js_sdk_calls_backend_bridges_agent(
    tmp_path: Path, backend_port: int, stop_backend: list[subprocess.Popen[str]]
) -> None:
    from harness import BrowserClient, write_tone_wav

    sw, proc = await start_stack(backend_port)
    stop_backend.append(proc)
    assert sw.call_control is not None
    cc = sw.call_control
    try:
        mic = write_tone_wav(tmp_path / "mic-1000.wav", 1000)
        async with Phone(sw.url, "agent", "agent-secret", 600) as agent, BrowserClient(fake_audio_wav=mic) as b:
            await b.connect(sw.url, login="caller", password="caller-secret")
            await b.wait_event("telnyx.ready", timeout=10)
            out = await b.new_call("+18005550199", callerName="Caller")
            inc = await agent.next_incoming(timeout=15)
            # The backend's client_state and Telnyx ids ride on the server invite.
            assert inc.params["client_state"] and inc.params["telnyx_call_control_id"].startswith("v3:")
            await agent.answer(inc)
            await b.wait_call_state(out, "active", timeout=10)
            # Audio across the bridge, both ways.
            await wait_hz(inc, 1000, tol=20)
            for _ in range(30):
                tone = await b.dominant_frequency(out, seconds=0.5)
                if abs(tone.freq - 600) < 20:
                    break
            else:
                raise AssertionError(f"the JS SDK heard {tone}")
            # The webhooks the backend saw, for the caller's leg.
            caller_leg = next(leg for leg in cc.legs.values() if leg.direction == "incoming")
            assert event_types(cc, caller_leg.call_control_id)[:3] == [
                "call.initiated",
                "call.answered",
                "call.bridged",
            ]
            await b.hangup(out)
            await agent.wait_state(inc, "hangup", timeout=10)
            await cc.wait_event("call.hangup", caller_leg.call_control_id)
            assert caller_leg.hangup_source == "caller"
    finally:
        await sw.stop()


async def test_parked_call_seen_by_the_js_sdk(tmp_path: Path) -> None:
    """No backend listening: the call stays parked (early media ringback) until the park timer."""
    from harness import BrowserClient

    sw, proc = await start_stack(free_port(), park_timeout=4.0)
    proc.terminate()  # webhooks now fail: the call simply stays parked
    proc.wait(5)
    try:
        async with BrowserClient() as b:
            await b.connect(sw.url, login="caller", password="caller-secret")
            await b.wait_event("telnyx.ready", timeout=10)
            out = await b.new_call("+18005550199")
            await b.wait_call_state(out, "early", timeout=10)
            ringing = b.frames("recv", "telnyx_rtc.ringing")
            assert ringing and ringing[-1]["params"]["telnyx_call_control_id"].startswith("v3:")
            tone = await b.dominant_frequency(out, seconds=1.0)
            assert 420 < tone.freq < 500, tone  # US ringback, 440 + 480 Hz
            await b.wait_call_state(out, "hangup", timeout=10)
            info = await b.call_state(out)
            assert (info["cause"], info["sipCode"]) == ("RECOVERY_ON_TIMER_EXPIRE", 408), info
    finally:
        await sw.stop()


async def test_pattern2_outside_caller_ivr_queue_agent(
    tmp_path: Path, backend_port: int, stop_backend: list[subprocess.Popen[str]]
) -> None:
    from softphone.client.client import Client
    from softphone.media.hub import AudioConfig
    from softphone.media.sinks import BufferSink
    from softphone.protocol import Credentials

    sw, proc = await start_stack(backend_port, "--ivr")
    stop_backend.append(proc)
    assert sw.call_control is not None
    cc = sw.call_control
    record = tmp_path / "caller-heard.wav"
    heard = BufferSink(seconds=30)
    incoming: asyncio.Queue[Any] = asyncio.Queue()
    try:
        agent = Client(
            url=sw.url,
            credentials=Credentials(login="agent", password="agent-secret"),
            audio=AudioConfig(backend="tone", tone_hz=900.0),
            ice_servers=[],
        )
        agent.on("call.incoming", lambda e: incoming.put_nowait(e.call_id))
        await agent.connect()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "softphone",
            "switch",
            "pstn-call",
            "--from",
            "+15557654321",
            "--to",
            APP_NUMBER,
            "--tone",
            "700",
            "--dtmf",
            "1",
            "--dtmf-delay",
            "0.8",
            "--record",
            str(record),
            "--duration",
            "4",
            "--api",
            sw.api_url,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        gather = await cc.wait_event("call.gather.ended", timeout=20)
        assert gather["payload"]["digits"] == "1" and gather["payload"]["status"] == "valid"
        outside = cc.legs[gather["payload"]["call_control_id"]]
        assert isinstance(outside.endpoint, PstnEndpoint)
        await cc.wait_event("call.enqueued", outside.call_control_id)
        call_id = await asyncio.wait_for(incoming.get(), 15)
        call = agent.calls[call_id]
        assert call.client_state  # the backend's state rides on the invite
        await asyncio.sleep(2.2)  # queued: the caller hears the hold tone meanwhile
        assert abs(dominant_frequency(outside.endpoint.heard(2.0)) - 440) < 15
        call.set_output(heard)
        await call.answer()
        await cc.wait_event("call.bridged", outside.call_control_id)
        for _ in range(40):
            await asyncio.sleep(0.2)
            if abs(dominant_frequency(heard.samples(0.6)) - 700) < 15:
                break
        else:
            raise AssertionError(f"agent heard {dominant_frequency(heard.samples(0.6))}")
        for _ in range(40):
            await asyncio.sleep(0.2)
            if abs(dominant_frequency(outside.endpoint.heard(0.6)) - 900) < 15:
                break
        else:
            raise AssertionError(f"outside caller heard {dominant_frequency(outside.endpoint.heard(0.6))}")
        out, _ = await asyncio.wait_for(cli.communicate(), 20)
        text = out.decode()
        assert cli.returncode == 0, text
        assert "ended: normal_clearing" in text, text
        await call.wait_ended(timeout=10)
        await agent.close()
        assert record.stat().st_size > 48000 * 2 * 3
        import wave

        with wave.open(str(record)) as wf:
            data = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2")
        assert abs(dominant_frequency(data[-48000 * 2 :]) - 900) < 15  # the agent, at the end
    finally:
        await sw.stop()
