"""Phone on the in-memory duplex (no socket, no aiortc): the one writer, typed events in, and the
policies that live in Phone (tones, media-failure hang-up, DTMF de-duplication, second-call hold)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from unit.client.callfakes import ANSWER, FakePeer, call_id_of, invite_params, until
from unit.support.duplex import FakeVertoServer

from softphone.app.phone import DTMF_DEDUP_WINDOW, Phone
from softphone.app.snapshot import PhoneEvent
from softphone.client import events as ce
from softphone.client.call import Call
from softphone.client.client import Client
from softphone.client.events import SocketState
from softphone.config import BUILTIN_PROFILES, Profile
from softphone.errors import LoginFailed, MediaError
from softphone.protocol import CallState, ClientState
from softphone.protocol.states import GatewayState

LOCAL = replace(BUILTIN_PROFILES["local"], audio_backend="null")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server() -> AsyncIterator[FakeVertoServer]:
    FakePeer.reset()
    srv = FakeVertoServer()
    yield srv
    await srv.close()


@pytest.fixture
async def make_phone(server: FakeVertoServer) -> AsyncIterator[Callable[..., Phone]]:
    phones: list[Phone] = []

    def make(**profile_kw: Any) -> Phone:
        def factory(profile: Profile) -> Client:
            return Client.from_profile(profile, connect=server.connect, peer_factory=FakePeer, random=lambda: 0.0)

        clock = profile_kw.pop("clock", Clock())
        phone = Phone(replace(LOCAL, **profile_kw), client_factory=factory, dtmf_clock=clock)
        phones.append(phone)
        return phone

    yield make
    for phone in phones:
        await phone.close()


def call_of(phone: Phone, call_id: str) -> Call:
    assert phone.client is not None
    return phone.client.calls[call_id]


def events_of(phone: Phone) -> list[PhoneEvent]:
    seen: list[PhoneEvent] = []
    phone.on_event(seen.append)
    return seen


async def active_call(phone: Phone, server: FakeVertoServer, dest: str = "echo") -> str:
    call_id = await phone.dial(dest)
    server.push("telnyx_rtc.answer", {"callID": call_id, "sdp": ANSWER})
    await until(lambda: (phone.snapshot.call(call_id) or phone.snapshot.calls[0]).state == CallState.ACTIVE)
    return call_id


async def test_login_snapshot_holds_enums(make_phone: Callable[..., Phone]) -> None:
    phone = make_phone()
    await phone.login()
    snap = phone.snapshot
    assert snap.client.state is ClientState.READY and snap.client.gateway_state is GatewayState.REGED
    assert snap.socket.state is SocketState.OPEN and snap.client.user == "demo"


async def test_login_refused_sets_the_error() -> None:
    srv = FakeVertoServer(login_error=(-32001, "Authentication Required"))
    phone = Phone(LOCAL, client_factory=lambda p: Client.from_profile(p, connect=srv.connect, peer_factory=FakePeer))
    events = events_of(phone)
    with pytest.raises(LoginFailed):
        await phone.login()
    assert phone.snapshot.client.error == "Authentication Required"
    assert "client.login_failed" in [e.type for e in events]
    await phone.close()
    await srv.close()


@pytest.mark.parametrize("ringback", [True, False])
async def test_ringback_exactly_while_ringing(make_phone: Callable[..., Phone], server: FakeVertoServer,
                                              ringback: bool) -> None:
    phone = make_phone(ringback=ringback)
    await phone.login()
    call_id = await phone.dial("echo")
    call = call_of(phone, call_id)
    assert not call.playing_tone
    server.push("telnyx_rtc.ringing", {"callID": call_id})
    await until(lambda: call.state == CallState.RINGING)
    assert call.playing_tone is ringback
    assert phone.snapshot.calls[0].state is CallState.RINGING
    server.push("telnyx_rtc.answer", {"callID": call_id, "sdp": ANSWER})
    await until(lambda: call.state == CallState.ACTIVE)
    assert not call.playing_tone


async def test_ringtone_while_ringing_stops_on_answer(make_phone: Callable[..., Phone],
                                                      server: FakeVertoServer) -> None:
    phone = make_phone()
    await phone.login()
    server.push("telnyx_rtc.invite", invite_params("in-1"))
    await until(lambda: phone.snapshot.ringing_inbound is not None)
    call = call_of(phone, "in-1")
    assert call.playing_tone and "incoming call from Bob <+15550001111>" in phone.snapshot.notice
    await phone.answer()
    assert not call.playing_tone
    await until(lambda: call.state == CallState.ACTIVE)
    assert phone.snapshot.notice == "" and phone.snapshot.current == "in-1"


async def test_no_ringtone_over_a_call_in_progress(make_phone: Callable[..., Phone],
                                                   server: FakeVertoServer) -> None:
    phone = make_phone()
    await phone.login()
    await active_call(phone, server)
    server.push("telnyx_rtc.invite", invite_params("in-9"))
    await until(lambda: phone.snapshot.ringing_inbound is not None)
    assert not call_of(phone, "in-9").playing_tone
    assert phone.snapshot.notice.startswith("incoming call from Bob")


async def test_media_failure_hangs_up(make_phone: Callable[..., Phone], server: FakeVertoServer) -> None:
    phone = make_phone()
    events = events_of(phone)
    await phone.login()
    FakePeer.fail_set_answer = True
    call_id = await phone.dial("echo")
    server.push("telnyx_rtc.answer", {"callID": call_id, "sdp": ANSWER})
    bye = await server.wait_for("telnyx_rtc.bye")
    assert call_id_of(bye) == call_id and bye["params"]["cause"] == "INCOMPATIBLE_DESTINATION"
    await until(lambda: phone.snapshot.calls[0].ended)
    hangup = [e for e in events if e.type == "call.hangup"]
    assert hangup and hangup[0].data["reason"] == "cannot apply the answer (fake)"
    assert "call.media_failed" not in [e.type for e in events]  # the hang-up is what users see


async def test_answer_media_failure_hangs_up(make_phone: Callable[..., Phone], server: FakeVertoServer) -> None:
    phone = make_phone()
    await phone.login()
    FakePeer.fail_accept = True
    server.push("telnyx_rtc.invite", invite_params("in-2"))
    await until(lambda: phone.snapshot.ringing_inbound is not None)
    with pytest.raises(MediaError):
        await phone.answer()
    assert phone.snapshot.calls[0].ended  # hung up before the error reaches the caller
    bye = await server.wait_for("telnyx_rtc.bye")
    assert call_id_of(bye) == "in-2" and bye["params"]["cause"] == "INCOMPATIBLE_DESTINATION"
    await until(lambda: phone.snapshot.calls[0].ended)
    assert phone.snapshot.calls[0].cause == "INCOMPATIBLE_DESTINATION"


async def test_dtmf_from_two_paths_counted_once(make_phone: Callable[..., Phone], server: FakeVertoServer) -> None:
    clock = Clock()
    phone = make_phone(clock=clock)
    events = events_of(phone)
    await phone.login()
    call_id = await active_call(phone, server)
    assert phone.client is not None

    def press(digit: str, source: str, after: float = 0.1) -> None:
        clock.now += after
        assert phone.client is not None
        phone.client.emit(ce.CallDtmf(call_id=call_id, digits=digit, source=source))

    press("5", "info")
    press("5", "inband")  # the same press heard in the audio: dropped
    press("5", "info")
    press("5", "info")  # "55": two presses on one path are two digits
    press("5", "inband")
    press("5", "inband")  # ... and their in-band copies both dropped
    press("#", "inband")
    press("#", "info", after=DTMF_DEDUP_WINDOW + 0.5)  # too late to be the same press
    snap = phone.snapshot.call(call_id)
    assert snap is not None and snap.dtmf_received == "555##"
    assert [(e.data["digits"], e.data["source"]) for e in events if e.type == "call.dtmf"] == [
        ("5", "info"), ("5", "info"), ("5", "info"), ("#", "inband"), ("#", "info")]
    server.push("telnyx_rtc.info", {"callID": call_id, "dtmf": "7"})  # and the real path, through the client
    await until(lambda: (phone.snapshot.call(call_id) or snap).dtmf_received == "555##7")
    assert await phone.expect_dtmf("##7", 0.1) is None


@pytest.mark.parametrize("auto_hold", [True, False])
async def test_dialling_a_second_call_holds_the_first(make_phone: Callable[..., Phone], server: FakeVertoServer,
                                                      auto_hold: bool) -> None:
    phone = make_phone(auto_hold=auto_hold)
    await phone.login()
    first = await active_call(phone, server)
    second = await phone.dial("echo")
    await server.wait_for("telnyx_rtc.invite", 2)
    methods = [(m.get("method"), call_id_of(m)) for m in server.received if "method" in m]
    invites = [m for m in methods if m[0] == "telnyx_rtc.invite"]
    assert invites[-1] == ("telnyx_rtc.invite", second)
    if auto_hold:
        hold = server.requests("telnyx_rtc.modify")
        assert [(m["params"]["action"], call_id_of(m)) for m in hold] == [("hold", first)]
        assert methods.index(("telnyx_rtc.modify", first)) < methods.index(invites[-1])  # held before dialling
        first_snap = phone.snapshot.call(first)
        assert first_snap is not None and first_snap.held and first_snap.state is CallState.HELD
    else:
        assert not server.requests("telnyx_rtc.modify")
        assert call_of(phone, first).state == CallState.ACTIVE
    assert phone.snapshot.current == second


@pytest.mark.parametrize("auto_hold", [True, False])
async def test_answering_a_second_call_holds_the_first(make_phone: Callable[..., Phone], server: FakeVertoServer,
                                                       auto_hold: bool) -> None:
    phone = make_phone(auto_hold=auto_hold)
    await phone.login()
    first = await active_call(phone, server)
    server.push("telnyx_rtc.invite", invite_params("in-3"))
    await until(lambda: phone.snapshot.ringing_inbound is not None)
    await phone.answer()
    await server.wait_for("telnyx_rtc.answer")
    if auto_hold:
        methods = [m.get("method") for m in server.received]
        assert methods.index("telnyx_rtc.modify") < methods.index("telnyx_rtc.answer")
        assert call_of(phone, first).held
    else:
        assert not server.requests("telnyx_rtc.modify") and call_of(phone, first).state == CallState.ACTIVE
    await until(lambda: call_of(phone, "in-3").state == CallState.ACTIVE)


async def test_socket_loss_shows_reconnecting_then_open(make_phone: Callable[..., Phone],
                                                        server: FakeVertoServer) -> None:
    phone = make_phone()
    events = events_of(phone)
    await phone.login()
    assert phone.snapshot.socket.state is SocketState.OPEN and phone.snapshot.socket.url == LOCAL.server
    server.drop()
    await until(lambda: phone.snapshot.socket.state is SocketState.RECONNECTING)
    sock = phone.snapshot.socket
    reconnecting = [e for e in events if e.type == "socket.reconnecting"][-1]
    assert sock.attempt == reconnecting.data["attempt"] == 1
    assert sock.retry_at == pytest.approx(reconnecting.ts + reconnecting.data["delay"])
    assert phone.snapshot.client.state is ClientState.RECONNECTING
    await until(lambda: phone.snapshot.client.state is ClientState.READY, 5.0)
    assert phone.snapshot.socket.state is SocketState.OPEN and phone.snapshot.socket.attempt == 0
    assert server.connections == 2
