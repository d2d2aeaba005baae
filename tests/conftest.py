"""Generic fixtures for the whole suite (keep this file small; area-specific ones live beside their tests).

- ``unused_tcp_port``: a free TCP port on 127.0.0.1 (``free_tcp_port()`` is the plain function).
- ``tone_wav(freq, seconds=2.0, **kw) -> Path``: a factory writing a 16-bit sine WAV into ``tmp_path``.
- ``virtual_audio``: the private PulseAudio set-up started by ``tools/run-tests.sh``; fails loudly
  when it is not running instead of skipping.
- ``tests/conformance`` is put on ``sys.path`` so any test can ``from harness import BrowserClient``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "conformance"))

from harness import write_tone_wav  # needs the path above; stdlib-only at import

AUDIO_ENV = ("PULSE_SERVER", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "PA_CI_BASE")


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def unused_tcp_port() -> int:
    return free_tcp_port()


@pytest.fixture
def tone_wav(tmp_path: Path) -> Callable[..., Path]:
    def make(freq: float, seconds: float = 2.0, **kw: Any) -> Path:
        return write_tone_wav(tmp_path / f"tone-{freq:g}Hz.wav", freq, seconds=seconds, **kw)

    return make


def _pulse_answers() -> bool:
    if not shutil.which("pactl"):
        return False
    r = subprocess.run(["pactl", "info"], capture_output=True, timeout=5, check=False)
    return r.returncode == 0


def pytest_report_header(config: pytest.Config) -> list[str]:
    if not os.environ.get("PULSE_SERVER"):
        return ["virtual audio: NOT active (run the suite with `make test` or tools/run-tests.sh)"]
    state = "answering" if _pulse_answers() else "NOT answering"
    cfg = os.environ.get("XDG_CONFIG_HOME")
    return [f"virtual audio: {os.environ['PULSE_SERVER']} ({state}), XDG_CONFIG_HOME={cfg}"]


@pytest.fixture(scope="session")
def virtual_audio() -> dict[str, str]:
    """The virtual-audio environment; fails (never skips) when it is missing."""
    missing = [k for k in AUDIO_ENV if not os.environ.get(k)]
    if missing:
        pytest.fail(
            f"virtual audio is not set up ({', '.join(missing)} unset): run `make test` "
            "or `eval \"$(tools/virtual-audio.sh start)\"` first",
            pytrace=False,
        )
    if not _pulse_answers():
        server = os.environ["PULSE_SERVER"]
        pytest.fail(f"the PulseAudio daemon at {server} does not answer `pactl info`", pytrace=False)
    return {k: os.environ[k] for k in AUDIO_ENV}
