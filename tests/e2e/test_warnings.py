"""Warning codes (issue 15 item 6) against the real switch: token, login, loss raised and cleared, ICE, summary."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from softphone.client import events as ce
from softphone.client.client import AudioConfig, Client
from softphone.client.quality import HIGH_PACKET_LOSS, LOGIN_FAILED, ONLY_HOST_ICE_CANDIDATES, TOKEN_EXPIRING_SOON
from softphone.errors import LoginFailed
from softphone.media.impair import parse
from softphone.media.sources import ToneSource
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts
from softphone.switch.accounts import mint_token

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

DEMO = Credentials(login="demo", password="demo-secret")


async def _until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.1)


def _collect(client: Client) -> list[ce.Event]:
    seen: list[ce.Event] = []
    client.subscribe(seen.append)
    return seen


def _codes(seen: list[ce.Event], kind: type[ce.ClientWarning | ce.CallWarning | ce.CallWarningCleared]) -> list[int]:
    return [e.code for e in seen if isinstance(e, kind)]


async def test_an_expiring_token_raises_34001_before_expiry() -> None:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        token = mint_token("gencred1", default_accounts().jwt_secret, ttl=8)
        exp = time.time() + 8
        client = Client(sw.url, Credentials(token=token), audio=AudioConfig(backend="null"), reconnect=False)
        seen = _collect(client)
        try:
            await client.connect()
            await _until(lambda: TOKEN_EXPIRING_SOON in _codes(seen, ce.ClientWarning), 10)
            warning = next(e for e in seen if isinstance(e, ce.ClientWarning))
            assert warning.ts < exp and warning.warning == "TOKEN_EXPIRING_SOON"
            assert "expires in" in warning.message and token not in warning.message
        finally:
            await client.close()


async def test_wrong_credentials_raise_46001_with_the_login_failure() -> None:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        client = Client(sw.url, Credentials(login="demo", password="wrong-password"),
                        audio=AudioConfig(backend="null"), reconnect=False)
        seen = _collect(client)
        try:
            with pytest.raises(LoginFailed):
                await client.connect()
        finally:
            await client.close()
        names = [e.name for e in seen]
        assert "client.login_failed" in names and _codes(seen, ce.ClientWarning) == [LOGIN_FAILED]
        assert names.index("client.login_failed") < names.index("client.warning")
        assert all("wrong-password" not in json.dumps(e.data()) for e in seen)


async def test_packet_loss_raises_and_clears_when_the_impairment_is_lifted() -> None:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        client = Client(sw.url, DEMO, audio=AudioConfig(backend="null"))
        seen = _collect(client)
        try:
            await client.connect()
            call = await client.new_call("echo")
            call.set_input(ToneSource(440, 0.5))
            await call.wait_state(CallState.ACTIVE, timeout=15)
            # the switch drops 30 % of what it sends us: our received loss per second is ~30 %
            assert sw.set_impairment(parse("loss=30%,seed=4,dir=out"), call.id) == 1
            await _until(lambda: HIGH_PACKET_LOSS in _codes(seen, ce.CallWarning), 20)
            raised = next(e for e in seen if isinstance(e, ce.CallWarning) and e.code == HIGH_PACKET_LOSS)
            assert raised.call_id == call.id and raised.value is not None and raised.value > 10
            assert sw.set_impairment(None, call.id) == 1
            lifted_at = time.time()
            await _until(lambda: HIGH_PACKET_LOSS in _codes(seen, ce.CallWarningCleared), 20)
            cleared = next(e for e in seen if isinstance(e, ce.CallWarningCleared) and e.code == HIGH_PACKET_LOSS)
            assert cleared.ts - lifted_at >= 2.0  # three good seconds, not the first one
            assert call.state == CallState.ACTIVE
            await call.hangup()
            await call.wait_ended(10)
        finally:
            await client.close()


async def test_only_host_candidates_with_an_unanswering_stun_server_raise_33005() -> None:
    """The STUN server is a loopback port nobody answers, so only host candidates are gathered."""
    async with Switch(accounts=default_accounts(), port=0) as sw:
        client = Client(sw.url, DEMO, audio=AudioConfig(backend="null"),
                        ice_servers=[{"urls": "stun:127.0.0.1:9"}], gather_timeout=0.5)
        seen = _collect(client)
        try:
            await client.connect()
            call = await client.new_call("echo")
            await call.wait_state(CallState.ACTIVE, timeout=15)
            await _until(lambda: ONLY_HOST_ICE_CANDIDATES in _codes(seen, ce.CallWarning), 10)
            await call.hangup()
            await call.wait_ended(10)
        finally:
            await client.close()
        plain = Client(sw.url, DEMO, audio=AudioConfig(backend="null"))
        seen = _collect(plain)
        try:
            await plain.connect()
            call = await plain.new_call("echo")
            await call.wait_state(CallState.ACTIVE, timeout=15)
            await asyncio.sleep(1.0)
            assert _codes(seen, ce.CallWarning) == []  # no ICE servers (the local switch): nothing to warn of
            await call.hangup()
            await call.wait_ended(10)
        finally:
            await plain.close()


def test_the_summary_and_json_count_the_warnings() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "softphone", "--json", "--impair", "loss=40%,dir=in,seed=9", "dial", "echo",
         "--local", "--no-audio", "--duration", "7"],
        capture_output=True, text=True, timeout=80)
    assert done.returncode == 0, done.stderr
    objs = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    warnings = [o for o in objs if o["type"] == "call.warning"]
    assert HIGH_PACKET_LOSS in [o["code"] for o in warnings]
    assert all(o["warning"] and o["message"] and o["call_id"] for o in warnings)
    summary = objs[-1]
    assert summary["type"] == "summary"
    assert summary["warnings"]["count"] >= 1 and HIGH_PACKET_LOSS in summary["warnings"]["codes"]
    assert HIGH_PACKET_LOSS in summary["calls"][0]["warnings"]
    assert "warnings: " in done.stderr and "31003" in done.stderr
