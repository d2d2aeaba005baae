"""Client and Call end to end: real websockets, the real local switch, real audio checked by frequency."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np
import pytest

from softphone.client.client import AudioConfig, Client, ClientEvent
from softphone.errors import LoginFailed
from softphone.media.dsp import dominant_frequency
from softphone.media.sinks import BufferSink
from softphone.protocol import CallState, ClientState, Credentials
from softphone.switch import Switch, default_accounts, mint_token, token_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

DEMO = Credentials(login="demo", password="demo-secret")
ALICE = Credentials(login="alice", password="alice-secret")

MakeClient = Callable[..., Awaitable[Client]]


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        yield sw


@pytest.fixture
async def make_client(switch: Switch) -> AsyncIterator[MakeClient]:
    clients: list[Client] = []

    async def make(creds: Credentials = DEMO, tone: float = 440.0, connect: bool = True, **kw: Any) -> Client:
        kw.setdefault("random", lambda: 0.0)  # backoff 0.75 s: deterministic and quick
        client = Client(switch.url, creds, audio=AudioConfig(backend="tone", tone_hz=tone), **kw)
        clients.append(client)
        if connect:
            await client.connect()
        return client

    yield make
    for client in clients:
        await client.close()


def recorder(client: Client) -> list[ClientEvent]:
    events: list[ClientEvent] = []
    client.on("*", events.append)
    return events


def freq_of(buf: BufferSink, seconds: float = 0.5) -> float:
    return dominant_frequency(buf.samples(seconds))


def level(buf: BufferSink, seconds: float = 0.5) -> float:
    s = buf.samples(seconds).astype(np.float64)
    return float(np.sqrt(np.mean(s * s))) if s.size else 0.0


async def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def hears(buf: BufferSink, hz: float, timeout: float = 3.0) -> None:
    await wait_for(lambda: buf.duration_s >= 0.5 and abs(freq_of(buf) - hz) <= 15, timeout)


async def incoming(client: Client, timeout: float = 5.0) -> Any:
    await wait_for(lambda: any(c.direction == "inbound" and c.state == CallState.RINGING
                               for c in client.calls.values()), timeout)
    return next(c for c in client.calls.values() if c.direction == "inbound" and c.state == CallState.RINGING)


# --- login ---------------------------------------------------------------------------------


async def test_login_three_ways(make_client: MakeClient) -> None:
    sip = await make_client(DEMO)
    assert sip.state == ClientState.READY and sip.sessid
    tel = await make_client(Credentials(login="gencred1", password="gencred1-secret"))
    assert tel.state == ClientState.READY
    jwt = await make_client(Credentials(token=token_for("gencred1", default_accounts())))
    assert jwt.state == ClientState.READY


async def test_login_failures(make_client: MakeClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="softphone")
    bad = await make_client(Credentials(login="demo", password="wrong-password-123"), connect=False)
    events = recorder(bad)
    with pytest.raises(LoginFailed):
        await bad.connect()
    assert any(e.name == "client.login_failed" for e in events)
    expired = mint_token("gencred1", default_accounts().jwt_secret, ttl=60, now=time.time() - 3600)
    client = await make_client(Credentials(token=expired), connect=False)
    with pytest.raises(LoginFailed):
        await client.connect()
    assert "wrong-password-123" not in caplog.text and expired not in caplog.text


# --- calls -----------------------------------------------------------------------------------


async def test_echo_tone_round_trip_and_local_hangup(make_client: MakeClient) -> None:
    client = await make_client(DEMO, 440.0)
    events = recorder(client)
    call = await client.new_call("echo")
    buf = BufferSink()
    call.set_output(buf)
    await call.wait_state(CallState.ACTIVE)
    await hears(buf, 440.0)
    await wait_for(lambda: call.stats is not None, 3)
    assert call.stats is not None and call.stats.codec == "opus/48000" and call.stats.packets_received > 0
    assert call.telnyx_call_control_id
    await call.hangup()
    await call.wait_ended(5)
    assert call.cause == "NORMAL_CLEARING" and call.cause_code == 16
    names = [e.name for e in events]
    assert {"call.created", "call.active", "call.stats", "call.hangup"} <= set(names)
    assert call.id not in client.calls


async def test_client_to_client_two_tones_dtmf_hold_remote_hangup(make_client: MakeClient) -> None:
    demo = await make_client(DEMO, 660.0)
    alice = await make_client(ALICE, 880.0)
    out = await demo.new_call("alice", custom_headers=[("X-Test", "yes")])
    a_buf, d_buf = BufferSink(), BufferSink()
    out.set_output(d_buf)
    inbound = await incoming(alice)
    assert ("X-Test", "yes") in inbound.custom_headers
    inbound.set_output(a_buf)
    await inbound.answer()
    await out.wait_state(CallState.ACTIVE)
    await inbound.wait_state(CallState.ACTIVE)
    await hears(d_buf, 880.0)
    await hears(a_buf, 660.0)
    # DTMF by telnyx_rtc.info (first), each digit once per path
    dtmf: list[ClientEvent] = []
    alice.on("call.dtmf", dtmf.append)
    await out.dtmf("12#")
    await wait_for(lambda: "".join(e.data["digits"] for e in dtmf if e.data["source"] == "info") == "12#", 3)
    assert dtmf[0].data == {"digits": "1", "source": "info"}
    inband = "".join(e.data["digits"] for e in dtmf if e.data["source"] == "inband")
    assert set(inband) <= set("12#") and len(inband) <= 3, inband  # best effort: tones the switch relays
    # hold: the held party hears the hold tone (440 Hz), the holder hears nothing
    assert await out.hold() is True and out.held and out.state == CallState.HELD
    await hears(a_buf, 440.0, 4)
    await wait_for(lambda: level(d_buf, 0.3) < 100, 3)
    assert await out.unhold() is False and out.state == CallState.ACTIVE
    await hears(a_buf, 660.0)
    await hears(d_buf, 880.0)
    # remote hangup
    await inbound.hangup()
    await out.wait_ended(5)
    assert out.cause == "NORMAL_CLEARING" and inbound.cause == "NORMAL_CLEARING"


async def test_dtmf_service_reports_both_paths(make_client: MakeClient) -> None:
    """The dtmf service answers each digit with telnyx_rtc.info AND in-band tones: the client reports every
    digit once per path, with its source (softphone.app.Phone de-duplicates: tests/e2e/test_client_phone_dtmf.py)."""
    client = await make_client(DEMO)
    events: list[ClientEvent] = []
    client.on("call.dtmf", events.append)
    call = await client.new_call("dtmf")
    await call.wait_state(CallState.ACTIVE)
    await asyncio.sleep(0.3)
    await call.dtmf("15d#")  # lower-case a-d is accepted and sent as A-D
    await wait_for(lambda: len(events) >= 8, 5)
    await asyncio.sleep(1.0)  # nothing more arrives
    assert len(events) == 8
    assert "".join(e.data["digits"] for e in events if e.data["source"] == "info") == "15D#"
    assert "".join(e.data["digits"] for e in events if e.data["source"] == "inband") == "15D#"


async def test_busy_and_reject_and_early(make_client: MakeClient) -> None:
    client = await make_client(DEMO)
    busy = await client.new_call("busy")
    await busy.wait_ended(5)
    assert (busy.cause, busy.sip_code) == ("USER_BUSY", 486)
    rejected = await client.new_call("reject")
    await rejected.wait_ended(5)
    assert (rejected.cause, rejected.sip_code) == ("CALL_REJECTED", 603)
    early = await client.new_call("early")
    buf = BufferSink()
    early.set_output(buf)
    await early.wait_state(CallState.EARLY, 5)
    await early.wait_state(CallState.ACTIVE, 6)
    await hears(buf, 440.0)


async def test_reject_inbound_and_second_inbound_call(make_client: MakeClient) -> None:
    demo = await make_client(DEMO, 660.0)
    alice = await make_client(ALICE, 880.0)
    gen = await make_client(Credentials(login="gencred1", password="gencred1-secret"), 550.0)
    first = await demo.new_call("alice")
    in1 = await incoming(alice)
    await in1.reject()
    await first.wait_ended(5)
    assert first.cause in ("USER_BUSY", "CALL_REJECTED")
    # one active call, a second one rings in, is answered; both keep audio
    c1 = await demo.new_call("alice")
    in1 = await incoming(alice)
    b1 = BufferSink()
    in1.set_output(b1)
    await in1.answer()
    await c1.wait_state(CallState.ACTIVE)
    c2 = await gen.new_call("alice")
    in2 = await incoming(alice)
    b2 = BufferSink()
    in2.set_output(b2)
    await in2.answer()
    await c2.wait_state(CallState.ACTIVE)
    await hears(b1, 660.0)
    await hears(b2, 550.0)
    assert in1.state == CallState.ACTIVE and len(alice.calls) == 2


async def test_socket_killed_mid_call_reattaches(make_client: MakeClient) -> None:
    client = await make_client(DEMO, 440.0)
    events = recorder(client)
    call = await client.new_call("echo")
    buf = BufferSink()
    call.set_output(buf)
    await call.wait_state(CallState.ACTIVE)
    await hears(buf, 440.0)
    call.mute()
    sessid, old_peer = client.sessid, call.peer
    client.kill_transport()
    await wait_for(lambda: call.state == CallState.RECOVERING, 3)
    killed = time.monotonic()
    await call.wait_state(CallState.ACTIVE, 5)
    assert call.peer is not old_peer and call.muted and client.sessid == sessid
    call.unmute()
    buf.clear()
    await hears(buf, 440.0, 3.0)
    assert time.monotonic() - killed < 3.5
    assert any(e.name == "socket.reconnecting" for e in events)
    assert call.id in client.calls
