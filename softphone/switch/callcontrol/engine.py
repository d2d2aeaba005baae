"""Call Control on the local switch: parking, webhooks and Telnyx Voice API commands.

Two usage patterns run offline with it:

1. A client calls a destination that is neither a client nor a service, on a connection
   with a ``webhook_url``: the call is **parked** (the caller hears ringback),
   ``call.initiated`` is posted, and the backend drives it with commands (answer, dial
   a second leg, bridge, enqueue, conferences...). Nobody commanding it for
   ``park_timeout`` ends it with RECOVERY_ON_TIMER_EXPIRE / 408.
2. An outside (simulated PSTN) call reaches a number of such a connection: it is parked
   the same way (``direction: incoming``) and the backend places a leg to the client and
   joins the two. Without a webhook the client is rung directly and bridged on answer.

The engine keeps one :class:`~softphone.switch.callcontrol.legs.CCLeg` per ``call_control_id``;
commands live in :mod:`softphone.switch.callcontrol.commands`, the HTTP API in
:mod:`softphone.switch.callcontrol.api`, audio wiring in :mod:`softphone.switch.callcontrol.conference`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from softphone.protocol import verto
from softphone.switch import media_legs
from softphone.switch.callcontrol.apps import CallControlApp, CallControlOptions, apps_from_accounts, check_apps
from softphone.switch.callcontrol.conference import Conference, Queue, bridge_audio, cut_audio
from softphone.switch.callcontrol.gather import end_gather, gather_digit
from softphone.switch.callcontrol.legs import CCLeg, WebRtcCall, dialled_call, new_control_id, telnyx_cause
from softphone.switch.callcontrol.mediafiles import MediaRefused, load_media
from softphone.switch.callcontrol.pstn import PstnEndpoint
from softphone.switch.callcontrol.webhooks import SigningKey, WebhookSender
from softphone.switch.routing import NoRoute, Route, ServiceRoute, SlotRoute, is_number, route

if TYPE_CHECKING:
    from softphone.media.sources import AudioSource
    from softphone.switch.calls import Call
    from softphone.switch.server import SwitchServer

logger = logging.getLogger(__name__)


class CommandError(Exception):
    """A command the engine refuses (becomes a Telnyx-style error response)."""

    def __init__(self, status: int, code: str, title: str, detail: str = "") -> None:
        super().__init__(f"{title}: {detail}" if detail else title)
        self.status, self.code, self.title, self.detail = status, code, title, detail


class ApiPort(Protocol):
    """The commands API as the engine sees it (:class:`~softphone.switch.callcontrol.api.ApiServer`)."""

    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


ApiFactory = Callable[["CallControl", str, int], ApiPort]
"""Builds the commands API for an engine on (host, port); the composition root passes ``ApiServer``."""


def gone(leg: CCLeg) -> CommandError:
    return CommandError(422, "90018", "Call has already ended", f"call {leg.call_control_id} is not active")


class CallControl:
    """The Call Control engine of one switch core (:class:`~softphone.switch.server.SwitchServer`)."""

    def __init__(
        self,
        switch: SwitchServer,
        apps: dict[str, CallControlApp] | None = None,
        options: CallControlOptions | None = None,
        api_factory: ApiFactory | None = None,
    ) -> None:
        self.switch = switch
        self.api_factory = api_factory
        """Builds the commands API at :meth:`start` (None: no HTTP API, the engine is driven in-process)."""
        self.apps = apps if apps is not None else apps_from_accounts(switch.accounts)
        self.options = options or CallControlOptions()
        self.webhooks = WebhookSender(
            allow_remote=self.options.allow_remote_webhooks,
            tries=self.options.webhook_tries,
            backoff_s=self.options.webhook_backoff,
        )
        self.legs: dict[str, CCLeg] = {}
        self.queues: dict[str, Queue] = {}
        self.conferences: dict[str, Conference] = {}
        self._api: ApiPort | None = None
        self.api_url = ""
        self.inbound_programs: list[Callable[[CCLeg], bool]] = []
        """Programs that may take an outside call before webhooks do (TeXML applications):
        ``program(leg) -> True`` when it took the leg."""
        self.client_call_programs: list[Callable[[Call], Awaitable[bool]]] = []
        """Programs that may take a client's unroutable call before parking does (TeXML)."""
        self.dtmf_observers: list[Callable[[CCLeg, str], None]] = []
        """Told of every DTMF a leg's party sends, after the webhooks (media streams' ``dtmf`` frames)."""

    # --- lifecycle --------------------------------------------------------------------

    async def start(self, *, api: bool = True) -> None:
        """Hook into the switch's routing and start the commands API (unless ``api`` is False or there
        is no :attr:`api_factory`)."""
        check_apps(self.apps, allow_remote=self.options.allow_remote_webhooks)
        if self.webhooks.signing_key is None:  # webhooks are signed as Telnyx signs them
            self.webhooks.signing_key = SigningKey.for_switch(self.options.data_dir)
        self.switch.park_hook = self._park_hook
        if api and self.api_factory is not None:
            self._api = self.api_factory(self, self.options.api_host, self.options.api_port)
            await self._api.start()
            self.api_url = self._api.url

    async def stop(self) -> None:
        """Hang up every leg, stop the API and the webhook workers."""
        if self.switch.park_hook == self._park_hook:
            self.switch.park_hook = None
        alive = [leg for leg in self.legs.values() if leg.alive]
        if alive:
            tasks = [asyncio.ensure_future(self.hangup_leg(leg, "NORMAL_CLEARING")) for leg in alive]
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._api is not None:
            await self._api.stop()
            self._api = None
        with contextlib.suppress(TimeoutError):
            await self.webhooks.drain(0.5)
        await self.webhooks.close()

    async def __aenter__(self) -> CallControl:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        return self.switch.spawn(coro, name)

    async def media(self, spec: str, *, loop: bool = False, param: str = "audio_url") -> AudioSource:
        """The source an ``audio_url`` names, under the media policy (see
        :mod:`~softphone.switch.callcontrol.mediafiles`).

        Raises a 422 :class:`CommandError` for anything refused or undecodable.
        """
        try:
            return await asyncio.to_thread(load_media, spec, self.options.media_root, loop=loop)
        except MediaRefused as exc:
            raise CommandError(422, "10015", f"Invalid value for {param}", str(exc)) from exc

    # --- events -----------------------------------------------------------------------

    def emit(self, leg: CCLeg, event_type: str, **extra: Any) -> None:
        """Post a webhook about ``leg`` to its connection's webhook (if it has one)."""
        if not leg.notify:
            return
        app = self.apps.get(leg.connection_id)
        url, failover = (app.webhook_url, app.webhook_failover_url) if app else ("", "")
        self.webhooks.send(url, failover, event_type, leg.payload(**extra))

    def events(self, event_type: str | None = None, call_control_id: str | None = None) -> list[dict[str, Any]]:
        """Events posted so far (``data`` objects), optionally filtered."""
        return [
            e
            for e in self.webhooks.events
            if (event_type is None or e["event_type"] == event_type)
            and (call_control_id is None or e["payload"].get("call_control_id") == call_control_id)
        ]

    async def wait_event(
        self, event_type: str, call_control_id: str | None = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """The first event of a type (for one leg), waiting for it if needed."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.events(event_type, call_control_id)
            if found:
                return found[0]
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event_type} for {call_control_id}")
            await asyncio.sleep(0.02)

    # --- legs -------------------------------------------------------------------------

    def leg(self, call_control_id: str) -> CCLeg:
        leg = self.legs.get(call_control_id)
        if leg is None:
            raise CommandError(404, "10005", "Resource not found", f"no call {call_control_id}")
        return leg

    def _add(self, leg: CCLeg) -> CCLeg:
        self.legs[leg.call_control_id] = leg
        return leg

    def _park(self, leg: CCLeg) -> None:
        leg.state = "parked"
        self.emit(leg, "call.initiated", start_time=_iso(leg.created))
        loop = asyncio.get_running_loop()
        timer = loop.call_later(self.options.park_timeout, self._park_expired, leg)
        leg.extras["park_timer"] = timer

    def unpark(self, leg: CCLeg) -> None:
        """A command took the leg: stop the park timer and the ringback."""
        timer = leg.extras.pop("park_timer", None)
        if isinstance(timer, asyncio.TimerHandle):
            timer.cancel()

    def _park_expired(self, leg: CCLeg) -> None:
        if leg.alive and leg.answered_at is None:
            logger.info("parked call %s timed out", leg.call_control_id)
            self.spawn(self.hangup_leg(leg, "RECOVERY_ON_TIMER_EXPIRE"), "park-timeout")

    def stop_ringback(self, leg: CCLeg) -> None:
        tone = leg.extras.pop("ringback", None)
        if tone is not None:
            leg.endpoint.stop_playing(tone)

    def mark_answered(self, leg: CCLeg) -> None:
        if leg.answered_at is not None or not leg.alive:
            return
        self.unpark(leg)
        self.stop_ringback(leg)
        leg.answered_at = time.time()
        leg.state = "answered"
        leg.answered.set()
        self.emit(leg, "call.answered", start_time=_iso(leg.answered_at))
        then = leg.extras.pop("on_answer", None)
        if callable(then):
            then()

    async def hangup_leg(self, leg: CCLeg, cause: str = "NORMAL_CLEARING") -> None:
        """End a leg from the switch side."""
        if not leg.alive:
            return
        if leg.wire is not None:
            await leg.wire.end(None, cause)  # reports back through leg_ended
        else:
            self.leg_ended(leg, cause, None, False)
            await leg.endpoint.close()

    # --- LegEvents (from WebRTC legs; PSTN legs call them directly) ------------------------

    def leg_ended(self, leg: CCLeg, cause: str, sip_code: int | None, by_party: bool) -> None:
        if not leg.alive:
            return
        leg.ended.set()
        self.unpark(leg)
        leg.ended_at = time.time()
        leg.state = "hangup"
        leg.hangup_cause = cause
        leg.sip_code = sip_code if sip_code is not None else verto.CAUSE_SIP.get(cause, (None, ""))[0]
        if by_party:
            leg.hangup_source = "caller" if leg.direction == "incoming" else "callee"
        else:
            leg.hangup_source = "unknown"
        gather = leg.extras.get("gather")
        if gather is not None:
            end_gather(self, leg, "call_hangup")
        for pb in list(leg.extras.get("playbacks", {}).values()):
            pb.stopped = "call_hangup"
        self.leave_everything(leg, reason="hangup")
        reported = telnyx_cause(cause)
        if by_party and leg.direction == "incoming" and leg.answered_at is None:
            reported = "originator_cancel"  # the caller gave up while parked (the SDKs send USER_BUSY)
        self.emit(
            leg,
            "call.hangup",
            hangup_cause=reported,
            hangup_source=leg.hangup_source,
            sip_hangup_cause=str(leg.sip_code) if leg.sip_code is not None else "unspecified",
            start_time=_iso(leg.created),
            end_time=_iso(leg.ended_at),
        )
        self.spawn(self._forget_later(leg), "forget-leg")

    async def _forget_later(self, leg: CCLeg) -> None:
        await asyncio.sleep(300.0)  # keep status queries answerable for a while
        self.legs.pop(leg.call_control_id, None)

    def leg_dtmf(self, leg: CCLeg, digits: str) -> None:
        for digit in digits:
            self.emit(leg, "call.dtmf.received", digit=digit)
            gather_digit(self, leg, digit)
        for observer in self.dtmf_observers:
            observer(leg, digits)
        other = leg.bridged_to
        if other is not None and other.alive:
            other.endpoint.play(media_legs.dtmf_source(digits))
            if other.wire is not None:
                w = other.wire.a
                self.spawn(
                    w.send(verto.INFO, {"callID": w.call_id, "dtmf": digits, "dialogParams": {"callID": w.call_id}}),
                    "dtmf-info",
                )

    def leg_hold(self, leg: CCLeg, held: bool) -> None:
        leg.held = held
        other = leg.bridged_to
        if other is None:
            return
        tone = leg.extras.pop("hold_tone", None)
        if tone is not None:
            other.endpoint.stop_playing(tone)
        if held:
            cut_audio(leg)
            cut_audio(other)
            tone = media_legs.hold_source()
            other.endpoint.play(tone)
            leg.extras["hold_tone"] = tone
        else:
            bridge_audio(leg, other)

    # --- unhooking ------------------------------------------------------------------------

    def leave_everything(self, leg: CCLeg, *, reason: str) -> None:
        """Take ``leg`` out of its bridge, queue and conference."""
        self.stop_ringback(leg)
        cut_audio(leg)
        if leg.queue:
            q = self.queues.get(leg.queue)
            leg.queue = ""
            if q is not None and q.remove(leg):
                self.emit(leg, "call.dequeued", queue=q.name, reason=reason, wait_time_secs=q.avg_wait_s)
        conf = self.conferences.get(leg.conference_id) if leg.conference_id else None
        if conf is not None and conf.leave(leg):
            self.emit_conference(conf, "conference.participant.left", leg)
            if not conf.participants:
                conf.ended = True
                self.emit_conference(conf, "conference.ended", None, reason="all_left")
        other = leg.bridged_to
        if other is not None:
            leg.bridged_to = None
            other.bridged_to = None
            cut_audio(other)
            tone = leg.extras.pop("hold_tone", None) or other.extras.pop("hold_tone", None)
            if tone is not None:
                other.endpoint.stop_playing(tone)
                leg.endpoint.stop_playing(tone)
            if other.alive and reason == "hangup":
                if other.park_after_unbridge:
                    other.state = "parked"
                else:
                    self.spawn(self.hangup_leg(other, "NORMAL_CLEARING"), "unbridge-hangup")
            elif other.alive:
                other.state = "answered"
        if leg.alive and leg.answered_at is not None:
            leg.state = "answered"

    def emit_conference(self, conf: Conference, event_type: str, leg: CCLeg | None, **extra: Any) -> None:
        payload: dict[str, Any] = {"conference_id": conf.id, "name": conf.name, "connection_id": conf.connection_id}
        if leg is not None:
            payload.update(
                call_control_id=leg.call_control_id,
                call_leg_id=leg.call_leg_id,
                call_session_id=leg.call_session_id,
                client_state=leg.client_state or None,
            )
        payload.update(extra)
        app = self.apps.get(conf.connection_id)
        if app is not None:
            self.webhooks.send(app.webhook_url, app.webhook_failover_url, event_type, payload)
        else:
            self.webhooks.send("", "", event_type, payload)

    # --- pattern 1: parking a client's call ---------------------------------------------------

    async def _park_hook(self, call: Call) -> bool:
        """The switch found no route for a client's call: park it if its connection has a webhook."""
        for program in self.client_call_programs:
            if await program(call):
                return True
        app = self.apps.get(call.a.session.login.connection_id)
        if app is None or not app.webhook_url:
            return False
        self.park_call(call)
        return True

    def park_call(self, call: Call) -> CCLeg:
        """Take over the caller's leg of an unroutable switch call and park it."""
        wire = WebRtcCall.adopt(call, self)
        self.switch.add_call(wire, replaces=call)
        a = wire.a
        leg = self._add(
            CCLeg(
                call_control_id=a.ids.call_control_id,
                call_leg_id=a.ids.leg_id,
                call_session_id=a.ids.session_id,
                connection_id=a.session.login.connection_id,
                from_=wire.caller_number,
                to=wire.destination,
                direction="incoming",
                endpoint=a.media,
                kind="webrtc",
                client_state=wire.client_state,
                custom_headers=wire.custom_headers,
                wire=wire,
            )
        )
        wire.cc = leg
        self._park(leg)
        leg.extras["ring_task"] = self.spawn(self._ring_parked(leg, wire), f"park {leg.call_control_id}")
        return leg

    async def _ring_parked(self, leg: CCLeg, wire: WebRtcCall) -> None:
        if self.options.ringback == "early":
            tone = media_legs.ringback_source()
            leg.extras["ringback"] = tone
            leg.early = await wire.send_early_media(tone)
            if leg.answered_at is not None or not leg.alive:
                leg.endpoint.stop_playing(tone)
        else:
            await wire.ring_a()

    # --- pattern 2: outside callers, and dialled legs ----------------------------------------

    async def outside_call(
        self,
        from_: str,
        to: str,
        *,
        audio: str | AudioSource = "",
        record_path: str | Path | None = None,
        dtmf: str = "",
        dtmf_delay: float = 3.0,
        client_state: str = "",
    ) -> CCLeg:
        """A simulated PSTN call from ``from_`` to a number owned by a connection.

        ``audio`` is an ``audio_url`` (under the media policy) or a ready source;
        ``record_path`` is trusted (the HTTP API only passes paths from
        :func:`~softphone.switch.callcontrol.mediafiles.recording_path`).
        """
        conn = self.switch.accounts.by_number(to)
        if conn is None:
            raise CommandError(422, "10015", "Invalid value for to", f"no connection owns {to}")
        src = (await self.media(audio, loop=True)) if isinstance(audio, str) and audio else (audio or None)
        endpoint = PstnEndpoint(f"pstn:{from_}", src, record_path=record_path)
        leg = self._add(
            CCLeg(new_control_id(), conn.id, from_, to, "incoming", endpoint, "pstn", client_state=client_state)
        )
        endpoint.on_dtmf = lambda d: self.leg_dtmf(leg, d)
        await endpoint.start()
        tone = media_legs.ringback_source()
        endpoint.play(tone)
        leg.extras["ringback"] = tone
        app = self.apps.get(conn.id)
        if any(program(leg) for program in self.inbound_programs):
            pass
        elif app is not None and app.webhook_url:
            self._park(leg)
        else:
            # No Call Control app: ring the connection's client and join the two on answer.
            leg.notify = False
            slot = conn.sip_username if conn.inbound_format == "sip_username" else ""
            target: Route = SlotRoute(slot, conn.id) if slot else NoRoute("USER_NOT_REGISTERED")
            other = self.dial(conn.id, slot or to, from_, notify=False, route_to=target)
            other.extras["on_answer"] = lambda: self._auto_bridge(leg, other)
            self.spawn(self._fail_with(other, leg), "outside-ring")
        if dtmf:
            self.spawn(self._send_dtmf_later(leg, endpoint, dtmf, dtmf_delay), "pstn-dtmf")
        return leg

    async def _send_dtmf_later(self, leg: CCLeg, endpoint: PstnEndpoint, digits: str, delay: float) -> None:
        await leg.answered.wait()
        await asyncio.sleep(delay)
        if leg.alive:
            await endpoint.send_dtmf(digits)

    def _auto_bridge(self, caller: CCLeg, callee: CCLeg) -> None:
        if caller.alive and callee.alive:
            self.mark_answered(caller)
            self.bridge(caller, callee)

    async def _fail_with(self, callee: CCLeg, caller: CCLeg) -> None:
        """End ``caller`` with the cause of ``callee`` if it never answers."""
        ended = asyncio.ensure_future(callee.ended.wait())
        answered = asyncio.ensure_future(callee.answered.wait())
        await asyncio.wait([ended, answered], return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        answered.cancel()
        if callee.answered_at is None and caller.alive:
            self.stop_ringback(caller)
            await self.hangup_leg(caller, callee.hangup_cause or "NORMAL_CLEARING")

    def dial(
        self,
        connection_id: str,
        to: str,
        from_: str,
        *,
        client_state: str = "",
        timeout: float | None = None,
        custom_headers: tuple[tuple[str, str], ...] = (),
        audio: AudioSource | None = None,
        notify: bool = True,
        route_to: Route | None = None,
        link_to: CCLeg | None = None,
    ) -> CCLeg:
        """Place a new leg (POST /v2/calls): a client, a service, or a simulated outside number."""
        r = route_to if route_to is not None else route(to, self.switch.accounts)
        endpoint: Any
        kind = "webrtc"
        if isinstance(r, SlotRoute):
            endpoint = None
        elif isinstance(r, ServiceRoute):
            kind = "service"
            src = media_legs.tone_source(1004.0) if r.service.name == "tone" else None
            endpoint = PstnEndpoint(f"svc:{r.service.name}", src)
        else:
            kind = "pstn"
            endpoint = PstnEndpoint(f"pstn:{to}", audio)
        leg = CCLeg(
            new_control_id(),
            connection_id,
            from_,
            to,
            "outgoing",
            endpoint,
            kind,
            client_state=client_state,
            custom_headers=custom_headers,
            state="bridging",
            notify=notify,
        )
        if link_to is not None:
            leg.call_session_id = link_to.call_session_id
        self._add(leg)
        if isinstance(r, SlotRoute):
            session = self.switch.lookup_client(r.slot)
            if session is None:
                leg.endpoint = PstnEndpoint("unregistered")
                self.emit(leg, "call.initiated", start_time=_iso(leg.created))
                self.spawn(self.hangup_leg(leg, "USER_NOT_REGISTERED"), "dial-unregistered")
                return leg
            wire = dialled_call(self.switch, session, leg, self)
            leg.endpoint = wire.a.media
            self.switch.add_call(wire)
            self.emit(leg, "call.initiated", start_time=_iso(leg.created))
            self.spawn(self._ring_client(leg, wire, timeout or self.options.dial_timeout), f"dial {to}")
        else:
            self.emit(leg, "call.initiated", start_time=_iso(leg.created))
            cause = None
            if isinstance(r, NoRoute) and (route_to is not None or not is_number(to)):
                cause = r.cause
            if isinstance(r, ServiceRoute) and r.service.name in ("busy", "reject", "noanswer"):
                cause = {"busy": "USER_BUSY", "reject": "CALL_REJECTED", "noanswer": "NO_ANSWER"}[r.service.name]
            echo = isinstance(r, ServiceRoute) and r.service.name == "echo"
            self.spawn(self._ring_outside(leg, cause, echo=echo), f"dial {to}")
        return leg

    async def _ring_client(self, leg: CCLeg, wire: WebRtcCall, timeout: float) -> None:
        cause = await wire.invite(caller_name=leg.from_, caller_number=leg.from_, callee=leg.to, timeout=timeout)
        if cause is None:
            self.mark_answered(leg)

    async def _ring_outside(self, leg: CCLeg, cause: str | None, *, echo: bool) -> None:
        assert isinstance(leg.endpoint, PstnEndpoint)
        endpoint = leg.endpoint
        await endpoint.start()
        await asyncio.sleep(self.options.outside_ring_s)
        if not leg.alive:
            return
        if cause is not None:
            await self.hangup_leg(leg, cause)
            return
        endpoint.echo = echo
        self.mark_answered(leg)

    # --- bridging (used by commands, transfer and the no-webhook path) ------------------------

    def bridge(self, a: CCLeg, b: CCLeg, *, park_after_unbridge: bool = False) -> None:
        for leg in (a, b):
            self.unpark(leg)
            self.leave_everything(leg, reason="bridged")
        a.park_after_unbridge = park_after_unbridge
        a.bridged_to, b.bridged_to = b, a
        a.state = b.state = "bridged"
        bridge_audio(a, b)
        self.emit(a, "call.bridged")
        self.emit(b, "call.bridged")

    def queue(self, name: str) -> Queue:
        q = self.queues.get(name)
        if q is None:
            q = self.queues[name] = Queue(name)
        return q

    def hold_tone(self) -> AudioSource:
        """What a queued caller hears (a fresh source per caller: each keeps its own cadence)."""
        return media_legs.hold_source()


def _iso(ts: float | None) -> str | None:
    from softphone.switch.callcontrol.webhooks import iso_now

    return None if ts is None else iso_now(ts)


def parse_headers(raw: Any) -> tuple[tuple[str, str], ...]:
    """``[{"name": "X-..", "value": ".."}]`` -> pairs (invalid entries dropped)."""
    return verto.headers_from(raw)
