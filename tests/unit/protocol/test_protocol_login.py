"""Login, gateway registration, errors, pings, keepalive and request timeouts (PROTOCOL.md §1-§3)."""

from __future__ import annotations

import json

import pytest
from unit.support.proto_util import (
    SDP,
    err,
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
from softphone.protocol.session import GATEWAY_RETRIES, KEEPALIVE_INTERVAL, Credentials
from softphone.protocol.states import CallState, ClientState, GatewayState


def test_credentials_validation_and_repr() -> None:
    with pytest.raises(LocalProtocolError):
        Credentials()
    with pytest.raises(LocalProtocolError):
        Credentials(login="a")
    c = Credentials(login="a", password="")
    assert c.kind == "password" and c.user == "a"
    t = Credentials(token="jwt.secret")
    assert t.kind == "token" and t.user == "(token)"
    r = repr(Credentials(login="a", password="hunter2")) + repr(t)
    assert "hunter2" not in r and "jwt.secret" not in r and "***" in r


def test_credential_login_params() -> None:
    sess, _ = make_session(sdk_version="9.9", user_agent="ua")
    assert sess.state == ClientState.DISCONNECTED
    sess.login(Credentials(login="alice", password="pw"))  # remembered, not sent yet
    assert sess.data_to_send() == []
    sess.connecting()
    sess.connection_made()
    msgs = sent(sess)
    assert len(msgs) == 1
    m = msgs[0]
    assert m["method"] == "login" and m["jsonrpc"] == "2.0" and isinstance(m["id"], str)
    assert m["params"] == {
        "login": "alice", "passwd": "pw",
        "userVariables": {"push_when_active": False, "pn_late_fanout": False},
        "reconnection": False, "loginParams": {"early_sdp_answer": False},
        "User-Agent": {"sdkVersion": "9.9", "data": "ua"},
    }
    assert sess.state == ClientState.LOGGING_IN
    assert sess.pending_methods() == {m["id"]: "login"}
    sess.receive_text(res(m["id"], {"message": "logged in", "sessid": "S9"}))
    evs = sess.events_received()
    assert of(evs, ev.LoggedIn) == [ev.LoggedIn("S9")]
    assert sess.state == ClientState.LOGGED_IN and sess.sessid == "S9"


def test_token_login_params() -> None:
    sess, _ = make_session()
    sess.connecting()
    sess.connection_made()
    sess.login(Credentials(token="a.b.c"))
    p = last_request(sent(sess), "login")["params"]
    assert p["login_token"] == "a.b.c"
    assert "login" not in p and "passwd" not in p and "sessid" not in p


def test_login_result_without_sessid_is_violation() -> None:
    sess, _ = make_session()
    sess.connecting()
    sess.connection_made()
    sess.login(Credentials(login="a", password="b"))
    m = last_request(sent(sess), "login")
    sess.receive_text(res(m["id"], {"message": "logged in"}))
    assert of(sess.events_received(), ev.ProtocolViolation)
    assert sess.state == ClientState.LOGGING_IN


@pytest.mark.parametrize("code", [v.LOGIN_INCORRECT, v.AUTH_REQUIRED])
def test_login_rejected(code: int) -> None:
    sess, _ = make_session()
    sess.connecting()
    sess.connection_made()
    sess.login(Credentials(login="a", password="b"))
    m = last_request(sent(sess), "login")
    sess.receive_text(err(m["id"], code, "Login Incorrect"))
    evs = sess.events_received()
    assert of(evs, ev.LoginRejected) == [ev.LoginRejected(code, "Login Incorrect")]
    assert sess.state == ClientState.DISCONNECTED
    assert sess.data_to_send() == []  # no re-login loop on a rejected login


def test_error_without_id_while_logging_in_is_login_rejected() -> None:
    sess, _ = make_session()
    sess.connecting()
    sess.connection_made()
    sess.login(Credentials(login="a", password="b"))
    sess.data_to_send()
    sess.receive_text(json.dumps({"jsonrpc": "2.0", "error": {"code": -32001, "message": "no"}}))
    assert of(sess.events_received(), ev.LoginRejected)
    assert sess.state == ClientState.DISCONNECTED


def test_client_ready_queries_gateway_and_reged_is_ready() -> None:
    sess, _ = logged_in()
    sess.receive_text(req(4401, v.CLIENT_READY, {"reattached_sessions": []}))
    out = sent(sess)
    assert out[0] == {"jsonrpc": "2.0", "id": 4401, "result": {"method": v.CLIENT_READY}}
    gw = out[1]
    assert gw["method"] == v.GATEWAY_STATE and gw["params"] == {} and "voice_sdk_id" not in gw
    sess.receive_text(res(gw["id"], {"params": {"state": "REGED", "dc": "chi", "region": "us"}, "sessid": "S1"}))
    evs = sess.events_received()
    assert ev.GatewayStateChanged(GatewayState.REGED, "chi", "us") in evs
    assert ev.Ready("chi", "us") in evs
    assert ev.ClientStateChanged(ClientState.LOGGED_IN, ClientState.READY) in evs
    assert sess.state == ClientState.READY and (sess.dc, sess.region) == ("chi", "us")


def test_register_is_treated_as_ready() -> None:
    sess, _ = logged_in()
    sess.query_gateway_state()
    gw = last_request(sent(sess), v.GATEWAY_STATE)
    sess.receive_text(res(gw["id"], {"state": "REGISTER"}))  # flat result shape too
    assert of(sess.events_received(), ev.Ready)
    assert sess.state == ClientState.READY and sess.gateway_state == GatewayState.REGISTER


@pytest.mark.parametrize("state", ["UNREGED", "NOREG"])
def test_gateway_retry_then_timeout(state: str) -> None:
    sess, clock = logged_in()
    sess.receive_text(req(4401, v.CLIENT_READY, {}))
    for attempt in range(1, GATEWAY_RETRIES + 1):
        gw = last_request(sent(sess), v.GATEWAY_STATE)
        sess.receive_text(res(gw["id"], {"params": {"state": state}}))
        evs = sess.events_received()
        retry = of(evs, ev.GatewayRetryScheduled)
        assert retry == [ev.GatewayRetryScheduled(GatewayState(state), attempt, 4.0)]
        assert sess.next_deadline() == clock.now + 4.0
        sess.tick(clock.now + 3.9)
        assert sess.data_to_send() == []
        clock.now += 4.0
        sess.tick(clock.now)
        assert sess.state == ClientState.LOGGED_IN
    gw = last_request(sent(sess), v.GATEWAY_STATE)
    sess.receive_text(res(gw["id"], {"params": {"state": state}}))
    evs = sess.events_received()
    failed = of(evs, ev.RegistrationFailed)
    assert len(failed) == 1 and failed[0].code == v.GATEWAY_TIMEOUT == -32003
    assert not of(evs, ev.GatewayRetryScheduled)
    clock.now += 100
    sess.tick(clock.now)
    assert not [m for m in sent(sess) if m.get("method") == v.GATEWAY_STATE]


def test_gateway_retry_then_reged() -> None:
    sess, clock = logged_in()
    sess.query_gateway_state()
    gw = last_request(sent(sess), v.GATEWAY_STATE)
    sess.receive_text(res(gw["id"], {"params": {"state": "TRYING"}}))
    assert of(sess.events_received(), ev.GatewayRetryScheduled)
    clock.now += 10
    sess.tick(clock.now)
    gw = last_request(sent(sess), v.GATEWAY_STATE)
    sess.receive_text(res(gw["id"], {"params": {"state": "REGED"}}))
    assert of(sess.events_received(), ev.Ready)


@pytest.mark.parametrize("state", ["FAILED", "FAIL_WAIT"])
def test_gateway_failure(state: str) -> None:
    sess, _ = logged_in()
    sess.query_gateway_state()
    gw = last_request(sent(sess), v.GATEWAY_STATE)
    sess.receive_text(res(gw["id"], {"params": {"state": state}}))
    evs = sess.events_received()
    failed = of(evs, ev.RegistrationFailed)
    assert len(failed) == 1 and failed[0].code == v.GATEWAY_FAILURE == -32004
    assert failed[0].state == GatewayState(state)
    assert of(evs, ev.ReconnectRequested)


def test_server_pushed_gateway_state() -> None:
    sess, _ = logged_in()
    sess.receive_text(req(77, v.GATEWAY_STATE, {"state": "REGED"}))
    assert sess.data_to_send() == []  # not acknowledged (JS)
    assert of(sess.events_received(), ev.Ready)
    sess.receive_text(req(78, v.GATEWAY_STATE, {"state": "FAILED"}))
    evs = sess.events_received()
    assert of(evs, ev.RegistrationFailed) and of(evs, ev.ReconnectRequested)
    assert sess.gateway_state == GatewayState.FAILED


def test_gateway_state_timeout_schedules_retry() -> None:
    sess, clock = logged_in()
    sess.query_gateway_state()
    sess.data_to_send()
    clock.now += 10
    sess.tick(clock.now)
    assert of(sess.events_received(), ev.GatewayRetryScheduled)


def test_auth_required_error_relogs_in() -> None:
    sess, _ = ready()
    sess.ping()
    p = last_request(sent(sess), v.PING)
    sess.receive_text(err(p["id"], v.AUTH_REQUIRED, "Authentication Required"))
    evs = sess.events_received()
    assert of(evs, ev.RpcErrorReceived)[0].code == -32000
    login = last_request(sent(sess), "login")
    assert login["params"]["login"] == "alice"
    assert sess.state == ClientState.LOGGING_IN


@pytest.mark.parametrize("code", [v.CODEC_ERROR, v.GATEWAY_TIMEOUT, v.GATEWAY_FAILURE, v.METHOD_NOT_FOUND])
def test_rpc_errors_are_typed(code: int) -> None:
    sess, _ = ready()
    sess.new_call("K1", "+1555")
    sess.invite("K1", SDP)
    inv = last_request(sent(sess), v.INVITE)
    sess.receive_text(err(inv["id"], code, "nope"))
    evs = sess.events_received()
    assert of(evs, ev.RpcErrorReceived) == [ev.RpcErrorReceived(inv["id"], v.INVITE, code, "nope", "K1")]
    # a failed invite hangs up with USER_BUSY (JS SDP_SEND_FAILED)
    hang = of(evs, ev.CallHangup)
    assert hang and hang[0].cause == "USER_BUSY" and hang[0].cause_code == 17
    bye = last_request(sent(sess), v.BYE)
    assert bye["params"]["cause"] == "USER_BUSY"


def test_error_for_unknown_request_is_reported_not_raised() -> None:
    sess, _ = ready()
    sess.receive_text(err("nobody", v.GATEWAY_FAILURE))
    assert of(sess.events_received(), ev.RpcErrorReceived)[0].method == ""


def test_server_ping_before_login_ignored() -> None:
    sess, _ = make_session()
    sess.connecting()
    sess.connection_made()
    sess.receive_text(req(5, v.PING, {}))
    assert sess.data_to_send() == []
    sess.login(Credentials(login="a", password="b"))
    sess.data_to_send()
    sess.receive_text(req(6, v.PING, {}))  # still logging in
    assert sess.data_to_send() == []


def test_server_ping_after_login_answered_with_new_ping() -> None:
    sess, _ = ready()
    sess.receive_text(req(5, v.PING, {}, voice_sdk_id="VS1"))
    out = sent(sess)
    assert len(out) == 1
    ping = out[0]
    assert ping["method"] == v.PING and ping["id"] != 5 and isinstance(ping["id"], str)
    assert ping["voice_sdk_id"] == "VS1" and ping["params"] == {}
    sess.receive_text(res(ping["id"], {}))
    assert v.PING not in sess.pending_methods().values()


def test_keepalive_ping_after_silence() -> None:
    sess, clock = ready()
    sess.data_to_send()
    assert sess.next_deadline() == pytest.approx(clock.now + KEEPALIVE_INTERVAL)
    sess.tick(clock.now + KEEPALIVE_INTERVAL - 1)
    assert sess.data_to_send() == []
    clock.now += KEEPALIVE_INTERVAL
    sess.tick(clock.now)
    out = sent(sess)
    assert [m["method"] for m in out] == [v.PING]
    sess.tick(clock.now + 1)  # one outstanding ping at a time
    assert sess.data_to_send() == []
    # no answer in 10 s: ask for a reconnect
    clock.now += 10
    sess.tick(clock.now)
    assert of(sess.events_received(), ev.ReconnectRequested)


def test_keepalive_reset_by_incoming_traffic() -> None:
    sess, clock = ready()
    clock.now += 30
    sess.receive_text(req(1, v.EVENT, {"x": 1}))
    sess.data_to_send()
    sess.tick(clock.now + 10)
    assert sess.data_to_send() == []


def test_voice_sdk_id_stored_and_sent() -> None:
    sess, _ = logged_in()
    sess.receive_text(req(4401, v.CLIENT_READY, {}, voice_sdk_id="VSDK-1"))
    assert sess.voice_sdk_id == "VSDK-1"
    gw = last_request(sent(sess), v.GATEWAY_STATE)
    assert gw["voice_sdk_id"] == "VSDK-1"
    # any message kind carries it: a response here
    sess.receive_text(res(gw["id"], {"params": {"state": "REGED"}}, voice_sdk_id="VSDK-2"))
    assert sess.voice_sdk_id == "VSDK-2"
    sess.ping()
    assert last_request(sent(sess), v.PING)["voice_sdk_id"] == "VSDK-2"
    sess.receive_text(err("x", -1, "e") [:-1] + ',"voice_sdk_id":"VSDK-3"}')
    assert sess.voice_sdk_id == "VSDK-3"


def test_login_timeout_requests_reconnect() -> None:
    sess, clock = make_session()
    sess.connecting()
    sess.connection_made()
    sess.login(Credentials(login="a", password="b"))
    sess.data_to_send()
    clock.now += 15
    sess.tick(clock.now)
    assert of(sess.events_received(), ev.ReconnectRequested)


def test_bye_timeout_destroys_call() -> None:
    sess, clock = ready()
    outbound_active(sess)
    sess.hangup("K1")
    assert sess.calls["K1"].state == CallState.HANGUP
    assert sess.next_deadline() == clock.now + 5.0
    clock.now += 5
    sess.tick(clock.now)
    assert "K1" not in sess.calls
    assert (CallState.HANGUP, CallState.DESTROYED) in [
        (e.old, e.new) for e in sess.events_received() if isinstance(e, ev.CallStateChanged)]


def test_modify_timeout_is_hold_failed_and_reconnect() -> None:
    sess, clock = ready()
    outbound_active(sess)
    sess.modify("K1", "hold")
    sess.data_to_send()
    clock.now += 10
    sess.tick(clock.now)
    evs = sess.events_received()
    assert of(evs, ev.HoldFailed) == [ev.HoldFailed("K1", "modify timed out")]
    assert of(evs, ev.ReconnectRequested)
    assert sess.calls["K1"].state == CallState.ACTIVE


def test_invite_timeout_is_rpc_error() -> None:
    sess, clock = ready()
    sess.new_call("K1", "+1")
    sess.invite("K1", SDP)
    sess.data_to_send()
    clock.now += 30
    sess.tick(clock.now)
    errs = of(sess.events_received(), ev.RpcErrorReceived)
    assert len(errs) == 1 and errs[0].method == v.INVITE and errs[0].call_id == "K1"
    sess.request_timed_out("unknown-id")  # nothing pending: ignored
    assert sess.events_received() == []


def test_relogin_while_ready_and_close() -> None:
    sess, _ = ready()
    sess.login(Credentials(token="t"))
    assert last_request(sent(sess), "login")["params"]["login_token"] == "t"
    assert sess.state == ClientState.LOGGING_IN
    sess.close()
    assert sess.state == ClientState.CLOSED
    sess.connection_lost()  # after close: nothing changes
    assert sess.state == ClientState.CLOSED
