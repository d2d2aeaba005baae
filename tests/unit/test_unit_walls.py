"""tests/unit has walls: a socket, a subprocess or PortAudio in a unit test fails it (tests/conftest.py)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from typing import Any

import pytest

from softphone.errors import SoftphoneError


def test_a_socket_fails_loudly(unit_walls: Any) -> None:
    with pytest.raises(unit_walls.error, match="must not open a socket"):
        socket.create_connection(("127.0.0.1", 9))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(unit_walls.error, match="bind"):
        s.bind(("127.0.0.1", 0))
    assert len(unit_walls.violations) == 2
    unit_walls.violations.clear()  # expected here; anywhere else they fail the test at teardown


async def test_a_swallowed_attempt_is_still_recorded(unit_walls: Any) -> None:
    async def client_that_retries() -> str:
        try:
            await asyncio.open_connection("127.0.0.1", 9)
        except (OSError, SoftphoneError):
            return "retrying"
        except Exception:  # what careless code under test might do
            return "swallowed"
        return "connected"

    assert await client_that_retries() == "swallowed"  # not an OSError: no retry loop mistakes it
    assert unit_walls.violations and "loop.create_connection" in unit_walls.violations[0]
    unit_walls.violations.clear()


def test_subprocess_and_portaudio_fail(unit_walls: Any) -> None:
    with pytest.raises(unit_walls.error, match="subprocess"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
    import pyaudio

    with pytest.raises(unit_walls.error, match="PortAudio"):
        pyaudio.PyAudio()
    unit_walls.violations.clear()


async def test_the_event_loop_itself_still_works() -> None:
    """asyncio's self-pipe is a socketpair (no connect, no bind): loops, tasks and queues are fine."""
    q: asyncio.Queue[int] = asyncio.Queue()
    asyncio.get_running_loop().call_soon(q.put_nowait, 1)
    assert await asyncio.wait_for(q.get(), 1) == 1
