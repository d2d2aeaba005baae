"""Real `softphone` subprocesses against a running switch: `answer` by key press in tmux, `dial --play/--record`
through echo, and `devices` with and without the virtual audio. Missing tmux or virtual audio fail, never skip."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from softphone.cli.exitcodes import ExitCode
from softphone.media.dsp import dominant_frequency
from softphone.switch.accounts import ALICE_PASSWORD, DEMO_PASSWORD

pytestmark = pytest.mark.e2e

AUDIO_ENV = ("PULSE_SERVER", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "PA_CI_BASE")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def switch_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = _free_port()
    log = tmp_path_factory.mktemp("switch") / "switch.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "softphone", "switch", "serve", "--port", str(port)],
                                stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 15
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"the switch exited early with {proc.returncode}: {log.read_text()}", pytrace=False)
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.monotonic() > deadline:
                    pytest.fail("the switch did not start listening", pytrace=False)
                time.sleep(0.05)
            yield port
        finally:
            proc.terminate()
            proc.wait(10)


@pytest.fixture
def env(tmp_path: Path, switch_port: int) -> dict[str, str]:
    """Profiles `demo` (default) and `alice` on the running switch, no audio devices."""
    cfg = tmp_path / "config.toml"
    server = f"ws://127.0.0.1:{switch_port}"
    cfg.write_text(
        'default_profile = "demo"\n'
        f'[profiles.demo]\nserver = "{server}"\nusername = "demo"\npassword = "{DEMO_PASSWORD}"\n'
        'audio_backend = "null"\n'
        f'[profiles.alice]\nserver = "{server}"\nusername = "alice"\npassword = "{ALICE_PASSWORD}"\n'
        'audio_backend = "null"\n'
    )
    cfg.chmod(0o600)
    e = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    e.update(SOFTPHONE_CONFIG=str(cfg), SOFTPHONE_DATA_DIR=str(tmp_path / "data"), COLUMNS="120")
    return e


def sp(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "softphone", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, check=False)


# --- answer with a key press, in a real terminal ------------------------------------------------------------

def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True, timeout=10).stdout


def _wait_screen(session: str, predicate: Callable[[str], bool], timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session)
        if predicate(screen):
            return screen
        time.sleep(0.2)
    pytest.fail(f"timed out; the screen was:\n{screen}", pytrace=False)


@pytest.mark.parametrize("key, code", [("a", ExitCode.OK), ("r", ExitCode.REJECTED)])
def test_answer_by_key_press_in_tmux(env: dict[str, str], tmp_path: Path, key: str, code: ExitCode) -> None:
    if shutil.which("tmux") is None:
        pytest.fail("tmux is not installed (apt-get install tmux)", pytrace=False)
    session = f"softphone-answer-{uuid.uuid4().hex[:8]}"
    rc_file, err = tmp_path / "rc", tmp_path / "err.txt"
    envs = " ".join(f"{k}={shlex.quote(env[k])}" for k in ("SOFTPHONE_CONFIG", "SOFTPHONE_DATA_DIR"))
    cmd = (f"cd {shlex.quote(os.getcwd())} && env {envs} TERM=xterm-256color {sys.executable} -m softphone "
           f"-p alice answer --timeout 30 --duration 1.5 2>{err}; echo $? >{rc_file}; sleep 30")
    _tmux("new-session", "-d", "-x", "150", "-y", "40", "-s", session, cmd)
    caller: subprocess.Popen[str] | None = None
    try:
        _wait_screen(session, lambda s: "waiting for calls to alice" in s)
        caller = subprocess.Popen([sys.executable, "-m", "softphone", "dial", "alice", "--duration", "3",
                                   "--wait-answer", "20"], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        _wait_screen(session, lambda s: "press a to answer" in s)
        _tmux("send-keys", "-t", session, key)
        if key == "a":
            _wait_screen(session, lambda s: "← " in s and "active" in s)  # the panel's inbound row
        deadline = time.monotonic() + 20
        while not rc_file.exists() or not rc_file.read_text().strip():
            if time.monotonic() > deadline:
                pytest.fail(f"answer did not exit; screen:\n{_tmux('capture-pane', '-p', '-t', session)}",
                            pytrace=False)
            time.sleep(0.2)
        screen = _tmux("capture-pane", "-p", "-t", session)
        assert int(rc_file.read_text()) == code, screen
        out, caller_err = caller.communicate(timeout=30)
        if key == "a":
            assert caller.returncode == ExitCode.OK, (out, caller_err)
            assert "summary" in screen and ("inbound" in screen or "← " in screen)
        else:  # rejecting is a BYE with USER_BUSY, as in the JS SDK: the caller sees busy
            assert caller.returncode == ExitCode.BUSY, (out, caller_err)
    finally:
        if caller is not None and caller.poll() is None:
            caller.kill()
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
    assert "Traceback" not in err.read_text()


# --- dial --play / --record -----------------------------------------------------------------------------------

def test_dial_play_to_echo_records_the_tone(env: dict[str, str], tmp_path: Path,
                                            tone_wav: Callable[..., Path]) -> None:
    tone = tone_wav(770.0, seconds=4.0)
    out = tmp_path / "call.wav"
    r = sp(env, "dial", "echo", "--play", str(tone), "--record", str(out), "--duration", "2.5")
    assert r.returncode == ExitCode.OK, (r.stdout, r.stderr)
    with wave.open(str(out)) as wf:
        rate, channels = wf.getframerate(), wf.getnchannels()
        data = np.frombuffer(wf.readframes(wf.getnframes()), "<i2").reshape(-1, channels)
    assert data.shape[0] > 1.5 * rate
    heard = data[:, 0].astype(np.float64)  # the left (or only) channel is what came back from echo
    loud = heard[int(0.5 * rate):]
    assert np.abs(loud).max() > 1000, "the recording is silent"
    assert abs(dominant_frequency(loud, rate) - 770.0) < 5


# --- devices ----------------------------------------------------------------------------------------------

def test_devices_lists_the_virtual_devices(virtual_audio: dict[str, str]) -> None:
    e = {**os.environ, "COLUMNS": "200"}
    r = subprocess.run([sys.executable, "-m", "softphone", "devices"], capture_output=True, text=True, env=e,
                       timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    assert "vmic" in r.stdout and "vspeaker" in r.stdout
    r = subprocess.run([sys.executable, "-m", "softphone", "--json", "devices"], capture_output=True, text=True,
                       env=e, timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    devices = json.loads(r.stdout)["devices"]
    names = {d["name"] for d in devices}
    assert {"vmic", "vspeaker"} <= names, names
    vmic = next(d for d in devices if d["name"] == "vmic")
    assert vmic["inputs"] >= 1
    assert next(d for d in devices if d["name"] == "vspeaker")["outputs"] >= 1


def _host_has_sound_card() -> bool:
    try:
        cards = Path("/proc/asound/cards").read_text()
    except OSError:
        return False
    return "no soundcards" not in cards and cards.strip() != ""


def test_devices_without_pulseaudio(tmp_path: Path) -> None:
    # No PulseAudio and none of the virtual devices' ALSA names: a private, empty config and runtime dir.
    e = {k: v for k, v in os.environ.items() if k not in AUDIO_ENV}
    e.update(PULSE_SERVER=f"unix:{tmp_path}/no-such-socket", XDG_CONFIG_HOME=str(tmp_path / "cfg"),
             XDG_RUNTIME_DIR=str(tmp_path / "run"))
    r = subprocess.run([sys.executable, "-m", "softphone", "devices"], capture_output=True, text=True, env=e,
                       timeout=30, check=False)
    assert r.returncode == ExitCode.OK, r.stderr
    assert "vmic" not in r.stdout and "Traceback" not in r.stderr
    j = subprocess.run([sys.executable, "-m", "softphone", "--json", "devices"], capture_output=True, text=True,
                       env=e, timeout=30, check=False)
    assert j.returncode == ExitCode.OK, j.stderr
    devices = json.loads(j.stdout)["devices"]
    if not _host_has_sound_card():  # CI containers: PortAudio finds nothing at all
        assert devices == []
        assert r.stdout.strip() == "no audio devices (PortAudio lists none)"
