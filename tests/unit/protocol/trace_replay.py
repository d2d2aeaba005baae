"""Replay a captured JS SDK session (tests/fixtures/traces) through a VertoSession, step by step.

Each step is what triggered it (our intent, as the SDK sent it, or the server's message) with the
client's and the call's state after it, so a test can assert ``(state, trigger) -> state`` from
real message sequences.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from softphone.protocol import events as ev
from softphone.protocol import verto as v
from softphone.protocol.session import Credentials, VertoSession
from softphone.protocol.states import CallState, ClientState

TRACES = Path(__file__).resolve().parents[2] / "fixtures" / "traces"


def load_trace(name: str) -> list[dict[str, Any]]:
    """The message records of a trace (``dir`` + ``msg``), in order."""
    out = []
    for line in (TRACES / f"{name}.jsonl").read_text().splitlines():
        rec = json.loads(line) if line.strip() else {}
        if "msg" in rec and rec.get("dir") in ("sdk->server", "server->sdk"):
            out.append(rec)
    return out


@dataclass(frozen=True)
class Step:
    trigger: str  # "invite" (our intent) or "<- telnyx_rtc.answer" / "<- result:telnyx_rtc.invite"
    client: ClientState
    call: CallState | None  # the trace's call (None before it exists)
    moves: tuple[tuple[str, str], ...] = ()  # the state changes this step caused, as "old>new" of client/call


def new_session() -> VertoSession:
    n = iter(range(1, 10**6))
    return VertoSession(new_id=lambda: f"c{next(n)}", clock=lambda: 1000.0, random=lambda: 0.5)


class Replay:
    def __init__(self, name: str, sess: VertoSession | None = None) -> None:
        self.records = load_trace(name)
        self.sess = sess or new_session()
        self.call_id: str | None = None
        self.steps: list[Step] = []
        self.events: list[ev.Event] = []
        self._ids: dict[Any, tuple[Any, str]] = {}  # SDK request id -> (our id, method)

    def _state(self) -> CallState | None:
        leg = self.sess.calls.get(self.call_id or "")
        if leg is not None:
            return leg.state
        moves = [e.new for e in self.events if isinstance(e, ev.CallStateChanged) and e.call_id == self.call_id]
        return moves[-1] if moves else None  # destroyed calls leave the session

    def _record(self, trigger: str) -> None:
        for text in self.sess.data_to_send():
            msg = json.loads(text)
            if "method" in msg:
                self._pending_ours.append(msg)
        new = self.sess.events_received()
        self.events.extend(new)
        moves = tuple((("client" if isinstance(e, ev.ClientStateChanged) else "call"), f"{e.old}>{e.new}")
                      for e in new if isinstance(e, ev.ClientStateChanged | ev.CallStateChanged))
        self.steps.append(Step(trigger, self.sess.state, self._state(), moves))

    def _intent(self, msg: dict[str, Any]) -> bool:
        method, p = msg["method"], msg["params"]
        dp = p.get("dialogParams", {})
        s = self.sess
        if method == v.LOGIN:
            s.connecting()
            s.connection_made()
            s.login(Credentials(token=p["login_token"]) if "login_token" in p
                    else Credentials(login=p["login"], password=p["passwd"]))
        elif method == v.INVITE:
            self.call_id = dp["callID"]
            s.new_call(dp["callID"], dp["destination_number"])
            s.invite(dp["callID"], p["sdp"])
        elif method == v.ANSWER:
            s.answer(dp["callID"], p["sdp"])
        elif method == v.MODIFY:
            s.modify(dp["callID"], p["action"])
        elif method == v.INFO:
            s.dtmf(dp["callID"], p["dtmf"])
        elif method == v.BYE:
            s.hangup(dp["callID"])
        else:
            return False  # gatewayState (the core sends it itself), trickle candidates (not used)
        return True

    def run(self, until: int | None = None) -> Replay:
        self._pending_ours: list[dict[str, Any]] = []
        records = self.records if until is None else self.records[:until]
        for rec in records:
            msg = rec["msg"]
            if rec["dir"] == "sdk->server":
                if "method" in msg and self._intent(msg):
                    self._record(msg["method"].removeprefix("telnyx_rtc."))
                if "method" in msg:
                    ours = next((m for m in self._pending_ours if m["method"] == msg["method"]), None)
                    if ours is not None:
                        self._pending_ours.remove(ours)
                        self._ids[msg["id"]] = (ours["id"], msg["method"])
                continue
            fed = dict(msg)
            if "method" in fed:
                label = "<- " + fed["method"]
                if fed["method"] == v.INVITE:
                    self.call_id = fed["params"]["callID"]
            elif fed.get("id") in self._ids:
                fed["id"], method = self._ids[fed["id"]]
                label = "<- result:" + method
            else:
                continue  # the answer to something this client does not send (trickle candidates)
            self.sess.receive_text(json.dumps(fed))
            self._record(label)
        return self
