"""The client side of the Verto session, sans-I/O (DESIGN.md §2).

Feed it with :meth:`VertoSession.receive_text`, :meth:`connection_made`,
:meth:`connection_lost` and :meth:`tick`; take frames to write from
:meth:`data_to_send` and what happened from :meth:`events_received`. Intents
(:meth:`login`, :meth:`invite`, :meth:`answer`, :meth:`hangup`, :meth:`dtmf`,
:meth:`modify` ...) queue frames. Acknowledgements and ping answers are automatic.
Ids, time and jitter are injected; nothing here touches a socket or a clock.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from softphone.errors import LocalProtocolError, RemoteProtocolError
from softphone.protocol import events as ev
from softphone.protocol import verto as v
from softphone.protocol.jsonrpc import ErrorResponse, Request, Response, build_request, build_result, parse_message
from softphone.protocol.states import (
    CallState,
    ClientState,
    GatewayState,
    Trigger,
    call_allows,
    call_transition,
    client_transition,
)

#: Request timeouts in seconds (PROTOCOL.md §1.5: modify/bye/ping 10 s; BYE guard 5 s).
REQUEST_TIMEOUTS: dict[str, float] = {
    v.LOGIN: 15.0,
    v.GATEWAY_STATE: 10.0,
    v.PING: 10.0,
    v.MODIFY: 10.0,
    v.BYE: 5.0,
    v.INVITE: 30.0,
    v.ANSWER: 30.0,
    v.ATTACH: 30.0,
}
#: The ``modify`` actions and the intents they are in the state tables.
_MODIFY_INTENTS = {"hold": Trigger.HOLD, "unhold": Trigger.UNHOLD, "toggleHold": Trigger.TOGGLE_HOLD}
KEEPALIVE_INTERVAL = 35.0  # JS KEEPALIVE_INTERVAL: ping if the server has been silent this long
GATEWAY_RETRIES = 5  # JS RETRY_REGISTER_TIME


#: JWT claims that name the credential a token logs in as, in order of preference: the local
#: switch puts the credential's username in both; Telnyx puts the telephony credential's id in ``sub``.
TOKEN_NAME_CLAIMS = ("telephony_credential_id", "sub")
_MAX_NAME = 128


def token_claims(token: str) -> dict[str, Any]:
    """The payload of a JWT, decoded for display only (no signature check: the server verifies it).

    Anything that is not a three-part token with a base64url JSON object in the middle gives ``{}``.
    """
    parts = token.split(".")
    if len(parts) != 3 or not parts[1] or len(parts[1]) > 16384:
        return {}
    body = parts[1]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        claims = json.loads(raw)
    except (ValueError, UnicodeDecodeError):  # binascii.Error and JSONDecodeError are ValueErrors
        return {}
    return claims if isinstance(claims, dict) else {}


def token_credential_name(token: str) -> str:
    """The credential a JWT logs in as, from its claims ('' when it names none printable)."""
    claims = token_claims(token)
    for key in TOKEN_NAME_CLAIMS:
        value = claims.get(key)
        if isinstance(value, str) and value.strip() and value.isprintable() and len(value) <= _MAX_NAME:
            return value.strip()
    return ""


@dataclass(frozen=True)
class Credentials:
    """How to log in: ``login``+``password`` (SIP or telephony credential) or ``token`` (JWT)."""

    login: str | None = None
    password: str | None = None
    token: str | None = None

    def __post_init__(self) -> None:
        if not self.token and not (self.login and self.password is not None):
            raise LocalProtocolError("credentials need a login and password, or a token")

    @property
    def kind(self) -> str:
        return "token" if self.token else "password"

    @property
    def user(self) -> str:
        """What to show for this login (never the secret): the login, or for a JWT the credential
        named in its claims (``telephony_credential_id``, else ``sub``); ``(token)`` if it names none."""
        if self.login:
            return self.login
        return token_credential_name(self.token or "") or "(token)"

    def __repr__(self) -> str:  # keep secrets out of reprs, logs and tracebacks
        return f"Credentials(login={self.login!r}, password={'***' if self.password else None}, " \
               f"token={'***' if self.token else None})"


@dataclass
class CallLeg:
    """The session's view of one call."""

    call_id: str
    direction: str  # "outbound" | "inbound"
    dialog: v.CallDialog
    state: CallState = CallState.NEW
    ids: v.TelnyxIds = field(default_factory=v.TelnyxIds)
    remote_name: str = ""
    remote_number: str = ""
    remote_headers: tuple[tuple[str, str], ...] = ()
    client_state: str = ""
    got_early_sdp: bool = False
    held: bool = False  # hold intent, kept across reattach
    hangup: ev.CallHangup | None = None


#: ``_Pending.action`` of a :meth:`VertoSession.refresh_login` request.
_REFRESH = "refresh"


@dataclass
class _Pending:
    method: str
    sent_at: float
    deadline: float | None
    call_id: str | None = None
    action: str = ""


class VertoSession:
    """Client-side protocol state for one logical session (survives reconnects)."""

    def __init__(
        self,
        *,
        new_id: Callable[[], str],
        clock: Callable[[], float],
        random: Callable[[], float] = lambda: 0.5,
        sdk_name: str = "softphone",
        sdk_version: str = "0",
        user_agent: str | None = None,
        gateway_retries: int = GATEWAY_RETRIES,
    ) -> None:
        self._new_id = new_id
        self._clock = clock
        self._random = random
        #: login ``User-Agent`` {sdkVersion, data}: the bare version and the full user-agent string.
        self.sdk_version = sdk_version
        self.call_user_agent = v.call_user_agent(sdk_name, sdk_version)  # invite/answer/attach: "softphone-0.1.0"
        self.user_agent = user_agent if user_agent is not None else self.call_user_agent
        self.gateway_retries = gateway_retries
        self.state = ClientState.DISCONNECTED
        self.gateway_state = GatewayState.UNKNOWN
        self.credentials: Credentials | None = None
        self.sessid: str | None = None
        self.voice_sdk_id: str | None = None
        self.dc = ""
        self.region = ""
        self.punted = False
        self.calls: dict[str, CallLeg] = {}
        self._out: list[str] = []
        self._events: list[ev.Event] = []
        self._pending: dict[str | int, _Pending] = {}
        self._gateway_attempts = 0
        self._gateway_retry_at: float | None = None
        self._last_rx = 0.0
        self._reconnecting = False

    # -- outputs ----------------------------------------------------------------------------
    def data_to_send(self) -> list[str]:
        out, self._out = self._out, []
        return out

    def events_received(self) -> list[ev.Event]:
        out, self._events = self._events, []
        return out

    def pending_methods(self) -> dict[str | int, str]:
        return {k: p.method for k, p in self._pending.items()}

    # -- the state machines (softphone.protocol.states: every state check reads the tables) -------
    def _client_handles(self, trigger: Trigger) -> bool:
        """Whether ``trigger`` does anything in the client's state (raises if it is illegal there)."""
        return client_transition(self.state, trigger) is not None

    def _move(self, trigger: Trigger) -> bool:
        """Apply ``trigger`` to the client; False when the table says it changes nothing here."""
        new = client_transition(self.state, trigger)
        if new is None:
            return False
        if new != self.state:
            old, self.state = self.state, new
            self._events.append(ev.ClientStateChanged(old, new))
        return True

    def _call_move(self, leg: CallLeg, trigger: Trigger) -> bool:
        """Apply ``trigger`` to ``leg``; False when the table says it changes nothing in its state."""
        new = call_transition(leg.state, trigger)
        if new is None:
            return False
        if new != leg.state:
            old, leg.state = leg.state, new
            self._events.append(ev.CallStateChanged(leg.call_id, old, new))
            if new == CallState.DESTROYED:
                self.calls.pop(leg.call_id, None)
        return True

    def _request(self, method: str, params: dict[str, Any], *, call_id: str | None = None,
                 action: str = "", **extra: Any) -> str:
        rid = self._new_id()
        now = self._clock()
        timeout = REQUEST_TIMEOUTS.get(method)
        self._pending[rid] = _Pending(method, now, now + timeout if timeout else None, call_id, action)
        self._out.append(build_request(rid, method, params, **extra))
        return rid

    def _ack(self, req: Request) -> None:
        if req.id is not None:
            self._out.append(v.ack(req.id, req.method) if req.method else build_result(req.id, {}))

    def _leg(self, call_id: str) -> CallLeg:
        leg = self.calls.get(call_id)
        if leg is None:
            raise LocalProtocolError(f"no call {call_id}")
        return leg

    def _logged_in_for(self, intent: Trigger) -> str:
        """The ``sessid`` for ``intent``, which the client table allows only once logged in."""
        self._move(intent)
        assert self.sessid, "logged_in and ready are entered only with a sessid"
        return self.sessid

    # -- connection lifecycle ------------------------------------------------------------------
    def connecting(self) -> None:
        """The I/O layer started opening a socket."""
        self._move(Trigger.CONNECTING)

    def connection_made(self) -> None:
        """The socket is open: log in (again, with the same ``sessid`` on a reconnect)."""
        self._move(Trigger.CONNECTION_MADE)
        self._last_rx = self._clock()
        if self.credentials is not None:
            self._send_login()

    def login(self, credentials: Credentials) -> None:
        """Remember ``credentials`` and log in now if the socket is open."""
        self.credentials = credentials
        if self._client_handles(Trigger.LOGIN):
            self._send_login()

    def _send_login(self) -> None:
        assert self.credentials is not None
        creds = self.credentials
        params = v.login_params(
            login=creds.login, passwd=creds.password, login_token=creds.token,
            sessid=self.sessid if self._reconnecting else None,
            reconnection=self._reconnecting, sdk_version=self.sdk_version, user_agent=self.user_agent,
        )
        self._move(Trigger.SEND_LOGIN)
        self._request(v.LOGIN, params)

    def refresh_login(self, credentials: Credentials) -> None:
        """Log in again on the open, ready socket with new ``credentials`` (a fresh JWT).

        As JS ``client.login({creds})`` on the same socket (PROTOCOL.md §2.2), with the session's
        ``sessid``, so the server keeps the session and its calls. The client stays ``ready``
        throughout: the answer is a :class:`~softphone.protocol.events.LoggedIn`; a refusal is an
        :class:`~softphone.protocol.events.RpcErrorReceived` (method ``login``) and the session goes
        on with the login it has. Later logins (reconnects) use the new credentials.
        """
        if self.state is not ClientState.READY:
            raise LocalProtocolError(f"a login refresh needs a ready session (the client is {self.state.value})")
        self.credentials = credentials
        params = v.login_params(
            login=credentials.login, passwd=credentials.password, login_token=credentials.token,
            sessid=self.sessid, reconnection=False, sdk_version=self.sdk_version, user_agent=self.user_agent,
        )
        self._request(v.LOGIN, params, action=_REFRESH)

    def connection_lost(self, *, will_reconnect: bool = True) -> None:
        """The socket closed. Calls wait for reattachment when a reconnect follows."""
        for rid, pending in list(self._pending.items()):
            if pending.method == v.BYE and pending.call_id in self.calls:
                self._finish(self.calls[pending.call_id])
            del self._pending[rid]
        self._gateway_retry_at = None
        self.gateway_state = GatewayState.UNKNOWN
        trigger = Trigger.SOCKET_LOST if will_reconnect and not self.punted else Trigger.SOCKET_CLOSED
        if not self._client_handles(trigger):
            return  # closed for good
        if trigger == Trigger.SOCKET_LOST:
            self._reconnecting = self.sessid is not None
            for leg in list(self.calls.values()):
                self._recover(leg, Trigger.SOCKET_LOST)
        else:
            self._end_all_locally("PURGE", "connection closed")
        self._move(trigger)

    def _recover(self, leg: CallLeg, trigger: Trigger) -> bool:
        """Move a live call to ``recovering`` (remembering a hold across the reattach)."""
        held = leg.state == CallState.HELD
        if not self._call_move(leg, trigger):
            return False
        leg.held = leg.held or held
        return True

    def close(self) -> None:
        """Give the session up: calls end locally, no reconnect."""
        self._end_all_locally("PURGE", "client closed")
        self._pending.clear()
        self._move(Trigger.CLOSE)

    def logout(self) -> None:
        """Hang up every live call (BYE) before the I/O layer closes the socket."""
        for leg in list(self.calls.values()):
            if call_allows(leg.state, Trigger.HANGUP):
                self.hangup(leg.call_id)

    def _end_all_locally(self, cause: str, reason: str) -> None:
        for leg in list(self.calls.values()):
            self._end_locally(leg, cause, reason)

    def _end_locally(self, leg: CallLeg, cause: str, reason: str, trigger: Trigger = Trigger.END_LOCALLY) -> None:
        self._hung_up(leg, trigger, ev.CallHangup(leg.call_id, cause, v.cause_code(cause), None, "", False, reason))
        self._finish(leg)

    def _hung_up(self, leg: CallLeg, trigger: Trigger, hang: ev.CallHangup) -> bool:
        """Apply a trigger that ends the call and report ``hang``; False if the call had ended already."""
        if call_transition(leg.state, trigger) is None:
            return False
        leg.hangup = hang
        self._call_move(leg, trigger)
        self._events.append(hang)
        return True

    def _finish(self, leg: CallLeg) -> None:
        self._call_move(leg, Trigger.FINISH)

    # -- timers (the I/O layer calls tick() periodically) --------------------------------------
    def next_deadline(self) -> float | None:
        times = [p.deadline for p in self._pending.values() if p.deadline is not None]
        if self._gateway_retry_at is not None:
            times.append(self._gateway_retry_at)
        if self._client_handles(Trigger.KEEPALIVE):
            times.append(self._last_rx + KEEPALIVE_INTERVAL)
        return min(times) if times else None

    def tick(self, now: float) -> None:
        """Fire whatever is due at ``now``: request timeouts, gateway retries, keepalive."""
        for rid, pending in list(self._pending.items()):
            if pending.deadline is not None and pending.deadline <= now:
                self.request_timed_out(rid)
        if self._gateway_retry_at is not None and self._gateway_retry_at <= now:
            self._gateway_retry_at = None
            self.query_gateway_state()
        if self._client_handles(Trigger.KEEPALIVE) and now - self._last_rx >= KEEPALIVE_INTERVAL \
                and not any(p.method == v.PING for p in self._pending.values()):
            self.ping()

    def request_timed_out(self, request_id: str | int) -> None:
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return
        leg = self.calls.get(pending.call_id or "")
        if pending.method == v.BYE:
            if leg is not None:
                self._finish(leg)
            return
        if pending.method == v.MODIFY and leg is not None:
            self._events.append(ev.HoldFailed(leg.call_id, "modify timed out"))
        if pending.method == v.GATEWAY_STATE:
            self._schedule_gateway_retry(self.gateway_state)
            return
        if pending.method in (v.PING, v.MODIFY, v.LOGIN):
            self._events.append(ev.ReconnectRequested(f"{pending.method} timed out"))
            return
        self._events.append(ev.RpcErrorReceived(request_id, pending.method, -329990, "request timed out",
                                                pending.call_id))

    # -- inbound frames ---------------------------------------------------------------------------
    def receive_text(self, text: str | bytes) -> None:
        """Process one frame. Malformed input becomes a ProtocolViolation event, never an exception."""
        self._last_rx = self._clock()
        if isinstance(text, str) and text.startswith("#SP"):
            return  # legacy Verto speed-test strings (PROTOCOL.md §1.2)
        try:
            msg = parse_message(text)
        except RemoteProtocolError as exc:
            self._events.append(ev.ProtocolViolation(str(exc)))
            return
        sdk_id = msg.voice_sdk_id
        if sdk_id:
            self.voice_sdk_id = sdk_id
        try:
            if isinstance(msg, Request):
                self._on_request(msg)
            elif isinstance(msg, Response):
                self._on_response(msg)
            else:
                self._on_error(msg)
        except (RemoteProtocolError, LocalProtocolError) as exc:
            method = msg.method if isinstance(msg, Request) else "response"
            self._events.append(ev.ProtocolViolation(f"{method}: {exc}"))

    def _on_response(self, msg: Response) -> None:
        pending = self._pending.pop(msg.id, None)
        if pending is None:
            return  # late or unknown: nothing waits for it
        result = msg.result if isinstance(msg.result, dict) else {}
        result = self._unwrap_blade(result)
        method = pending.method
        if method == v.LOGIN:
            sessid = result.get("sessid")
            if isinstance(sessid, str) and sessid:
                self.sessid = sessid
            if not self.sessid:
                raise RemoteProtocolError("login result without a sessid")
            self._move(Trigger.LOGIN_ACCEPTED)
            self._events.append(ev.LoggedIn(self.sessid))
        elif method == v.GATEWAY_STATE:
            inner = result.get("params")
            self._on_gateway_state(inner if isinstance(inner, dict) else result)
        elif method == v.INVITE:
            leg = self.calls.get(pending.call_id or "")
            if leg is not None:
                self._call_move(leg, Trigger.INVITE_ACCEPTED)
        elif method in (v.ANSWER, v.ATTACH):
            leg = self.calls.get(pending.call_id or "")
            confirmed = Trigger.ANSWER_CONFIRMED_HELD if leg is not None and leg.held else Trigger.ANSWER_CONFIRMED
            if leg is not None and self._call_move(leg, confirmed):
                self._events.append(ev.CallConfirmed(leg.call_id))
        elif method == v.BYE:
            leg = self.calls.get(pending.call_id or "")
            if leg is not None:
                self._finish(leg)
        elif method == v.MODIFY:
            leg = self.calls.get(pending.call_id or "")
            hold = result.get("holdState")
            trigger = Trigger.HOLD_RESULT_HELD if hold == "held" else \
                Trigger.HOLD_RESULT_ACTIVE if hold == "active" else Trigger.HOLD_RESULT_INVALID
            if leg is None or not self._call_move(leg, trigger):
                return
            if trigger == Trigger.HOLD_RESULT_INVALID:
                self._events.append(ev.HoldFailed(leg.call_id, f"no holdState in result ({hold!r})"))
                return
            leg.held = trigger == Trigger.HOLD_RESULT_HELD
            self._events.append(ev.HoldChanged(leg.call_id, leg.held))

    @staticmethod
    def _unwrap_blade(result: dict[str, Any]) -> dict[str, Any]:
        # Legacy nested envelope result.result.{code,node_id,result} (PROTOCOL.md §1.2).
        inner = result.get("result")
        if isinstance(inner, dict) and "code" in inner and isinstance(inner.get("result"), dict):
            if str(inner.get("code")) != "200":
                raise RemoteProtocolError(f"nested result code {inner.get('code')}")
            nested: dict[str, Any] = inner["result"]
            return nested
        return result

    def _on_error(self, msg: ErrorResponse) -> None:
        pending = self._pending.pop(msg.id, None) if msg.id is not None else None
        method = pending.method if pending else ""
        # An error to our login, or to nothing while we log in, is the login's rejection
        # (not to a refresh_login: the session goes on with the login it has).
        refresh = pending is not None and pending.action == _REFRESH
        rejected = None if refresh else Trigger.LOGIN_REJECTED if method == v.LOGIN \
            else Trigger.UNMATCHED_ERROR if pending is None else None
        if rejected is not None and self._client_handles(rejected):
            self._events.append(ev.LoginRejected(msg.code, msg.message))
            self._move(rejected)
            return
        call_id = pending.call_id if pending else None
        self._events.append(ev.RpcErrorReceived(msg.id, method, msg.code, msg.message, call_id))
        if msg.code == v.AUTH_REQUIRED and self.credentials is not None:
            self._send_login()  # JS re-logs in on any -32000 (BaseSession.execute)
            return
        leg = self.calls.get(call_id or "")
        if leg is None:
            return
        if method == v.MODIFY:
            self._events.append(ev.HoldFailed(leg.call_id, msg.message))
        elif method in (v.INVITE, v.ANSWER, v.ATTACH) and call_transition(leg.state, Trigger.REQUEST_FAILED):
            # JS: SDP_SEND_FAILED and hang up with USER_BUSY (PROTOCOL.md §4.2, §4.5)
            self.hangup(leg.call_id, "USER_BUSY", reason=f"{method} failed: {msg.message}")
        elif method == v.BYE:
            self._finish(leg)

    def _on_gateway_state(self, params: dict[str, Any]) -> None:
        state = GatewayState.parse(params.get("state"))
        dc = params.get("dc")
        region = params.get("region")
        self.dc = dc if isinstance(dc, str) else self.dc
        self.region = region if isinstance(region, str) else self.region
        previous = self.gateway_state
        self.gateway_state = state
        if state != previous:
            self._events.append(ev.GatewayStateChanged(state, self.dc, self.region))
        if state.is_ready:
            self._gateway_retry_at = None
            if self._move(Trigger.GATEWAY_READY):
                self._gateway_attempts = 0
                self._reconnecting = False
                self._events.append(ev.Ready(self.dc, self.region))
        elif state.is_failure:
            self._events.append(ev.RegistrationFailed(state, v.GATEWAY_FAILURE, "Gateway registration has failed"))
            self._events.append(ev.ReconnectRequested(f"gateway {state.value}"))
        elif state.is_retry or state == GatewayState.UNKNOWN:
            self._schedule_gateway_retry(state)

    def _schedule_gateway_retry(self, state: GatewayState) -> None:
        self._gateway_attempts += 1
        if self._gateway_attempts > self.gateway_retries:
            self._gateway_retry_at = None
            self._events.append(ev.RegistrationFailed(
                state, v.GATEWAY_TIMEOUT, f"Gateway registration has timed out ({state.value})"))
            return
        delay = 2.0 + 4.0 * self._random()  # JS: random 2-6 s
        self._gateway_retry_at = self._clock() + delay
        self._events.append(ev.GatewayRetryScheduled(state, self._gateway_attempts, delay))

    def query_gateway_state(self) -> None:
        """Ask for the gateway state (after clientReady, or on a retry)."""
        self._request(v.GATEWAY_STATE, {}, voice_sdk_id=self.voice_sdk_id)

    def _on_request(self, req: Request) -> None:
        method = req.method
        handler = self._HANDLERS.get(method)
        if method == v.PING:
            # JS answers a server ping with a new ping request, only once logged in (§1.6).
            if self._client_handles(Trigger.SERVER_PING):
                self._request(v.PING, {}, voice_sdk_id=req.voice_sdk_id or self.voice_sdk_id)
            return
        if method == v.GATEWAY_STATE:
            self._on_gateway_state(req.params)  # unsolicited push; not acknowledged (JS)
            return
        self._ack(req)
        if handler is not None:
            handler(self, req)
        elif method:
            self._events.append(ev.UnknownRequest(method, dict(req.params)))

    def _on_client_ready(self, req: Request) -> None:
        attached = req.params.get("reattached_sessions")
        ids = {x for x in attached if isinstance(x, str)} if isinstance(attached, list) else set()
        dead = [leg for leg in self.calls.values()
                if leg.call_id not in ids and call_transition(leg.state, Trigger.NOT_REATTACHED)]
        for leg in dead:
            self._end_locally(leg, "NORMAL_TEMPORARY_FAILURE", "not reattached after reconnect",
                              Trigger.NOT_REATTACHED)
        if dead:
            self._events.append(ev.CallsNotReattached(tuple(leg.call_id for leg in dead)))
        self._gateway_attempts = 0
        self.query_gateway_state()

    def _on_invite(self, req: Request) -> None:
        inv = v.InviteParams.parse(req.params)
        if inv.call_id in self.calls:
            return  # a repeated invite for a call we know
        dialog = v.CallDialog(
            call_id=inv.call_id, destination=inv.callee_number, caller_name=inv.callee_name,
            caller_number=inv.callee_number, remote_caller_name=inv.caller_name,
            remote_caller_number=inv.caller_number, ids=inv.ids,
        )
        leg = CallLeg(inv.call_id, "inbound", dialog, ids=inv.ids, remote_name=inv.caller_name,
                      remote_number=inv.caller_number, remote_headers=inv.custom_headers,
                      client_state=inv.client_state)
        self.calls[inv.call_id] = leg
        self._events.append(ev.CallCreated(inv.call_id, "inbound", inv.callee_number))
        self._call_move(leg, Trigger.INVITE_RECEIVED)
        self._events.append(ev.IncomingCall(inv))

    def _on_ringing(self, req: Request) -> None:
        leg = self._leg(v.call_id_of(req.params))
        ids = v.TelnyxIds.from_params(req.params)
        leg.ids = leg.ids.merge(ids)
        leg.dialog.ids = leg.ids
        self._take_headers(leg, req.params)
        self._call_move(leg, Trigger.RINGING)
        self._events.append(ev.CallRinging(leg.call_id, leg.ids))

    def _on_media(self, req: Request) -> None:
        leg = self._leg(v.call_id_of(req.params))
        sdp = req.params.get("sdp")
        if not isinstance(sdp, str) or not sdp.strip():
            raise RemoteProtocolError("media without SDP")
        self._take_headers(leg, req.params)
        if leg.direction == "outbound" and self._call_move(leg, Trigger.EARLY_MEDIA):
            leg.got_early_sdp = True
            self._events.append(ev.RemoteEarlyMedia(leg.call_id, sdp))

    @staticmethod
    def _take_headers(leg: CallLeg, params: dict[str, Any]) -> None:
        """Custom headers of an outbound call's ringing/media replace the ones known (as an answer's do)."""
        dialog = params.get("dialogParams")
        headers = v.headers_from(dialog.get("custom_headers")) if isinstance(dialog, dict) else ()
        if headers and leg.direction == "outbound":
            leg.remote_headers = headers

    def _on_answer(self, req: Request) -> None:
        leg = self._leg(v.call_id_of(req.params))
        sdp = req.params.get("sdp")
        sdp = sdp if isinstance(sdp, str) and sdp.strip() else None
        if leg.direction != "outbound" or call_transition(leg.state, Trigger.REMOTE_ANSWER) is None:
            return
        leg.ids = leg.ids.merge(v.TelnyxIds.from_params(req.params))
        leg.dialog.ids = leg.ids
        dialog = req.params.get("dialogParams")
        headers = v.headers_from(dialog.get("custom_headers")) if isinstance(dialog, dict) else ()
        if headers:
            leg.remote_headers = headers
        if sdp is None and not leg.got_early_sdp:
            # AND: no SDP and no early SDP is an error (PROTOCOL.md §4.4)
            self.hangup(leg.call_id, "INCOMPATIBLE_DESTINATION", reason="answer without SDP")
            return
        self._call_move(leg, Trigger.REMOTE_ANSWER)
        self._events.append(ev.RemoteAnswer(leg.call_id, sdp, leg.ids, headers))

    def _on_bye(self, req: Request) -> None:
        bye = v.ByeParams.parse(req.params)
        leg = self.calls.get(bye.call_id)
        if leg is None:
            return
        if bye.client_state:
            leg.client_state = bye.client_state
        self._hung_up(leg, Trigger.REMOTE_BYE,
                      ev.CallHangup(leg.call_id, bye.cause, bye.cause_code, bye.sip_code, bye.sip_reason, True))
        self._finish(leg)

    def _on_attach(self, req: Request) -> None:
        inv = v.InviteParams.parse(req.params)
        leg = self.calls.get(inv.call_id)
        if leg is None:
            if self.calls:
                self._events.append(ev.UnknownRequest(req.method, {"callID": inv.call_id}))
                return
            # No calls in memory (a restarted client): recover the first attach (JS).
            dialog = v.CallDialog(call_id=inv.call_id, destination=inv.callee_number,
                                  caller_name=inv.callee_name, caller_number=inv.callee_number,
                                  remote_caller_name=inv.caller_name, remote_caller_number=inv.caller_number,
                                  ids=inv.ids)
            leg = CallLeg(inv.call_id, "inbound", dialog, ids=inv.ids, remote_name=inv.caller_name,
                          remote_number=inv.caller_number)
            self.calls[inv.call_id] = leg
        if self._recover(leg, Trigger.ATTACH):
            self._events.append(ev.AttachOffer(inv, leg.held))

    def _on_info(self, req: Request) -> None:
        digits = req.params.get("dtmf")
        call_id = req.params.get("callID")
        if not isinstance(call_id, str):
            dialog = req.params.get("dialogParams")
            call_id = dialog.get("callID") if isinstance(dialog, dict) else None
        if isinstance(digits, str) and digits and isinstance(call_id, str) and call_id in self.calls:
            self._events.append(ev.DtmfReceived(call_id, digits))
        else:
            self._events.append(ev.Notification(req.method, dict(req.params),
                                                call_id if isinstance(call_id, str) else None))

    def _on_display(self, req: Request) -> None:
        leg = self._leg(v.call_id_of(req.params))
        name = req.params.get("display_name", "")
        number = req.params.get("display_number", "")
        direction = req.params.get("display_direction", "")
        leg.remote_name = name if isinstance(name, str) else leg.remote_name
        leg.remote_number = number if isinstance(number, str) else leg.remote_number
        self._events.append(ev.DisplayChanged(leg.call_id, leg.remote_name, leg.remote_number,
                                              direction if isinstance(direction, str) else ""))

    def _on_candidate(self, req: Request) -> None:
        cand = req.params.get("candidate")
        if not isinstance(cand, str):
            raise RemoteProtocolError("candidate is not a string")
        mid = req.params.get("sdpMid", "0")
        idx = req.params.get("sdpMLineIndex", 0)
        self._events.append(ev.RemoteCandidate(
            v.call_id_of(req.params), cand.removeprefix("a="), str(mid),
            idx if isinstance(idx, int) and not isinstance(idx, bool) else 0))

    def _on_end_of_candidates(self, req: Request) -> None:
        self._events.append(ev.RemoteEndOfCandidates(v.call_id_of(req.params)))

    def _on_punt(self, req: Request) -> None:
        self.punted = True
        self._end_all_locally("PURGE", "session ended by the server (punt)")
        self._events.append(ev.Punted("the server ended this session (telnyx_rtc.punt)"))

    def _on_event(self, req: Request) -> None:
        self._events.append(ev.Notification(req.method, dict(req.params)))

    _HANDLERS: ClassVar[dict[str, Callable[[VertoSession, Request], None]]] = {
        v.CLIENT_READY: _on_client_ready,
        v.INVITE: _on_invite,
        v.RINGING: _on_ringing,
        v.MEDIA: _on_media,
        v.ANSWER: _on_answer,
        v.BYE: _on_bye,
        v.ATTACH: _on_attach,
        v.INFO: _on_info,
        v.DISPLAY: _on_display,
        v.CANDIDATE: _on_candidate,
        v.END_OF_CANDIDATES: _on_end_of_candidates,
        v.PUNT: _on_punt,
        v.EVENT: _on_event,
        "webrtc.event": _on_event,
    }

    # -- call intents ---------------------------------------------------------------------------
    def new_call(
        self,
        call_id: str,
        destination: str,
        *,
        caller_name: str = "",
        caller_number: str = "",
        custom_headers: list[tuple[str, str]] | None = None,
        client_state: str = "",
        codecs: list[str] | None = None,
    ) -> CallLeg:
        """Create an outbound call in state ``new``; send it with :meth:`invite` once the offer is ready."""
        self._logged_in_for(Trigger.NEW_CALL)
        if not destination:
            raise LocalProtocolError("a call needs a destination")
        if call_id in self.calls:
            raise LocalProtocolError(f"call {call_id} exists")
        dialog = v.CallDialog(call_id=call_id, destination=destination, caller_name=caller_name,
                              caller_number=caller_number, remote_caller_number=destination,
                              custom_headers=list(custom_headers or []), client_state=client_state,
                              preferred_codecs=list(codecs or []))
        leg = CallLeg(call_id, "outbound", dialog, remote_number=destination)
        self.calls[call_id] = leg
        self._events.append(ev.CallCreated(call_id, "outbound", destination))
        return leg

    def invite(self, call_id: str, sdp: str) -> None:
        """Send the invite with the complete local offer."""
        sessid = self._logged_in_for(Trigger.INVITE)
        leg = self._leg(call_id)
        self._call_move(leg, Trigger.INVITE)
        self._request(v.INVITE, v.invite_params(sessid, sdp, leg.dialog, self.call_user_agent), call_id=call_id)

    def answer(self, call_id: str, sdp: str, *, custom_headers: list[tuple[str, str]] | None = None) -> None:
        """Answer an inbound call with the complete local answer SDP."""
        sessid = self._logged_in_for(Trigger.ANSWER)
        leg = self._leg(call_id)
        if leg.direction != "inbound":
            raise LocalProtocolError("only an inbound call can be answered")
        call_transition(leg.state, Trigger.ANSWER)  # check before touching the dialog
        if custom_headers:
            leg.dialog.custom_headers = list(custom_headers)
        self._call_move(leg, Trigger.ANSWER)
        self._request(v.ANSWER, v.answer_params(sessid, sdp, leg.dialog, self.call_user_agent), call_id=call_id)

    def attach_answer(self, call_id: str, sdp: str) -> None:
        """Answer the server's reattach offer (C→S ``telnyx_rtc.attach``, ``attach: true``)."""
        sessid = self._logged_in_for(Trigger.ATTACH_ANSWER)
        leg = self._leg(call_id)
        self._call_move(leg, Trigger.ATTACH_ANSWER)
        self._request(v.ATTACH, v.answer_params(sessid, sdp, leg.dialog, self.call_user_agent, attach=True),
                      call_id=call_id)

    def hangup(self, call_id: str, cause: str | None = None, *, reason: str = "") -> ev.CallHangup:
        """Send a BYE. Default cause by state, as the JS SDK: before active USER_BUSY/17, else NORMAL_CLEARING/16."""
        return self._hangup(self._leg(call_id), Trigger.HANGUP, cause, reason)

    def _hangup(self, leg: CallLeg, trigger: Trigger, cause: str | None, reason: str) -> ev.CallHangup:
        call_transition(leg.state, trigger)  # raises if the call cannot be hung up (already ended)
        if cause is None:
            cause = "NORMAL_CLEARING" if leg.state.is_established or leg.state == CallState.RECOVERING \
                else "USER_BUSY"
        call_id = leg.call_id
        hang = ev.CallHangup(call_id, cause, v.cause_code(cause), None, "", False, reason)
        was_sent = leg.state != CallState.NEW
        self._hung_up(leg, trigger, hang)
        if was_sent and self.sessid and self._client_handles(Trigger.HANGUP):
            self._request(v.BYE, v.bye_params(self.sessid, leg.dialog, cause, v.cause_code(cause)), call_id=call_id)
        else:
            self._finish(leg)
        return hang

    def reject(self, call_id: str) -> ev.CallHangup:
        """Reject a ringing inbound call (BYE USER_BUSY/17, as every SDK does)."""
        leg = self._leg(call_id)
        if leg.direction != "inbound":
            raise LocalProtocolError("only an inbound call can be rejected")
        return self._hangup(leg, Trigger.REJECT, "USER_BUSY", "rejected")

    def dtmf(self, call_id: str, digits: str) -> None:
        """Send ``digits`` in one ``telnyx_rtc.info`` (callers send one digit per call, spaced)."""
        sessid = self._logged_in_for(Trigger.DTMF)
        if not v.valid_dtmf(digits):
            raise LocalProtocolError(f"invalid DTMF {digits!r}: use 0-9 * # A-D")
        leg = self._leg(call_id)
        self._call_move(leg, Trigger.DTMF)
        self._request(v.INFO, v.info_params(sessid, leg.dialog, digits), call_id=call_id)

    def modify(self, call_id: str, action: str) -> None:
        """``hold``, ``unhold`` or ``toggleHold``; the result's ``holdState`` sets the state."""
        intent = _MODIFY_INTENTS.get(action)
        if intent is None:
            self._logged_in_for(Trigger.HOLD)
            raise LocalProtocolError(f"unknown modify action {action!r}")
        sessid = self._logged_in_for(intent)
        leg = self._leg(call_id)
        self._call_move(leg, intent)
        self._request(v.MODIFY, v.modify_params(sessid, leg.dialog, action), call_id=call_id, action=action)

    def ping(self) -> None:
        """Send a client ``telnyx_rtc.ping`` (keepalive / health probe)."""
        self._request(v.PING, {}, voice_sdk_id=self.voice_sdk_id)

