"""The test infrastructure itself: virtual audio, the loopback-only namespace, the SDK pin."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "tests" / "conformance"


def test_virtual_audio_devices(virtual_audio: dict[str, str]) -> None:
    sinks = subprocess.run(["pactl", "list", "short", "sinks"], capture_output=True, text=True, check=True).stdout
    sources = subprocess.run(["pactl", "list", "short", "sources"], capture_output=True, text=True, check=True)
    assert {"spk", "micfeed"} <= {line.split("\t")[1] for line in sinks.splitlines()}
    assert "mic" in {line.split("\t")[1] for line in sources.stdout.splitlines()}
    asoundrc = (Path(virtual_audio["XDG_CONFIG_HOME"]) / "alsa" / "asoundrc").read_text()
    for name in ("vspeaker", "vspeaker_monitor", "vmic", "vmicfeed"):
        assert f"pcm.{name} " in asoundrc


def test_micfeed_reaches_mic(virtual_audio: dict[str, str], tone_wav: Callable[..., Path], tmp_path: Path) -> None:
    """A tone played into micfeed comes out of the virtual microphone at the same frequency."""
    wav = tone_wav(750, seconds=1.5, amplitude=0.5)
    out = tmp_path / "rec.wav"
    rec = subprocess.Popen(
        ["parecord", "--device=mic", "--rate=48000", "--channels=1", "--format=s16le", "--file-format=wav", str(out)]
    )
    try:
        subprocess.run(["paplay", "--device=micfeed", str(wav)], check=True, timeout=10)
    finally:
        rec.terminate()
        rec.wait(timeout=5)
    with wave.open(str(out)) as w:
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    assert x.size > rate and np.sqrt(np.mean(x**2)) > 1000, "the virtual mic recorded (almost) silence"
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    freq = float(np.argmax(spectrum)) * rate / x.size
    assert math.isclose(freq, 750, abs_tol=5), freq


def test_network_namespace_is_loopback_only() -> None:
    mode = os.environ.get("SOFTPHONE_NETNS")
    if mode is None:
        pytest.fail("run the suite through tools/run-tests.sh (make test)", pytrace=False)
    if mode == "host":
        return  # not root: run-tests.sh said so on stderr
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"]
    with socket.create_server(("127.0.0.1", 0)) as srv:
        socket.create_connection(srv.getsockname(), timeout=2).close()


def test_sdk_pinned_and_installed() -> None:
    pkg = json.loads((CONF / "package.json").read_text())
    assert pkg["dependencies"]["@telnyx/webrtc"] == "2.27.10"
    lock = json.loads((CONF / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/@telnyx/webrtc"]["version"] == "2.27.10"
    installed = json.loads((CONF / "node_modules" / "@telnyx" / "webrtc" / "package.json").read_text())
    assert installed["version"] == "2.27.10", "node_modules is stale: run `make deps`"


def test_ci_entry_point() -> None:
    assert (ROOT / ".ci" / "run").read_text().splitlines() == ["#!/usr/bin/env bash", "set -euo pipefail", "make test"]


def test_pre_commit_hooks_are_local() -> None:
    """ruff, mypy and the layer test run from .venv: installing the hooks fetches nothing."""
    text = (ROOT / ".pre-commit-config.yaml").read_text()
    repos = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.strip().startswith("- repo:")]
    assert repos == ["local"]
    hooks = dict(
        (m.group(1), m.group(2))
        for m in re.finditer(r"- id: (\S+)\n(?:\s+\w+:.*\n)*?\s+entry: (.+)", text)
    )
    assert set(hooks) == {"ruff", "mypy", "layers"}, hooks
    for entry in hooks.values():
        tool = entry.split()[0]
        assert tool.startswith(".venv/bin/") and (ROOT / tool).exists(), entry


def test_changelog_has_the_current_version() -> None:
    version = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert version is not None
    heads = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert heads[0] == "Unreleased" and version.group(1) in heads, heads
