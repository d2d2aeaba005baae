"""State machines as data (PROTOCOL.md §3.2, §5.1).

Each machine is an enum plus a transition table. :func:`check_call_transition` and
:func:`check_client_transition` raise :class:`LocalProtocolError` on a move the table
does not allow, so an illegal move is a bug we see, not a silent corruption.
"""

from __future__ import annotations

from enum import StrEnum

from softphone.errors import LocalProtocolError


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


_C = CallState

#: Allowed call moves. Any live state may go to HANGUP; HANGUP only to DESTROYED.
CALL_TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    _C.NEW: frozenset({_C.REQUESTING, _C.RINGING, _C.RECOVERING, _C.HANGUP}),
    _C.REQUESTING: frozenset({_C.TRYING, _C.RINGING, _C.EARLY, _C.ACTIVE, _C.RECOVERING, _C.HANGUP}),
    _C.TRYING: frozenset({_C.RINGING, _C.EARLY, _C.ACTIVE, _C.RECOVERING, _C.HANGUP}),
    _C.RINGING: frozenset({_C.ANSWERING, _C.EARLY, _C.ACTIVE, _C.RECOVERING, _C.HANGUP}),
    _C.ANSWERING: frozenset({_C.ACTIVE, _C.HELD, _C.RECOVERING, _C.HANGUP}),
    _C.EARLY: frozenset({_C.ACTIVE, _C.RECOVERING, _C.HANGUP}),
    _C.ACTIVE: frozenset({_C.HELD, _C.RECOVERING, _C.HANGUP}),
    _C.HELD: frozenset({_C.ACTIVE, _C.RECOVERING, _C.HANGUP}),
    _C.RECOVERING: frozenset({_C.ANSWERING, _C.ACTIVE, _C.HELD, _C.HANGUP}),
    _C.HANGUP: frozenset({_C.DESTROYED}),
    _C.DESTROYED: frozenset(),
}


def check_call_transition(old: CallState, new: CallState) -> None:
    """Raise :class:`LocalProtocolError` unless ``old -> new`` is in :data:`CALL_TRANSITIONS`."""
    if new not in CALL_TRANSITIONS[old]:
        raise LocalProtocolError(f"call cannot move from {old.value} to {new.value}")


class ClientState(StrEnum):
    """The client session's state."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    LOGGING_IN = "logging_in"
    LOGGED_IN = "logged_in"
    READY = "ready"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


_S = ClientState

CLIENT_TRANSITIONS: dict[ClientState, frozenset[ClientState]] = {
    _S.DISCONNECTED: frozenset({_S.CONNECTING, _S.CLOSED}),
    _S.CONNECTING: frozenset({_S.LOGGING_IN, _S.RECONNECTING, _S.DISCONNECTED, _S.CLOSED}),
    _S.LOGGING_IN: frozenset({_S.LOGGED_IN, _S.RECONNECTING, _S.DISCONNECTED, _S.CLOSED}),
    _S.LOGGED_IN: frozenset({_S.READY, _S.LOGGING_IN, _S.RECONNECTING, _S.DISCONNECTED, _S.CLOSED}),
    _S.READY: frozenset({_S.LOGGED_IN, _S.LOGGING_IN, _S.RECONNECTING, _S.DISCONNECTED, _S.CLOSED}),
    _S.RECONNECTING: frozenset({_S.CONNECTING, _S.DISCONNECTED, _S.CLOSED}),
    _S.CLOSED: frozenset(),
}


def check_client_transition(old: ClientState, new: ClientState) -> None:
    """Raise :class:`LocalProtocolError` unless ``old -> new`` is in :data:`CLIENT_TRANSITIONS`."""
    if new not in CLIENT_TRANSITIONS[old]:
        raise LocalProtocolError(f"client cannot move from {old.value} to {new.value}")


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
