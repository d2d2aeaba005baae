"""Helpers and fixtures for tests that run `softphone` subprocesses against a switch subprocess.

Fixtures (a module takes them with ``switch_port, token, env = cliutil.switch_port, cliutil.token, cliutil.env``;
not a conftest.py, because tests/switch imports its own conftest by name):
- ``switch_port``: the port of a `softphone switch serve` started for the module; ``token``: a JWT for gencred1;
- ``env``: an environment with a config file (profiles ``sw``, ``bad``, ``tok``, ``closed``) and a private
  data directory.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PASSWORD = "demo-secret"  # the switch's built-in demo account


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the switch exited early with {proc.returncode}", pytrace=False)
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail("the switch did not start listening", pytrace=False)


def sp(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "softphone", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


@pytest.fixture(scope="module")
def switch_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    log = tmp_path_factory.mktemp("switch") / "switch.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "softphone", "switch", "serve", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_port(port, proc)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.fixture(scope="module")
def token(switch_port: int) -> str:
    out = subprocess.run([sys.executable, "-m", "softphone", "switch", "token", "gencred1"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out.startswith("eyJ")
    return out


@pytest.fixture
def env(tmp_path: Path, switch_port: int, token: str) -> dict[str, str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        'default_profile = "sw"\n'
        f'[profiles.sw]\nserver = "ws://127.0.0.1:{switch_port}"\nusername = "demo"\npassword = "{PASSWORD}"\n'
        'audio_backend = "null"\n'
        f'[profiles.bad]\nserver = "ws://127.0.0.1:{switch_port}"\nusername = "demo"\n'
        'password = "wrong-password-123"\naudio_backend = "null"\n'
        f'[profiles.tok]\nserver = "ws://127.0.0.1:{switch_port}"\ntoken = "{token}"\naudio_backend = "null"\n'
        f'[profiles.closed]\nserver = "ws://127.0.0.1:{free_port()}"\nusername = "demo"\n'
        f'password = "{PASSWORD}"\n'
    )
    cfg.chmod(0o600)
    e = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    e.update(SOFTPHONE_CONFIG=str(cfg), SOFTPHONE_DATA_DIR=str(tmp_path / "data"), COLUMNS="120")
    return e
