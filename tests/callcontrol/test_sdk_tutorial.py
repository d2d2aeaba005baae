"""The README's Call Control tutorial, run as written: its ``sh`` blocks are read from README.md (the
switch, the SDK backend with the public key the switch printed, the agent, pattern 1 and pattern 2)
and each runs as a subprocess on the README's own ports; the outputs are checked against what the
README says they print."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
pytestmark = pytest.mark.e2e


def tutorial_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Tutorial: call flows with the local switch\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    commands = []
    for block in blocks:
        lines = [ln for ln in block.replace("\\\n", " ").splitlines() if ln.strip() and not ln.startswith("#")]
        assert len(lines) == 1, block
        commands.append(lines[0])
    return commands


class Proc:
    """A subprocess whose output lines are collected by a thread."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        words = shlex.split(command)
        assigns = {}
        while "=" in words[0] and not words[0].startswith("."):
            k, _, v = words.pop(0).partition("=")
            assigns[k] = v
        self.command = command
        self.p = subprocess.Popen(words, cwd=ROOT, env={**env, **assigns}, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float = 20.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if re.search(pattern, line):
                    return line
            if self.p.poll() is not None and not self.thread.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"{self.command!r}: no line matching {pattern!r} in {self.lines}")

    def finish(self, timeout: float = 30.0) -> int:
        rc = self.p.wait(timeout)
        self.thread.join(5)
        return rc

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
        self.thread.join(5)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    taken = [p for p in (8765, 8766, 9000) if not port_free(p)]
    assert not taken, f"the tutorial's ports {taken} are taken on this machine (a leftover process?)"
    commands = tutorial_commands()
    assert len(commands) == 5, commands
    serve, backend, agent, pattern1, pattern2 = commands
    assert "switch serve" in serve and "backend.py" in backend and "--public-key" in backend
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_STATE_HOME": str(tmp_path / "state"),
           "HOME": str(tmp_path)}
    procs: list[Proc] = []
    try:
        sw = Proc(serve, env)
        procs.append(sw)
        sw.wait_for(r"^switch listening on ws://127\.0\.0\.1:8765")
        sw.wait_for(r"^call control API on http://127\.0\.0\.1:8766/v2 \(applications: app\)")
        key = sw.wait_for(r"^webhook public key \(ed25519, base64\): ").split()[-1]
        assert len(key) == 44
        placeholder = backend.split("--public-key", 1)[1].split()[0]
        be = Proc(backend.replace(placeholder, key), env)
        procs.append(be)
        be.wait_for(r"^backend listening on http://127\.0\.0\.1:9000/webhooks")
        ag = Proc(agent, env)
        procs.append(ag)
        time.sleep(2.0)  # the agent logs in

        caller = Proc(pattern1, env)
        assert caller.finish(40) == 0, caller.lines
        be.wait_for(r"^  -> bridge v3:")
        be.wait_for(r"^call\.bridged outgoing caller -> agent")
        assert not any("webhook refused" in ln or "  ! " in ln for ln in be.lines), be.lines

        outside = Proc(pattern2.replace("/tmp/caller.wav", str(tmp_path / "caller.wav")), env)
        assert outside.finish(40) == 0, outside.lines
        text = "\n".join(outside.lines)
        assert "parked" in text and "queued" in text and "bridged" in text, text
        assert "ended: normal_clearing" in text, text
        assert (tmp_path / "caller.wav").stat().st_size > 48000
        be.wait_for(r"^  -> enqueue v3:")
    finally:
        for p in reversed(procs):
            p.stop()
