"""Builders and parsers in verto.py and jsonrpc.py (both sides; the switch uses the server builders)."""

from __future__ import annotations

import json

import pytest
from unit.support.proto_util import SDP, inbound_ringing, outbound_active, ready

from softphone.errors import RemoteProtocolError
from softphone.protocol import verto as v
from softphone.protocol.jsonrpc import (
    ErrorResponse,
    Request,
    Response,
    build_error,
    build_request,
    build_result,
    message_from_obj,
    parse_message,
)


def test_jsonrpc_builders_roundtrip() -> None:
    r = parse_message(build_request(7, "m", {"a": 1}, voice_sdk_id="V", other=None))
    assert r == Request(7, "m", {"a": 1}, {"voice_sdk_id": "V"}) and r.voice_sdk_id == "V"
    n = parse_message(build_request(None, "m", {}))
    assert isinstance(n, Request) and n.id is None
    ok = parse_message(build_result("x", {"k": [1]}, voice_sdk_id="V2"))
    assert ok == Response("x", {"k": [1]}, {"voice_sdk_id": "V2"}) and ok.voice_sdk_id == "V2"
    e = parse_message(build_error(3, -32602, "bad"))
    assert e == ErrorResponse(3, -32602, "bad") and e.voice_sdk_id is None
    e2 = message_from_obj({"id": 1, "error": {"code": 1, "message": ["m"], "data": {"d": 1}}})
    assert isinstance(e2, ErrorResponse) and e2.message == "['m']" and e2.data == {"d": 1}
    assert Request(1, "m", {}).voice_sdk_id is None and Response(1, None, {"voice_sdk_id": 5}).voice_sdk_id is None
    assert json.loads(build_request("ü", "m", {"s": "é"}))["params"]["s"] == "é"
    assert parse_message(b'{"id":1,"result":null}', max_bytes=100) == Response(1, None)
    with pytest.raises(RemoteProtocolError):
        parse_message('{"id":1,"result":null}', max_bytes=5)


def test_ack() -> None:
    assert json.loads(v.ack(4402, v.RINGING)) == {"jsonrpc": "2.0", "id": 4402, "result": {"method": v.RINGING}}
    assert json.loads(v.ack("s", v.BYE))["id"] == "s"


def test_causes() -> None:
    assert v.cause_code("NORMAL_CLEARING") == 16 and v.cause_code("USER_BUSY") == 17
    assert v.cause_code("WHATEVER") == 0
    for cause in v.CAUSE_SIP:
        assert cause in v.CAUSES


def test_headers_and_call_id() -> None:
    assert v.headers_from("x") == ()
    assert v.headers_from([{"name": "X-A", "value": 1}, {"name": 2}, "junk", {"name": "X-B"}]) == (
        ("X-A", "1"), ("X-B", ""))
    assert v.headers_to([("X-A", "1")]) == [{"name": "X-A", "value": "1"}]
    assert v.call_id_of({"callID": "a"}) == "a"
    assert v.call_id_of({"callID": "", "dialogParams": {"callId": "b"}}) == "b"
    for bad in ({}, {"callID": 5}, {"dialogParams": []}, {"dialogParams": {"callID": 3}}):
        with pytest.raises(RemoteProtocolError):
            v.call_id_of(bad)


def test_invite_and_bye_params_parse() -> None:
    params = v.server_invite_params("K", SDP, caller_name="B", caller_number="1", callee_name="A",
                                    callee_number="2", ids=v.TelnyxIds("c", "s", "l"),
                                    custom_headers=(("X-H", "v"),), client_state="cs")
    inv = v.InviteParams.parse(params)
    assert (inv.call_id, inv.caller_name, inv.callee_number, inv.client_state) == ("K", "B", "2", "cs")
    assert inv.ids == v.TelnyxIds("c", "s", "l") and inv.custom_headers == (("X-H", "v"),)
    inv = v.InviteParams.parse({"callID": "K", "sdp": SDP, "clientState": "x", "caller_id_number": 123,
                                "callee_id_name": None})
    assert (inv.caller_number, inv.client_state, inv.callee_name) == ("123", "x", "")
    with pytest.raises(RemoteProtocolError):
        v.InviteParams.parse({"callID": "K"})
    bye = v.ByeParams.parse(v.server_bye_params("K", "USER_BUSY"))
    assert (bye.cause, bye.cause_code, bye.sip_code, bye.sip_reason) == ("USER_BUSY", 17, 486, "Busy Here")
    bye = v.ByeParams.parse(v.server_bye_params("K", "ODD", sip_code=499, sip_reason="Odd"))
    assert (bye.cause_code, bye.sip_code, bye.sip_reason) == (0, 499, "Odd")
    bye = v.ByeParams.parse({"callID": "K", "causeCode": " -5 ", "clientState": "z"})
    assert bye.cause == "NORMAL_CLEARING" and bye.cause_code == -5 and bye.client_state == "z"
    assert v.server_bye_params("K", "ODD")["sipCode"] is None


def test_dialog_params_parse_reads_what_we_send() -> None:
    d = v.CallDialog("K", "+1", "A", "+2", custom_headers=[("X-A", "1")], client_state="cs")
    params = v.invite_params("S", SDP, d, "ua")
    parsed = v.DialogParams.parse(params)
    assert parsed == v.DialogParams("K", "+1", "A", "+2", (("X-A", "1"),), "cs", False)
    att = v.DialogParams.parse(v.answer_params("S", SDP, d, "ua", attach=True))
    assert att.attach is True
    for bad in ({}, {"dialogParams": "x"}, {"dialogParams": {}}, {"dialogParams": {"callID": ""}}):
        with pytest.raises(RemoteProtocolError):
            v.DialogParams.parse(bad)


def test_client_param_builders() -> None:
    d = v.CallDialog("K", "+1")
    wire = d.to_wire()
    assert "custom_headers" not in wire and "clientState" not in wire and "preferred_codecs" not in wire
    assert wire["remote_caller_id_number"] == "+1" and wire["userVariables"] == {}
    assert v.bye_params("S", d, "USER_BUSY", 17)["dialogParams"]["custom_headers"] == []
    assert "video" not in v.answer_params("S", SDP, d, "ua")["dialogParams"]
    assert v.modify_params("S", d, "hold")["action"] == "hold"
    assert v.info_params("S", d, "1")["dtmf"] == "1"
    lp = v.login_params(login=None, passwd=None, login_token=None, sessid="X", reconnection=True,
                        sdk_version="1", user_agent="u")
    assert lp["login"] == "" and lp["passwd"] == "" and lp["sessid"] == "X" and lp["reconnection"] is True


def test_server_builders() -> None:
    m = json.loads(v.server_request(5, v.RINGING, {"callID": "K"}, voice_sdk_id="V"))
    assert m == {"jsonrpc": "2.0", "id": 5, "method": v.RINGING, "voice_sdk_id": "V", "params": {"callID": "K"}}
    assert "voice_sdk_id" not in json.loads(v.server_request(5, v.RINGING, {}))
    assert v.login_result("S") == {"message": "logged in", "sessid": "S"}
    assert v.gateway_result("REGED", "S") == {"params": {"state": "REGED"}, "sessid": "S"}
    assert v.gateway_result("REGED", "S", dc="d", region="r")["params"] == {"state": "REGED", "dc": "d", "region": "r"}
    assert "client_state" not in v.server_invite_params("K", SDP, caller_name="", caller_number="", callee_name="",
                                                        callee_number="", ids=v.TelnyxIds())


def test_session_builds_messages_the_server_parses() -> None:
    """What our session sends is what the switch-side parsers read back."""
    sess, _ = ready()
    outbound_active(sess)
    sess.hangup("K1")
    bye = [json.loads(s) for s in sess.data_to_send()][-1]
    assert v.DialogParams.parse(bye["params"]).call_id == "K1"
    inbound_ringing(sess)
    sess.answer("K2", SDP)
    ans = [json.loads(s) for s in sess.data_to_send()][-1]
    assert v.DialogParams.parse(ans["params"]).destination == "alice"


