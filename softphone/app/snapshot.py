"""Frozen snapshots of application state, published by :class:`softphone.app.phone.Phone`.

A snapshot is level-triggered: it says how things are now, so a panel can be redrawn
from it alone. Times are epoch seconds; ``Snapshot.ts`` is when it was taken, so a
renderer derives "time in state", "duration" and "reconnect in" without a clock.
States are enums (:class:`CallState`, :class:`ClientState`, :class:`GatewayState`,
:class:`SocketState`); they are ``StrEnum`` so a renderer or JSON writer shows their values.
Costs come from the one billing rule, :func:`softphone.app.billing.cost`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from softphone.app.billing import cost
from softphone.client.events import SocketState
from softphone.protocol.states import CallState, ClientState, GatewayState

if TYPE_CHECKING:
    from softphone.client.call import Call

__all__ = ["CallSnapshot", "ClientSnapshot", "PhoneEvent", "Snapshot", "SocketSnapshot", "call_snapshot",
           "level_from_db", "replace"]


@dataclass(frozen=True, slots=True)
class SocketSnapshot:
    """The signaling websocket."""

    state: SocketState = SocketState.CLOSED
    url: str = ""
    attempt: int = 0  #: reconnect attempt number (0 when not reconnecting)
    retry_at: float | None = None  #: epoch seconds of the next reconnect attempt

    def retry_in(self, now: float) -> float | None:
        """Seconds until the next reconnect attempt, or ``None``."""
        if self.retry_at is None:
            return None
        return max(0.0, self.retry_at - now)


@dataclass(frozen=True, slots=True)
class ClientSnapshot:
    """The logged-in session."""

    state: ClientState = ClientState.DISCONNECTED
    user: str = ""
    gateway_state: GatewayState | None = None
    dc: str = ""
    region: str = ""
    error: str = ""  #: last login or client error message (already redacted)


@dataclass(frozen=True, slots=True)
class CallSnapshot:
    """One call, as the panel, JSON output and history see it."""

    id: str
    direction: str  #: outbound | inbound
    remote_name: str = ""
    remote_number: str = ""
    state: CallState = CallState.NEW
    state_since: float = 0.0
    created_at: float = 0.0
    answered_at: float | None = None
    ended_at: float | None = None
    codec: str = ""
    rtt_ms: float | None = None
    jitter_ms: float | None = None
    loss_pct: float | None = None
    mos: float | None = None
    input_level: float = 0.0  #: 0.0 .. 1.0
    output_level: float = 0.0  #: 0.0 .. 1.0
    muted: bool = False
    held: bool = False
    rate_per_minute: float = 0.002
    dtmf_received: str = ""
    dtmf_sent: str = ""
    parked: bool = False
    call_control_id: str = ""
    session_id: str = ""
    leg_id: str = ""
    client_state: str = ""
    custom_headers: tuple[tuple[str, str], ...] = ()
    cause: str = ""
    cause_code: int | None = None
    sip_code: int | None = None
    sip_reason: str = ""
    hangup_by: str = ""  #: local | remote | ""
    warnings: tuple[int, ...] = ()  #: warning codes raised and not cleared (call.warning, docs/events.md)
    warnings_seen: tuple[int, ...] = ()  #: every warning code raised during the call, in order

    @property
    def remote(self) -> str:
        """The far end as one string: ``name <number>`` or whichever is known."""
        if self.remote_name and self.remote_number and self.remote_name != self.remote_number:
            return f"{self.remote_name} <{self.remote_number}>"
        return self.remote_number or self.remote_name

    @property
    def ended(self) -> bool:
        return self.state in (CallState.HANGUP, CallState.DESTROYED)

    def duration(self, now: float) -> float:
        """Answered time in seconds (0 when never answered)."""
        if self.answered_at is None:
            return 0.0
        end = self.ended_at if self.ended_at is not None else now
        return max(0.0, end - self.answered_at)

    def time_in_state(self, now: float) -> float:
        end = self.ended_at if self.ended and self.ended_at is not None else now
        return max(0.0, end - self.state_since)

    def cost(self, now: float) -> float:
        """Estimated cost so far in dollars: per started second at ``rate_per_minute``."""
        return cost(self.duration(now), self.rate_per_minute)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything a front-end shows."""

    ts: float = 0.0
    socket: SocketSnapshot = field(default_factory=SocketSnapshot)
    client: ClientSnapshot = field(default_factory=ClientSnapshot)
    calls: tuple[CallSnapshot, ...] = ()
    current: str | None = None  #: id of the call commands act on by default
    notice: str = ""  #: one line for the user (e.g. "incoming call: a answer, r reject")
    warnings: tuple[int, ...] = ()  #: client warning codes raised so far (client.warning: 34001, 46001)
    impair: str = ""  #: the network impairment in force (--impair, profile impair, the impair command), "" none

    def call(self, call_id: str | None = None) -> CallSnapshot | None:
        """The call with ``call_id``, else the current call, else ``None``."""
        want = call_id or self.current
        for c in self.calls:
            if c.id == want:
                return c
        return None

    @property
    def ringing_inbound(self) -> CallSnapshot | None:
        for c in self.calls:
            if c.direction == "inbound" and c.state == CallState.RINGING:
                return c
        return None

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict (for ``status --json`` and tests)."""
        from dataclasses import asdict

        return asdict(self)


@dataclass(frozen=True, slots=True)
class PhoneEvent:
    """An edge-triggered event from :class:`softphone.app.phone.Phone` (logs, ``--json``, ``wait``).

    ``type`` is a client event name (``socket.*``, ``client.*``, ``call.*``) or one of the
    phone's own (``call.stats`` once a second per live call, ``summary`` at the end of a
    one-shot). ``data`` is JSON-able and never holds a secret.
    """

    type: str
    ts: float
    call_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def level_from_db(db: float | None) -> float:
    """Map dBFS (-60 .. 0) to a meter level 0 .. 1."""
    if db is None:
        return 0.0
    return min(1.0, max(0.0, (db + 60.0) / 60.0))


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def call_snapshot(call: Call, old: CallSnapshot | None, now: float, rate_per_minute: float) -> CallSnapshot:
    """A call as the snapshot shows it now (``old``: its previous snapshot, for what only the phone knows)."""
    state = call.state
    stats = call.stats
    ended_at = call.ended_at
    if state.is_terminal and ended_at is None:
        ended_at = old.ended_at if old and old.ended_at else now
    codec = call.codec or (stats.codec if stats is not None else None) or ""
    # The panel ticks five times a second; read the peer's per-frame meters, else the last stats.
    input_db = _finite(call.input_level_db)
    output_db = _finite(call.output_level_db)
    if stats is not None:
        input_db = input_db if input_db is not None else _finite(stats.input_level_db)
        output_db = output_db if output_db is not None else _finite(stats.output_level_db)
    return CallSnapshot(
        id=call.id,
        direction=call.direction,
        remote_name=call.remote_name,
        remote_number=call.remote_number or call.destination,
        state=state,
        state_since=old.state_since if old and old.state == state else now,
        created_at=call.created_at,
        answered_at=call.answered_at,
        ended_at=ended_at,
        codec=codec,
        rtt_ms=_finite(stats.rtt_ms) if stats is not None else None,
        jitter_ms=_finite(stats.jitter_ms) if stats is not None else None,
        loss_pct=_finite(stats.packet_loss_pct) if stats is not None else None,
        mos=_finite(stats.mos) if stats is not None else None,
        input_level=level_from_db(input_db),
        output_level=level_from_db(output_db),
        muted=call.muted,
        held=call.held or state == CallState.HELD,
        rate_per_minute=rate_per_minute,
        dtmf_received=old.dtmf_received if old else "",
        dtmf_sent=old.dtmf_sent if old else "",
        parked=call.parked,
        call_control_id=call.telnyx_call_control_id,
        session_id=call.telnyx_session_id,
        leg_id=call.telnyx_leg_id,
        client_state=call.client_state,
        custom_headers=call.custom_headers,
        cause=call.cause or "",
        cause_code=call.cause_code,
        sip_code=call.sip_code,
        sip_reason=call.sip_reason,
        hangup_by=old.hangup_by if old else "",
        warnings=old.warnings if old else (),
        warnings_seen=old.warnings_seen if old else (),
    )
