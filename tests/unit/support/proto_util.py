"""Shared helpers for the protocol tests: trace loading and a deterministic VertoSession."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from softphone.protocol import events as ev
from softphone.protocol.session import Credentials, VertoSession
from softphone.protocol.states import CallState, ClientState

TRACES_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "traces"
TRACE_NAMES = (
    "login", "login_token", "outbound", "inbound", "hold", "dtmf", "early_media",
    "pcmu", "inbound_pcmu", "trickle", "inbound_trickle",
)
#: Captures of the same SDK against the local switch (tests/fixtures/traces/capture_*.py), for what
#: the captures above never show (``preferred_codecs`` set by the application).
SWITCH_TRACE_NAMES = ("preferred_codecs",)
SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
CREDS = Credentials(login="alice", password="secret")


def load_trace(name: str) -> list[dict[str, Any]]:
    """The message lines of a trace (``dir`` + ``msg``), in order."""
    out = []
    for line in (TRACES_DIR / f"{name}.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        if "msg" in rec and rec.get("dir") in ("sdk->server", "server->sdk"):
            out.append(rec)
    return out


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Ids:
    def __init__(self, prefix: str = "c") -> None:
        self.n = 0
        self.prefix = prefix

    def __call__(self) -> str:
        self.n += 1
        return f"{self.prefix}{self.n}"


def make_session(**kw: Any) -> tuple[VertoSession, Clock]:
    clock = Clock()
    sess = VertoSession(new_id=Ids(), clock=clock, random=lambda: 0.5, **kw)
    return sess, clock


def sent(sess: VertoSession) -> list[dict[str, Any]]:
    return [json.loads(s) for s in sess.data_to_send()]


def of(events: list[ev.Event], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def req(msg_id: Any, method: str, params: dict[str, Any] | None = None, **extra: Any) -> str:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params or {}}
    obj.update(extra)
    return json.dumps(obj)


def res(msg_id: Any, result: Any, **extra: Any) -> str:
    obj: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "result": result}
    obj.update(extra)
    return json.dumps(obj)


def err(msg_id: Any, code: int, message: str = "boom") -> str:
    return json.dumps({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}})


def last_request(out: list[dict[str, Any]], method: str) -> dict[str, Any]:
    found = [m for m in out if m.get("method") == method]
    assert found, f"no {method} in {out}"
    return found[-1]


def logged_in(sessid: str = "S1", creds: Credentials = CREDS, **kw: Any) -> tuple[VertoSession, Clock]:
    """A session that is connected and logged in, not yet ready (gateway not queried)."""
    sess, clock = make_session(**kw)
    sess.connecting()
    sess.connection_made()
    sess.login(creds)
    login = last_request(sent(sess), "login")
    sess.receive_text(res(login["id"], {"message": "logged in", "sessid": sessid}))
    assert sess.state == ClientState.LOGGED_IN
    sess.events_received()
    return sess, clock


def ready(sessid: str = "S1", **kw: Any) -> tuple[VertoSession, Clock]:
    """A session that got clientReady and gateway REGED."""
    sess, clock = logged_in(sessid, **kw)
    sess.receive_text(req(9001, "telnyx_rtc.clientReady", {"reattached_sessions": []}))
    gw = last_request(sent(sess), "telnyx_rtc.gatewayState")
    sess.receive_text(res(gw["id"], {"params": {"state": "REGED"}, "sessid": sessid}))
    assert sess.state == ClientState.READY
    sess.events_received()
    return sess, clock


def outbound_active(sess: VertoSession, call_id: str = "K1", dest: str = "+15550001") -> None:
    sess.new_call(call_id, dest, caller_name="Alice", caller_number="+15550000")
    sess.invite(call_id, SDP)
    inv = last_request(sent(sess), "telnyx_rtc.invite")
    sess.receive_text(res(inv["id"], {"callID": call_id, "message": "CALL CREATED"}))
    sess.receive_text(req(7001, "telnyx_rtc.answer", {"callID": call_id, "sdp": SDP,
                                                       "telnyx_call_control_id": "cc-" + call_id}))
    sess.data_to_send()
    assert sess.calls[call_id].state == CallState.ACTIVE
    sess.events_received()


def inbound_ringing(sess: VertoSession, call_id: str = "K2", msg_id: int = 7100) -> None:
    sess.receive_text(req(msg_id, "telnyx_rtc.invite", {
        "callID": call_id, "sdp": SDP, "caller_id_name": "Bob", "caller_id_number": "+1555222",
        "callee_id_name": "Outbound Call", "callee_id_number": "alice",
        "telnyx_call_control_id": "cc-" + call_id, "telnyx_session_id": "ts", "telnyx_leg_id": "tl",
        "dialogParams": {"custom_headers": [{"name": "X-A", "value": "1"}]},
    }))
    sess.data_to_send()
    assert sess.calls[call_id].state == CallState.RINGING
