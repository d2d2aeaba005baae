"""Conformance against the official JS SDK 2.27.10 captures (tests/fixtures/traces)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from unit.support.proto_util import SWITCH_TRACE_NAMES, TRACE_NAMES, load_trace, make_session

from softphone.protocol import events as ev
from softphone.protocol import verto as v
from softphone.protocol.jsonrpc import ErrorResponse, Request, Response, parse_message
from softphone.protocol.session import Credentials
from softphone.protocol.states import CallState, ClientState

#: dialogParams keys the JS SDK sends that we deliberately do not (browser/peer options).
ALLOWED_SDK_ONLY_DIALOG_KEYS = frozenset({
    "debug", "iceServers", "mediaSettings", "prefetchIceCandidates", "trickleIce", "debugOutput",
    "forceRelayCandidate", "keepConnectionAliveOnSocketClose",
})
#: params keys the JS SDK sends that we do not: ``trickle`` only in trickle-ICE mode, which we don't use.
ALLOWED_SDK_ONLY_PARAM_KEYS = frozenset({"trickle"})

COMPARED_METHODS = {v.LOGIN, v.GATEWAY_STATE, v.INVITE, v.ANSWER, v.BYE, v.INFO, v.MODIFY}


def jtype(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    assert isinstance(value, dict)
    return "object"


def assert_same_shape(ours: dict[str, Any], theirs: dict[str, Any], allowed_extra: frozenset[str], where: str) -> None:
    for key, value in ours.items():
        assert key in theirs, f"{where}: we send {key!r}, the JS SDK does not"
        assert jtype(value) == jtype(theirs[key]), f"{where}.{key}: {jtype(value)} vs {jtype(theirs[key])}"
    missing = set(theirs) - set(ours)
    assert missing <= allowed_extra, f"{where}: the JS SDK sends {sorted(missing - allowed_extra)} and we do not"


#: The keys of an ``RTCRtpCodecCapability`` the SDK sends that we may leave out: Chromium puts its own
#: fmtp line (``minptime=10;useinbandfec=1``) on Opus; aiortc offers Opus with none, so ours has none.
ALLOWED_SDK_ONLY_CODEC_KEYS = frozenset({"sdpFmtpLine"})


def assert_same_codecs(ours: list[dict[str, Any]], theirs: list[dict[str, Any]], where: str) -> None:
    """``preferred_codecs``: the same codecs in the same order, each capability key by key."""
    assert [c["mimeType"] for c in ours] == [c["mimeType"] for c in theirs], where
    for mine, sdk in zip(ours, theirs, strict=True):
        name = f"{where}[{sdk['mimeType']}]"
        assert_same_shape(mine, sdk, ALLOWED_SDK_ONLY_CODEC_KEYS, name)
        for key, value in mine.items():
            assert value == sdk[key], f"{name}.{key}: {value!r} vs {sdk[key]!r}"


def assert_same_message_shape(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    method = theirs["method"]
    assert ours["method"] == method
    assert ours["jsonrpc"] == theirs["jsonrpc"] == "2.0"
    assert jtype(ours["id"]) == jtype(theirs["id"]) == "string"
    assert set(ours) == set(theirs), f"{method}: top-level keys differ"
    assert_same_shape(ours["params"], theirs["params"], ALLOWED_SDK_ONLY_PARAM_KEYS, method)
    if "dialogParams" in theirs["params"]:
        assert_same_shape(ours["params"]["dialogParams"], theirs["params"]["dialogParams"],
                          ALLOWED_SDK_ONLY_DIALOG_KEYS, method + ".dialogParams")
        if "preferred_codecs" in theirs["params"]["dialogParams"]:
            assert_same_codecs(ours["params"]["dialogParams"]["preferred_codecs"],
                               theirs["params"]["dialogParams"]["preferred_codecs"], method + ".preferred_codecs")
    if "User-Agent" in theirs["params"]:
        # the same form and, for a session named like the SDK ("Web", "2.27.10"), the same value:
        # a string "<name>-<version>" on invite/answer/attach, {sdkVersion, data} on login
        assert ours["params"]["User-Agent"] == theirs["params"]["User-Agent"], f"{method}: User-Agent differs"
    if method == v.LOGIN:
        # the nested login objects must match key for key (values too, except the user agent)
        for key in ("userVariables", "loginParams"):
            assert ours["params"][key] == theirs["params"][key]
        assert set(ours["params"]["User-Agent"]) == set(theirs["params"]["User-Agent"])
        assert ours["params"]["reconnection"] is theirs["params"]["reconnection"] is False


# --- 1. every sdk->server message parses and classifies ----------------------------------------

def _all_records() -> list[tuple[str, int, dict[str, Any]]]:
    out = []
    for name in TRACE_NAMES:
        for i, rec in enumerate(load_trace(name)):
            out.append((name, i, rec))
    return out


@pytest.mark.parametrize("name", TRACE_NAMES + SWITCH_TRACE_NAMES)
def test_every_message_in_trace_parses_and_classifies(name: str) -> None:
    records = load_trace(name)
    assert any(r["dir"] == "sdk->server" for r in records)
    for rec in records:
        raw = rec["msg"]
        msg = parse_message(json.dumps(raw))
        if "method" in raw:
            assert isinstance(msg, Request)
            assert msg.method == raw["method"]
            assert msg.id == raw["id"] and type(msg.id) is type(raw["id"])
            assert msg.params == raw.get("params", {})
        elif "error" in raw:
            assert isinstance(msg, ErrorResponse)
        else:
            assert isinstance(msg, Response)
            assert msg.id == raw["id"] and type(msg.id) is type(raw["id"])
            assert msg.result == raw["result"]
        # also as bytes
        assert parse_message(json.dumps(raw).encode()) == msg


def test_sdk_messages_cover_expected_methods() -> None:
    methods = {rec["msg"].get("method") for _, _, rec in _all_records() if rec["dir"] == "sdk->server"}
    assert COMPARED_METHODS <= methods
    # acknowledgements are results with {"method": ...} echoing the server's integer id
    acks = [rec["msg"] for _, _, rec in _all_records() if rec["dir"] == "sdk->server" and "result" in rec["msg"]]
    assert acks and all(isinstance(a["id"], int) and set(a["result"]) == {"method"} for a in acks)


# --- 2. trace replay ---------------------------------------------------------------------------------


class Replayer:
    """Drive a VertoSession through a trace and compare what it sends with the SDK's captures."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.records = load_trace(name)
        login = next(r["msg"]["params"] for r in self.records if r["msg"].get("method") == v.LOGIN)
        sdk_ua = login["User-Agent"]
        # name the session as the SDK names itself ("Web-2.27.10"), so the user agents compare by value
        self.sess, self.clock = make_session(sdk_name="Web", sdk_version=sdk_ua["sdkVersion"],
                                             user_agent=sdk_ua["data"])
        self.outbox: list[dict[str, Any]] = []
        self.id_map: dict[Any, Any] = {}  # SDK request id -> our request id
        self.events: list[ev.Event] = []
        self.compared: list[str] = []
        self.skipped: list[str] = []

    def _drain(self) -> None:
        self.outbox.extend(json.loads(s) for s in self.sess.data_to_send())
        self.events.extend(self.sess.events_received())

    def _take(self, method: str) -> dict[str, Any]:
        for i, m in enumerate(self.outbox):
            if m.get("method") == method:
                return self.outbox.pop(i)
        raise AssertionError(f"{self.name}: session did not send {method}; outbox {self.outbox}")

    def _take_result(self, msg_id: Any) -> dict[str, Any]:
        for i, m in enumerate(self.outbox):
            if "result" in m and m.get("id") == msg_id and type(m.get("id")) is type(msg_id):
                return self.outbox.pop(i)
        raise AssertionError(f"{self.name}: no acknowledgement of {msg_id!r}; outbox {self.outbox}")

    def _intent(self, theirs: dict[str, Any]) -> None:
        method = theirs["method"]
        p = theirs["params"]
        dp = p.get("dialogParams", {})
        s = self.sess
        if method == v.LOGIN:
            creds = Credentials(token=p["login_token"]) if "login_token" in p else \
                Credentials(login=p["login"], password=p["passwd"])
            s.connecting()
            s.connection_made()
            s.login(creds)
        elif method == v.INVITE:
            # codecs only when the application chose some, as it did for the SDK
            codecs = [c["mimeType"].split("/", 1)[1] for c in dp.get("preferred_codecs", [])] or None
            s.new_call(dp["callID"], dp["destination_number"], caller_name=dp["caller_id_name"],
                       caller_number=dp["caller_id_number"], codecs=codecs)
            s.invite(dp["callID"], p["sdp"])
        elif method == v.ANSWER:
            s.answer(dp["callID"], p["sdp"])
        elif method == v.MODIFY:
            s.modify(dp["callID"], p["action"])
        elif method == v.INFO:
            s.dtmf(dp["callID"], p["dtmf"])
        elif method == v.BYE:
            hang = s.hangup(dp["callID"])
            assert (hang.cause, hang.cause_code) == (p["cause"], p["causeCode"])
        elif method == v.GATEWAY_STATE:
            pass  # sent by the session itself after clientReady
        else:
            # candidate / endOfCandidates: trickle ICE is not used by this client (non-trickle profile)
            self.skipped.append(method)
            return
        self._drain()
        ours = self._take(method)
        assert_same_message_shape(ours, theirs)
        self.id_map[theirs["id"]] = ours["id"]
        self.compared.append(method)

    def run(self) -> None:
        for rec in self.records:
            msg = rec["msg"]
            if rec["dir"] == "sdk->server":
                if "method" in msg:
                    self._intent(msg)
                else:
                    self._drain()
                    ours = self._take_result(msg["id"])
                    assert ours == msg, f"{self.name}: ack differs"
                    self.compared.append("ack:" + msg["result"]["method"])
            else:
                fed = dict(msg)
                if "method" not in fed and fed.get("id") in self.id_map:
                    fed["id"] = self.id_map[fed["id"]]
                elif "method" not in fed:
                    continue  # a response to something we do not send (trickle candidates)
                self.sess.receive_text(json.dumps(fed))
                self._drain()
        assert not [m for m in self.outbox if m.get("method") in COMPARED_METHODS], self.outbox


def kinds(events: list[ev.Event]) -> list[str]:
    return [type(e).__name__ for e in events]


@pytest.mark.parametrize("name", TRACE_NAMES)
def test_trace_replay(name: str) -> None:
    r = Replayer(name)
    r.run()
    evs = r.events
    sess = r.sess
    assert not [e for e in evs if isinstance(e, ev.ProtocolViolation | ev.RpcErrorReceived)]
    assert {"login", "telnyx_rtc.gatewayState"} <= set(r.compared)
    assert sess.state == ClientState.READY
    assert len([e for e in evs if isinstance(e, ev.Ready)]) == 1
    assert sess.sessid == next(rec["msg"]["result"]["sessid"] for rec in r.records if rec["dir"] == "server->sdk")
    if name in ("login", "login_token"):
        assert r.compared == ["login", "telnyx_rtc.gatewayState"]
        return
    call_states = [(e.old, e.new) for e in evs if isinstance(e, ev.CallStateChanged)]
    assert call_states[-1] == (CallState.HANGUP, CallState.DESTROYED)
    assert not sess.calls
    hangups = [e for e in evs if isinstance(e, ev.CallHangup)]
    assert len(hangups) == 1
    if name.startswith("inbound"):
        incoming = [e for e in evs if isinstance(e, ev.IncomingCall)]
        assert len(incoming) == 1 and incoming[0].invite.sdp
        assert incoming[0].invite.ids.call_control_id.startswith("v3:fake-cc-")
        assert "telnyx_rtc.answer" in r.compared and "ack:telnyx_rtc.invite" in r.compared
        assert "ack:telnyx_rtc.bye" in r.compared
        assert any(isinstance(e, ev.CallConfirmed) for e in evs)
        assert (CallState.RINGING, CallState.ANSWERING) in call_states
        assert (CallState.ANSWERING, CallState.ACTIVE) in call_states
        bye = next(rec["msg"]["params"] for rec in r.records if rec["msg"].get("method") == "telnyx_rtc.bye")
        h = hangups[0]
        assert h.remote is True
        assert (h.cause, h.cause_code, h.sip_code, h.sip_reason) == (
            bye["cause"], bye["causeCode"], bye["sipCode"], bye["sipReason"])
        assert (h.cause, h.cause_code, h.sip_code, h.sip_reason) == ("NORMAL_CLEARING", 16, 200, "OK")
        return
    # outbound flavours
    assert "telnyx_rtc.invite" in r.compared and "telnyx_rtc.bye" in r.compared
    assert "ack:telnyx_rtc.ringing" in r.compared and "ack:telnyx_rtc.answer" in r.compared
    ringing = [e for e in evs if isinstance(e, ev.CallRinging)]
    assert len(ringing) == 1 and ringing[0].ids.call_control_id.startswith("v3:fake-cc-")
    assert ringing[0].ids.session_id and ringing[0].ids.leg_id
    answers = [e for e in evs if isinstance(e, ev.RemoteAnswer)]
    assert len(answers) == 1
    assert hangups[0].remote is False and hangups[0].cause == "NORMAL_CLEARING"
    assert (CallState.NEW, CallState.REQUESTING) in call_states
    assert (CallState.REQUESTING, CallState.TRYING) in call_states
    assert (CallState.TRYING, CallState.RINGING) in call_states
    if name == "early_media":
        early = [e for e in evs if isinstance(e, ev.RemoteEarlyMedia)]
        assert len(early) == 1 and early[0].sdp.startswith("v=0")
        assert answers[0].sdp is None
        assert (CallState.RINGING, CallState.EARLY) in call_states
        assert (CallState.EARLY, CallState.ACTIVE) in call_states
        assert "ack:telnyx_rtc.media" in r.compared
    else:
        assert answers[0].sdp and answers[0].sdp.startswith("v=0")
        assert (CallState.RINGING, CallState.ACTIVE) in call_states
    if name == "hold":
        assert r.compared.count("telnyx_rtc.modify") == 2
        assert [e.held for e in evs if isinstance(e, ev.HoldChanged)] == [True, False]
        assert (CallState.ACTIVE, CallState.HELD) in call_states
        assert (CallState.HELD, CallState.ACTIVE) in call_states
    if name == "dtmf":
        assert "telnyx_rtc.info" in r.compared
    if name == "trickle":
        assert set(r.skipped) == {"telnyx_rtc.candidate", "telnyx_rtc.endOfCandidates"}


def test_replay_covers_every_compared_method() -> None:
    seen: set[str] = set()
    for name in TRACE_NAMES:
        r = Replayer(name)
        r.run()
        seen |= set(r.compared)
    assert COMPARED_METHODS <= seen
    assert {"ack:telnyx_rtc.ringing", "ack:telnyx_rtc.answer", "ack:telnyx_rtc.invite", "ack:telnyx_rtc.bye",
            "ack:telnyx_rtc.media"} <= seen


def test_shape_comparison_detects_differences() -> None:
    """The comparator itself: an extra key, a type change and an unlisted missing key all fail."""
    theirs = {"a": 1, "b": "x", "debug": False}
    assert_same_shape({"a": 2, "b": "y"}, theirs, ALLOWED_SDK_ONLY_DIALOG_KEYS, "t")
    with pytest.raises(AssertionError):
        assert_same_shape({"a": 2, "b": "y", "c": 1}, theirs, ALLOWED_SDK_ONLY_DIALOG_KEYS, "t")
    with pytest.raises(AssertionError):
        assert_same_shape({"a": "2", "b": "y"}, theirs, ALLOWED_SDK_ONLY_DIALOG_KEYS, "t")
    with pytest.raises(AssertionError):
        assert_same_shape({"a": 2}, theirs, ALLOWED_SDK_ONLY_DIALOG_KEYS, "t")
    assert jtype(None) == "null" and jtype(True) == "boolean" and jtype(1.5) == "number"
    assert jtype([]) == "array" and jtype({}) == "object"


# --- 3. wire fidelity: preferred_codecs and User-Agent (issue 9 item 18) ------------------------


def sdk_invite(name: str) -> dict[str, Any]:
    return next(r["msg"] for r in load_trace(name) if r["msg"].get("method") == v.INVITE)


def test_preferred_codecs_replay_matches_sdk_capture() -> None:
    """The SDK capture with application-chosen codecs (PCMU, then Opus): our invite carries the same
    ``preferred_codecs`` capabilities key by key, and the same message otherwise."""
    r = Replayer("preferred_codecs")
    r.run()
    assert {"login", "telnyx_rtc.gatewayState", "telnyx_rtc.invite", "telnyx_rtc.bye"} <= set(r.compared)
    codecs = sdk_invite("preferred_codecs")["params"]["dialogParams"]["preferred_codecs"]
    assert [c["mimeType"] for c in codecs] == ["audio/PCMU", "audio/opus"]


def test_no_preferred_codecs_unless_chosen() -> None:
    """The SDK sends no ``preferred_codecs`` unless the application chose codecs; neither do we."""
    for name in TRACE_NAMES:
        for rec in load_trace(name):
            if rec["dir"] == "sdk->server" and "dialogParams" in rec["msg"].get("params", {}):
                assert "preferred_codecs" not in rec["msg"]["params"]["dialogParams"], name
    sess, _ = make_session()
    sess.connecting()
    sess.connection_made()
    sess.login(Credentials(login="a", password="b"))
    for m in [json.loads(s) for s in sess.data_to_send()]:
        sess.receive_text(json.dumps({"jsonrpc": "2.0", "id": m["id"], "result": {"message": "logged in",
                                                                                  "sessid": "S"}}))
    sess.new_call("K", "+1")
    sess.invite("K", "v=0\r\n")
    inv = next(json.loads(s) for s in sess.data_to_send() if v.INVITE in s)
    assert "preferred_codecs" not in inv["params"]["dialogParams"]


def test_codec_comparison_rejects_the_old_shape() -> None:
    """Going back to ``[{"mimeType": "audio/PCMU"}]`` (no clockRate/channels) fails the comparison."""
    theirs = sdk_invite("preferred_codecs")["params"]["dialogParams"]["preferred_codecs"]
    with pytest.raises(AssertionError):
        assert_same_codecs([{"mimeType": c["mimeType"]} for c in theirs], theirs, "old")
    with pytest.raises(AssertionError):  # another order
        assert_same_codecs([v.codec_capability("opus"), v.codec_capability("PCMU")], theirs, "order")
    with pytest.raises(AssertionError):  # a wrong clock rate
        assert_same_codecs([{**v.codec_capability("PCMU"), "clockRate": 16000}, v.codec_capability("opus")],
                           theirs, "rate")
    assert_same_codecs([v.codec_capability("PCMU"), v.codec_capability("opus")], theirs, "ours")


def test_user_agent_comparison_rejects_the_old_form() -> None:
    """A bare ``softphone`` (or any other value) where the SDK sends ``Web-2.27.10`` fails."""
    theirs = sdk_invite("outbound")
    ours = json.loads(json.dumps(theirs))
    assert_same_message_shape(ours, theirs)
    ours["params"]["User-Agent"] = "softphone"
    with pytest.raises(AssertionError, match="User-Agent"):
        assert_same_message_shape(ours, theirs)


def test_session_user_agents_in_the_sdk_forms() -> None:
    """Named ``softphone`` / ``0.1.0``: ``softphone-0.1.0`` on calls, {sdkVersion, data} on login."""
    sess, _ = make_session(sdk_name="softphone", sdk_version="0.1.0", user_agent="softphone-0.1.0 (Python)")
    assert sess.call_user_agent == "softphone-0.1.0"
    sess.connecting()
    sess.connection_made()
    sess.login(Credentials(login="a", password="b"))
    login = json.loads(sess.data_to_send()[0])
    assert login["params"]["User-Agent"] == {"sdkVersion": "0.1.0", "data": "softphone-0.1.0 (Python)"}
    default, _ = make_session(sdk_version="2.0")
    assert default.call_user_agent == "softphone-2.0" and default.user_agent == "softphone-2.0"
