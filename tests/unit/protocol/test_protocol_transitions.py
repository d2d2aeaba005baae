"""The state machines by behaviour: real message sequences in, ``(state, trigger) -> state`` out.

The sequences are the official JS SDK's captures (tests/fixtures/traces) replayed through a
VertoSession (trace_replay.py): our intents where the SDK sent one, the server's messages as
captured. Every expectation is written out here, never read from the tables, so a wrong entry
in softphone/protocol/states.py fails a test. Then illegal moves, from states reached the same
way, must raise LocalProtocolError and change nothing, and late or repeated server messages
must change nothing either.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from trace_replay import Replay, load_trace, new_session

from softphone.errors import LocalProtocolError
from softphone.protocol import events as ev
from softphone.protocol.session import Credentials, VertoSession
from softphone.protocol.states import CallState, ClientState, GatewayState

C = "call"
S = "client"

LOGIN_STEPS = [
    ("login", ((S, "disconnected>connecting"), (S, "connecting>logging_in"))),
    ("<- result:login", ((S, "logging_in>logged_in"),)),
    ("<- telnyx_rtc.clientReady", ()),
    ("<- result:telnyx_rtc.gatewayState", ((S, "logged_in>ready"),)),
]
OUTBOUND_START = [
    ("invite", ((C, "new>requesting"),)),
    ("<- result:telnyx_rtc.invite", ((C, "requesting>trying"),)),
    ("<- telnyx_rtc.ringing", ((C, "trying>ringing"),)),
]
OUTBOUND_ANSWERED = [("<- telnyx_rtc.answer", ((C, "ringing>active"),))]
LOCAL_HANGUP = [
    ("bye", ((C, "active>hangup"),)),
    ("<- result:telnyx_rtc.bye", ((C, "hangup>destroyed"),)),
]
INBOUND = [
    ("<- telnyx_rtc.invite", ((C, "new>ringing"),)),
    ("answer", ((C, "ringing>answering"),)),
    ("<- result:telnyx_rtc.answer", ((C, "answering>active"),)),
    ("<- telnyx_rtc.bye", ((C, "active>hangup"), (C, "hangup>destroyed"))),
]
HOLD = [
    ("modify", ()),  # the hold intent moves nothing: the result's holdState does
    ("<- result:telnyx_rtc.modify", ((C, "active>held"),)),
    ("modify", ()),
    ("<- result:telnyx_rtc.modify", ((C, "held>active"),)),
]
DTMF = [("info", ()), ("<- result:telnyx_rtc.info", ())]
EARLY = [
    ("<- telnyx_rtc.media", ((C, "ringing>early"),)),
    ("<- telnyx_rtc.answer", ((C, "early>active"),)),
]

EXPECTED: dict[str, list[tuple[str, tuple[tuple[str, str], ...]]]] = {
    "login": LOGIN_STEPS,
    "login_token": LOGIN_STEPS,
    "outbound": LOGIN_STEPS + OUTBOUND_START + OUTBOUND_ANSWERED + LOCAL_HANGUP,
    "pcmu": LOGIN_STEPS + OUTBOUND_START + OUTBOUND_ANSWERED + LOCAL_HANGUP,
    "trickle": LOGIN_STEPS + OUTBOUND_START + OUTBOUND_ANSWERED + LOCAL_HANGUP,
    "hold": LOGIN_STEPS + OUTBOUND_START + OUTBOUND_ANSWERED + HOLD + LOCAL_HANGUP,
    "dtmf": LOGIN_STEPS + OUTBOUND_START + OUTBOUND_ANSWERED + DTMF + LOCAL_HANGUP,
    "early_media": LOGIN_STEPS + OUTBOUND_START + EARLY + LOCAL_HANGUP,
    "inbound": LOGIN_STEPS + INBOUND,
    "inbound_pcmu": LOGIN_STEPS + INBOUND,
    "inbound_trickle": LOGIN_STEPS + INBOUND,
    # captured against the local switch: it answers without ringing first
    "preferred_codecs": LOGIN_STEPS + OUTBOUND_START[:2] + [("<- telnyx_rtc.answer", ((C, "trying>active"),))]
    + LOCAL_HANGUP,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_captured_sessions_move_as_expected(name: str) -> None:
    replay = Replay(name).run()
    assert [(s.trigger, s.moves) for s in replay.steps] == EXPECTED[name]
    assert not [e for e in replay.events if isinstance(e, ev.ProtocolViolation)]


# -- helpers: reach a state the way the captures do -------------------------------------------------


def upto(name: str, trigger: str, nth: int = 1) -> Replay:
    """Replay ``name`` until (and including) the ``nth`` step triggered by ``trigger``."""
    full = Replay(name).run()
    count, done_at = 0, None
    for i, step in enumerate(full.steps):
        count += step.trigger == trigger
        if count == nth:
            done_at = i
            break
    assert done_at is not None, f"{name} has no {trigger} #{nth}"
    replay = Replay(name)
    # run record by record until the replay has as many steps
    for cut in range(1, len(replay.records) + 1):
        replay = Replay(name).run(until=cut)
        if len(replay.steps) == done_at + 1:
            return replay
    raise AssertionError("unreachable")


def server_msg(name: str, method: str, nth: int = 1) -> dict[str, Any]:
    """The ``nth`` server request ``method`` of a capture."""
    found = [r["msg"] for r in load_trace(name) if r["dir"] == "server->sdk" and r["msg"].get("method") == method]
    return copy.deepcopy(found[nth - 1])


def feed(sess: VertoSession, msg: dict[str, Any]) -> list[ev.Event]:
    sess.receive_text(json.dumps(msg))
    sess.data_to_send()
    return sess.events_received()


def call_of(replay: Replay) -> tuple[VertoSession, str]:
    assert replay.call_id is not None
    return replay.sess, replay.call_id


def assert_refused(sess: VertoSession, match: str, intent: Any, *args: Any) -> None:
    """``intent(*args)`` raises LocalProtocolError(match) and changes nothing, sends nothing."""
    before = (sess.state, {k: leg.state for k, leg in sess.calls.items()})
    sess.data_to_send()
    with pytest.raises(LocalProtocolError, match=match):
        intent(*args)
    assert (sess.state, {k: leg.state for k, leg in sess.calls.items()}) == before
    assert sess.data_to_send() == []
    assert not [e for e in sess.events_received() if isinstance(e, ev.CallStateChanged | ev.ClientStateChanged)]


# -- illegal intents, from states reached by real sequences ------------------------------------------------


def test_intents_of_a_ringing_inbound_call() -> None:
    sess, cid = call_of(upto("inbound", "<- telnyx_rtc.invite"))
    assert sess.calls[cid].state == CallState.RINGING
    assert_refused(sess, r"^call can't handle dtmf in state ringing$", sess.dtmf, cid, "1")
    assert_refused(sess, r"^call can't handle hold in state ringing$", sess.modify, cid, "hold")
    assert_refused(sess, r"^call can't handle attach_answer in state ringing$", sess.attach_answer, cid, "v=0")
    assert_refused(sess, "only an inbound call can be answered|can't handle", sess.invite, cid, "v=0")


def test_intents_of_an_answered_inbound_call() -> None:
    sess, cid = call_of(upto("inbound", "<- result:telnyx_rtc.answer"))
    assert sess.calls[cid].state == CallState.ACTIVE
    assert_refused(sess, r"^call can't handle answer in state active$", sess.answer, cid, "v=0")
    assert_refused(sess, r"^call can't handle reject in state active$", sess.reject, cid)
    sess.dtmf(cid, "1")  # allowed while active
    assert json.loads(sess.data_to_send()[0])["params"]["dtmf"] == "1"


def test_answering_twice_is_refused() -> None:
    sess, cid = call_of(upto("inbound", "answer"))
    assert sess.calls[cid].state == CallState.ANSWERING
    assert_refused(sess, r"^call can't handle answer in state answering$", sess.answer, cid, "v=0")
    assert_refused(sess, r"^call can't handle dtmf in state answering$", sess.dtmf, cid, "1")


def test_intents_of_an_outbound_call() -> None:
    sess, cid = call_of(upto("outbound", "invite"))
    assert_refused(sess, r"^call can't handle invite in state requesting$", sess.invite, cid, "v=0")
    assert_refused(sess, r"^call can't handle dtmf in state requesting$", sess.dtmf, cid, "1")
    assert_refused(sess, "only an inbound call can be answered", sess.answer, cid, "v=0")
    assert_refused(sess, "only an inbound call can be rejected", sess.reject, cid)
    sess, cid = call_of(upto("early_media", "<- telnyx_rtc.media"))
    assert sess.calls[cid].state == CallState.EARLY
    sess.dtmf(cid, "5")  # DTMF during early media is allowed (IVRs before answer)
    assert_refused(sess, r"^call can't handle unhold in state early$", sess.modify, cid, "unhold")


def test_hanging_up_a_call_that_is_hanging_up() -> None:
    sess, cid = call_of(upto("outbound", "bye"))
    assert sess.calls[cid].state == CallState.HANGUP
    assert_refused(sess, r"^call can't handle hangup in state hangup$", sess.hangup, cid)
    assert_refused(sess, r"^call can't handle dtmf in state hangup$", sess.dtmf, cid, "1")
    assert_refused(sess, r"^call can't handle toggleHold in state hangup$", sess.modify, cid, "toggleHold")


def test_call_intents_need_a_logged_in_client() -> None:
    replay = upto("outbound", "login")
    sess = replay.sess
    assert sess.state == ClientState.LOGGING_IN
    assert_refused(sess, r"^client can't handle new_call in state logging_in$", sess.new_call, "K1", "+1555")
    sess = new_session()
    assert_refused(sess, r"^client can't handle new_call in state disconnected$", sess.new_call, "K1", "+1555")


def test_hold_intents_while_held() -> None:
    sess, cid = call_of(upto("hold", "<- result:telnyx_rtc.modify"))
    assert sess.calls[cid].state == CallState.HELD
    sess.dtmf(cid, "#")
    sess.modify(cid, "hold")  # hold again while held is sent: the server's holdState decides
    sent = [json.loads(t) for t in sess.data_to_send()]
    assert [m["method"] for m in sent] == ["telnyx_rtc.info", "telnyx_rtc.modify"]


# -- late, repeated and out-of-order server messages ---------------------------------------------------


def test_late_ringing_and_media_change_nothing_once_active() -> None:
    sess, cid = call_of(upto("early_media", "<- telnyx_rtc.answer"))
    assert sess.calls[cid].state == CallState.ACTIVE
    events = feed(sess, server_msg("early_media", "telnyx_rtc.ringing"))
    assert sess.calls[cid].state == CallState.ACTIVE
    assert [type(e) for e in events] == [ev.CallRinging]  # reported, no move
    assert feed(sess, server_msg("early_media", "telnyx_rtc.media")) == []
    assert feed(sess, server_msg("early_media", "telnyx_rtc.answer")) == []  # a repeated answer
    assert sess.calls[cid].state == CallState.ACTIVE


def test_media_for_an_inbound_call_is_ignored() -> None:
    sess, cid = call_of(upto("inbound", "<- telnyx_rtc.invite"))
    media = server_msg("early_media", "telnyx_rtc.media")
    media["params"]["callID"] = cid
    assert feed(sess, media) == []
    assert sess.calls[cid].state == CallState.RINGING


def test_an_answer_before_the_invite_is_a_violation() -> None:
    replay = upto("outbound", "<- result:telnyx_rtc.gatewayState")
    sess = replay.sess
    answer = server_msg("outbound", "telnyx_rtc.answer")
    cid = answer["params"]["callID"]
    sess.new_call(cid, "+15550001")
    sess.events_received()
    events = feed(sess, answer)
    assert [e.detail for e in events if isinstance(e, ev.ProtocolViolation)] == [
        "telnyx_rtc.answer: call can't handle remote_answer in state new"]
    assert sess.calls[cid].state == CallState.NEW


def test_a_bye_after_our_bye_changes_nothing_more() -> None:
    sess, cid = call_of(upto("outbound", "bye"))
    bye = server_msg("inbound", "telnyx_rtc.bye")
    bye["params"]["callID"] = cid
    events = feed(sess, bye)
    # already hanging up: no second hangup event; the BYE finishes the call
    assert [type(e) for e in events] == [ev.CallStateChanged]
    assert events[0] == ev.CallStateChanged(cid, CallState.HANGUP, CallState.DESTROYED)
    assert cid not in sess.calls


def test_a_late_modify_result_after_hangup_changes_nothing() -> None:
    replay = upto("hold", "modify")
    sess, cid = call_of(replay)
    pending = [k for k, m in sess.pending_methods().items() if m == "telnyx_rtc.modify"]
    sess.hangup(cid)
    sess.data_to_send()
    sess.events_received()
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": pending[0], "result": {"holdState": "held"}}))
    assert sess.events_received() == []
    assert sess.calls[cid].state == CallState.HANGUP


def test_a_modify_result_without_hold_state_reports_failure_and_stays() -> None:
    sess, cid = call_of(upto("hold", "modify"))
    pending = [k for k, m in sess.pending_methods().items() if m == "telnyx_rtc.modify"]
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": pending[0], "result": {"holdState": ["?"]}}))
    events = sess.events_received()
    assert events == [ev.HoldFailed(cid, "no holdState in result (['?'])")]
    assert sess.calls[cid].state == CallState.ACTIVE


# -- the socket: recovering and reconnecting ------------------------------------------------------------


def test_socket_loss_recovers_calls_and_reconnects() -> None:
    sess, cid = call_of(upto("hold", "<- result:telnyx_rtc.modify"))  # a held call
    sess.connection_lost(will_reconnect=True)
    moves = [(type(e).__name__, e.old, e.new) for e in sess.events_received()
             if isinstance(e, ev.CallStateChanged | ev.ClientStateChanged)]
    assert moves == [("CallStateChanged", CallState.HELD, CallState.RECOVERING),
                     ("ClientStateChanged", ClientState.READY, ClientState.RECONNECTING)]
    assert sess.calls[cid].held
    sess.connecting()
    sess.connection_made()
    login = json.loads(sess.data_to_send()[0])
    assert login["params"]["sessid"] == sess.sessid and login["params"]["reconnection"] is True
    assert sess.state == ClientState.LOGGING_IN
    events = feed(sess, {"jsonrpc": "2.0", "id": login["id"], "result": {"sessid": sess.sessid}})
    assert sess.state == ClientState.LOGGED_IN
    # the server re-offers the call (its invite, as an attach): still recovering, held remembered
    attach = server_msg("hold", "telnyx_rtc.answer") | {"method": "telnyx_rtc.attach"}
    attach["params"] = server_msg("inbound", "telnyx_rtc.invite")["params"] | {"callID": cid}
    events = feed(sess, attach)
    assert [e.held for e in events if isinstance(e, ev.AttachOffer)] == [True]
    assert sess.calls[cid].state == CallState.RECOVERING
    sess.attach_answer(cid, "v=0")
    rid = json.loads(sess.data_to_send()[-1])["id"]
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": rid, "result": {}}))
    assert [(e.old, e.new) for e in sess.events_received() if isinstance(e, ev.CallStateChanged)] == [
        (CallState.RECOVERING, CallState.HELD)]


def test_a_call_not_reattached_ends_locally() -> None:
    sess, cid = call_of(upto("outbound", "<- telnyx_rtc.answer"))
    sess.connection_lost(will_reconnect=True)
    sess.connecting()
    sess.connection_made()
    sess.events_received()
    events = feed(sess, server_msg("outbound", "telnyx_rtc.clientReady"))  # reattached_sessions: []
    assert [(e.old, e.new) for e in events if isinstance(e, ev.CallStateChanged)] == [
        (CallState.RECOVERING, CallState.HANGUP), (CallState.HANGUP, CallState.DESTROYED)]
    assert [e.call_ids for e in events if isinstance(e, ev.CallsNotReattached)] == [(cid,)]


def test_socket_closed_for_good_ends_calls_and_then_nothing_reopens_a_closed_client() -> None:
    sess, cid = call_of(upto("inbound", "<- result:telnyx_rtc.answer"))
    sess.connection_lost(will_reconnect=False)
    assert sess.state == ClientState.DISCONNECTED and cid not in sess.calls
    with pytest.raises(LocalProtocolError, match=r"^client can't handle socket_lost in state disconnected$"):
        sess.connection_lost(will_reconnect=True)
    sess.close()
    assert sess.state == ClientState.CLOSED
    sess.connection_lost(will_reconnect=True)  # closed for good: ignored
    sess.close()
    assert sess.state == ClientState.CLOSED
    with pytest.raises(LocalProtocolError, match=r"^client can't handle connecting in state closed$"):
        sess.connecting()


def test_connecting_while_logged_in_is_refused() -> None:
    sess = upto("login", "<- result:login").sess
    with pytest.raises(LocalProtocolError, match=r"^client can't handle connecting in state logged_in$"):
        sess.connecting()


def test_server_ping_and_keepalive_depend_on_the_client_state() -> None:
    sess = new_session()
    sess.connecting()
    sess.connection_made()
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "telnyx_rtc.ping", "params": {}}))
    assert sess.data_to_send() == []  # not logged in: no answering ping
    assert sess.next_deadline() is None  # and no keepalive
    sess = upto("login", "<- result:telnyx_rtc.gatewayState").sess
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "telnyx_rtc.ping", "params": {}}))
    assert [json.loads(t)["method"] for t in sess.data_to_send()] == ["telnyx_rtc.ping"]


def test_login_while_logging_in_waits_for_the_pending_one() -> None:
    sess = upto("login", "login").sess
    sess.login(Credentials(login="bob", password="x"))
    assert sess.data_to_send() == [] and sess.state == ClientState.LOGGING_IN
    sess = upto("login", "<- result:login").sess
    sess.login(Credentials(login="bob", password="x"))  # logged in: log in again at once
    assert [json.loads(t)["method"] for t in sess.data_to_send()] == ["login"]
    assert sess.state == ClientState.LOGGING_IN


def test_an_unmatched_error_while_logging_in_is_a_rejection() -> None:
    sess = upto("login", "login").sess
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": "nobody", "error": {"code": -32001, "message": "no"}}))
    events = sess.events_received()
    assert ev.LoginRejected(-32001, "no") in events and sess.state == ClientState.DISCONNECTED
    sess = upto("login", "<- result:telnyx_rtc.gatewayState").sess
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": "nobody", "error": {"code": -32001, "message": "no"}}))
    assert sess.state == ClientState.READY  # once ready, it is just an error
    assert [type(e) for e in sess.events_received()] == [ev.RpcErrorReceived]


# -- gateway states (moved from tests/protocol/test_protocol_states.py) ------------------------------------


@pytest.mark.parametrize("state", list(GatewayState))
def test_gateway_state_classes(state: GatewayState) -> None:
    flags = [state.is_ready, state.is_retry, state.is_failure]
    assert sum(flags) <= 1
    assert GatewayState.parse(state.value) is state
    assert GatewayState.parse(state.value.lower()) is state


def test_gateway_parse_unknown() -> None:
    assert GatewayState.parse("nonsense") is GatewayState.UNKNOWN
    assert GatewayState.parse(None) is GatewayState.UNKNOWN
    assert GatewayState.parse(3) is GatewayState.UNKNOWN
    assert GatewayState.REGISTER.is_ready and GatewayState.REGED.is_ready
    assert GatewayState.NOREG.is_retry and GatewayState.UNREGED.is_retry
    assert GatewayState.FAILED.is_failure and GatewayState.FAIL_WAIT.is_failure


def test_established_and_terminal_states() -> None:
    assert {s for s in CallState if s.is_established} == {CallState.ACTIVE, CallState.HELD}
    assert {s for s in CallState if s.is_terminal} == {CallState.HANGUP, CallState.DESTROYED}
