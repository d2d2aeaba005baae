"""The shell in a real terminal (tmux): dial echo, see the panel with codec and level meters, hang up, quit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True, timeout=10).stdout


def _wait_for(session: str, predicate: object, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session)
        if predicate(screen):  # type: ignore[operator]
            return screen
        time.sleep(0.2)
    pytest.fail(f"timed out; the screen was:\n{screen}", pytrace=False)


def test_shell_in_tmux(tmp_path: Path, tone_wav: Any) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (apt-get install tmux)", pytrace=False)
    # Under `make test` PortAudio has the virtual devices: the shell uses the virtual microphone,
    # so feed it a tone (played into micfeed) for the level meters to move. Without virtual audio
    # the shell falls back to its tone source by itself.
    feeder = None
    if os.environ.get("PULSE_SERVER"):
        wav = tone_wav(523.0, seconds=60.0)
        feeder = subprocess.Popen(["paplay", "--device=micfeed", str(wav)])
    session = f"softphone-test-{uuid.uuid4().hex[:8]}"
    env = f"SOFTPHONE_DATA_DIR={tmp_path} SOFTPHONE_CONFIG={tmp_path / 'none.toml'} TERM=xterm-256color"
    cmd = f"cd {os.getcwd()} && env {env} {sys.executable} -m softphone shell --local 2>{tmp_path / 'err.txt'}"
    _tmux("new-session", "-d", "-x", "160", "-y", "50", "-s", session, cmd)
    try:
        _wait_for(session, lambda s: "client ready" in s and "softphone>" in s)
        _tmux("send-keys", "-t", session, "dial echo", "Enter")
        screen = _wait_for(session, lambda s: "active" in s and "opus/48000" in s and "█" in s)
        assert "→ echo" in screen
        assert "levels" in screen and "in " in screen and "out " in screen
        _tmux("send-keys", "-t", session, "hangup", "Enter")
        _wait_for(session, lambda s: "ended" in s)
        _tmux("send-keys", "-t", session, "quit", "Enter")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the shell did not exit on quit", pytrace=False)
    finally:
        if feeder is not None:
            feeder.kill()
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert "Traceback" not in (tmp_path / "err.txt").read_text()


def test_panel_with_three_calls_fits_60x30_in_tmux(tmp_path: Path) -> None:
    """Three calls in a 60x30 terminal: the whole panel and the prompt stay on screen; a hung-up call leaves."""
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (apt-get install tmux)", pytrace=False)
    session = f"softphone-test-{uuid.uuid4().hex[:8]}"
    env = f"SOFTPHONE_DATA_DIR={tmp_path} SOFTPHONE_CONFIG={tmp_path / 'none.toml'} TERM=xterm-256color"
    cmd = f"cd {os.getcwd()} && env {env} {sys.executable} -m softphone shell --local 2>{tmp_path / 'err.txt'}"
    _tmux("new-session", "-d", "-x", "60", "-y", "30", "-s", session, cmd)
    try:
        _wait_for(session, lambda s: "client ready" in s and "softphone>" in s)
        for n in range(1, 4):
            _tmux("send-keys", "-t", session, "dial echo", "Enter")
            _wait_for(session, lambda s, n=n: len(re.findall(r"^│ [▶ ] [0-9a-f]{8} → echo", s, re.M)) == n)
        screen = _wait_for(session, lambda s: "opus/48000" in s and "levels in " in s)
        lines = screen.splitlines()
        assert any(line.startswith("╭─ softphone") for line in lines), screen  # the top border is on screen
        assert any(line.startswith("╰") for line in lines), screen
        assert "softphone>" in screen
        assert screen.count("levels") == 1, screen  # details for the current call only
        current = re.search(r"^│ ▶ ([0-9a-f]{8})", screen, re.M)
        assert current is not None, screen
        _tmux("send-keys", "-t", session, "hangup", "Enter")
        _wait_for(session, lambda s: f"{current[1]} → echo" in s and "hangup" in s)
        _wait_for(session, lambda s: f"{current[1]} → echo" not in s, timeout=15)
        _tmux("send-keys", "-t", session, "quit", "Enter")
        _wait_for(session, lambda s: "hang up and quit? [y/N]" in s)
        _tmux("send-keys", "-t", session, "y", "Enter")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if subprocess.run(["tmux", "has-session", "-t", session], capture_output=True).returncode != 0:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the shell did not exit on quit", pytrace=False)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert "Traceback" not in (tmp_path / "err.txt").read_text()
