"""Shared fixtures and helpers for the ``test_sdk_*`` conformance suite (no tests here).

The official ``@telnyx/webrtc`` SDK runs in headless Chromium (:class:`harness.BrowserClient`)
against the real :class:`softphone.switch.Switch`, started in-process on 127.0.0.1, port 0.
Test modules import the ``switch`` fixture from here (``from test_sdk_support import switch``).

Missing prerequisites (Debian's Chromium, the npm-installed SDK bundle) fail loudly: this
suite never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from harness import CHROMIUM, SDK_BUNDLE, BrowserClient, Event, Tone, write_tone_wav

from softphone.switch import Switch, default_accounts

TOLERANCE_HZ = 20.0
"""How far the dominant frequency of what a browser hears may be from the tone expected."""
AUDIBLE_DBFS = -60.0
"""Quieter than this is not a tone. Chromium's noise suppression (on by default in the SDK's
getUserMedia) slowly attenuates a steady sine microphone, from about -15 to -45 dBFS over a
few seconds; what the switch sends as silence measures -inf."""


def require_prerequisites() -> None:
    """Fail (never skip) when Chromium or the SDK's node_modules are missing."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: install the Debian package `chromium` (make deps)", pytrace=False
        )
    if not SDK_BUNDLE.is_file():
        pytest.fail(
            f"the @telnyx/webrtc bundle is missing ({SDK_BUNDLE}): run `npm ci` in tests/conformance (make deps)",
            pytrace=False,
        )


class SwitchLog(logging.Handler):
    """Keeps the switch's log lines (softphone.*) so failures can show what the switch did."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.name}: {record.getMessage()}")


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    """The real switch on 127.0.0.1:<free port> with the built-in accounts."""
    require_prerequisites()
    log = SwitchLog()
    root = logging.getLogger("softphone")
    old_level = root.level
    root.addHandler(log)
    root.setLevel(logging.DEBUG)
    try:
        async with Switch(accounts=default_accounts(), host="127.0.0.1", port=0) as sw:
            sw.test_log = log  # type: ignore[attr-defined]
            yield sw
    finally:
        root.removeHandler(log)
        root.setLevel(old_level)


def switch_log(sw: Switch, tail: int = 40) -> str:
    lines: list[str] = getattr(sw, "test_log", SwitchLog()).lines
    return "\n".join(lines[-tail:])


@contextlib.asynccontextmanager
async def browser(tmp_path: Path, freq: float | None, name: str = "mic") -> AsyncIterator[BrowserClient]:
    """A BrowserClient whose microphone plays a ``freq`` Hz sine (None: Chromium's default beep)."""
    wav = write_tone_wav(tmp_path / f"{name}-{freq:g}Hz.wav", freq) if freq is not None else None
    async with BrowserClient(fake_audio_wav=wav, timeout=10.0) as b:
        yield b


async def login(b: BrowserClient, sw: Switch, **creds: Any) -> Event:
    """Connect the SDK to the switch with ``creds`` (login/password or login_token); wait for ready."""
    await b.connect(sw.url, **creds)
    return await b.wait_event("telnyx.ready", timeout=10)


async def hear(b: BrowserClient, call_id: str, seconds: float = 0.8) -> Tone:
    return await b.dominant_frequency(call_id, seconds=seconds)


async def assert_hears(
    b: BrowserClient, call_id: str, freq: float, *, seconds: float = 0.8, tries: int = 3, what: str = ""
) -> Tone:
    """The browser's received audio on ``call_id`` has its dominant frequency at ``freq`` ±20 Hz.

    A few short windows are allowed, because the first one can still catch the start of the
    media path (silence or a ringback tail).
    """
    seen: list[Tone] = []
    for _ in range(tries):
        tone = await hear(b, call_id, seconds)
        seen.append(tone)
        if abs(tone.freq - freq) <= TOLERANCE_HZ and tone.rms_dbfs > AUDIBLE_DBFS:
            return tone
    raise AssertionError(f"{what or 'browser'} expected {freq} Hz on call {call_id}, heard {seen}")


async def wait_until(
    pred: Callable[[], bool], timeout: float = 5.0, what: str | Callable[[], str] = "condition"
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.05)


def call_updates(b: BrowserClient, call_id: str) -> list[dict[str, Any]]:
    """Every callUpdate notification the SDK fired for ``call_id``, oldest first."""
    return [
        e.data
        for e in b.events
        if e.name == "telnyx.notification" and e.data.get("type") == "callUpdate" and e.data.get("id") == call_id
    ]


def states(b: BrowserClient, call_id: str) -> list[str]:
    """The distinct successive states the SDK reported for ``call_id``."""
    out: list[str] = []
    for d in call_updates(b, call_id):
        if not out or out[-1] != d["state"]:
            out.append(d["state"])
    return out
