"""State machines as data (PROTOCOL.md §3.2, §5.1), keyed by what triggers a move (h11 ``_state.py``).

Each machine is an enum plus one table ``{state: {trigger: new_state}}``. A :class:`Trigger` is
what happens: an intent of ours (``invite``, ``dtmf``, ``hold`` ...), a message from the server
(``remote_answer``, ``remote_bye`` ...) or a socket event. :func:`call_transition` and
:func:`client_transition` read the tables and share the one error site: a trigger a state has no
entry for raises :class:`LocalProtocolError` ("can't handle dtmf in state ringing"), so an
illegal move is a bug we see, not a silent corruption. An entry of ``None`` means the trigger is
expected there and changes nothing (a late or repeated server message); an entry naming the
same state means it is handled without a move (``dtmf`` while ``active``).

The intents' allowed states live in the same tables: an intent is allowed in exactly the states
that have an entry for it, in the client table (must we be logged in?) and the call table.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar

from softphone.errors import LocalProtocolError

__all__ = [
    "CALL_TRANSITIONS",
    "CLIENT_TRANSITIONS",
    "CallState",
    "ClientState",
    "GatewayState",
    "Trigger",
    "call_allows",
    "call_transition",
    "client_transition",
]


class CallState(StrEnum):
    """A call's state. Values are the lower-case names users see (JS ``call.state``)."""

    NEW = "new"
    REQUESTING = "requesting"  # local offer ready, invite sent
    TRYING = "trying"  # invite result received
    RINGING = "ringing"  # inbound invite received, or outbound far end alerting
    ANSWERING = "answering"  # local answer built, answer sent
    EARLY = "early"  # remote early SDP applied
    ACTIVE = "active"
    HELD = "held"
    RECOVERING = "recovering"  # socket lost; waiting for the server's attach
    HANGUP = "hangup"
    DESTROYED = "destroyed"

    @property
    def is_terminal(self) -> bool:
        return self in (CallState.HANGUP, CallState.DESTROYED)

    @property
    def is_established(self) -> bool:
        """States that count as answered for hangup causes (JS: active and later)."""
        return self in (CallState.ACTIVE, CallState.HELD)


class ClientState(StrEnum):
    """The client session's state."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    LOGGING_IN = "logging_in"
    LOGGED_IN = "logged_in"
    READY = "ready"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class Trigger(StrEnum):
    """What can move a state machine: our intents, the server's messages, socket events."""

    # -- our intents (VertoSession methods) -------------------------------------------------
    NEW_CALL = "new_call"
    INVITE = "invite"
    ANSWER = "answer"
    ATTACH_ANSWER = "attach_answer"
    REJECT = "reject"
    HANGUP = "hangup"  # in the client table: whether the BYE goes on the wire
    DTMF = "dtmf"
    HOLD = "hold"
    UNHOLD = "unhold"
    TOGGLE_HOLD = "toggleHold"
    LOGIN = "login"  # credentials given: log in now if the socket is open
    CLOSE = "close"
    # -- the I/O layer ----------------------------------------------------------------------
    CONNECTING = "connecting"
    CONNECTION_MADE = "connection_made"
    SOCKET_LOST = "socket_lost"  # closed, a reconnect follows: calls wait for reattachment
    SOCKET_CLOSED = "socket_closed"  # closed for good: calls end locally
    KEEPALIVE = "keepalive"  # is a keepalive ping due in this state?
    # -- the session itself ----------------------------------------------------------------
    SEND_LOGIN = "send_login"  # socket open with credentials, or the server asked again (-32000)
    END_LOCALLY = "end_locally"  # client closed, punted, or not reattached: no BYE
    FINISH = "finish"  # the hangup is done (BYE answered, timed out, or never sent)
    # -- the server ------------------------------------------------------------------------
    LOGIN_ACCEPTED = "login_accepted"
    LOGIN_REJECTED = "login_rejected"
    UNMATCHED_ERROR = "unmatched_error"  # an error answer to no request of ours
    GATEWAY_READY = "gateway_ready"  # gateway REGED/REGISTER
    SERVER_PING = "server_ping"
    INVITE_RECEIVED = "invite_received"
    INVITE_ACCEPTED = "invite_accepted"  # the invite's result
    RINGING = "ringing"
    EARLY_MEDIA = "early_media"
    REMOTE_ANSWER = "remote_answer"
    ANSWER_CONFIRMED = "answer_confirmed"  # the result of our answer/attach
    ANSWER_CONFIRMED_HELD = "answer_confirmed_held"  # ... for a call we had on hold
    HOLD_RESULT_HELD = "hold_result_held"  # a modify result, holdState "held"
    HOLD_RESULT_ACTIVE = "hold_result_active"  # ... holdState "active"
    HOLD_RESULT_INVALID = "hold_result_invalid"  # ... no usable holdState
    REQUEST_FAILED = "request_failed"  # an error answer to our invite/answer/attach
    REMOTE_BYE = "remote_bye"
    ATTACH = "attach"  # the server re-offers the call after a reconnect
    NOT_REATTACHED = "not_reattached"  # clientReady did not list the call


_C = CallState
_T = Trigger
_S = ClientState

# Triggers every live call has the same answer to.
_LIVE_CALL: dict[Trigger, CallState | None] = {
    _T.HANGUP: _C.HANGUP,
    _T.REMOTE_BYE: _C.HANGUP,
    _T.END_LOCALLY: _C.HANGUP,
    _T.REQUEST_FAILED: _C.HANGUP,
    _T.ATTACH: _C.RECOVERING,
    _T.SOCKET_LOST: _C.RECOVERING,
    _T.FINISH: None,
    # late or out-of-order server messages: nothing happens
    _T.INVITE_ACCEPTED: None,
    _T.RINGING: None,
    _T.EARLY_MEDIA: None,
    _T.ANSWER_CONFIRMED: None,
    _T.ANSWER_CONFIRMED_HELD: None,
    _T.HOLD_RESULT_HELD: None,
    _T.HOLD_RESULT_ACTIVE: None,
    _T.HOLD_RESULT_INVALID: None,
    _T.NOT_REATTACHED: None,
}


def _live(**row: CallState | None) -> dict[Trigger, CallState | None]:
    return {**_LIVE_CALL, **{_T(k): v for k, v in row.items()}}


#: ``{call state: {trigger: new state}}``; ``None``: expected, nothing happens; missing: LocalProtocolError.
_CALL_ROWS: dict[CallState, dict[Trigger, CallState | None]] = {
    _C.NEW: _live(invite=_C.REQUESTING, invite_received=_C.RINGING),
    _C.REQUESTING: _live(invite_accepted=_C.TRYING, ringing=_C.RINGING, early_media=_C.EARLY,
                         remote_answer=_C.ACTIVE),
    _C.TRYING: _live(ringing=_C.RINGING, early_media=_C.EARLY, remote_answer=_C.ACTIVE),
    _C.RINGING: _live(answer=_C.ANSWERING, reject=_C.HANGUP, early_media=_C.EARLY, remote_answer=_C.ACTIVE),
    _C.ANSWERING: _live(answer_confirmed=_C.ACTIVE, answer_confirmed_held=_C.HELD),
    _C.EARLY: _live(dtmf=_C.EARLY, remote_answer=_C.ACTIVE),
    _C.ACTIVE: _live(dtmf=_C.ACTIVE, hold=_C.ACTIVE, unhold=_C.ACTIVE, toggleHold=_C.ACTIVE,
                     hold_result_held=_C.HELD, hold_result_active=_C.ACTIVE, hold_result_invalid=_C.ACTIVE,
                     remote_answer=None),
    _C.HELD: _live(dtmf=_C.HELD, hold=_C.HELD, unhold=_C.HELD, toggleHold=_C.HELD,
                   hold_result_held=_C.HELD, hold_result_active=_C.ACTIVE, hold_result_invalid=_C.HELD,
                   remote_answer=None),
    _C.RECOVERING: _live(answer=_C.ANSWERING, attach_answer=_C.RECOVERING, answer_confirmed=_C.ACTIVE,
                         answer_confirmed_held=_C.HELD, remote_answer=_C.ACTIVE, not_reattached=_C.HANGUP),
    # Ended: only the end of the hangup moves it; the server's late messages change nothing;
    # hanging up again is an error.
    _C.HANGUP: {**{t: None for t in _LIVE_CALL if t != _T.HANGUP}, _T.REMOTE_ANSWER: None,
                _T.FINISH: _C.DESTROYED},
    _C.DESTROYED: {_T.REMOTE_BYE: None, _T.END_LOCALLY: None, _T.FINISH: None},
}
CALL_TRANSITIONS: Mapping[CallState, Mapping[Trigger, CallState | None]] = MappingProxyType(
    {state: MappingProxyType(row) for state, row in _CALL_ROWS.items()})

#: The intents of a logged-in client (placing and controlling calls).
_CALL_INTENTS = (_T.NEW_CALL, _T.INVITE, _T.ANSWER, _T.ATTACH_ANSWER, _T.DTMF, _T.HOLD, _T.UNHOLD,
                 _T.TOGGLE_HOLD)
# Triggers every client state has an answer to (most states ignore them).
_ANY_CLIENT: dict[Trigger, ClientState | None] = {
    _T.CONNECTION_MADE: None,
    _T.LOGIN: None,
    _T.LOGIN_ACCEPTED: None,
    _T.LOGIN_REJECTED: _S.DISCONNECTED,
    _T.UNMATCHED_ERROR: None,
    _T.GATEWAY_READY: None,
    _T.SOCKET_LOST: _S.RECONNECTING,  # not from DISCONNECTED: nothing was connected to lose
    _T.SOCKET_CLOSED: _S.DISCONNECTED,
    _T.CLOSE: _S.CLOSED,
    _T.SERVER_PING: None,  # JS answers a server ping with a ping of its own only once logged in (§1.6)
    _T.KEEPALIVE: None,
    _T.HANGUP: None,  # not logged in: the call ends locally, no BYE
}


def _client(**row: ClientState | None) -> dict[Trigger, ClientState | None]:
    return {**_ANY_CLIENT, **{_T(k): v for k, v in row.items()}}


def _disconnected(**row: ClientState | None) -> dict[Trigger, ClientState | None]:
    out = _client(**row)
    del out[_T.SOCKET_LOST]
    return out


def _logged_in(state: ClientState, **row: ClientState | None) -> dict[Trigger, ClientState | None]:
    return {**_client(login=_S.LOGGING_IN, send_login=_S.LOGGING_IN, server_ping=state, hangup=state, **row),
            **dict.fromkeys(_CALL_INTENTS, state)}


#: ``{client state: {trigger: new state}}``; ``None``: expected, nothing happens; missing: LocalProtocolError.
_CLIENT_ROWS: dict[ClientState, dict[Trigger, ClientState | None]] = {
    _S.DISCONNECTED: _disconnected(connecting=_S.CONNECTING, connection_made=_S.CONNECTING),
    _S.CONNECTING: _client(connecting=_S.CONNECTING, login=_S.LOGGING_IN, send_login=_S.LOGGING_IN),
    _S.LOGGING_IN: _client(send_login=_S.LOGGING_IN, login_accepted=_S.LOGGED_IN,
                           unmatched_error=_S.DISCONNECTED),
    _S.LOGGED_IN: _logged_in(_S.LOGGED_IN, gateway_ready=_S.READY),
    _S.READY: _logged_in(_S.READY, keepalive=_S.READY),
    _S.RECONNECTING: _client(connecting=_S.CONNECTING, connection_made=_S.CONNECTING),
    # Closed for good: close again is a no-op, the rest is ignored; nothing reopens it.
    _S.CLOSED: {**{t: None for t in _ANY_CLIENT if t != _T.LOGIN_REJECTED}, _T.CLOSE: _S.CLOSED},
}
CLIENT_TRANSITIONS: Mapping[ClientState, Mapping[Trigger, ClientState | None]] = MappingProxyType(
    {state: MappingProxyType(row) for state, row in _CLIENT_ROWS.items()})

_State = TypeVar("_State", CallState, ClientState)


def _transition(kind: str, table: Mapping[_State, Mapping[Trigger, _State | None]], state: _State,
                trigger: Trigger) -> _State | None:
    row = table[state]
    if trigger not in row:
        # The one error site of both machines (h11: "can't handle event type ... when role=... is in state ...").
        raise LocalProtocolError(f"{kind} can't handle {trigger.value} in state {state.value}")
    return row[trigger]


def call_transition(state: CallState, trigger: Trigger) -> CallState | None:
    """The state ``trigger`` moves a call in ``state`` to (``None``: nothing happens).

    Raises :class:`LocalProtocolError` when the table has no entry for ``(state, trigger)``.
    """
    return _transition("call", CALL_TRANSITIONS, state, trigger)


def client_transition(state: ClientState, trigger: Trigger) -> ClientState | None:
    """The state ``trigger`` moves the client in ``state`` to (``None``: nothing happens).

    Raises :class:`LocalProtocolError` when the table has no entry for ``(state, trigger)``.
    """
    return _transition("client", CLIENT_TRANSITIONS, state, trigger)


def call_allows(state: CallState, trigger: Trigger) -> bool:
    """Whether the call table has an entry for ``(state, trigger)`` (so :func:`call_transition` would not raise)."""
    return trigger in CALL_TRANSITIONS[state]


class GatewayState(StrEnum):
    """Gateway registration states (union over the SDKs, PROTOCOL.md §3.2)."""

    REGED = "REGED"
    REGISTER = "REGISTER"
    UNREGED = "UNREGED"
    NOREG = "NOREG"
    TRYING = "TRYING"
    UNREGISTER = "UNREGISTER"
    FAILED = "FAILED"
    FAIL_WAIT = "FAIL_WAIT"
    TIMEOUT = "TIMEOUT"
    EXPIRED = "EXPIRED"
    DOWN = "DOWN"
    ATTACHED = "ATTACHED"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, value: object) -> GatewayState:
        if isinstance(value, str):
            try:
                return cls(value.upper())
            except ValueError:
                return cls.UNKNOWN
        return cls.UNKNOWN

    @property
    def is_ready(self) -> bool:
        # JS treats REGISTER like REGED (PROTOCOL.md §3.2).
        return self in (GatewayState.REGED, GatewayState.REGISTER)

    @property
    def is_retry(self) -> bool:
        return self in (
            GatewayState.UNREGED,
            GatewayState.NOREG,
            GatewayState.TRYING,
            GatewayState.UNREGISTER,
            GatewayState.EXPIRED,
        )

    @property
    def is_failure(self) -> bool:
        return self in (GatewayState.FAILED, GatewayState.FAIL_WAIT, GatewayState.TIMEOUT, GatewayState.DOWN)
