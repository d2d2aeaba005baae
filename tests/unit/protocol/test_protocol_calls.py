"""Call flows on the sans-I/O session (PROTOCOL.md §4-§5)."""

from __future__ import annotations

import pytest
from unit.support.proto_util import (
    SDP,
    err,
    inbound_ringing,
    last_request,
    logged_in,
    make_session,
    of,
    outbound_active,
    ready,
    req,
    res,
    sent,
)

from softphone.errors import LocalProtocolError
from softphone.protocol import events as ev
from softphone.protocol import verto as v
from softphone.protocol.states import CallState, ClientState


def states(evs: list[ev.Event], call_id: str) -> list[tuple[CallState, CallState]]:
    return [(e.old, e.new) for e in evs if isinstance(e, ev.CallStateChanged) and e.call_id == call_id]


def test_outbound_invite_ringing_early_answer() -> None:
    sess, _ = ready()
    leg = sess.new_call("K1", "+15550001", caller_name="Alice", caller_number="+15550000",
                        custom_headers=[("X-Foo", "bar")], client_state="c3Q=", codecs=["PCMU"])
    assert leg.state == CallState.NEW
    assert sess.data_to_send() == []
    sess.invite("K1", SDP)
    inv = last_request(sent(sess), v.INVITE)
    p = inv["params"]
    assert p["sessid"] == "S1" and p["sdp"] == SDP and p["User-Agent"] == sess.call_user_agent
    dp = p["dialogParams"]
    assert dp["callID"] == "K1" and dp["destination_number"] == "+15550001"
    assert dp["caller_id_name"] == "Alice" and dp["caller_id_number"] == "+15550000"
    assert dp["remote_caller_id_name"] == "Outbound Call" and dp["remote_caller_id_number"] == "+15550001"
    assert dp["custom_headers"] == [{"name": "X-Foo", "value": "bar"}]
    assert dp["clientState"] == "c3Q="
    assert dp["preferred_codecs"] == [{"channels": 1, "clockRate": 8000, "mimeType": "audio/PCMU"}]
    assert dp["attach"] is False and dp["audio"] is True and dp["video"] is False
    sess.receive_text(res(inv["id"], {"callID": "K1", "message": "CALL CREATED"}))
    assert leg.state == CallState.TRYING
    sess.receive_text(req(10, v.RINGING, {"callID": "K1", "telnyx_call_control_id": "cc1",
                                          "telnyx_session_id": "ts1", "telnyx_leg_id": "tl1"}))
    assert sent(sess) == [{"jsonrpc": "2.0", "id": 10, "result": {"method": v.RINGING}}]
    evs = sess.events_received()
    assert of(evs, ev.CallRinging) == [ev.CallRinging("K1", v.TelnyxIds("cc1", "ts1", "tl1"))]
    assert leg.state == CallState.RINGING
    sess.receive_text(req(11, v.MEDIA, {"callID": "K1", "sdp": SDP}))
    assert of(sess.events_received(), ev.RemoteEarlyMedia) == [ev.RemoteEarlyMedia("K1", SDP)]
    assert leg.state == CallState.EARLY
    sess.receive_text(req(12, v.ANSWER, {"callID": "K1", "telnyx_call_control_id": "cc2",
                                         "dialogParams": {"custom_headers": [{"name": "X-R", "value": 5}]}}))
    evs = sess.events_received()
    ans = of(evs, ev.RemoteAnswer)
    assert ans == [ev.RemoteAnswer("K1", None, v.TelnyxIds("cc2", "ts1", "tl1"), (("X-R", "5"),))]
    assert leg.state == CallState.ACTIVE
    # ids flow into later dialogParams
    sess.dtmf("K1", "1")
    dp = last_request(sent(sess), v.INFO)["params"]["dialogParams"]
    assert (dp["telnyxCallControlId"], dp["telnyxSessionId"], dp["telnyxLegId"]) == ("cc2", "ts1", "tl1")
    # a repeated answer is acknowledged and ignored
    sess.receive_text(req(13, v.ANSWER, {"callID": "K1", "sdp": SDP}))
    assert not of(sess.events_received(), ev.RemoteAnswer)


def test_answer_without_any_sdp_hangs_up() -> None:
    sess, _ = ready()
    sess.new_call("K1", "+1")
    sess.invite("K1", SDP)
    sess.data_to_send()
    sess.receive_text(req(12, v.ANSWER, {"callID": "K1"}))
    evs = sess.events_received()
    assert of(evs, ev.CallHangup)[0].cause == "INCOMPATIBLE_DESTINATION"
    assert last_request(sent(sess), v.BYE)["params"]["causeCode"] == 88


def test_media_without_sdp_is_violation() -> None:
    sess, _ = ready()
    sess.new_call("K1", "+1")
    sess.invite("K1", SDP)
    sess.receive_text(req(11, v.MEDIA, {"callID": "K1", "sdp": " "}))
    assert of(sess.events_received(), ev.ProtocolViolation)


def test_message_for_unknown_call_is_violation() -> None:
    sess, _ = ready()
    sess.receive_text(req(11, v.RINGING, {"callID": "nope"}))
    assert of(sess.events_received(), ev.ProtocolViolation)
    assert sent(sess)[0]["result"] == {"method": v.RINGING}  # still acknowledged


def test_inbound_invite_answer() -> None:
    sess, _ = ready()
    inbound_ringing(sess)
    evs = sess.events_received()
    inc = of(evs, ev.IncomingCall)[0].invite
    assert (inc.call_id, inc.caller_name, inc.caller_number) == ("K2", "Bob", "+1555222")
    assert inc.custom_headers == (("X-A", "1"),)
    assert of(evs, ev.CallCreated) == [ev.CallCreated("K2", "inbound", "alice")]
    # a repeated invite for a known call is acknowledged and ignored
    inbound_ringing(sess, msg_id=7101)
    assert not of(sess.events_received(), ev.IncomingCall)
    sess.answer("K2", SDP, custom_headers=[("X-Answered-By", "desk")])
    ans = last_request(sent(sess), v.ANSWER)
    dp = ans["params"]["dialogParams"]
    assert dp["callID"] == "K2" and dp["remote_caller_id_name"] == "Bob"
    assert dp["caller_id_number"] == "alice" and dp["telnyxCallControlId"] == "cc-K2"
    assert dp["custom_headers"] == [{"name": "X-Answered-By", "value": "desk"}]
    assert "video" not in dp
    assert sess.calls["K2"].state == CallState.ANSWERING
    sess.receive_text(res(ans["id"], {"callID": "K2", "message": "CALL ANSWERED"}))
    evs = sess.events_received()
    assert of(evs, ev.CallConfirmed) == [ev.CallConfirmed("K2")]
    assert sess.calls["K2"].state == CallState.ACTIVE


def test_inbound_reject_is_user_busy() -> None:
    sess, _ = ready()
    inbound_ringing(sess)
    hang = sess.reject("K2")
    assert (hang.cause, hang.cause_code, hang.remote) == ("USER_BUSY", 17, False)
    bye = last_request(sent(sess), v.BYE)
    assert bye["params"]["cause"] == "USER_BUSY" and bye["params"]["causeCode"] == 17
    assert bye["params"]["sipCode"] is None and bye["params"]["sip_call_id"] is None
    assert bye["params"]["dialogParams"]["custom_headers"] == []
    sess.receive_text(res(bye["id"], {"callID": "K2", "message": "CALL ENDED"}))
    assert "K2" not in sess.calls
    with pytest.raises(LocalProtocolError):
        sess.reject("K2")


def test_reject_only_ringing_inbound() -> None:
    sess, _ = ready()
    outbound_active(sess)
    with pytest.raises(LocalProtocolError):
        sess.reject("K1")
    with pytest.raises(LocalProtocolError):
        sess.answer("K1", SDP)


@pytest.mark.parametrize(("setup", "cause", "code"), [
    ("ringing_out", "USER_BUSY", 17),
    ("trying", "USER_BUSY", 17),
    ("early", "USER_BUSY", 17),
    ("ringing_in", "USER_BUSY", 17),
    ("active", "NORMAL_CLEARING", 16),
    ("held", "NORMAL_CLEARING", 16),
])
def test_hangup_default_cause_by_state(setup: str, cause: str, code: int) -> None:
    sess, _ = ready()
    if setup == "ringing_in":
        inbound_ringing(sess, "K1")
    elif setup in ("active", "held"):
        outbound_active(sess)
        if setup == "held":
            sess.modify("K1", "hold")
            sess.receive_text(res(last_request(sent(sess), v.MODIFY)["id"], {"holdState": "held"}))
            assert sess.calls["K1"].state == CallState.HELD
    else:
        sess.new_call("K1", "+1")
        sess.invite("K1", SDP)
        inv = last_request(sent(sess), v.INVITE)
        if setup != "requesting":
            sess.receive_text(res(inv["id"], {}))
        if setup in ("ringing_out", "early"):
            sess.receive_text(req(3, v.RINGING, {"callID": "K1"}))
        if setup == "early":
            sess.receive_text(req(4, v.MEDIA, {"callID": "K1", "sdp": SDP}))
    sess.data_to_send()
    hang = sess.hangup("K1")
    assert (hang.cause, hang.cause_code) == (cause, code)
    bye = last_request(sent(sess), v.BYE)
    assert (bye["params"]["cause"], bye["params"]["causeCode"]) == (cause, code)
    with pytest.raises(LocalProtocolError):
        sess.hangup("K1")


def test_hangup_new_call_sends_nothing() -> None:
    sess, _ = ready()
    sess.new_call("K1", "+1")
    sess.hangup("K1", "ORIGINATOR_CANCEL")
    assert sess.data_to_send() == []
    assert "K1" not in sess.calls


def test_remote_bye() -> None:
    sess, _ = ready()
    outbound_active(sess)
    sess.receive_text(req(20, v.BYE, {"callID": "K1", "cause": "USER_BUSY", "causeCode": "17",
                                      "sipCode": 486, "sipReason": "Busy Here", "client_state": "eA=="}))
    assert sent(sess) == [{"jsonrpc": "2.0", "id": 20, "result": {"method": v.BYE}}]
    evs = sess.events_received()
    assert of(evs, ev.CallHangup) == [ev.CallHangup("K1", "USER_BUSY", 17, 486, "Busy Here", True)]
    assert states(evs, "K1") == [(CallState.ACTIVE, CallState.HANGUP), (CallState.HANGUP, CallState.DESTROYED)]
    # a second bye for the gone call is acknowledged and ignored
    sess.receive_text(req(21, v.BYE, {"callID": "K1"}))
    assert sess.events_received() == []


def test_remote_bye_defaults_and_during_local_hangup() -> None:
    sess, _ = ready()
    outbound_active(sess)
    sess.hangup("K1")
    sess.data_to_send()
    sess.events_received()
    sess.receive_text(req(21, v.BYE, {"dialogParams": {"callID": "K1"}}))
    evs = sess.events_received()
    assert not of(evs, ev.CallHangup)  # already hung up locally
    assert "K1" not in sess.calls
    outbound_active(sess, "K3")
    sess.receive_text(req(22, v.BYE, {"callID": "K3"}))
    h = of(sess.events_received(), ev.CallHangup)[0]
    assert (h.cause, h.cause_code, h.sip_code) == ("NORMAL_CLEARING", 16, None)


def test_hold_unhold_toggle_by_hold_state() -> None:
    sess, _ = ready()
    outbound_active(sess)
    sess.modify("K1", "hold")
    m = last_request(sent(sess), v.MODIFY)
    assert m["params"]["action"] == "hold" and m["params"]["sessid"] == "S1"
    sess.receive_text(res(m["id"], {"callID": "K1", "action": "hold", "holdState": "held"}))
    assert of(sess.events_received(), ev.HoldChanged) == [ev.HoldChanged("K1", True)]
    assert sess.calls["K1"].state == CallState.HELD and sess.calls["K1"].held
    sess.modify("K1", "toggleHold")
    m = last_request(sent(sess), v.MODIFY)
    assert m["params"]["action"] == "toggleHold"
    sess.receive_text(res(m["id"], {"holdState": "active"}))
    assert of(sess.events_received(), ev.HoldChanged) == [ev.HoldChanged("K1", False)]
    assert sess.calls["K1"].state == CallState.ACTIVE
    sess.modify("K1", "unhold")
    m = last_request(sent(sess), v.MODIFY)
    sess.receive_text(res(m["id"], {"holdState": "active"}))
    assert of(sess.events_received(), ev.HoldChanged) == [ev.HoldChanged("K1", False)]
    sess.modify("K1", "toggleHold")
    m = last_request(sent(sess), v.MODIFY)
    sess.receive_text(res(m["id"], {"message": "no hold state"}))
    evs = sess.events_received()
    assert of(evs, ev.HoldFailed) and not of(evs, ev.HoldChanged)
    sess.modify("K1", "hold")
    m = last_request(sent(sess), v.MODIFY)
    sess.receive_text(err(m["id"], -32602, "bad"))
    assert of(sess.events_received(), ev.HoldFailed) == [ev.HoldFailed("K1", "bad")]
    with pytest.raises(LocalProtocolError):
        sess.modify("K1", "mute")


def test_modify_requires_established_call() -> None:
    sess, _ = ready()
    inbound_ringing(sess)
    with pytest.raises(LocalProtocolError):
        sess.modify("K2", "hold")
    with pytest.raises(LocalProtocolError):
        sess.dtmf("K2", "1")
    with pytest.raises(LocalProtocolError):
        sess.modify("nope", "hold")


@pytest.mark.parametrize("digits", ["0", "123", "*#", "ABCD", "1234567890*#ABCD"])
def test_dtmf_valid(digits: str) -> None:
    sess, _ = ready()
    outbound_active(sess)
    sess.dtmf("K1", digits)
    info = last_request(sent(sess), v.INFO)
    assert info["params"]["dtmf"] == digits and info["params"]["dialogParams"]["callID"] == "K1"
    assert v.valid_dtmf(digits)


@pytest.mark.parametrize("digits", ["", "a", "E", "1 2", "12x", "½", "#\n"])
def test_dtmf_invalid(digits: str) -> None:
    sess, _ = ready()
    outbound_active(sess)
    with pytest.raises(LocalProtocolError):
        sess.dtmf("K1", digits)
    assert sess.data_to_send() == []
    assert not v.valid_dtmf(digits)


def test_dtmf_and_info_received() -> None:
    sess, _ = ready()
    outbound_active(sess)
    sess.receive_text(req(30, v.INFO, {"callID": "K1", "dtmf": "5"}))
    assert sent(sess)[0]["result"] == {"method": v.INFO}
    assert of(sess.events_received(), ev.DtmfReceived) == [ev.DtmfReceived("K1", "5")]
    sess.receive_text(req(31, v.INFO, {"dialogParams": {"callID": "K1"}, "dtmf": "#"}))
    assert of(sess.events_received(), ev.DtmfReceived) == [ev.DtmfReceived("K1", "#")]
    sess.receive_text(req(32, v.INFO, {"callID": "K1", "msg": "hello"}))
    assert of(sess.events_received(), ev.Notification) == [
        ev.Notification(v.INFO, {"callID": "K1", "msg": "hello"}, "K1")]
    sess.receive_text(req(33, v.INFO, {"dtmf": "1", "dialogParams": "x"}))
    assert of(sess.events_received(), ev.Notification)[0].call_id is None


def test_display() -> None:
    sess, _ = ready()
    outbound_active(sess)
    sess.receive_text(req(40, v.DISPLAY, {"callID": "K1", "display_name": "Carol", "display_number": "+1999",
                                          "display_direction": "inbound"}))
    assert of(sess.events_received(), ev.DisplayChanged) == [ev.DisplayChanged("K1", "Carol", "+1999", "inbound")]
    sess.receive_text(req(41, v.DISPLAY, {"callID": "K1", "display_name": 5, "display_direction": None}))
    assert of(sess.events_received(), ev.DisplayChanged) == [ev.DisplayChanged("K1", "Carol", "", "")]
    assert sess.calls["K1"].remote_name == "Carol"


def test_punt_ends_calls_without_bye() -> None:
    sess, _ = ready()
    outbound_active(sess)
    inbound_ringing(sess)
    sess.receive_text(req(50, v.PUNT, {}))
    out = sent(sess)
    assert out == [{"jsonrpc": "2.0", "id": 50, "result": {"method": v.PUNT}}]  # no BYE
    evs = sess.events_received()
    assert of(evs, ev.Punted)
    assert {h.call_id for h in of(evs, ev.CallHangup)} == {"K1", "K2"}
    assert all(h.cause == "PURGE" and not h.remote for h in of(evs, ev.CallHangup))
    assert not sess.calls and sess.punted
    sess.connection_lost()  # punted: no reconnect
    assert sess.state == ClientState.DISCONNECTED


def test_candidates() -> None:
    sess, _ = ready()
    outbound_active(sess)
    sess.receive_text(req(60, v.CANDIDATE, {"callID": "K1", "candidate": "a=candidate:1 1 udp 1 1.2.3.4 5 typ host",
                                            "sdpMid": "audio", "sdpMLineIndex": 1}))
    sess.receive_text(req(61, v.CANDIDATE, {"callID": "K1", "candidate": "candidate:2", "sdpMLineIndex": True}))
    sess.receive_text(req(62, v.END_OF_CANDIDATES, {"dialogParams": {"callId": "K1"}}))
    sess.receive_text(req(63, v.CANDIDATE, {"callID": "K1", "candidate": 5}))
    assert [m["result"]["method"] for m in sent(sess)] == [v.CANDIDATE, v.CANDIDATE, v.END_OF_CANDIDATES, v.CANDIDATE]
    evs = sess.events_received()
    assert of(evs, ev.RemoteCandidate) == [
        ev.RemoteCandidate("K1", "candidate:1 1 udp 1 1.2.3.4 5 typ host", "audio", 1),
        ev.RemoteCandidate("K1", "candidate:2", "0", 0)]
    assert of(evs, ev.RemoteEndOfCandidates) == [ev.RemoteEndOfCandidates("K1")]
    assert len(of(evs, ev.ProtocolViolation)) == 1


def test_events_and_webrtc_events_pass_through() -> None:
    sess, _ = ready()
    sess.receive_text(req(70, v.EVENT, {"a": 1}))
    sess.receive_text(req(71, "webrtc.event", {"b": 2}))
    assert of(sess.events_received(), ev.Notification) == [
        ev.Notification(v.EVENT, {"a": 1}), ev.Notification("webrtc.event", {"b": 2})]


def test_new_call_validation() -> None:
    sess, _ = make_session()
    with pytest.raises(LocalProtocolError):
        sess.new_call("K1", "+1")  # not logged in
    sess, _ = logged_in()
    with pytest.raises(LocalProtocolError):
        sess.new_call("K1", "")
    sess.new_call("K1", "+1")
    with pytest.raises(LocalProtocolError):
        sess.new_call("K1", "+1")
    with pytest.raises(LocalProtocolError):
        sess.invite("nope", SDP)


def test_logout_hangs_up_live_calls() -> None:
    sess, _ = ready()
    outbound_active(sess)
    inbound_ringing(sess)
    sess.logout()
    byes = [m for m in sent(sess) if m.get("method") == v.BYE]
    assert {b["params"]["dialogParams"]["callID"]: b["params"]["cause"] for b in byes} == {
        "K1": "NORMAL_CLEARING", "K2": "USER_BUSY"}


def test_bye_error_and_connection_lost_finish_calls() -> None:
    sess, _ = ready()
    outbound_active(sess)
    sess.hangup("K1")
    bye = last_request(sent(sess), v.BYE)
    sess.receive_text(err(bye["id"], -32602, "x"))
    assert "K1" not in sess.calls
    outbound_active(sess, "K3")
    sess.hangup("K3")
    sess.connection_lost()
    assert "K3" not in sess.calls
    assert sess.pending_methods() == {}
