"""Every (state, trigger) the session can meet, by behaviour: reach the state with a captured
sequence (tests/fixtures/traces), fire the trigger the way it really happens (our intent, or the
server's captured message aimed at this call, or the socket), and compare the outcome with the
expectation written out below. The expectation is the spec, written by hand: it is not read from
softphone/protocol/states.py, so a wrong table entry fails here.

Outcome notation: the state after the trigger (``destroyed`` once the call is gone), or ``!`` when
the move is illegal: an intent raises LocalProtocolError, a server message becomes a
ProtocolViolation; either way nothing changes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from trace_replay import Replay, load_trace, new_session

from softphone.errors import LocalProtocolError
from softphone.protocol import events as ev
from softphone.protocol.session import Credentials, VertoSession

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"

# -- reaching each call state with captured sequences ---------------------------------------------------


def upto(name: str, trigger: str, nth: int = 1) -> Replay:
    """``name`` replayed up to and including its ``nth`` step triggered by ``trigger``."""
    records = load_trace(name)
    for cut in range(1, len(records) + 1):
        replay = Replay(name).run(until=cut)
        if sum(s.trigger == trigger for s in replay.steps) == nth:
            return replay
    raise AssertionError(f"{name}: no step {trigger} #{nth}")


def relogged(replay: Replay) -> Replay:
    """Lose the socket mid-call, reconnect and log in again: the call waits in ``recovering``."""
    sess = replay.sess
    sess.connection_lost(will_reconnect=True)
    sess.connecting()
    sess.connection_made()
    login = json.loads(sess.data_to_send()[-1])
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": login["id"], "result": {"sessid": sess.sessid}}))
    sess.events_received()
    return replay


def new_outbound() -> Replay:
    replay = upto("outbound", "<- result:telnyx_rtc.gatewayState")
    invite = next(r["msg"] for r in replay.records if r["msg"].get("method") == "telnyx_rtc.invite")
    replay.call_id = invite["params"]["dialogParams"]["callID"]
    replay.sess.new_call(replay.call_id, "+15550001")
    return replay


REACH: dict[str, Callable[[], Replay]] = {
    "out new": new_outbound,
    "out requesting": lambda: upto("outbound", "invite"),
    "out trying": lambda: upto("outbound", "<- result:telnyx_rtc.invite"),
    "out ringing": lambda: upto("outbound", "<- telnyx_rtc.ringing"),
    "out early": lambda: upto("early_media", "<- telnyx_rtc.media"),
    "out active": lambda: upto("outbound", "<- telnyx_rtc.answer"),
    "out held": lambda: upto("hold", "<- result:telnyx_rtc.modify"),
    "out recovering": lambda: relogged(upto("outbound", "<- telnyx_rtc.answer")),
    "out hangup": lambda: upto("outbound", "bye"),
    "in ringing": lambda: upto("inbound", "<- telnyx_rtc.invite"),
    "in answering": lambda: upto("inbound", "answer"),
    "in active": lambda: upto("inbound", "<- result:telnyx_rtc.answer"),
    "in recovering": lambda: relogged(upto("inbound", "<- result:telnyx_rtc.answer")),
}


# -- firing each trigger as it really happens ------------------------------------------------------------


def server(name: str, method: str, call_id: str) -> dict[str, Any]:
    msg = copy.deepcopy(next(r["msg"] for r in load_trace(name)
                             if r["dir"] == "server->sdk" and r["msg"].get("method") == method))
    msg["params"]["callID"] = call_id
    return msg


def attach(call_id: str) -> dict[str, Any]:
    msg = server("inbound", "telnyx_rtc.invite", call_id)
    msg["method"] = "telnyx_rtc.attach"
    return msg


Fire = Callable[[VertoSession, str], Any]
FIRE: dict[str, Fire] = {
    # our intents
    "invite": lambda s, c: s.invite(c, SDP),
    "answer": lambda s, c: s.answer(c, SDP),
    "attach_answer": lambda s, c: s.attach_answer(c, SDP),
    "reject": lambda s, c: s.reject(c),
    "hangup": lambda s, c: s.hangup(c),
    "dtmf": lambda s, c: s.dtmf(c, "1"),
    "hold": lambda s, c: s.modify(c, "hold"),
    "unhold": lambda s, c: s.modify(c, "unhold"),
    "toggleHold": lambda s, c: s.modify(c, "toggleHold"),
    # the server's captured messages, aimed at this call
    "ringing": lambda s, c: s.receive_text(json.dumps(server("outbound", "telnyx_rtc.ringing", c))),
    "media": lambda s, c: s.receive_text(json.dumps(server("early_media", "telnyx_rtc.media", c))),
    "answer<-": lambda s, c: s.receive_text(json.dumps(server("outbound", "telnyx_rtc.answer", c))),
    "bye<-": lambda s, c: s.receive_text(json.dumps(server("inbound", "telnyx_rtc.bye", c))),
    "attach<-": lambda s, c: s.receive_text(json.dumps(attach(c))),
    # the socket
    "lost": lambda s, c: s.connection_lost(will_reconnect=True),
    "closed": lambda s, c: s.connection_lost(will_reconnect=False),
}

COLUMNS = list(FIRE)
#: Short names in the spec below.
ABBR = {"N": "new", "RQ": "requesting", "T": "trying", "R": "ringing", "AN": "answering", "E": "early",
        "A": "active", "H": "held", "RC": "recovering", "HU": "hangup", "D": "destroyed", "!": "!"}
# One row per reached state, one column per trigger (in the order of FIRE). The spec, by hand.
CALL_SPEC = """
                invite answer attach_answer reject hangup dtmf hold unhold toggleHold ringing media answer<- bye<- attach<- lost closed
out new         RQ     !      !             !      D      !    !    !      !          N       N     !        D     RC       RC   D
out requesting  !      !      !             !      HU     !    !    !      !          R       E     A        D     RC       RC   D
out trying      !      !      !             !      HU     !    !    !      !          R       E     A        D     RC       RC   D
out ringing     !      !      !             !      HU     !    !    !      !          R       E     A        D     RC       RC   D
out early       !      !      !             !      HU     E    !    !      !          E       E     A        D     RC       RC   D
out active      !      !      !             !      HU     A    A    A      A          A       A     A        D     RC       RC   D
out held        !      !      !             !      HU     H    H    H      H          H       H     H        D     RC       RC   D
out recovering  !      !      RC            !      HU     !    !    !      !          RC      RC    A        D     RC       RC   D
out hangup      !      !      !             !      !      !    !    !      !          HU      HU    HU       D     HU       D    D
in ringing      !      AN     !             HU     HU     !    !    !      !          R       R     R        D     RC       RC   D
in answering    !      !      !             !      HU     !    !    !      !          AN      AN    AN       D     RC       RC   D
in active       !      !      !             !      HU     A    A    A      A          A       A     A        D     RC       RC   D
in recovering   !      AN     RC            !      HU     !    !    !      !          RC      RC    RC       D     RC       RC   D
"""  # noqa: E501


def _spec(text: str) -> dict[tuple[str, str], str]:
    lines = [line.split() for line in text.strip("\n").splitlines() if line.strip()]
    assert lines[0] == COLUMNS
    out = {}
    for words in lines[1:]:
        row, cells = " ".join(words[:2]), words[2:]
        assert len(cells) == len(COLUMNS), row
        out.update({(row, col): ABBR[cell] for col, cell in zip(COLUMNS, cells, strict=True)})
    return out


EXPECT = _spec(CALL_SPEC)


def outcome(replay: Replay, fire: Fire) -> str:
    sess, cid = replay.sess, replay.call_id
    assert cid is not None and cid in sess.calls
    sess.data_to_send()
    sess.events_received()
    try:
        fire(sess, cid)
    except LocalProtocolError:
        return "!"
    if any(isinstance(e, ev.ProtocolViolation) for e in sess.events_received()):
        return "!"
    return sess.calls[cid].state.value if cid in sess.calls else "destroyed"


@pytest.mark.parametrize("row", list(REACH))
def test_call_matrix(row: str) -> None:
    got = {col: outcome(REACH[row](), FIRE[col]) for col in COLUMNS}
    want = {col: EXPECT[row, col] for col in COLUMNS}
    assert got == want


@pytest.mark.parametrize("row", list(REACH))
def test_refused_moves_change_nothing_and_send_nothing(row: str) -> None:
    for col in COLUMNS:
        if EXPECT[row, col] != "!":
            continue
        replay = REACH[row]()
        sess, cid = replay.sess, replay.call_id
        assert cid is not None
        before = (sess.state, sess.calls[cid].state)
        sess.data_to_send()
        outcome(replay, FIRE[col])
        assert (sess.state, sess.calls[cid].state) == before, col
        sent = [json.loads(t) for t in sess.data_to_send()]
        assert [m for m in sent if "method" in m] == [], col  # acknowledgements only


# -- the client machine --------------------------------------------------------------------------------------

CREDS = Credentials(login="alice", password="secret")


def _with_creds() -> VertoSession:
    sess = new_session()
    sess.login(CREDS)
    return sess


def _then(make: Callable[[], VertoSession], step: Callable[[VertoSession], Any]) -> Callable[[], VertoSession]:
    def reach() -> VertoSession:
        sess = make()
        step(sess)
        sess.data_to_send()
        sess.events_received()
        return sess
    return reach


CLIENT_REACH: dict[str, Callable[[], VertoSession]] = {
    "disconnected": _with_creds,
    "connecting": _then(_with_creds, lambda s: s.connecting()),
    "logging_in": lambda: upto("login", "login").sess,
    "logged_in": lambda: upto("login", "<- result:login").sess,
    "ready": lambda: upto("login", "<- result:telnyx_rtc.gatewayState").sess,
    "reconnecting": _then(lambda: upto("login", "<- result:telnyx_rtc.gatewayState").sess,
                          lambda s: s.connection_lost(will_reconnect=True)),
    "closed": _then(lambda: upto("login", "<- result:telnyx_rtc.gatewayState").sess, lambda s: s.close()),
}


def _pinged(sess: VertoSession) -> str:
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": 99, "method": "telnyx_rtc.ping", "params": {}}))
    return "ping" if any(json.loads(t).get("method") == "telnyx_rtc.ping" for t in sess.data_to_send()) else "-"


CLIENT_FIRE: dict[str, Callable[[VertoSession], Any]] = {
    "connecting": lambda s: s.connecting(),
    "made": lambda s: s.connection_made(),
    "login": lambda s: s.login(CREDS),
    "lost": lambda s: s.connection_lost(will_reconnect=True),
    "closed": lambda s: s.connection_lost(will_reconnect=False),
    "close": lambda s: s.close(),
    "new_call": lambda s: s.new_call("K1", "+15550001"),
    "ping?": _pinged,  # does a server ping get our ping back?
    "keepalive?": lambda s: "due" if s.next_deadline() is not None and s.state.value == "ready" else "-",
}
CLIENT_SPEC = """
               connecting  made        login       lost         closed        close   new_call   ping?  keepalive?
disconnected   connecting  logging_in  disconnected !           disconnected  closed  !          -      -
connecting     connecting  logging_in  logging_in  reconnecting disconnected  closed  !          -      -
logging_in     !           logging_in  logging_in  reconnecting disconnected  closed  !          -      -
logged_in      !           logging_in  logging_in  reconnecting disconnected  closed  logged_in  ping   -
ready          !           logging_in  logging_in  reconnecting disconnected  closed  ready      ping   due
reconnecting   connecting  logging_in  reconnecting reconnecting disconnected closed  !          -      -
closed         !           !           closed      closed       closed        closed  !          -      -
"""


def _client_spec() -> dict[tuple[str, str], str]:
    lines = [line.split() for line in CLIENT_SPEC.strip("\n").splitlines() if line.strip()]
    cols = lines[0]
    assert cols == list(CLIENT_FIRE)
    return {(words[0], col): cell for words in lines[1:] for col, cell in zip(cols, words[1:], strict=True)}


CLIENT_EXPECT = _client_spec()


@pytest.mark.parametrize("row", list(CLIENT_REACH))
def test_client_matrix(row: str) -> None:
    got = {}
    for col, fire in CLIENT_FIRE.items():
        sess = CLIENT_REACH[row]()
        assert sess.state.value == row
        try:
            result = fire(sess)
        except LocalProtocolError:
            got[col] = "!"
            continue
        got[col] = result if isinstance(result, str) else sess.state.value
    assert got == {col: CLIENT_EXPECT[row, col] for col in CLIENT_FIRE}


# -- results of our requests, arriving after other messages moved the call ----------------------------------


def _pending(sess: VertoSession, method: str) -> str | int:
    ids = [k for k, m in sess.pending_methods().items() if m == method]
    assert ids, f"no pending {method}"
    return ids[-1]


def _result(sess: VertoSession, rid: str | int, result: dict[str, Any] | None = None) -> None:
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": rid, "result": result or {}}))


def _error(sess: VertoSession, rid: str | int) -> None:
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": -32002, "message": "nope"}}))


def _late_invite_result_after_ringing(r: Replay) -> None:
    rid = _pending(r.sess, "telnyx_rtc.invite")
    FIRE["ringing"](r.sess, r.call_id or "")
    _result(r.sess, rid)


def _late_invite_result_after_answer(r: Replay) -> None:
    rid = _pending(r.sess, "telnyx_rtc.invite")
    FIRE["answer<-"](r.sess, r.call_id or "")
    _result(r.sess, rid)


def _attach_result(held: bool) -> Callable[[Replay], None]:
    def run(r: Replay) -> None:
        sess, cid = r.sess, r.call_id or ""
        if held:
            sess.calls[cid].held = True  # it was held before the socket went (as connection_lost records)
        FIRE["attach<-"](sess, cid)
        sess.attach_answer(cid, SDP)
        _result(sess, _pending(sess, "telnyx_rtc.attach"))
    return run


def _answer_result_after_bye(r: Replay) -> None:
    rid = _pending(r.sess, "telnyx_rtc.answer")
    r.sess.hangup(r.call_id or "")
    _result(r.sess, rid)


def _hold_result(state: str) -> Callable[[Replay], None]:
    def run(r: Replay) -> None:
        r.sess.modify(r.call_id or "", "toggleHold")
        _result(r.sess, _pending(r.sess, "telnyx_rtc.modify"), {"holdState": state})
    return run


def _invite_error(r: Replay) -> None:
    _error(r.sess, _pending(r.sess, "telnyx_rtc.invite"))


def _invite_error_after_hangup(r: Replay) -> None:
    rid = _pending(r.sess, "telnyx_rtc.invite")
    r.sess.hangup(r.call_id or "")
    _error(r.sess, rid)


RESULTS: list[tuple[str, Callable[[Replay], None], str]] = [
    ("out requesting", _late_invite_result_after_ringing, "ringing"),
    ("out requesting", _late_invite_result_after_answer, "active"),
    ("out requesting", _invite_error, "hangup"),
    ("out requesting", _invite_error_after_hangup, "hangup"),
    ("in recovering", _attach_result(held=False), "active"),
    ("in recovering", _attach_result(held=True), "held"),
    ("in answering", _answer_result_after_bye, "hangup"),
    ("out active", _hold_result("held"), "held"),
    ("out active", _hold_result("active"), "active"),
    ("out active", _hold_result("nonsense"), "active"),
    ("out held", _hold_result("active"), "active"),
    ("out held", _hold_result("held"), "held"),
    ("out held", _hold_result("nonsense"), "held"),
]


@pytest.mark.parametrize(("row", "run", "want"), RESULTS, ids=[f"{r}-{f.__name__}-{w}" for r, f, w in RESULTS])
def test_results_of_our_requests(row: str, run: Callable[[Replay], None], want: str) -> None:
    replay = REACH[row]()
    run(replay)
    sess, cid = replay.sess, replay.call_id or ""
    assert not [e for e in sess.events_received() if isinstance(e, ev.ProtocolViolation)]
    assert (sess.calls[cid].state.value if cid in sess.calls else "destroyed") == want
