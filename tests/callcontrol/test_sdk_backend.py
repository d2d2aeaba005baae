"""examples/backend.py (written on the official SDK) against the switch with signature checks on:
pattern 1 (a client's parked call answered, the agent dialled and bridged, audio both ways) and
pattern 2 with ``--ivr`` (a spoken prompt through ``gather_using_speak``, a pressed 1, the queue,
the agent); a webhook with a forged signature is refused with 400."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from phones import Phone, wait_hz
from sdkfixtures import SdkEnv, sdk_env

from softphone.switch.accounts import Accounts, load_accounts
from softphone.switch.callcontrol.webhooks import SigningKey

ROOT = Path(__file__).resolve().parents[2]
APP_NUMBER = "+13125550150"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class Stack:
    env: SdkEnv
    backend: subprocess.Popen[str]
    url: str
    lines: list[str]


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    port = free_port()
    hook = f"http://127.0.0.1:{port}/webhooks"

    def accounts(_: str) -> Accounts:
        accts = load_accounts(ROOT / "examples" / "accounts.toml")
        accts.connections[:] = [
            dataclasses.replace(c, webhook_url=hook, webhook_failover_url="") if c.id == "app" else c
            for c in accts.connections
        ]
        return accts

    async with sdk_env(tmp_path, accounts=accounts, api_key="KEYlocal") as env:
        cmd = [sys.executable, str(ROOT / "examples" / "backend.py"), "--port", str(port),
               "--api", env.cc.api_url, "--api-key", "KEYlocal", "--public-key", env.public_key, "--ivr"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        first = await asyncio.to_thread(proc.stdout.readline)
        assert "backend listening" in first, first
        lines: list[str] = []

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))

        reader = asyncio.get_running_loop().run_in_executor(None, pump)
        try:
            yield Stack(env, proc, hook, lines)
        finally:
            proc.terminate()
            proc.wait(5)
            await reader


async def test_pattern1_through_the_sdk_backend(stack: Stack) -> None:
    env = stack.env
    url = env.switch.url
    async with Phone(url, "caller", "caller-secret", 600) as caller, Phone(url, "agent", "agent-secret", 900) as agent:
        out = await caller.dial("+18005550199")
        inc = await agent.next_incoming(timeout=15)
        assert inc.params["client_state"]  # the backend's state rides on the invite
        await agent.answer(inc)
        await wait_hz(out, 900)
        await wait_hz(inc, 600)
        await caller.hangup(out)
        await agent.wait_state(inc, "hangup")
    assert any(line.startswith("  -> bridge ") for line in stack.lines), stack.lines
    assert not any("!" in line for line in stack.lines), stack.lines


async def test_pattern2_ivr_spoken_prompt_then_queue_then_agent(stack: Stack) -> None:
    env = stack.env
    async with Phone(env.switch.url, "agent", "agent-secret", 900) as agent:
        leg = await env.cc.outside_call("+15557654321", APP_NUMBER, audio="tone:700", dtmf="1", dtmf_delay=0.8)
        ccid = leg.call_control_id
        spoke = await env.cc.wait_event("call.speak.started", ccid, timeout=15)
        assert spoke["payload"]["call_control_id"] == ccid
        gather = await env.cc.wait_event("call.gather.ended", ccid, timeout=15)
        assert gather["payload"]["digits"] == "1" and gather["payload"]["status"] == "valid"
        await env.cc.wait_event("call.enqueued", ccid)
        inc = await agent.next_incoming(timeout=15)
        await agent.answer(inc)
        await env.cc.wait_event("call.bridged", ccid)
        await wait_hz(inc, 700)
        await env.run(env.client.calls.actions.hangup, ccid)
        await agent.wait_state(inc, "hangup")
    assert any("digits '1' (valid)" in line for line in stack.lines), stack.lines


async def test_the_backend_refuses_a_forged_webhook(stack: Stack) -> None:
    body = json.dumps({"data": {"event_type": "call.initiated", "id": "x", "occurred_at": "",
                                "record_type": "event", "payload": {"call_control_id": "v3:forged",
                                                                    "direction": "incoming", "to": APP_NUMBER}}})
    forged = SigningKey.generate().sign(body.encode(), int(time.time()))
    async with httpx.AsyncClient() as http:
        r = await http.post(stack.url, content=body, headers={"content-type": "application/json", **forged})
        assert r.status_code == 400
        r = await http.post(stack.url, content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400  # unsigned
        signing = stack.env.cc.webhooks.signing_key
        assert signing is not None
        stale = signing.sign(body.encode(), int(time.time()) - 900)
        r = await http.post(stack.url, content=body, headers={"content-type": "application/json", **stale})
        assert r.status_code == 400
    await asyncio.sleep(0.3)
    assert sum("webhook refused" in line for line in stack.lines) == 3, stack.lines
    assert not any("v3:forged" in line for line in stack.lines)
