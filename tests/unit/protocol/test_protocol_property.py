"""Property: arbitrary JSON never makes receive_text raise, and output stays valid JSON-RPC."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.support.proto_util import inbound_ringing, outbound_active, ready

from softphone.protocol import events as ev
from softphone.protocol import verto as v
from softphone.protocol.session import VertoSession

METHODS = [getattr(v, name) for name in dir(v) if name.isupper() and isinstance(getattr(v, name), str)
           and (getattr(v, name).startswith("telnyx_rtc.") or getattr(v, name) in ("login", "anonymous_login"))]
CALL_IDS = st.sampled_from(["K1", "K2", "nope", ""])

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
# keys the handlers read, so random params hit the interesting paths
PARAM_KEYS = ["callID", "sdp", "dtmf", "cause", "causeCode", "sipCode", "sipReason", "state", "candidate",
              "sdpMid", "sdpMLineIndex", "reattached_sessions", "dialogParams", "display_name", "holdState",
              "telnyx_call_control_id", "caller_id_name", "client_state", "dc", "region"]
param_values = st.one_of(json_values, CALL_IDS, st.just("v=0\r\n"), st.lists(CALL_IDS, max_size=3),
                         st.fixed_dictionaries({"callID": CALL_IDS}))
params = st.dictionaries(st.sampled_from(PARAM_KEYS), param_values, max_size=6) | json_values
ids = st.one_of(st.integers(), st.text(max_size=8), st.none(), st.floats(allow_nan=False), st.booleans(),
                st.sampled_from(["c1", "c5", "c9", "c12"]))
requests = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0"), "id": ids, "method": st.sampled_from(METHODS) | st.text(max_size=12), "params": params},
    optional={"voice_sdk_id": json_values},
)
responses = st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0"), "id": ids},
    optional={"result": params, "error": st.dictionaries(st.sampled_from(["code", "message", "data"]), json_values)
              | st.fixed_dictionaries({"code": st.integers(-32010, -31990), "message": st.text(max_size=5)})},
)
frames = st.lists(st.one_of(json_values, requests, responses), min_size=1, max_size=6)


def live_session() -> VertoSession:
    sess, _ = ready()
    outbound_active(sess, "K1")
    inbound_ringing(sess, "K2")
    sess.modify("K1", "hold")  # leave requests pending so responses can hit them
    sess.dtmf("K1", "1")
    sess.data_to_send()
    sess.events_received()
    return sess


def assert_valid_output(out: list[str]) -> None:
    for frame in out:
        assert isinstance(frame, str)
        obj: Any = json.loads(frame)
        assert isinstance(obj, dict) and obj["jsonrpc"] == "2.0"
        if "method" in obj:
            assert isinstance(obj["method"], str) and isinstance(obj["params"], dict)
            assert isinstance(obj["id"], str)
        else:
            assert "result" in obj and "id" in obj
            assert isinstance(obj["id"], str | int) and not isinstance(obj["id"], bool)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames)
def test_arbitrary_json_never_raises(values: list[Any]) -> None:
    sess = live_session()
    for value in values:
        sess.receive_text(json.dumps(value))
        assert_valid_output(sess.data_to_send())
        for e in sess.events_received():
            assert isinstance(e, ev.Event)
    sess.tick(10_000.0)
    assert_valid_output(sess.data_to_send())


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_arbitrary_bytes_and_text_never_raise(data: bytes | str) -> None:
    sess = live_session()
    sess.receive_text(data)
    assert_valid_output(sess.data_to_send())
    sess.events_received()
