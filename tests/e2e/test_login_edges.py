"""A server that accepts the socket and never answers the login; Ctrl-C while connecting; no credentials."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from cliutil import free_port, wait_port
from websockets.asyncio.server import ServerConnection, serve

from softphone.cli.exitcodes import ExitCode
from softphone.client.client import AudioConfig, Client
from softphone.errors import TransportError
from softphone.protocol import ClientState, Credentials
from softphone.protocol import verto as v
from softphone.protocol.session import REQUEST_TIMEOUTS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


async def _silent(ws: ServerConnection) -> None:
    async for _ in ws:  # read and never reply
        pass


@pytest.fixture
async def silent_url() -> AsyncIterator[str]:
    async with serve(_silent, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}"


async def test_silent_server_login_times_out_and_leaves_the_client_disconnected(
        silent_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(REQUEST_TIMEOUTS, v.LOGIN, 1.0)
    client = Client(silent_url, Credentials(login="demo", password="demo-secret"), audio=AudioConfig(backend="null"))
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"timed out waiting for the login reply \(1 s\)"):
        await client.connect()
    assert time.monotonic() - started < 5
    assert client.state == ClientState.DISCONNECTED
    await client.close()


@pytest.fixture
def silent_server_port(tmp_path: Path) -> Iterator[int]:
    """A silent websocket server in its own process (so the CLI under test is the only softphone here)."""
    port = free_port()
    code = ("import asyncio, sys\nfrom websockets.asyncio.server import serve\n"
            "async def h(ws):\n    async for _ in ws: pass\n"
            "async def main():\n    async with serve(h, '127.0.0.1', int(sys.argv[1])):\n"
            "        await asyncio.Future()\nasyncio.run(main())\n")
    proc = subprocess.Popen([sys.executable, "-c", code, str(port)])
    try:
        wait_port(port, proc)
        yield port
    finally:
        proc.kill()
        proc.wait(5)


def _env(tmp_path: Path, body: str) -> dict[str, str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(body)
    cfg.chmod(0o600)
    e = {k: val for k, val in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    e.update(SOFTPHONE_CONFIG=str(cfg), SOFTPHONE_DATA_DIR=str(tmp_path / "data"))
    return e


@pytest.mark.parametrize("args", [["dial", "echo"], ["check"], ["answer"], ["run", "-"]])
def test_one_ctrl_c_while_logging_in_exits_130_at_once(tmp_path: Path, silent_server_port: int,
                                                       args: list[str]) -> None:
    env = _env(tmp_path, f'[profiles.default]\nserver = "ws://127.0.0.1:{silent_server_port}"\n'
                         'username = "demo"\npassword = "demo-secret"\naudio_backend = "null"\n')
    proc = subprocess.Popen([sys.executable, "-m", "softphone", "--json", *args], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if args[0] == "run":
        assert proc.stdin is not None
        proc.stdin.write("status\n")
    assert proc.stdin is not None
    proc.stdin.close()
    proc.stdin = None
    time.sleep(2.0)  # the login is under way (and would wait 15 s for the silent server)
    assert proc.poll() is None
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == ExitCode.INTERRUPTED, (out, err)
    assert time.monotonic() - sent < 2.0
    assert '"type":"summary"' in out.splitlines()[-1] and '"exit_code":130' in out


def test_no_credentials_says_what_to_do(tmp_path: Path) -> None:
    env = _env(tmp_path, "")
    for args in (["dial", "+13128889999"], ["check"]):
        r = subprocess.run([sys.executable, "-m", "softphone", *args], env=env, capture_output=True, text=True,
                           timeout=30, check=False)
        assert r.returncode == ExitCode.USAGE, (r.stdout, r.stderr)
        assert "error: error:" not in r.stderr
        for hint in ("softphone config init", "TELNYX_SIP_USER", "softphone demo", "--local"):
            assert hint in r.stderr, r.stderr
    # right after `config init`: a template with empty credentials
    (tmp_path / "config.toml").unlink()
    init = subprocess.run([sys.executable, "-m", "softphone", "config", "init"], env=env, capture_output=True,
                          text=True, timeout=30, check=False)
    assert init.returncode == 0, init.stderr
    r = subprocess.run([sys.executable, "-m", "softphone", "dial", "echo"], env=env, capture_output=True, text=True,
                       timeout=30, check=False)
    assert r.returncode == ExitCode.USAGE and "softphone config init" in r.stderr, (r.stdout, r.stderr)

