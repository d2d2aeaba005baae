"""Reconnect and reattach (PROTOCOL.md §4.6, §7, §10.6)."""

from __future__ import annotations

import pytest
from unit.support.proto_util import SDP, last_request, of, outbound_active, ready, req, res, sent

from softphone.errors import LocalProtocolError
from softphone.protocol import events as ev
from softphone.protocol import verto as v
from softphone.protocol.session import VertoSession
from softphone.protocol.states import CallState, ClientState


def active_and_held() -> VertoSession:
    sess, _ = ready("S1")
    outbound_active(sess, "K1")
    outbound_active(sess, "K3")
    sess.modify("K3", "hold")
    sess.receive_text(res(last_request(sent(sess), v.MODIFY)["id"], {"holdState": "held"}))
    assert sess.calls["K3"].state == CallState.HELD
    sess.events_received()
    return sess


def attach_params(call_id: str) -> dict[str, object]:
    return {"callID": call_id, "sdp": SDP, "caller_id_name": "Alice", "caller_id_number": "+1",
            "callee_id_name": "X", "callee_id_number": "+2", "telnyx_call_control_id": "cc-new-" + call_id}


@pytest.mark.parametrize(("kept", "dropped"), [("K3", "K1"), ("K1", "K3")])
def test_reconnect_reattach(kept: str, dropped: str) -> None:
    sess = active_and_held()
    sess.connection_lost()
    evs = sess.events_received()
    assert sess.state == ClientState.RECONNECTING
    assert sess.calls["K1"].state == sess.calls["K3"].state == CallState.RECOVERING
    assert sess.calls["K3"].held and not sess.calls["K1"].held
    assert not of(evs, ev.CallHangup)
    assert sess.data_to_send() == []
    assert sess.pending_methods() == {}

    sess.connecting()
    sess.connection_made()
    login = last_request(sent(sess), "login")
    assert login["params"]["sessid"] == "S1"
    assert login["params"]["reconnection"] is True
    assert sess.state == ClientState.LOGGING_IN
    sess.receive_text(res(login["id"], {"message": "logged in", "sessid": "S1"}))
    assert sess.state == ClientState.LOGGED_IN and sess.sessid == "S1"
    sess.events_received()

    sess.receive_text(req(4401, v.CLIENT_READY, {"reattached_sessions": [kept, 5, None]}))
    out = sent(sess)
    assert not [m for m in out if m.get("method") == v.BYE]  # ended WITHOUT a bye
    assert [m.get("method") for m in out if "method" in m] == [v.GATEWAY_STATE]
    gw = last_request(out, v.GATEWAY_STATE)
    evs = sess.events_received()
    assert of(evs, ev.CallsNotReattached) == [ev.CallsNotReattached((dropped,))]
    hang = of(evs, ev.CallHangup)
    assert len(hang) == 1 and hang[0].call_id == dropped and hang[0].cause == "NORMAL_TEMPORARY_FAILURE"
    assert dropped not in sess.calls and sess.calls[kept].state == CallState.RECOVERING

    sess.receive_text(req(4402, v.ATTACH, attach_params(kept)))
    assert sent(sess)[0] == {"jsonrpc": "2.0", "id": 4402, "result": {"method": v.ATTACH}}
    offer = of(sess.events_received(), ev.AttachOffer)
    assert len(offer) == 1 and offer[0].held is (kept == "K3") and offer[0].invite.call_id == kept
    sess.attach_answer(kept, SDP)
    att = last_request(sent(sess), v.ATTACH)
    assert att["params"]["dialogParams"]["attach"] is True
    assert att["params"]["dialogParams"]["callID"] == kept and att["params"]["sessid"] == "S1"
    assert att["params"]["sdp"] == SDP
    sess.receive_text(res(att["id"], {"callID": kept, "message": "CALL ANSWERED"}))
    want = CallState.HELD if kept == "K3" else CallState.ACTIVE
    assert sess.calls[kept].state == want
    assert of(sess.events_received(), ev.CallConfirmed) == [ev.CallConfirmed(kept)]

    sess.receive_text(res(gw["id"], {"params": {"state": "REGED"}}))
    assert sess.state == ClientState.READY
    # after a completed reconnect the next login carries no reconnection flag
    from unit.support.proto_util import CREDS
    sess.login(CREDS)
    p = last_request(sent(sess), "login")["params"]
    assert p["reconnection"] is False and "sessid" not in p
    sess.connection_lost(will_reconnect=False)
    assert sess.state == ClientState.DISCONNECTED and not sess.calls


def test_attach_answer_requires_recovering() -> None:
    sess = active_and_held()
    with pytest.raises(LocalProtocolError):
        sess.attach_answer("K1", SDP)


def test_server_attach_while_connected_marks_held() -> None:
    sess = active_and_held()
    sess.receive_text(req(10, v.ATTACH, attach_params("K3")))
    offer = of(sess.events_received(), ev.AttachOffer)
    assert offer[0].held is True and sess.calls["K3"].state == CallState.RECOVERING
    # hangup while recovering is NORMAL_CLEARING
    assert sess.hangup("K3").cause == "NORMAL_CLEARING"


def test_attach_unknown_call_with_calls_in_memory() -> None:
    sess = active_and_held()
    sess.receive_text(req(10, v.ATTACH, attach_params("OTHER")))
    assert of(sess.events_received(), ev.UnknownRequest) == [ev.UnknownRequest(v.ATTACH, {"callID": "OTHER"})]
    assert "OTHER" not in sess.calls


def test_attach_with_no_calls_recovers_first() -> None:
    sess, _ = ready()
    sess.receive_text(req(10, v.ATTACH, attach_params("R1")))
    offer = of(sess.events_received(), ev.AttachOffer)
    assert offer and offer[0].held is False
    assert sess.calls["R1"].state == CallState.RECOVERING and sess.calls["R1"].direction == "inbound"
    sess.attach_answer("R1", SDP)
    sess.receive_text(res(last_request(sent(sess), v.ATTACH)["id"], {}))
    assert sess.calls["R1"].state == CallState.ACTIVE


def test_attach_for_ended_call_ignored() -> None:
    sess, _ = ready()
    outbound_active(sess)
    sess.hangup("K1")
    sess.events_received()
    sess.receive_text(req(10, v.ATTACH, attach_params("K1")))
    assert not of(sess.events_received(), ev.AttachOffer)


def test_connection_lost_without_reconnect_ends_calls_locally() -> None:
    sess = active_and_held()
    sess.connection_lost(will_reconnect=False)
    evs = sess.events_received()
    assert {h.call_id for h in of(evs, ev.CallHangup)} == {"K1", "K3"}
    assert sess.data_to_send() == []
    assert sess.state == ClientState.DISCONNECTED


def test_connection_lost_before_login_does_not_reconnect_with_sessid() -> None:
    from unit.support.proto_util import CREDS, make_session
    sess, _ = make_session()
    sess.login(CREDS)
    sess.connecting()
    sess.connection_made()
    sess.connection_lost()
    assert sess.state == ClientState.RECONNECTING
    sess.connection_made()
    p = last_request(sent(sess), "login")["params"]
    assert p["reconnection"] is False and "sessid" not in p


def test_calls_lost_if_reattach_list_missing() -> None:
    sess = active_and_held()
    sess.connection_lost()
    sess.connection_made()
    sess.receive_text(res(last_request(sent(sess), "login")["id"], {"sessid": "S1"}))
    sess.receive_text(req(4401, v.CLIENT_READY, {"reattached_sessions": "bogus"}))
    evs = sess.events_received()
    assert set(of(evs, ev.CallsNotReattached)[0].call_ids) == {"K1", "K3"}
    assert not sess.calls
