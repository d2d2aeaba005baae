"""Issue 10, items 4, 5, 7 and 8: login throttling, the JWT policy, a bad accounts file, clean shutdown.

Attacked the way a tester would: raw websockets sending wrong passwords and odd tokens, the real
``softphone switch serve`` as a subprocess for start-up errors and SIGTERM / SIGINT.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from conftest import RawClient, login
from typer.testing import CliRunner
from websockets.asyncio.client import connect

from softphone.errors import ConfigError
from softphone.switch import Switch, default_accounts, mint_token
from softphone.switch.accounts import DEFAULT_JWT_SECRET, accounts_from_dict
from softphone.switch.cli import app
from softphone.switch.throttle import ThrottleOptions, options_from_dict

ROOT = Path(__file__).resolve().parents[2]


async def raw(sw: Switch) -> RawClient:
    return RawClient(await connect(sw.url))


async def try_login(c: RawClient, user: str, passwd: str) -> tuple[dict[str, Any], float]:
    t0 = time.monotonic()
    res = await c.request("login", {"login": user, "passwd": passwd}, timeout=15)
    return res, time.monotonic() - t0


# --- item 4: throttling ---------------------------------------------------------------------------------------

FAST = ThrottleOptions(free_failures=2, base_delay_secs=0.1, max_delay_secs=0.4, max_failures_per_connection=6,
                       max_failures_per_credential=8, lockout_secs=1.5)


async def test_wrong_passwords_slow_down_then_close_the_socket(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="softphone.switch")
    async with Switch(port=0, login_throttle=FAST) as sw:
        c = await raw(sw)
        took = []
        for _ in range(5):
            res, dt = await try_login(c, "demo", "wrong")
            assert res["error"] == {"code": -32001, "message": "Login Incorrect"}
            took.append(dt)
        assert took[0] < 0.09 and took[1] < 0.09, took  # the first failures are free
        assert 0.09 <= took[2] < 0.6 and 0.19 <= took[3] < 0.7 and 0.38 <= took[4] < 0.9, took  # then a growing delay
        res, _ = await try_login(c, "demo", "wrong")
        assert res["error"] == {"code": -32001, "message": "too many failed logins on this connection"}
        await asyncio.wait_for(c.closed.wait(), 3)
        assert c.ws.close_code == 4003
        # Another user is not slowed down; demo's correct password works once its delay has passed.
        other = await raw(sw)
        res, dt = await try_login(other, "alice", "alice-secret")
        assert "result" in res and dt < 0.09
        await other.close()
        fresh = await raw(sw)
        res, dt = await try_login(fresh, "demo", "demo-secret")
        assert "result" in res, res
        assert dt < 0.6  # it waited out at most the credential's delay (0.4 s)
        await fresh.close()
        # Success reset the credential: the next failure is free again.
        again = await raw(sw)
        _, dt = await try_login(again, "demo", "wrong")
        assert dt < 0.09
        await again.close()
    throttled = [r for r in caplog.records if "login throttling for 'demo'" in r.getMessage()]
    assert len(throttled) == 1  # logged once
    assert not [r for r in caplog.records if "demo-secret" in r.getMessage() or "wrong" in r.getMessage()]


async def test_credential_lockout_across_sockets_then_recovery() -> None:
    async with Switch(port=0, login_throttle=FAST) as sw:
        for _ in range(2):  # 8 failures over two sockets, each under its own limit
            c = await raw(sw)
            for _ in range(4):
                res, _ = await try_login(c, "alice", "guess")
                assert res["error"]["message"] == "Login Incorrect"
            await c.close()
        c = await raw(sw)
        res, _ = await try_login(c, "alice", "alice-secret")  # even the right password: locked
        assert res["error"]["code"] == -32001
        assert res["error"]["message"].startswith("too many failed logins for alice; locked for"), res
        await asyncio.wait_for(c.closed.wait(), 3)
        ok = await raw(sw)
        res, _ = await try_login(ok, "bob", "bob-secret")  # others are unaffected
        assert "result" in res
        await ok.close()
        await asyncio.sleep(1.6)
        back = await login(sw, "alice", "alice-secret")  # after the lockout a correct login works
        assert back.sessid
        await back.close()


async def test_parallel_guesses_queue_up_per_credential() -> None:
    """20 sockets guessing one password at once: the answers are spread by the growing delay, not all at once."""
    from dataclasses import replace

    async with Switch(port=0, login_throttle=replace(FAST, lockout_secs=30)) as sw:
        clients = [await raw(sw) for _ in range(20)]
        t0 = time.monotonic()

        async def guess(c: RawClient) -> tuple[str, float]:
            res, _ = await try_login(c, "gencred2", "guess")
            return res["error"]["message"], time.monotonic() - t0

        answers = sorted(await asyncio.gather(*(guess(c) for c in clients)), key=lambda a: a[1])
        wrong = [t for m, t in answers if m == "Login Incorrect"]
        locked = [m for m, _ in answers if m.startswith("too many failed logins for gencred2")]
        assert len(wrong) == FAST.max_failures_per_credential and len(locked) == 20 - len(wrong), answers
        # slots: 0, 0, +0.1, +0.2, +0.4, +0.4, +0.4, +0.4 -> the 8th answer about 1.9 s after the first
        assert wrong[1] < 0.1 and wrong[-1] >= 1.7, wrong
        for c in clients:
            await c.close()


def test_throttle_options_from_the_accounts_file() -> None:
    opts = options_from_dict({"login_throttle": {"free_failures": 5, "lockout_secs": 10, "base_delay_secs": 0.2}})
    assert (opts.free_failures, opts.lockout_secs, opts.base_delay_secs) == (5, 10.0, 0.2)
    for bad in ({"free_failures": 1.5}, {"lockout_secs": -1}, {"max_failures_per_connection": 0}, {"nope": 1},
                {"base_delay_secs": True}):
        with pytest.raises(ConfigError):
            options_from_dict({"login_throttle": bad})


# --- item 5: the JWT policy ----------------------------------------------------------------------------------


def forge(claims: dict[str, Any], secret: str = DEFAULT_JWT_SECRET) -> str:
    return jwt.encode({"sub": "gencred1", "telephony_credential_id": "gencred1", **claims}, secret, algorithm="HS256")


async def token_error(sw: Switch, token: str) -> Any:
    c = await raw(sw)
    res = await c.request("login", {"login_token": token})
    await c.close()
    return res.get("error", res.get("result"))


async def test_token_lifetime_policy(caplog: pytest.LogCaptureFixture) -> None:
    now = int(time.time())
    caplog.set_level(logging.WARNING, logger="softphone.switch")
    async with Switch(port=0) as sw:
        cases = {
            "token lifetime too long": [
                forge({"iat": now, "exp": 95617584000}),  # the year 5000
                forge({"exp": now + 48 * 3600}),  # no iat: exp - now
                forge({"iat": now - 60, "exp": now + 24 * 3600 + 120}),
            ],
            "token expired": [forge({"iat": now - 7200, "exp": now - 3600})],
            "token has no expiry (exp)": [forge({"iat": now})],
            "JWT token authentication failed": [
                forge({"iat": now, "exp": now + 60}, "another-secret-long-enough-for-hs256-keys"),
                forge({"iat": now, "exp": "tomorrow"}),
                "not.a.jwt",
            ],
        }
        for message, tokens in cases.items():
            for tok in tokens:
                assert await token_error(sw, tok) == {"code": -32001, "message": message}, (message, tok)
        assert "sessid" in await token_error(sw, forge({"exp": now + 3600}))  # no iat, 1 h: fine
        assert "sessid" in await token_error(sw, mint_token("gencred1", DEFAULT_JWT_SECRET))  # the default 24 h
    forgeable = [r for r in caplog.records if "tokens are forgeable" in r.getMessage()]
    assert len(forgeable) == 1


async def test_max_lifetime_is_configurable_and_cli_tokens_log_in(tmp_path: Path) -> None:
    accts = accounts_from_dict({"jwt_secret": "s3cret-for-the-test-0123456789abcdef", "max_token_lifetime_secs": 3600,
                                "connection": [{"id": "c", "password": "p", "credential": [
                                    {"username": "gc", "password": "gp"}]}]})
    path = tmp_path / "accounts.toml"
    path.write_text('jwt_secret = "s3cret-for-the-test-0123456789abcdef"\nmax_token_lifetime_secs = 3600\n'
                    '[[connection]]\nid = "c"\npassword = "p"\n[[connection.credential]]\nusername = "gc"\n'
                    'password = "gp"\n')
    runner = CliRunner()
    res = runner.invoke(app, ["token", "gc", "--accounts", str(path), "--ttl", "7200"])
    assert res.exit_code == 2 and "ttl" in res.output
    res = runner.invoke(app, ["token", "gc", "--accounts", str(path), "--ttl", "3600"])
    assert res.exit_code == 0, res.output
    cli_token = res.output.strip()
    res = runner.invoke(app, ["token", "gencred1"])  # built-in accounts, default 24 h
    assert res.exit_code == 0
    default_token = res.output.strip()
    async with Switch(accounts=accts, port=0) as sw:
        assert "sessid" in await token_error(sw, cli_token)
        too_long = mint_token("gc", accts.jwt_secret, 7200)
        assert await token_error(sw, too_long) == {"code": -32001, "message": "token lifetime too long"}
    async with Switch(accounts=default_accounts(), port=0) as sw:
        assert "sessid" in await token_error(sw, default_token)


async def test_default_secret_refuses_non_loopback() -> None:
    with pytest.raises(ConfigError, match="built-in jwt_secret"):
        async with Switch(host="0.0.0.0", port=0):
            pass
    accts = default_accounts()
    accts.jwt_secret = "a-real-secret-0123456789abcdef0123"
    async with Switch(accounts=accts, host="0.0.0.0", port=0) as sw:  # a real secret: allowed
        assert sw.port


def serve(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "softphone", "switch", "serve", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, check=False)


def test_serve_refuses_default_secret_beyond_loopback() -> None:
    r = serve("--host", "0.0.0.0", "--port", "0")
    assert r.returncode == 2, r
    assert "built-in jwt_secret" in r.stderr and "Traceback" not in r.stderr + r.stdout


# --- item 7: a bad accounts file exits 2 with one message ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('[[connection]]\nid = "app"\npassword = "p"\nwebhook_url = "http://10.1.2.3/hook"\n', "not loopback"),
        ('[[connection]]\nid = "app"\npassword = "p"\nwebhook_url = "ftp://127.0.0.1/x"\n', "http://"),
        ('[[connection]]\nid = "app"\n', "password"),
        ("[[connection\n", "invalid TOML"),
        ('[call_control]\napi_port = "x"\n', "api_port"),
        ("[login_throttle]\nfree_failures = -1\n", "free_failures"),
        ("max_token_lifetime_secs = 0\n", "max_token_lifetime_secs"),
    ],
)
def test_bad_accounts_file_exits_2_with_one_message(tmp_path: Path, body: str, needle: str) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text('jwt_secret = "x-secret-for-tests-0123456789abcdef"\n' + body)
    r = serve("--accounts", str(path), "--port", "0", "--api-port", "0")
    assert r.returncode == 2, r
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert "Traceback" not in r.stdout


# --- item 8: SIGTERM / SIGINT end calls cleanly -----------------------------------------------------------------


async def start_serve(port: int) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "softphone", "switch", "serve", "--port", str(port), "--records", os.devnull,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen = []
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        seen.append(line)
        assert line, seen
        if b"switch listening" in line:
            return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_ends_calls_with_a_bye_and_closes_sockets(sig: signal.Signals, unused_tcp_port: int) -> None:
    from softphone.client.client import Client
    from softphone.media.hub import AudioConfig
    from softphone.protocol import Credentials

    proc = await start_serve(unused_tcp_port)
    url = f"ws://127.0.0.1:{unused_tcp_port}"
    client = Client(url=url, credentials=Credentials(login="demo", password="demo-secret"),
                    audio=AudioConfig(backend="tone", tone_hz=700.0), ice_servers=[])
    idle = None
    try:
        await client.connect()
        call = await client.new_call("echo")
        from softphone.protocol.states import CallState

        await call.wait_state(CallState.ACTIVE, timeout=15)
        idle = RawClient(await connect(url))
        res, _ = await try_login(idle, "alice", "alice-secret")
        assert "result" in res
        t0 = time.monotonic()
        proc.send_signal(sig)
        await call.wait_ended(timeout=5)
        bye_after = time.monotonic() - t0
        assert call.cause == "NORMAL_CLEARING", call.cause
        await asyncio.wait_for(idle.closed.wait(), 5)
        assert idle.ws.close_code == 1001
        rc = await asyncio.wait_for(proc.wait(), 5)
        exited_after = time.monotonic() - t0
        assert rc == 0, rc
        assert bye_after < 2.0 and exited_after < 3.0, (bye_after, exited_after)
        assert proc.stdout is not None
        out = (await proc.stdout.read()).decode()
        assert "switch stopped" in out and "Traceback" not in out, out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if idle is not None:
            await idle.close()
        await client.close()
