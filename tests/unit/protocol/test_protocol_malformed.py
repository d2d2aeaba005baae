"""Malformed input never raises out of receive_text (PROTOCOL.md §1.2)."""

from __future__ import annotations

import json

import pytest
from unit.support.proto_util import SDP, last_request, of, outbound_active, ready, req, res, sent

from softphone.errors import RemoteProtocolError
from softphone.protocol import events as ev
from softphone.protocol import verto as v
from softphone.protocol.jsonrpc import MAX_DEPTH, Request, parse_message
from softphone.protocol.states import CallState

VIOLATIONS = [
    "not json at all",
    "{",
    "",
    "[]",
    "[1, 2, 3]",
    '"a string"',
    "42",
    "3.5",
    "null",
    "true",
    '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.bye","params":[1,2]}',
    '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.bye","params":"x"}',
    '{"jsonrpc":"2.0","id":1.5,"method":"telnyx_rtc.bye","params":{}}',
    '{"jsonrpc":"2.0","id":true,"method":"telnyx_rtc.bye","params":{}}',
    '{"jsonrpc":"2.0","id":{"a":1},"method":"telnyx_rtc.bye","params":{}}',
    '{"jsonrpc":"2.0","id":[1],"result":{}}',
    '{"jsonrpc":"2.0","id":1,"method":42,"params":{}}',
    '{"jsonrpc":"2.0","id":1,"method":null,"params":{}}',
    '{"jsonrpc":"2.0","id":1,"error":{"message":"no code"}}',
    '{"jsonrpc":"2.0","id":1,"error":{"code":"-32000"}}',
    '{"jsonrpc":"2.0","id":1,"error":{"code":true}}',
    '{"jsonrpc":"2.0","id":1,"error":"flat"}',
    '{"jsonrpc":"2.0","result":{}}',
    '{"jsonrpc":"2.0"}',
    "{}",
    # semantically bad requests: acknowledged, reported
    '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.invite","params":{}}',
    '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.invite","params":{"sdp":"v=0","callID":7}}',
    '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.invite","params":{"sdp":"v=0","callID":"Z","caller_id_name":[]}}',
    '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.bye","params":{"callID":"K1","causeCode":true}}',
    '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.bye","params":{"callID":"K1","sipCode":"abc"}}',
    '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.bye","params":{"callID":"K1","sipCode":1.5}}',
    '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.ringing","params":{"callID":"K1","telnyx_leg_id":{}}}',
    '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.answer","params":{}}',
    '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.display","params":{"callID":""}}',
]


@pytest.mark.parametrize("frame", VIOLATIONS)
def test_malformed_frame_is_violation(frame: str) -> None:
    sess, _ = ready()
    outbound_active(sess)
    sess.receive_text(frame)
    evs = sess.events_received()
    assert len(of(evs, ev.ProtocolViolation)) == 1, evs
    for out in sess.data_to_send():
        json.loads(out)
    assert sess.calls["K1"].state == CallState.ACTIVE


def test_violation_through_parse_message() -> None:
    for frame in VIOLATIONS[:25]:
        with pytest.raises(RemoteProtocolError):
            parse_message(frame)


def test_huge_frame() -> None:
    sess, _ = ready()
    big = '{"jsonrpc":"2.0","id":1,"method":"telnyx_rtc.event","params":{"x":"' + "a" * 10_000_000 + '"}}'
    sess.receive_text(big)
    sess.receive_text(big.encode())
    evs = sess.events_received()
    assert len(of(evs, ev.ProtocolViolation)) == 2
    assert "exceeds" in of(evs, ev.ProtocolViolation)[0].detail
    assert sess.data_to_send() == []


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_deep_nesting(opener: str) -> None:
    sess, _ = ready()
    closer = "]" if opener == "[" else "}"
    sess.receive_text(opener * 100_000 + "1" + closer * 100_000)
    assert of(sess.events_received(), ev.ProtocolViolation)
    # nesting just at the limit still parses; brackets inside strings do not count
    inner = '{"a":' * (MAX_DEPTH - 2) + "1" + "}" * (MAX_DEPTH - 2)
    ok = '{"jsonrpc":"2.0","id":1,"method":"x","params":' + inner + "}"
    assert isinstance(parse_message(ok), Request)
    quoted = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"s": "[[[{{{\\\"" * 100}})
    assert isinstance(parse_message(quoted), Request)


@pytest.mark.parametrize("data", [b"\xff\xfe", b'{"id":1,"method":"x\xc3"}', b"\xed\xa0\x80", bytearray(b"\x80")])
def test_invalid_utf8(data: bytes) -> None:
    sess, _ = ready()
    sess.receive_text(data)
    assert "UTF-8" in of(sess.events_received(), ev.ProtocolViolation)[0].detail


def test_missing_ids_and_unknown_methods() -> None:
    sess, _ = ready()
    outbound_active(sess)
    # a notification (no id): handled, nothing to acknowledge
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "method": v.INFO, "params": {"callID": "K1", "dtmf": "1"}}))
    assert sess.data_to_send() == []
    assert of(sess.events_received(), ev.DtmfReceived)
    # unknown method: acknowledged and reported
    sess.receive_text(req(9, "telnyx_rtc.somethingNew", {"a": [1]}))
    assert sent(sess) == [{"jsonrpc": "2.0", "id": 9, "result": {"method": "telnyx_rtc.somethingNew"}}]
    assert of(sess.events_received(), ev.UnknownRequest) == [ev.UnknownRequest("telnyx_rtc.somethingNew", {"a": [1]})]
    # params missing entirely / null
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": 10, "method": "x.y"}))
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": "s", "method": "x.y", "params": None}))
    out = sent(sess)
    assert [o["id"] for o in out] == [10, "s"]
    # id-only debug_report frame (no method): acknowledged with an empty result
    sess.receive_text(json.dumps({"id": 11, "type": "debug_report_start"}))
    assert sent(sess) == [{"jsonrpc": "2.0", "id": 11, "result": {}}]
    # empty method string
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": 12, "method": "", "params": {}}))
    assert sent(sess) == [{"jsonrpc": "2.0", "id": 12, "result": {}}]
    assert not of(sess.events_received(), ev.ProtocolViolation)


def test_responses_to_unknown_ids_ignored() -> None:
    sess, _ = ready()
    for frame in (res("never-sent", {"x": 1}), res(12345, None), res("c1", {"sessid": "X"})):
        sess.receive_text(frame)
    assert sess.events_received() == []
    assert sess.data_to_send() == []
    assert sess.sessid == "S1"


def test_speed_test_strings_ignored() -> None:
    sess, _ = ready()
    sess.receive_text("#SPU 1234")
    assert sess.events_received() == [] and sess.data_to_send() == []


def test_blade_nested_result_unwrapped() -> None:
    sess, _ = ready()
    sess.query_gateway_state()
    gw = last_request(sent(sess), v.GATEWAY_STATE)
    sess.receive_text(res(gw["id"], {"result": {"code": "200", "node_id": "n",
                                                "result": {"params": {"state": "FAILED"}}}}))
    assert of(sess.events_received(), ev.RegistrationFailed)
    sess.query_gateway_state()
    gw = last_request(sent(sess), v.GATEWAY_STATE)
    sess.receive_text(res(gw["id"], {"result": {"code": 500, "result": {}}}))
    assert of(sess.events_received(), ev.ProtocolViolation)


def test_non_object_results_tolerated() -> None:
    sess, _ = ready()
    outbound_active(sess)
    sess.modify("K1", "hold")
    m = last_request(sent(sess), v.MODIFY)
    sess.receive_text(res(m["id"], ["held"]))
    assert of(sess.events_received(), ev.HoldFailed)
    sess.new_call("K5", "+1")
    sess.invite("K5", SDP)
    sess.receive_text(res(last_request(sent(sess), v.INVITE)["id"], "CALL CREATED"))
    assert sess.calls["K5"].state == CallState.TRYING
