"""Client end to end, the edges: hangup fields vs the ended state, punt, calls not reattached."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from softphone.client import AudioConfig, Client, ClientEvent
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

DEMO = Credentials(login="demo", password="demo-secret")


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        yield sw


def make_client(url: str, **kw: Any) -> Client:
    kw.setdefault("random", lambda: 0.0)  # backoff 0.75 s
    return Client(url, DEMO, audio=AudioConfig(backend="tone"), **kw)


async def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_hangup_fields_are_set_before_the_end_is_observable(switch: Switch) -> None:
    """Two calls end in one go (close: BYE both); no handler ever sees an ended call without its cause."""
    client = make_client(switch.url)
    await client.connect()
    calls = [await client.new_call("echo") for _ in range(2)]
    for call in calls:
        await call.wait_state(CallState.ACTIVE)
    seen: list[tuple[str, str | None, int | None, float | None]] = []

    def check(_: ClientEvent) -> None:
        seen.extend((c.state.value, c.cause, c.cause_code, c.ended_at) for c in calls if c.state.is_terminal)

    client.on("call.state", check)
    client.on("call.hangup", check)
    waiter = asyncio.ensure_future(calls[1].wait_ended(5))
    await client.close()
    await waiter
    assert seen
    assert all(cause == "NORMAL_CLEARING" and code == 16 and ended for _, cause, code, ended in seen), seen
    assert calls[1].cause == "NORMAL_CLEARING" and calls[1].ended_at is not None


async def test_remote_bye_sets_cause_before_wait_ended_returns(switch: Switch) -> None:
    client = make_client(switch.url)
    await client.connect()
    try:
        call = await client.new_call("busy")
        await call.wait_ended(5)
        assert call.cause == "USER_BUSY" and call.sip_code == 486 and call.ended_at is not None
    finally:
        await client.close()
