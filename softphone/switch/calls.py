"""Calls of the switch (a B2BUA): legs, call progress, bridging, hold, DTMF, hangup.

Every call has an A leg (the client that sent ``telnyx_rtc.invite``) and either a B
leg (a client the switch invited) or a built-in service. The switch terminates WebRTC
on every leg (:class:`~softphone.switch.media_legs.MediaLeg`) and moves audio between them
(encoded RTP as it came where nothing needs PCM: :meth:`Call.update_media`, ``forward_to``).

All media work (SDP apply, offers) runs in tasks the :class:`Hub` tracks, never in a
websocket read loop: aiortc's ``setRemoteDescription`` waits for ICE and DTLS.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from softphone.protocol import verto
from softphone.switch.accounts import Login
from softphone.switch.media_legs import MediaLeg
from softphone.switch.records import CallRecord
from softphone.switch.routing import Service

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

    from softphone.media.impair import ImpairSpec
    from softphone.switch.workers import RemoteMediaLeg

logger = logging.getLogger(__name__)

RINGING_BUSY_S = 1.0
"""How long ``busy`` rings before USER_BUSY."""
EARLY_MEDIA_S = 2.0
"""How long ``early`` plays ringback as early media before answering."""


@dataclass(eq=False, slots=True)
class Session:
    """A logged-in client (survives its socket while it has calls)."""

    sessid: str
    login: Login
    ws: ServerConnection | None
    voice_sdk_id: str
    legs: dict[str, Leg] = field(default_factory=dict)
    last_heard: float = field(default_factory=time.monotonic)
    expiry: asyncio.TimerHandle | None = None
    pending_attach: list[Leg] = field(default_factory=list)
    last_ping: float = field(default_factory=time.monotonic)


class Hub(Protocol):
    """What a call needs from the switch."""

    rate_per_minute: float
    noanswer_timeout: float | None
    impair: ImpairSpec | None  #: every new leg's network impairment (softphone.media.impair)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]: ...

    def new_media_leg(self, label: str, call: Call) -> MediaLeg | RemoteMediaLeg:
        """The media of a new leg of ``call`` (in-process or in a media worker)."""

    async def request(self, session: Session, method: str, params: dict[str, Any]) -> None: ...

    def call_ended(self, call: Call) -> None: ...


def _ids(call_id: str) -> verto.TelnyxIds:
    return verto.TelnyxIds(call_control_id=f"v3:{call_id}", session_id=str(uuid.uuid4()), leg_id=call_id)


class Leg:
    """One WebRTC leg: a client session, its callID, and the switch's media peer for it."""

    def __init__(self, call: Call, session: Session, call_id: str, role: str, record: CallRecord) -> None:
        self.call = call
        self.session = session
        self.call_id = call_id
        self.role = role
        self.record = record
        self.media = call.hub.new_media_leg(f"{role}:{call_id[:8]}", call)
        """In this process or in a media worker (the hub decides: SwitchServer.new_media_leg)."""
        self.ids = _ids(call_id)
        self.held = False
        self.ended = False
        self.answered: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        """B legs: resolves with the client's answer SDP (or fails when it hangs up first)."""
        self.local_sdp: asyncio.Task[str] | None = None
        """A legs: the switch's answer to the client's offer."""

    async def send(self, method: str, params: dict[str, Any]) -> None:
        await self.call.hub.request(self.session, method, params)

    def progress(self) -> dict[str, Any]:
        """callID, ids and parties, for ringing/answer/media/attach params."""
        c = self.call
        return {
            "callID": self.call_id,
            "caller_id_name": c.caller_name,
            "caller_id_number": c.caller_number,
            "callee_id_name": "Outbound Call",
            "callee_id_number": c.destination,
            "telnyx_call_control_id": self.ids.call_control_id,
            "telnyx_session_id": self.ids.session_id,
            "telnyx_leg_id": self.ids.leg_id,
            "dialogParams": {"custom_headers": []},
        }


def _forward(src: MediaLeg | RemoteMediaLeg, dst: MediaLeg | RemoteMediaLeg | None) -> None:
    """What ``src``'s party says goes to ``dst`` (None: nowhere): encoded when it can (MediaLeg.forward_to).

    A media worker's proxy takes the same wiring as ``set_receiver(dst.push)`` (the worker's own
    MediaLeg turns that into ``forward_to``).
    """
    if isinstance(src, MediaLeg) and (dst is None or isinstance(dst, MediaLeg)):
        src.forward_to(dst)
    else:
        src.set_receiver(None if dst is None else dst.push)


class Call:
    """A call between an A leg and a B leg or a service."""

    def __init__(self, hub: Hub, a_session: Session, dialog: verto.DialogParams, offer: str) -> None:
        self.hub = hub
        self.destination = dialog.destination
        self.caller_name = dialog.caller_name or a_session.login.display
        self.caller_number = dialog.caller_number or a_session.login.slot
        self.offer = offer
        self.custom_headers = dialog.custom_headers
        self.client_state = dialog.client_state
        now = time.time()
        rec = self.new_record(dialog.call_id, "a", "inbound", a_session, now)
        self.a = Leg(self, a_session, dialog.call_id, "a", rec)
        self.b: Leg | None = None
        self.service: Service | None = None
        self.answered_at: float | None = None
        self.ended = False
        self.created = now
        self._echo = False
        self._service_audio: Any = None
        self._hold_tones: dict[str, Any] = {}
        self.ivr: Any = None
        """The ``ivr`` service's session (softphone.switch.ivr.IvrService) while it runs."""

    def new_record(self, call_id: str, leg: str, direction: str, session: Session, now: float) -> CallRecord:
        """The call record of a new leg of this call (billed at the hub's rate)."""
        return CallRecord(
            call_id=call_id,
            leg=leg,
            direction=direction,
            sessid=session.sessid,
            login=session.login.display,
            from_party=self.caller_number,
            to_party=self.destination,
            start=now,
            rate_per_minute=self.hub.rate_per_minute,
        )

    def legs(self) -> list[Leg]:
        return [leg for leg in (self.a, self.b) if leg is not None]

    def other(self, leg: Leg) -> Leg | None:
        return self.b if leg is self.a else self.a

    # --- setup ------------------------------------------------------------------------

    def start_a_media(self) -> None:
        """Answer the caller's offer with the switch's A-leg peer (in a task)."""
        self.a.local_sdp = self.hub.spawn(self.a.media.answer(self.offer), f"a-answer {self.a.call_id}")

    async def a_sdp(self) -> str | None:
        """The switch's A-leg answer SDP, or None (call ended 488) if the offer was unusable."""
        if self.a.local_sdp is None:  # routing starts it only where media follows (server._route_call)
            self.start_a_media()
        assert self.a.local_sdp is not None
        try:
            return await self.a.local_sdp
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.info("call %s: cannot answer the offer: %s", self.a.call_id, exc)
            await self.end(None, "INCOMPATIBLE_DESTINATION")
            return None

    async def ring_a(self) -> None:
        await self.a.send(verto.RINGING, self.a.progress())

    async def answer_a(self, *, with_sdp: bool = True) -> bool:
        """Send ``telnyx_rtc.answer`` to the caller (SDP omitted after early media)."""
        sdp = await self.a_sdp()
        if sdp is None or self.ended:
            return False
        params = self.a.progress()
        if with_sdp:
            params["sdp"] = sdp
        await self.a.send(verto.ANSWER, params)
        self.answered_at = time.time()
        for leg in self.legs():
            leg.record.answer = self.answered_at
            leg.record.codec = leg.media.codec
        self.update_media()
        return True

    async def connect_to(self, b_session: Session) -> None:
        """Invite ``b_session`` with a fresh switch offer; the caller hears ringing."""
        b_id = str(uuid.uuid4())
        rec = self.new_record(b_id, "b", "outbound", b_session, time.time())
        self.b = b = Leg(self, b_session, b_id, "b", rec)
        b_session.legs[b_id] = b
        try:
            offer = await b.media.offer()
        except Exception as exc:
            logger.warning("call %s: B-leg offer failed: %s", self.a.call_id, exc)
            await self.end(None, "NORMAL_TEMPORARY_FAILURE")
            return
        if self.ended:
            return
        params = verto.server_invite_params(
            b_id,
            offer,
            caller_name=self.caller_name,
            caller_number=self.caller_number,
            callee_name="Outbound Call",
            callee_number=self.destination,
            ids=b.ids,
            custom_headers=self.custom_headers,
            client_state=self.client_state,
        )
        await b.send(verto.INVITE, params)
        await self.ring_a()
        try:
            answer_sdp = await b.answered
        except (asyncio.CancelledError, ConnectionError):
            return
        try:
            await b.media.accept_answer(answer_sdp)
        except Exception as exc:
            logger.info("call %s: B answer unusable: %s", self.a.call_id, exc)
            await self.end(None, "INCOMPATIBLE_DESTINATION")
            return
        await self.answer_a()

    def b_answered(self, sdp: str) -> None:
        """The B client sent ``telnyx_rtc.answer`` (called from the read loop)."""
        if self.b is not None and not self.b.answered.done():
            self.b.answered.set_result(sdp)

    # --- services -----------------------------------------------------------------------

    async def run_service(self, service: Service) -> None:
        """Play one of the built-in services on the A leg."""
        from softphone.switch import media_legs as legs

        self.service = service
        self.a.record.service = service.name
        name = service.name
        if name == "reject":
            await self.end(None, "CALL_REJECTED")
        elif name == "busy":
            await self.ring_a()
            await asyncio.sleep(RINGING_BUSY_S)
            await self.end(None, "USER_BUSY")
        elif name == "noanswer":
            await self.ring_a()
            if self.hub.noanswer_timeout is not None:
                await asyncio.sleep(self.hub.noanswer_timeout)
                await self.end(None, "NO_ANSWER")
        elif name == "early":
            await self.ring_a()
            sdp = await self.a_sdp()
            if sdp is None or self.ended:
                return
            params = self.a.progress()
            params["sdp"] = sdp
            ringback = legs.ringback_source()
            self.a.media.play(ringback)
            await self.a.send(verto.MEDIA, params)
            await asyncio.sleep(EARLY_MEDIA_S)
            self.a.media.stop_playing(ringback)
            self._echo = True
            await self.answer_a(with_sdp=False)
        elif name in ("echo", "dtmf"):
            self._echo = name == "echo"
            await self.answer_a()
        elif name == "tone":
            self._service_audio = legs.tone_source(1004.0)
            await self.answer_a()
        elif name == "ivr":
            from softphone.switch.ivr import IvrService

            self.ivr = IvrService(self)
            await self.ivr.run()

    # --- in-call ------------------------------------------------------------------------

    def update_media(self) -> None:
        """Rewire audio after answer, hold or unhold (see the module docstring)."""
        if self.ended or self.answered_at is None:
            return
        from softphone.switch import media_legs as legs

        held = any(leg.held for leg in self.legs())
        a, b = self.a, self.b
        # forward_to: encoded RTP moves between the legs while nothing needs it decoded (MediaLeg
        # switches to decoding by itself for overlays such as the hold tone or in-band DTMF).
        if b is not None:
            _forward(a.media, None if held else b.media)
            _forward(b.media, None if held else a.media)
        else:
            _forward(a.media, a.media if (self._echo and not held) else None)
            if self._service_audio is not None:
                if held:
                    a.media.stop_playing(self._service_audio)
                else:
                    a.media.play(self._service_audio)
        # The held party hears the hold tone; the party that put it on hold hears nothing.
        for holder in self.legs():
            other = self.other(holder)
            if other is None:
                continue
            key = other.role
            if holder.held and key not in self._hold_tones:
                tone = legs.hold_source()
                self._hold_tones[key] = tone
                other.media.play(tone)
            elif not holder.held and key in self._hold_tones:
                other.media.stop_playing(self._hold_tones.pop(key))

    def modify(self, leg: Leg, action: str) -> str:
        """Apply hold/unhold/toggleHold from ``leg``; return the new holdState."""
        if action == "hold":
            leg.held = True
        elif action == "unhold":
            leg.held = False
        elif action == "toggleHold":
            leg.held = not leg.held
        self.update_media()
        return "held" if leg.held else "active"

    async def dtmf(self, leg: Leg, digits: str) -> None:
        """Digits from ``leg``: in-band + info to the far leg, or back to the caller (dtmf service)."""
        from softphone.switch import media_legs as legs

        clean = "".join(ch for ch in digits.upper() if ch in "0123456789*#ABCD")
        if not clean or self.ended:
            return
        if self.service is not None:
            if self.service.name == "dtmf":
                leg.media.play(legs.dtmf_source(clean))
                await leg.send(
                    verto.INFO, {"callID": leg.call_id, "dtmf": clean, "dialogParams": {"callID": leg.call_id}}
                )
            elif self.ivr is not None:
                self.ivr.digit(clean)
            return
        other = self.other(leg)
        if other is None:
            return
        other.media.play(legs.dtmf_source(clean))
        await other.send(
            verto.INFO, {"callID": other.call_id, "dtmf": clean, "dialogParams": {"callID": other.call_id}}
        )

    async def reattach(self, leg: Leg) -> None:
        """Send ``telnyx_rtc.attach`` with a fresh offer from a new peer for ``leg``."""
        try:
            offer = await leg.media.renew()
        except Exception as exc:
            logger.warning("call %s: reattach offer failed: %s", leg.call_id, exc)
            await self.end(None, "NORMAL_TEMPORARY_FAILURE")
            return
        if self.ended:
            return
        params = leg.progress()
        params["sdp"] = offer
        if leg.role == "b":
            # The B client was called: from its point of view the caller is the A side.
            params["display_direction"] = "inbound"
        await leg.send(verto.ATTACH, params)

    async def attach_answered(self, leg: Leg, sdp: str) -> None:
        try:
            await leg.media.accept_answer(sdp)
        except Exception as exc:
            logger.info("call %s: attach answer unusable: %s", leg.call_id, exc)
            await self.end(None, "INCOMPATIBLE_DESTINATION")
            return
        self.update_media()

    # --- teardown -----------------------------------------------------------------------

    async def end(self, by: Leg | None, cause: str, *, sip_code: int | None = None) -> None:
        """End the call: ``by`` hung up (None: the switch ends it); bye every other leg."""
        if self.ended:
            return
        self.ended = True
        now = time.time()
        for leg in self.legs():
            if leg.ended:
                continue
            leg.ended = True
            leg_cause = cause
            if by is not None and leg is not by and self.answered_at is None and by is self.a:
                leg_cause = "ORIGINATOR_CANCEL"  # the caller gave up before B answered
            if not leg.answered.done():
                leg.answered.set_exception(ConnectionError("leg ended"))
                leg.answered.exception()  # mark retrieved
            if leg is not by:
                params = verto.server_bye_params(
                    leg.call_id, leg_cause, sip_code=sip_code if leg_cause == cause else None
                )
                try:
                    await leg.send(verto.BYE, params)
                except Exception as exc:  # a dead socket must not stop the teardown
                    logger.debug("bye to %s failed: %s", leg.call_id, exc)
            rec = leg.record
            rec.end = now
            rec.cause = leg_cause
            rec.cause_code = verto.cause_code(leg_cause)
            rec.sip_code = sip_code if sip_code is not None else verto.CAUSE_SIP.get(leg_cause, (None, ""))[0]
            if not rec.codec:
                rec.codec = leg.media.codec
            leg.session.legs.pop(leg.call_id, None)
        if self.a.local_sdp is not None and not self.a.local_sdp.done():
            self.a.local_sdp.cancel()
        for leg in self.legs():
            await leg.media.close()
        self.hub.call_ended(self)
