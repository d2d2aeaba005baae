"""Generic fixtures for the whole suite (keep this file small; area-specific ones live beside their tests).

- ``unused_tcp_port``: a free TCP port on 127.0.0.1 (``free_tcp_port()`` is the plain function).
- ``tone_wav(freq, seconds=2.0, **kw) -> Path``: a factory writing a 16-bit sine WAV into ``tmp_path``.
- ``virtual_audio``: the private PulseAudio set-up started by ``tools/run-tests.sh``; fails loudly
  when it is not running instead of skipping.
- ``tests/conformance`` is put on ``sys.path`` so any test can ``from harness import BrowserClient``.
- ``unit_walls`` (autouse, active only under ``tests/unit/``): a unit test that opens a socket
  (connect, bind, listen, sendto, name lookup, asyncio connections/servers/endpoints), starts a
  subprocess or opens PortAudio fails loudly, even when the code under test catches the error.
  Nothing heavy is set up for unit tests: ``make test-fast`` runs ``tests/unit`` in seconds.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "conformance"))

from harness import write_tone_wav  # needs the path above; stdlib-only at import

AUDIO_ENV = ("PULSE_SERVER", "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "PA_CI_BASE")
UNIT_DIR = Path(__file__).resolve().parent / "unit"


class UnitWallError(AssertionError):
    """A unit test touched the network, a subprocess or an audio device (not an OSError, so no retry
    loop in the code under test mistakes it for a network failure)."""


class UnitWalls:
    """What ``tests/unit`` may not touch; every attempt is recorded, so a swallowed one still fails."""

    error = UnitWallError
    BLOCKED: tuple[tuple[Any, str, str], ...] = (
        (socket.socket, "connect", "open a socket (connect)"),
        (socket.socket, "connect_ex", "open a socket (connect)"),
        (socket.socket, "bind", "bind a socket"),
        (socket.socket, "listen", "listen on a socket"),
        (socket.socket, "sendto", "send a datagram"),
        (socket, "getaddrinfo", "look a host name up"),
        (socket, "create_connection", "open a socket (create_connection)"),
        (asyncio.BaseEventLoop, "create_connection", "open a connection (loop.create_connection)"),
        (asyncio.BaseEventLoop, "create_server", "start a server (loop.create_server)"),
        (asyncio.BaseEventLoop, "create_datagram_endpoint", "open a UDP endpoint"),
        (asyncio.BaseEventLoop, "getaddrinfo", "look a host name up"),
        (subprocess.Popen, "__init__", "start a subprocess"),
    )

    def __init__(self) -> None:
        self.violations: list[str] = []

    def refuse(self, what: str) -> Callable[..., Any]:
        def refused(*args: Any, **kwargs: Any) -> Any:
            message = (
                f"a unit test must not {what}: tests/unit runs with no sockets, subprocesses or audio "
                "devices (use tests/unit/support/duplex.py, or move the test out of tests/unit)"
            )
            self.violations.append(message)
            raise UnitWallError(message)

        return refused

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for owner, name, what in self.BLOCKED:
            monkeypatch.setattr(owner, name, self.refuse(what))
        try:
            import pyaudio
        except ImportError:  # pragma: no cover - a dev dependency
            return
        monkeypatch.setattr(pyaudio.PyAudio, "__init__", self.refuse("open PortAudio (an audio device)"))


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def unit_walls(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[UnitWalls | None]:
    """Under tests/unit: no sockets, subprocesses or audio devices (see :class:`UnitWalls`)."""
    if UNIT_DIR not in Path(request.node.path).resolve().parents:
        yield None
        return
    walls = UnitWalls()
    walls.install(monkeypatch)
    yield walls
    report = request.node.stash.get(CALL_REPORT, None)
    if walls.violations and not (report is not None and report.failed):  # a swallowed attempt
        pytest.fail("\n".join(dict.fromkeys(walls.violations)), pytrace=False)


CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keeps the call phase's report, so the walls fail a test once, not twice."""
    report: pytest.TestReport = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report


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


# --- parallel runs (pytest-xdist: tools/run-tests.sh) ---------------------------------------------------
# The virtual PulseAudio daemon is one for the whole run, and what it does (moving a stream off an
# unloaded sink, feeding a monitor) is sensitive to a busy CPU: the tests that record a monitor, load
# or unload modules, or list the devices are marked `pulseaudio`, and the whole-suite run gives them a
# serial pass of their own after the parallel one. Everything else owns its switch, ports (port=0) and
# files (tmp_path), so it may run beside anything.
AUDIO_MARKERS = ("audio", "audio_devices")
AUDIO_FIXTURES = ("virtual_audio", "pulse_env")
AUDIO_FILES = ("test_cli_audio_answer.py", "test_cli_tmux.py", "test_cli_trust.py", "test_infra.py")


def needs_the_audio_devices(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    return (
        any(item.get_closest_marker(m) is not None for m in AUDIO_MARKERS)
        or any(f in fixtures for f in AUDIO_FIXTURES)
        or Path(str(item.path)).name in AUDIO_FILES
    )


@pytest.hookimpl(tryfirst=True)  # before -m deselects by these markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if needs_the_audio_devices(item):
            item.add_marker(pytest.mark.pulseaudio)
            item.add_marker(pytest.mark.xdist_group("pulseaudio"))  # one worker, should they run in parallel
