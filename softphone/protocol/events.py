"""Events the client session reports: frozen dataclasses, plain data (wsproto ``events.py`` style).

:data:`Event` is the union of them all, so a consumer can ``match`` on it and mypy checks the
cases; :meth:`VertoSession.events_received() <softphone.protocol.session.VertoSession.events_received>`
returns ``list[Event]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

from softphone.protocol.states import CallState, ClientState, GatewayState
from softphone.protocol.verto import InviteParams, TelnyxIds

__all__ = [
    "AttachOffer",
    "CallConfirmed",
    "CallCreated",
    "CallHangup",
    "CallRinging",
    "CallStateChanged",
    "CallsNotReattached",
    "ClientStateChanged",
    "DisplayChanged",
    "DtmfReceived",
    "Event",
    "GatewayRetryScheduled",
    "GatewayStateChanged",
    "HoldChanged",
    "HoldFailed",
    "IncomingCall",
    "LoggedIn",
    "LoginRejected",
    "Notification",
    "ProtocolViolation",
    "Punted",
    "Ready",
    "ReconnectRequested",
    "RegistrationFailed",
    "RemoteAnswer",
    "RemoteCandidate",
    "RemoteEarlyMedia",
    "RemoteEndOfCandidates",
    "RpcErrorReceived",
    "UnknownRequest",
]


# --- client / session --------------------------------------------------------------------


@dataclass(frozen=True)
class ClientStateChanged:
    old: ClientState
    new: ClientState


@dataclass(frozen=True)
class LoggedIn:
    sessid: str


@dataclass(frozen=True)
class LoginRejected:
    """Login refused: code -32000/-32001 (typed by the I/O layer into ``LoginFailed``)."""

    code: int
    message: str


@dataclass(frozen=True)
class GatewayStateChanged:
    state: GatewayState
    dc: str = ""
    region: str = ""


@dataclass(frozen=True)
class Ready:
    """Gateway REGED: calls can be made."""

    dc: str = ""
    region: str = ""


@dataclass(frozen=True)
class GatewayRetryScheduled:
    """Not yet registered: the I/O layer should call ``query_gateway_state()`` after ``delay``."""

    state: GatewayState
    attempt: int
    delay: float


@dataclass(frozen=True)
class RegistrationFailed:
    """Registration gave up. ``code`` is -32003 (timeout) or -32004 (failure)."""

    state: GatewayState
    code: int
    message: str


@dataclass(frozen=True)
class ReconnectRequested:
    """The core wants the socket closed and reopened (gateway FAILED, critical timeout)."""

    reason: str


@dataclass(frozen=True)
class Punted:
    """The server ended our session (``telnyx_rtc.punt``); do not reconnect."""

    reason: str


@dataclass(frozen=True)
class RpcErrorReceived:
    """A JSON-RPC error answer to one of our requests (other than login)."""

    request_id: str | int | None
    method: str
    code: int
    message: str
    call_id: str | None = None


@dataclass(frozen=True)
class ProtocolViolation:
    """The server sent something malformed; it was dropped."""

    detail: str


@dataclass(frozen=True)
class UnknownRequest:
    """A server request we do not know; acknowledged and reported."""

    method: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Notification:
    """Server ``telnyx_rtc.event`` or an ``info`` without DTMF: passed through."""

    method: str
    params: dict[str, Any]
    call_id: str | None = None


# --- calls ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CallCreated:
    call_id: str
    direction: str
    destination: str = ""


@dataclass(frozen=True)
class CallStateChanged:
    call_id: str
    old: CallState
    new: CallState


@dataclass(frozen=True)
class IncomingCall:
    """A server invite. The offer SDP is in ``invite.sdp``."""

    invite: InviteParams


@dataclass(frozen=True)
class CallRinging:
    call_id: str
    ids: TelnyxIds


@dataclass(frozen=True)
class RemoteEarlyMedia:
    """Early SDP (``telnyx_rtc.media``): apply it as the remote answer."""

    call_id: str
    sdp: str


@dataclass(frozen=True)
class RemoteAnswer:
    """The far end answered. ``sdp`` is None when early media delivered it already."""

    call_id: str
    sdp: str | None
    ids: TelnyxIds
    custom_headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CallConfirmed:
    """The server accepted our answer/attach for an inbound or reattached call."""

    call_id: str


@dataclass(frozen=True)
class CallHangup:
    call_id: str
    cause: str
    cause_code: int
    sip_code: int | None = None
    sip_reason: str = ""
    remote: bool = False
    reason: str = ""


@dataclass(frozen=True)
class HoldChanged:
    call_id: str
    held: bool


@dataclass(frozen=True)
class HoldFailed:
    call_id: str
    message: str


@dataclass(frozen=True)
class DtmfReceived:
    """Digits the server sent as ``telnyx_rtc.info``."""

    call_id: str
    digits: str


@dataclass(frozen=True)
class DisplayChanged:
    call_id: str
    name: str
    number: str
    direction: str


@dataclass(frozen=True)
class AttachOffer:
    """The server re-offered a call after reconnect: build a new peer and call ``attach_answer``."""

    invite: InviteParams
    held: bool


@dataclass(frozen=True)
class CallsNotReattached:
    """Calls the server no longer knows after a reconnect; they were ended locally without BYE."""

    call_ids: tuple[str, ...]


@dataclass(frozen=True)
class RemoteCandidate:
    call_id: str
    candidate: str
    sdp_mid: str
    sdp_mline_index: int


@dataclass(frozen=True)
class RemoteEndOfCandidates:
    call_id: str


#: Every event the session publishes.
Event: TypeAlias = (
    ClientStateChanged
    | LoggedIn
    | LoginRejected
    | GatewayStateChanged
    | Ready
    | GatewayRetryScheduled
    | RegistrationFailed
    | ReconnectRequested
    | Punted
    | RpcErrorReceived
    | ProtocolViolation
    | UnknownRequest
    | Notification
    | CallCreated
    | CallStateChanged
    | IncomingCall
    | CallRinging
    | RemoteEarlyMedia
    | RemoteAnswer
    | CallConfirmed
    | CallHangup
    | HoldChanged
    | HoldFailed
    | DtmfReceived
    | DisplayChanged
    | AttachOffer
    | CallsNotReattached
    | RemoteCandidate
    | RemoteEndOfCandidates
)
