"""Helpers for tests that run `softphone` subprocesses against a switch subprocess (fixtures in conftest.py)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

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
