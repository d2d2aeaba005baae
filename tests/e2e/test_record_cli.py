"""`--record` end to end with real `softphone` processes against a `softphone switch serve` subprocess.

Issue 9 item 4: both sides are recorded (stereo: local left, far end right; or --record-mode
mixed/remote). Item 3: whatever ends the call or the process (--duration on either side, the
far end's bye, Ctrl-C on either side) finalises the WAV: its header's frame count matches its size.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path
from typing import Any

import cliutil
import numpy as np
import pytest
from cliutil import PASSWORD, sp

from softphone.cli.exitcodes import ExitCode
from softphone.media.dsp import dominant_frequency
from softphone.switch.accounts import ALICE_PASSWORD

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
switch_port = cliutil.switch_port  # fixture

RATE = 48000


@pytest.fixture
def env(tmp_path: Path, switch_port: int) -> dict[str, str]:
    """Profiles `demo` (default) and `alice` on the module's switch, no audio devices."""
    cfg = tmp_path / "config.toml"
    server = f"ws://127.0.0.1:{switch_port}"
    cfg.write_text(
        'default_profile = "demo"\n'
        f'[profiles.demo]\nserver = "{server}"\nusername = "demo"\npassword = "{PASSWORD}"\naudio_backend = "null"\n'
        f'[profiles.alice]\nserver = "{server}"\nusername = "alice"\npassword = "{ALICE_PASSWORD}"\n'
        'audio_backend = "null"\n'
    )
    cfg.chmod(0o600)
    e = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    e.update(SOFTPHONE_CONFIG=str(cfg), SOFTPHONE_DATA_DIR=str(tmp_path / "data"), COLUMNS="120")
    return e


def tone_file(path: Path, hz: float, seconds: float = 6.0) -> Path:
    n = np.arange(int(RATE * seconds))
    data = (np.sin(2 * np.pi * hz * n / RATE) * 12000).astype("<i2")
    with wave.open(str(path), "wb") as wf:
        wf.setnchannels(1)
        wf.setsampwidth(2)
        wf.setframerate(RATE)
        wf.writeframes(data.tobytes())
    return path


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """The samples (frames x channels) after checking the header against the file's size."""
    with wave.open(str(path)) as wf:
        assert (wf.getframerate(), wf.getsampwidth()) == (RATE, 2)
        channels, frames = wf.getnchannels(), wf.getnframes()
        data = np.frombuffer(wf.readframes(frames), "<i2").reshape(-1, channels)
    assert frames > 0 and data.shape[0] == frames
    assert path.stat().st_size == 44 + frames * channels * 2, f"{path.name}: header says {frames} frames"
    return data, channels


def freq(samples: np.ndarray) -> float:
    return dominant_frequency(samples.astype(np.float64), RATE)


def skip_start(data: np.ndarray, seconds: float = 0.3) -> np.ndarray:
    """Past the ringtone/ringback and the codec's start-up."""
    return data[int(seconds * RATE):]


# --- item 4: both sides ---------------------------------------------------------------------------------


def test_dial_tone_play_a440_records_440_left_and_1004_right(env: dict[str, str], tmp_path: Path) -> None:
    a440 = tone_file(tmp_path / "a440.wav", 440.0)
    out = tmp_path / "r.wav"
    r = sp(env, "dial", "tone", "--play", str(a440), "--record", str(out), "--duration", "1.5")
    assert r.returncode == ExitCode.OK, (r.stdout, r.stderr)
    data, channels = read_wav(out)
    assert channels == 2 and data.shape[0] > 1.2 * RATE
    body = skip_start(data)
    assert abs(freq(body[:, 0]) - 440.0) < 5  # left: what we sent
    assert abs(freq(body[:, 1]) - 1004.0) < 5  # right: the tone service
    assert np.abs(body[:, 0]).max() > 5000 and np.abs(body[:, 1]).max() > 1000


@pytest.mark.parametrize("mode", ["mixed", "remote"])
def test_record_mode_mixed_and_remote(env: dict[str, str], tmp_path: Path, mode: str) -> None:
    a440 = tone_file(tmp_path / "a440.wav", 440.0)
    out = tmp_path / "r.wav"
    r = sp(env, "dial", "tone", "--play", str(a440), "--record", str(out), "--record-mode", mode,
           "--duration", "1.2")
    assert r.returncode == ExitCode.OK, (r.stdout, r.stderr)
    data, channels = read_wav(out)
    assert channels == 1
    body = skip_start(data)[:, 0].astype(np.float64)
    spectrum = np.abs(np.fft.rfft(body))
    bins = np.fft.rfftfreq(body.shape[0], 1 / RATE)

    def power(hz: float) -> float:
        return float(spectrum[(bins > hz - 10) & (bins < hz + 10)].max())

    assert power(1004.0) > 50 * power(700.0)
    if mode == "mixed":
        assert power(440.0) > 50 * power(700.0)
    else:
        assert power(440.0) < power(1004.0) / 50


def test_record_mode_rejects_an_unknown_mode(env: dict[str, str], tmp_path: Path) -> None:
    r = sp(env, "dial", "tone", "--record", str(tmp_path / "r.wav"), "--record-mode", "both")
    assert r.returncode == ExitCode.USAGE


# --- item 3: every end path finalises the file ----------------------------------------------------------


class Proc:
    """A `softphone --json ...` subprocess whose NDJSON events are read by a thread."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[str] = []
        self.p = subprocess.Popen([sys.executable, "-m", "softphone", "--json", *args], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            try:
                self.events.put(json.loads(line))
            except ValueError:
                continue

    def wait_event(self, name: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while name not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0 or (self.p.poll() is not None and self.events.empty()):
                raise AssertionError(f"no {name} event (seen: {self.seen[-8:]})")
            try:
                self.seen.append(self.events.get(timeout=min(left, 0.2))["type"])
            except queue.Empty:
                continue

    def finish(self, timeout: float = 30.0) -> tuple[int, str]:
        try:
            self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            raise
        assert self.p.stderr is not None
        return self.p.returncode, self.p.stderr.read()


# (who ends it, how): the dialler or the answerer ends the call by --duration or by Ctrl-C; the
# other side sees the far end's bye. 5 rounds of the 4 = 20 repetitions, 40 recordings.
END_PATHS = [("dial", "duration"), ("answer", "duration"), ("dial", "sigint"), ("answer", "sigint")]


def test_record_finalised_on_every_end_path_20_times(env: dict[str, str], tmp_path: Path) -> None:
    a440, a660 = tone_file(tmp_path / "a440.wav", 440.0), tone_file(tmp_path / "a660.wav", 660.0)
    failures: list[str] = []
    for rep in range(20):
        ender, how = END_PATHS[rep % len(END_PATHS)]
        d_wav, a_wav = tmp_path / f"dial-{rep}.wav", tmp_path / f"answer-{rep}.wav"
        length = ["--duration", "0.8"]
        answer = Proc(env, "-p", "alice", "answer", "--auto-answer", "0", "--play", str(a660),
                      "--record", str(a_wav), "--timeout", "30",
                      *(length if (ender, how) == ("answer", "duration") else []))
        answer.wait_event("client.ready")
        dial = Proc(env, "dial", "alice", "--play", str(a440), "--record", str(d_wav),
                    *(length if (ender, how) == ("dial", "duration") else ["--duration", "20"]
                      if ender == "answer" else []))
        if how == "sigint":
            target = dial if ender == "dial" else answer
            target.wait_event("call.active")
            time.sleep(0.8)
            target.p.send_signal(signal.SIGINT)
        (d_code, d_err), (a_code, a_err) = dial.finish(), answer.finish()
        what = f"rep {rep} ({ender} ends by {how})"
        assert (d_code, a_code) == (ExitCode.OK, ExitCode.OK), (what, d_err, a_err)
        for err in (d_err, a_err):
            assert "Wave_write" not in err and "closed file" not in err, (what, err)
        for path, mine, theirs in ((d_wav, 440.0, 660.0), (a_wav, 660.0, 440.0)):
            try:
                data, channels = read_wav(path)
                assert channels == 2 and data.shape[0] > 0.5 * RATE, f"{data.shape[0]} frames"
                body = skip_start(data, 0.25)
                assert abs(freq(body[:, 0]) - mine) < 8 and abs(freq(body[:, 1]) - theirs) < 8
            except AssertionError as exc:
                failures.append(f"{what} {path.name}: {exc}")
    assert not failures, "\n".join(failures)
