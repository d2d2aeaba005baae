"""Call Control legs: one independently controlled leg each, WebRTC or simulated PSTN.

In Telnyx's Voice API every leg has its own ``call_control_id`` and is driven on its
own: answered, bridged to another leg, queued, put in a conference, hung up. A
:class:`CCLeg` is that leg in the switch. Its audio goes through an
:class:`Endpoint`: a WebRTC leg's :class:`~softphone.switch.media_legs.MediaLeg` or a
:class:`~softphone.switch.callcontrol.pstn.PstnEndpoint`.

WebRTC legs stay switch calls, so the websocket server keeps handling their
signaling: :class:`WebRtcCall` is a one-leg :class:`~softphone.switch.calls.Call` whose
hangup, DTMF and hold go to the Call Control engine (:class:`LegEvents`) instead of a
far leg, and whose audio wiring is left to the engine.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from softphone.protocol import verto
from softphone.switch.calls import Call, Leg

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.media.sources import AudioSource


class Endpoint(Protocol):
    """The audio surface shared by MediaLeg and PstnEndpoint."""

    def set_receiver(self, fn: Callable[[Frame], Any] | None) -> None: ...

    def push(self, frame: Frame) -> None: ...

    def play(self, source: AudioSource) -> None: ...

    def stop_playing(self, source: AudioSource) -> None: ...

    async def close(self) -> None: ...


class LegEvents(Protocol):
    """What a WebRTC leg reports to the Call Control engine."""

    def leg_ended(self, leg: CCLeg, cause: str, sip_code: int | None, by_party: bool) -> None: ...

    def leg_dtmf(self, leg: CCLeg, digits: str) -> None: ...

    def leg_hold(self, leg: CCLeg, held: bool) -> None: ...


# Telnyx reports lower-case hangup causes in webhooks; the switch uses Q.850 names.
_TELNYX_CAUSES = {
    "NORMAL_CLEARING": "normal_clearing",
    "USER_BUSY": "user_busy",
    "CALL_REJECTED": "call_rejected",
    "ORIGINATOR_CANCEL": "originator_cancel",
    "NO_ANSWER": "timeout",
    "NO_USER_RESPONSE": "timeout",
    "RECOVERY_ON_TIMER_EXPIRE": "timeout",
    "ALLOTTED_TIMEOUT": "time_limit",
    "UNALLOCATED_NUMBER": "not_found",
    "USER_NOT_REGISTERED": "not_found",
}


def telnyx_cause(cause: str) -> str:
    """Webhook ``hangup_cause`` for a Q.850 cause name (``unspecified`` when unknown)."""
    return _TELNYX_CAUSES.get(cause, "unspecified")


def new_control_id() -> str:
    return f"v3:{uuid.uuid4()}"


@dataclass(eq=False)
class CCLeg:
    """One leg under Call Control."""

    call_control_id: str
    connection_id: str
    from_: str
    to: str
    direction: str
    """``incoming`` (it reached the switch) or ``outgoing`` (the switch placed it)."""
    endpoint: Endpoint
    kind: str
    """``webrtc``, ``pstn`` (a simulated outside phone) or ``service``."""
    call_leg_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    call_session_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    client_state: str = ""
    custom_headers: tuple[tuple[str, str], ...] = ()
    state: str = "parked"
    """parked (incoming, waiting for commands), bridging (outgoing, ringing), answered, bridged, queued,
    conference, hangup."""
    wire: WebRtcCall | None = None
    created: float = field(default_factory=time.time)
    answered_at: float | None = None
    ended_at: float | None = None
    hangup_cause: str = ""
    sip_code: int | None = None
    hangup_source: str = ""
    bridged_to: CCLeg | None = None
    park_after_unbridge: bool = False
    queue: str = ""
    conference_id: str = ""
    """The conference this leg is in (an id in ``CallControl.conferences``; "" when none)."""
    held: bool = False
    early: bool = False
    """Ringback went out as early media (the answer then carries no SDP)."""
    notify: bool = True
    """Post webhooks for this leg (False for legs a non-webhook connection rings directly)."""
    extras: dict[str, Any] = field(default_factory=dict)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def alive(self) -> bool:
        return not self.ended.is_set()

    def payload(self, **extra: Any) -> dict[str, Any]:
        """The common webhook payload of this leg."""
        body: dict[str, Any] = {
            "call_control_id": self.call_control_id,
            "call_leg_id": self.call_leg_id,
            "call_session_id": self.call_session_id,
            "connection_id": self.connection_id,
            "from": self.from_,
            "to": self.to,
            "direction": self.direction,
            "state": self.state,
            "client_state": self.client_state or None,
        }
        if self.custom_headers:
            body["custom_headers"] = verto.headers_to(self.custom_headers)
        body.update(extra)
        return body

    def status(self) -> dict[str, Any]:
        """GET /v2/calls/{id}: Telnyx's call status object (plus ``state``)."""
        end = self.ended_at if self.ended_at is not None else time.time()
        return {
            "record_type": "call",
            "call_control_id": self.call_control_id,
            "call_leg_id": self.call_leg_id,
            "call_session_id": self.call_session_id,
            "is_alive": self.alive,
            "call_duration": int(end - self.answered_at) if self.answered_at is not None else 0,
            "client_state": self.client_state or None,
            "state": self.state,
            "from": self.from_,
            "to": self.to,
            "direction": self.direction,
            "hangup_cause": telnyx_cause(self.hangup_cause) if self.hangup_cause else None,
        }


class WebRtcCall(Call):
    """A one-leg switch call whose leg is driven by Call Control (see the module docstring).

    Its only leg is :attr:`a` whatever the direction: the caller's leg of a parked call
    (role ``a``) or a leg the switch dialled to a client (role ``b``).
    """

    cc: CCLeg
    events: LegEvents

    @classmethod
    def adopt(cls, call: Call, events: LegEvents) -> WebRtcCall:
        """Take over a caller's leg of a switch call that routing could not place (parking)."""
        new = cls.__new__(cls)
        new.__dict__.update(call.__dict__)
        new.events = events
        new.a.call = new
        return new

    # --- what the websocket server calls ------------------------------------------------

    def update_media(self) -> None:
        """Audio wiring belongs to the Call Control engine."""

    def modify(self, leg: Leg, action: str) -> str:
        if action == "hold":
            leg.held = True
        elif action == "unhold":
            leg.held = False
        elif action == "toggleHold":
            leg.held = not leg.held
        self.events.leg_hold(self.cc, leg.held)
        return "held" if leg.held else "active"

    async def dtmf(self, leg: Leg, digits: str) -> None:
        clean = "".join(ch for ch in digits.upper() if ch in "0123456789*#ABCD")
        if clean and not self.ended:
            self.events.leg_dtmf(self.cc, clean)

    def b_answered(self, sdp: str) -> None:
        if not self.a.answered.done():
            self.a.answered.set_result(sdp)

    async def end(self, by: Leg | None, cause: str, *, sip_code: int | None = None) -> None:
        if self.ended:
            return
        await super().end(by, cause, sip_code=sip_code)
        self.events.leg_ended(self.cc, cause, sip_code, by is not None)

    # --- what the engine calls ---------------------------------------------------------------

    def _progress(self) -> dict[str, Any]:
        """The caller leg's progress params; a parked call is marked with ``X-Telnyx-Parked: true``
        (a local-switch addition: Telnyx sends nothing that tells a parked call apart)."""
        params = self.a.progress()
        cc = getattr(self, "cc", None)
        if cc is not None and cc.state == "parked":
            params["dialogParams"] = {"custom_headers": [{"name": verto.PARKED_HEADER, "value": "true"}]}
        return params

    async def ring_a(self) -> None:
        await self.a.send(verto.RINGING, self._progress())

    async def send_early_media(self, ringback: AudioSource) -> bool:
        """Ringing, then ringback as early media (``telnyx_rtc.media`` with the answer SDP)."""
        await self.ring_a()
        sdp = await self.a_sdp()
        if sdp is None or self.ended:
            return False
        params = self._progress()
        params["sdp"] = sdp
        self.a.media.play(ringback)
        await self.a.send(verto.MEDIA, params)
        return True

    async def invite(self, *, caller_name: str, caller_number: str, callee: str, timeout: float) -> str | None:
        """Invite the client (a dialled leg); the answer SDP applied, or a hangup cause."""
        leg = self.a
        try:
            offer = await leg.media.offer()
        except Exception:
            await self.end(None, "NORMAL_TEMPORARY_FAILURE")
            return "NORMAL_TEMPORARY_FAILURE"
        if self.ended:
            return "ORIGINATOR_CANCEL"
        params = verto.server_invite_params(
            leg.call_id,
            offer,
            caller_name=caller_name,
            caller_number=caller_number,
            callee_name="Outbound Call",
            callee_number=callee,
            ids=leg.ids,
            custom_headers=self.custom_headers,
            client_state=self.client_state,
        )
        await leg.send(verto.INVITE, params)
        try:
            answer_sdp = await asyncio.wait_for(asyncio.shield(leg.answered), timeout)
        except TimeoutError:
            await self.end(None, "NO_ANSWER")
            return "NO_ANSWER"
        except (asyncio.CancelledError, ConnectionError):
            return self.cc.hangup_cause or "NORMAL_CLEARING"
        try:
            await leg.media.accept_answer(answer_sdp)
        except Exception:
            await self.end(None, "INCOMPATIBLE_DESTINATION")
            return "INCOMPATIBLE_DESTINATION"
        now = time.time()
        self.answered_at = now
        leg.record.answer = now
        leg.record.codec = leg.media.codec
        return None


def dialled_call(
    hub: Any,
    session: Any,
    cc: CCLeg,
    events: LegEvents,
) -> WebRtcCall:
    """A :class:`WebRtcCall` for a leg the switch places to a logged-in client (role ``b``)."""
    call_id = str(uuid.uuid4())
    dialog = verto.DialogParams(
        call_id=call_id,
        destination=cc.to,
        caller_name=cc.from_,
        caller_number=cc.from_,
        custom_headers=cc.custom_headers,
        client_state=cc.client_state,
    )
    call = WebRtcCall(hub, session, dialog, "")
    call.events = events
    call.cc = cc
    record = call.new_record(call_id, "b", "outbound", session, time.time())
    call.a = Leg(call, session, call_id, "b", record)
    call.a.ids = verto.TelnyxIds(cc.call_control_id, cc.call_session_id, cc.call_leg_id)
    session.legs[call_id] = call.a
    cc.wire = call
    return call
