"""What a :class:`~softphone.client.client.Client` and its calls publish: frozen dataclasses, one union.

Every event class has its wire name (``name``, a class variable: ``socket.*``, ``client.*``,
``call.*``) and :meth:`data`, the JSON-able dict that ``Client.on(name, handler)`` handlers
and the ``--json`` stream see (docs/python-api.md and docs/events.md are the contract). String
names exist only at that edge: inside the package, subscribers (``Client.subscribe``) and
:class:`softphone.app.phone.Phone` ``match`` on the classes.

States are the protocol's enums (:class:`CallState`, :class:`ClientState`,
:class:`GatewayState`) and :class:`SocketState` for the websocket.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any, ClassVar

from softphone.media.stats import MediaStats
from softphone.protocol.states import CallState, ClientState, GatewayState

__all__ = [
    "CallActive", "CallCreated", "CallDeviceWarning", "CallDtmf", "CallEarly", "CallEvent", "CallHangup",
    "CallHeld", "CallIncoming", "CallMediaFailed", "CallParked", "CallRinging", "CallStateChanged", "CallStats",
    "CallWarning", "CallWarningCleared", "ClientError", "ClientEvent", "ClientStateChanged", "ClientWarning",
    "Event", "GatewayStateChanged", "LoggedIn", "LoginRefused",
    "Punted", "Ready", "SocketClosed", "SocketConnecting", "SocketError", "SocketOpen", "SocketReconnecting",
    "SocketState", "TokenExpiring", "TokenRefreshed", "event_from_connection",
]


class SocketState(StrEnum):
    """The signaling websocket, as the panel shows it."""

    CONNECTING = "connecting"
    OPEN = "open"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


def _plain(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


@dataclass(frozen=True, kw_only=True)
class _Base:
    """Common to every event: the wire name and the time it happened (epoch seconds)."""

    name: ClassVar[str] = ""
    ts: float = field(default_factory=time.time, compare=False)

    def data(self) -> dict[str, Any]:
        """The JSON-able payload (enums as their values), without ``ts`` and ``call_id``."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)
                if f.name not in ("ts", "call_id")}


# --- the websocket (from softphone.client.connection) ----------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SocketConnecting(_Base):
    name: ClassVar[str] = "socket.connecting"
    url: str = ""


@dataclass(frozen=True, kw_only=True)
class SocketOpen(_Base):
    name: ClassVar[str] = "socket.open"


@dataclass(frozen=True, kw_only=True)
class SocketClosed(_Base):
    name: ClassVar[str] = "socket.closed"
    code: int | None = None
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class SocketError(_Base):
    name: ClassVar[str] = "socket.error"
    message: str = ""


@dataclass(frozen=True, kw_only=True)
class SocketReconnecting(_Base):
    name: ClassVar[str] = "socket.reconnecting"
    attempt: int = 1
    delay: float = 0.0


# --- the session ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClientStateChanged(_Base):
    name: ClassVar[str] = "client.state"
    old: ClientState
    new: ClientState


@dataclass(frozen=True, kw_only=True)
class LoggedIn(_Base):
    name: ClassVar[str] = "client.logged_in"
    sessid: str


@dataclass(frozen=True, kw_only=True)
class LoginRefused(_Base):
    """The server refused the login (``client.login_failed``); ``connect()`` raises ``LoginFailed``."""

    name: ClassVar[str] = "client.login_failed"
    code: int
    message: str


@dataclass(frozen=True, kw_only=True)
class GatewayStateChanged(_Base):
    name: ClassVar[str] = "client.gateway_state"
    state: GatewayState


@dataclass(frozen=True, kw_only=True)
class Ready(_Base):
    name: ClassVar[str] = "client.ready"
    dc: str = ""
    region: str = ""


@dataclass(frozen=True, kw_only=True)
class ClientError(_Base):
    """An error not tied to a call (``method``: the request that failed, when there was one)."""

    name: ClassVar[str] = "client.error"
    code: int
    message: str
    method: str | None = None

    def data(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.method is not None:
            out["method"] = self.method
        return out


@dataclass(frozen=True, kw_only=True)
class Punted(_Base):
    name: ClassVar[str] = "client.punted"
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class TokenExpiring(_Base):
    """The login token expires in ``expires_in`` s (the SDKs warn 120 s ahead); ``refresh``: a new
    one is being minted (profile ``credential_id`` + API key), else log in again with a fresh token."""

    name: ClassVar[str] = "client.token_expiring"
    expires_in: float
    refresh: bool = False


@dataclass(frozen=True, kw_only=True)
class ClientWarning(_Base):
    """A warning code not tied to a call (docs/events.md "Warning codes"; softphone.client.quality):
    34001 the token expires soon, 46001 login failed. ``warning``: the SDK's constant name."""

    name: ClassVar[str] = "client.warning"
    code: int
    warning: str
    message: str


@dataclass(frozen=True, kw_only=True)
class TokenRefreshed(_Base):
    """A freshly minted token was accepted by a login on the same socket; calls went on."""

    name: ClassVar[str] = "client.token_refreshed"
    expires_in: float


# --- calls ----------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CallCreated(_Base):
    name: ClassVar[str] = "call.created"
    call_id: str
    direction: str  #: outbound | inbound
    remote: str = ""


@dataclass(frozen=True, kw_only=True)
class CallIncoming(_Base):
    name: ClassVar[str] = "call.incoming"
    call_id: str
    remote_name: str = ""
    remote_number: str = ""
    active_calls: int = 0  #: how many other calls are live


@dataclass(frozen=True, kw_only=True)
class CallStateChanged(_Base):
    name: ClassVar[str] = "call.state"
    call_id: str
    old: CallState
    new: CallState


@dataclass(frozen=True, kw_only=True)
class CallRinging(_Base):
    name: ClassVar[str] = "call.ringing"
    call_id: str


@dataclass(frozen=True, kw_only=True)
class CallEarly(_Base):
    name: ClassVar[str] = "call.early"
    call_id: str


@dataclass(frozen=True, kw_only=True)
class CallActive(_Base):
    name: ClassVar[str] = "call.active"
    call_id: str


@dataclass(frozen=True, kw_only=True)
class CallParked(_Base):
    name: ClassVar[str] = "call.parked"
    call_id: str
    parked: bool
    since: float | None
    call_control_id: str = ""


@dataclass(frozen=True, kw_only=True)
class CallHangup(_Base):
    name: ClassVar[str] = "call.hangup"
    call_id: str
    cause: str
    cause_code: int
    sip_code: int | None = None
    sip_reason: str = ""
    remote: bool = False
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class CallHeld(_Base):
    name: ClassVar[str] = "call.held"
    call_id: str
    held: bool


@dataclass(frozen=True, kw_only=True)
class CallDtmf(_Base):
    """One digit received, from one path: ``info`` (``telnyx_rtc.info``) or ``inband`` (tones in the audio).

    Both paths may report the same key press; the application de-duplicates
    (:class:`softphone.app.phone.Phone`).
    """

    name: ClassVar[str] = "call.dtmf"
    call_id: str
    digits: str
    source: str  #: info | inband


@dataclass(frozen=True, kw_only=True)
class CallStats(_Base):
    name: ClassVar[str] = "call.stats"
    call_id: str
    stats: MediaStats

    def data(self) -> dict[str, Any]:
        return dataclasses.asdict(self.stats)


@dataclass(frozen=True, kw_only=True)
class CallDeviceWarning(_Base):
    name: ClassVar[str] = "call.device_warning"
    call_id: str
    message: str


@dataclass(frozen=True, kw_only=True)
class CallWarning(_Base):
    """A call's warning code (docs/events.md "Warning codes"): quality (310xx, after 3 bad samples in a
    row, with ``value``: the figure that crossed the threshold) or ICE (33005). The call goes on."""

    name: ClassVar[str] = "call.warning"
    call_id: str
    code: int
    warning: str
    message: str
    value: float | None = None


@dataclass(frozen=True, kw_only=True)
class CallWarningCleared(_Base):
    """A quality warning's condition is gone (3 good samples in a row); ``value``: the last figure."""

    name: ClassVar[str] = "call.warning_cleared"
    call_id: str
    code: int
    warning: str
    message: str
    value: float | None = None


@dataclass(frozen=True, kw_only=True)
class CallMediaFailed(_Base):
    """The call's media cannot go on (the remote SDP or a reattach could not be applied).

    The call is left up: what to do is the application's policy (``Phone`` hangs up with
    ``INCOMPATIBLE_DESTINATION``; a reattach failure with the default cause).
    """

    name: ClassVar[str] = "call.media_failed"
    call_id: str
    stage: str  #: answer | remote_sdp | reattach
    message: str


Event = (
    SocketConnecting | SocketOpen | SocketClosed | SocketError | SocketReconnecting
    | ClientStateChanged | LoggedIn | LoginRefused | GatewayStateChanged | Ready | ClientError | Punted
    | TokenExpiring | TokenRefreshed | ClientWarning
    | CallCreated | CallIncoming | CallStateChanged | CallRinging | CallEarly | CallActive | CallParked
    | CallHangup | CallHeld | CallDtmf | CallStats | CallDeviceWarning | CallMediaFailed | CallWarning
    | CallWarningCleared
)
"""Everything a Client publishes."""

CallEvent = (
    CallCreated | CallIncoming | CallStateChanged | CallRinging | CallEarly | CallActive | CallParked
    | CallHangup | CallHeld | CallDtmf | CallStats | CallDeviceWarning | CallMediaFailed | CallWarning
    | CallWarningCleared
)
"""The events about one call (they carry ``call_id``)."""


def call_id_of(event: Event) -> str | None:
    """The call an event is about, or None."""
    match event:
        case (CallCreated() | CallIncoming() | CallStateChanged() | CallRinging() | CallEarly() | CallActive()
              | CallParked() | CallHangup() | CallHeld() | CallDtmf() | CallStats() | CallDeviceWarning()
              | CallMediaFailed() | CallWarning() | CallWarningCleared()):
            return event.call_id
    return None


def event_from_connection(name: str, data: dict[str, Any]) -> Event | None:
    """Type what :class:`~softphone.client.connection.Connection` reports as ``(name, data)``.

    The connection knows sockets, not our event classes; this is the one place its names are read.
    """
    match name:
        case "socket.connecting":
            return SocketConnecting(url=str(data.get("url", "")))
        case "socket.open":
            return SocketOpen()
        case "socket.closed":
            code = data.get("code")
            return SocketClosed(code=code if isinstance(code, int) else None, reason=str(data.get("reason") or ""))
        case "socket.error":
            return SocketError(message=str(data.get("message", "")))
        case "socket.reconnecting":
            return SocketReconnecting(attempt=int(data.get("attempt", 1)), delay=float(data.get("delay", 0.0)))
        case "client.error":
            method = data.get("method")
            return ClientError(code=int(data.get("code", 0)), message=str(data.get("message", "")),
                               method=str(method) if method is not None else None)
    return None


@dataclass(frozen=True)
class ClientEvent:
    """What ``Client.on(name, handler)`` handlers receive: the edge form of an :data:`Event`.

    ``name`` (``socket.*``, ``client.*``, ``call.*``), JSON-able ``data``, ``call_id``, ``ts``;
    ``event`` is the typed event it was made from.
    """

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    ts: float = field(default_factory=time.time)
    event: Event | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, event: Event) -> ClientEvent:
        return cls(event.name, event.data(), call_id_of(event), event.ts, event)
