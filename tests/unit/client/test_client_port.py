"""Client and Call on the in-memory duplex (no socket, no aiortc): the CallHost port, Call.handle,
typed events up and their string form at the edge."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
from unit.client.callfakes import ANSWER, OFFER, FakePeer, call_id_of, invite_params, make_client, until
from unit.support.duplex import FakeVertoServer

from softphone.client import events as ce
from softphone.client.call import Call
from softphone.client.client import Client, ClientEvent
from softphone.errors import CommandError, MediaError
from softphone.protocol import CallState


@pytest.fixture
async def server() -> AsyncIterator[FakeVertoServer]:
    FakePeer.reset()
    srv = FakeVertoServer()
    yield srv
    await srv.close()


@pytest.fixture
async def client(server: FakeVertoServer) -> AsyncIterator[Client]:
    c = make_client(server)
    await c.connect()
    yield c
    await c.close()


def typed(client: Client) -> list[ce.Event]:
    seen: list[ce.Event] = []
    client.subscribe(seen.append)
    return seen


async def outbound(client: Client, server: FakeVertoServer, dest: str = "echo") -> Call:
    call = await client.new_call(dest)
    invite = await server.wait_for("telnyx_rtc.invite")
    assert call_id_of(invite) == call.id and invite["params"]["sdp"] == OFFER
    return call


async def test_outbound_call_goes_through_the_port(client: Client, server: FakeVertoServer) -> None:
    events = typed(client)
    call = await outbound(client, server)
    assert FakePeer.instances[-1].name == f"call-{call.id[:8]}"  # the peer came from the host's factory
    server.push("telnyx_rtc.ringing", {"callID": call.id})
    await until(lambda: call.state == CallState.RINGING)
    server.push("telnyx_rtc.answer", {"callID": call.id, "sdp": ANSWER})
    await until(lambda: call.state == CallState.ACTIVE)
    await until(lambda: ANSWER in FakePeer.instances[-1].remote)
    assert call.answered_at is not None and call.codec == "PCMU/8000"
    states = [(e.old, e.new) for e in events if isinstance(e, ce.CallStateChanged)]
    assert states == [(CallState.NEW, CallState.REQUESTING), (CallState.REQUESTING, CallState.TRYING),
                      (CallState.TRYING, CallState.RINGING), (CallState.RINGING, CallState.ACTIVE)]
    assert [type(e) for e in events if isinstance(e, ce.CallCreated | ce.CallRinging | ce.CallActive)] == [
        ce.CallCreated, ce.CallRinging, ce.CallActive]
    await call.hangup()
    bye = await server.wait_for("telnyx_rtc.bye")
    assert call_id_of(bye) == call.id and bye["params"]["cause"] == "NORMAL_CLEARING"
    await until(lambda: call.state == CallState.DESTROYED)
    hangups = [e for e in events if isinstance(e, ce.CallHangup)]
    assert len(hangups) == 1 and hangups[0].reason == "local hangup" and not hangups[0].remote
    assert call.id not in client.calls
    await until(lambda: FakePeer.instances[-1].closed)  # media closed by the call on its end


async def test_named_handlers_get_the_edge_form(client: Client, server: FakeVertoServer) -> None:
    named: list[ClientEvent] = []
    client.on("call.state", named.append)
    client.on("call.created", named.append)
    call = await outbound(client, server)
    await until(lambda: len(named) >= 3)
    assert named[0].name == "call.created" and named[0].data == {"direction": "outbound", "remote": "echo"}
    assert named[1] == ClientEvent("call.state", {"old": "new", "new": "requesting"}, call.id, named[1].ts)
    assert type(named[1].data["new"]) is str  # plain JSON values at the edge, not enums
    assert isinstance(named[1].event, ce.CallStateChanged)


async def test_inbound_call_answered_from_the_incoming_handler(client: Client, server: FakeVertoServer) -> None:
    answered: list[str] = []

    async def answer(e: ClientEvent) -> None:
        await client.calls[str(e.call_id)].answer()
        answered.append(str(e.call_id))

    client.on("call.incoming", answer)
    incoming: list[ClientEvent] = []
    client.on("call.incoming", incoming.append)
    server.push("telnyx_rtc.invite", invite_params("in-1"))
    frame = await server.wait_for("telnyx_rtc.answer")
    assert call_id_of(frame) == "in-1" and frame["params"]["sdp"] == ANSWER
    assert incoming[0].data == {"remote_name": "Bob", "remote_number": "+15550001111", "active_calls": 0}
    assert FakePeer.instances[-1].remote == [OFFER]
    await until(lambda: client.calls["in-1"].state == CallState.ACTIVE)
    assert answered == ["in-1"]


async def test_dtmf_info_and_hold(client: Client, server: FakeVertoServer) -> None:
    events = typed(client)
    call = await outbound(client, server)
    server.push("telnyx_rtc.answer", {"callID": call.id, "sdp": ANSWER})
    await until(lambda: call.state == CallState.ACTIVE)
    server.push("telnyx_rtc.info", {"callID": call.id, "dtmf": "5"})
    await until(lambda: any(isinstance(e, ce.CallDtmf) for e in events))
    assert [e for e in events if isinstance(e, ce.CallDtmf)] == [ce.CallDtmf(call_id=call.id, digits="5",
                                                                           source="info")]
    await call.dtmf("1a", delay=0.0)
    await server.wait_for("telnyx_rtc.info", 2)
    infos = server.requests("telnyx_rtc.info")
    assert [m["params"]["dtmf"] for m in infos] == ["1", "A"]
    with pytest.raises(CommandError, match="invalid digit"):
        await call.dtmf("1x")
    assert await call.hold() is True and call.held and FakePeer.instances[-1].muted
    assert [e.held for e in events if isinstance(e, ce.CallHeld)] == [True]
    assert await call.unhold() is False and not FakePeer.instances[-1].muted


async def test_media_failure_is_reported_not_acted_on(client: Client, server: FakeVertoServer) -> None:
    """The client reports CallMediaFailed and leaves the call up: hanging up is the application's policy."""
    events = typed(client)
    FakePeer.fail_set_answer = True
    call = await outbound(client, server)
    server.push("telnyx_rtc.answer", {"callID": call.id, "sdp": ANSWER})
    await until(lambda: any(isinstance(e, ce.CallMediaFailed) for e in events))
    failed = [e for e in events if isinstance(e, ce.CallMediaFailed)]
    assert failed[0].stage == "remote_sdp" and "fake" in failed[0].message
    assert call.state == CallState.ACTIVE and not server.requests("telnyx_rtc.bye")


async def test_answer_failure_raises_and_reports(client: Client, server: FakeVertoServer) -> None:
    events = typed(client)
    FakePeer.fail_accept = True
    server.push("telnyx_rtc.invite", invite_params("in-2"))
    await until(lambda: "in-2" in client.calls)
    call = client.calls["in-2"]
    with pytest.raises(MediaError):
        await call.answer()
    assert [e.stage for e in events if isinstance(e, ce.CallMediaFailed)] == ["answer"]
    assert call.state == CallState.RINGING and not server.requests("telnyx_rtc.answer")


async def test_call_cost_is_the_billing_rule(client: Client, server: FakeVertoServer) -> None:
    from softphone.app.billing import cost

    call = await outbound(client, server)
    assert call.cost() == 0.0  # never answered
    call.answered_at = time.time() - 1.2  # 1.2 s so far: billed as 2 started seconds
    assert 1.2 <= call.duration < 1.9
    assert call.cost() == cost(2.0) == round(2 * 0.002 / 60, 9)
    assert call.cost(0.006) == cost(2.0, 0.006)
