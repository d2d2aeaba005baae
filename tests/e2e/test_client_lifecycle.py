"""Client end to end, the edges: hangup fields vs the ended state, punt, calls not reattached."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from softphone.client.client import AudioConfig, Client, ClientEvent
from softphone.protocol import CallState, ClientState, Credentials
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


async def test_punt_stops_reconnecting_and_ends_calls_without_bye(
        switch: Switch, caplog: pytest.LogCaptureFixture) -> None:
    client = make_client(switch.url)
    events: list[ClientEvent] = []
    client.on("*", events.append)
    await client.connect()
    try:
        call = await client.new_call("echo")
        await call.wait_state(CallState.ACTIVE)
        with caplog.at_level(logging.DEBUG, logger="softphone.client.client"):
            assert await switch.punt(client.sessid or "")
            await call.wait_ended(5)
            await asyncio.sleep(1.5)  # a reconnect would be scheduled after 0.75 s
        punted = [e for e in events if e.name == "client.punted"]
        assert len(punted) == 1 and "punt" in punted[0].data["reason"]
        assert call.cause == "PURGE" and "punt" in call.hangup_reason
        assert not any("telnyx_rtc.bye" in r.getMessage() for r in caplog.records if "->" in r.getMessage())
        assert not any(e.name in ("socket.reconnecting", "socket.connecting") for e in events[events.index(punted[0]):])
        assert client.state != ClientState.READY
    finally:
        await client.close()


async def test_calls_not_reattached_after_reconnect_end_locally() -> None:
    old = Switch(accounts=default_accounts(), port=0)
    await old.start()
    port = urlsplit(old.url).port
    assert port
    client = make_client(old.url)
    events: list[ClientEvent] = []
    client.on("*", events.append)
    new: Switch | None = None
    try:
        await client.connect()
        call = await client.new_call("echo")
        await call.wait_state(CallState.ACTIVE)
        sessid = client.sessid
        client.kill_transport()
        await old.stop()  # its BYE cannot reach the client: the socket is gone
        new = Switch(accounts=default_accounts(), port=port)  # knows neither the session nor the call
        await new.start()
        await call.wait_ended(10)
        assert call.hangup_reason == "not reattached after reconnect"
        assert call.cause == "NORMAL_TEMPORARY_FAILURE"
        await client.wait_ready(5)
        assert client.sessid == sessid and call.id not in client.calls
        assert any(e.name == "socket.reconnecting" for e in events)
        hangups = [e for e in events if e.name == "call.hangup"]
        assert len(hangups) == 1 and hangups[0].data["remote"] is False
    finally:
        await client.close()
        if new is not None:
            await new.stop()
