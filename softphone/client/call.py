"""One call: where signaling (the session's :class:`CallLeg`) meets media (a media peer).

A :class:`Call` owns everything about its call and talks to its host (the
:class:`~softphone.client.client.Client`) only through the small
:class:`~softphone.client.port.CallHost` port:
send an intent, emit an event, spawn a task, get media for this call. The host hands it
the session's events through ONE entry, :meth:`Call.handle`, which never awaits: anything
slow (opening devices, applying SDP, reattaching) runs in a task spawned through the port.

Policy is not here: which local tones play and when, hanging up when media fails and
de-duplicating DTMF received on two paths belong to the application
(:class:`softphone.app.phone.Phone`). A call reports what happened
(:class:`~softphone.client.events.CallMediaFailed`, one
:class:`~softphone.client.events.CallDtmf` per digit per path) and offers the mechanisms
(:meth:`Call.play_tone`, :meth:`Call.hangup`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from softphone.client import events as ce
from softphone.client.port import (
    Answer,
    AttachAnswer,
    CallHost,
    CallMedia,
    Hangup,
    Intent,
    Invite,
    Modify,
    Peer,
    Reject,
    SendDtmf,
)
from softphone.errors import CallError, CommandError, LocalProtocolError, MediaError, SoftphoneError
from softphone.media.frames import Frame
from softphone.media.sinks import AudioSink, BaseSink, NullSink
from softphone.media.sources import AudioSource, NullSource
from softphone.protocol import events as ev
from softphone.protocol import verto as v
from softphone.protocol.dtmf import check_digits
from softphone.protocol.session import CallLeg
from softphone.protocol.states import CallState

if TYPE_CHECKING:
    from softphone.media.stats import MediaStats

__all__ = ["Call", "CallHost", "CallMedia", "Peer"]

logger = logging.getLogger("softphone.client.call")


class _CallTap(BaseSink):
    """The peer's sink: feeds the in-band DTMF detector, then the call's current output."""

    def __init__(self, output: Callable[[], AudioSink | None], on_digit: Callable[[str], None]) -> None:
        from softphone.media.dsp import DtmfDetector

        self._output = output
        self._on_digit = on_digit
        # No pre-check in front of the detector: it rejects quiet blocks before any
        # projection and costs a few microseconds a frame otherwise (bench/dtmf_bench.py).
        self.detector = DtmfDetector()

    def write_frame(self, frame: Frame) -> None:
        out = self._output()
        if out is not None:
            out.write_frame(frame)
        for digit in self.detector.feed(frame):
            self._on_digit(digit)


class Call:
    """A call, as the SDKs expose it. Create calls with :meth:`Client.new_call`."""

    def __init__(self, host: CallHost, leg: CallLeg, *, offer_sdp: str | None = None) -> None:
        self._host = host
        self._leg = leg
        self._offer_sdp = offer_sdp
        self.id: str = leg.call_id
        self.direction: str = leg.direction
        self.destination: str = leg.dialog.destination
        self.created_at: float = time.time()
        self.answered_at: float | None = None
        self._ended_at: float | None = None
        self._hangup: ev.CallHangup | None = None
        self.parked_since: float | None = None
        self.muted = False
        self.stats: MediaStats | None = None
        self.peer: Peer | None = None
        self.input: AudioSource = NullSource()
        self.output: AudioSink = NullSink()
        self._media: CallMedia | None = None
        self._codecs: list[str] | None = None
        self._prepared = False  # devices asked for (inbound/adopted); outbound calls open them in start_outbound
        self._tap = _CallTap(self._current_output, lambda digit: self._digit(digit, "inband"))
        self._state_changed = asyncio.Event()
        self._hold_waiter: asyncio.Future[bool] | None = None
        self._tone_task: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._media_closing: asyncio.Task[None] | None = None
        self._media_ready: asyncio.Task[None] | None = None  # inbound: device setup; answer() waits for it

    # -- plain properties ---------------------------------------------------------------------
    @property
    def state(self) -> CallState:
        """The current :class:`CallState`."""
        return self._leg.state

    @property
    def held(self) -> bool:
        """True while the call is on hold (kept across a reattach)."""
        return self._leg.state == CallState.HELD or (self._leg.state == CallState.RECOVERING and self._leg.held)

    @property
    def remote_name(self) -> str:
        return self._leg.remote_name

    @property
    def remote_number(self) -> str:
        return self._leg.remote_number

    @property
    def telnyx_call_control_id(self) -> str:
        return self._leg.ids.call_control_id

    @property
    def telnyx_session_id(self) -> str:
        return self._leg.ids.session_id

    @property
    def telnyx_leg_id(self) -> str:
        return self._leg.ids.leg_id

    @property
    def custom_headers(self) -> tuple[tuple[str, str], ...]:
        """Custom SIP headers received (invite or answer)."""
        return self._leg.remote_headers

    @property
    def client_state(self) -> str:
        return self._leg.client_state or self._leg.dialog.client_state

    @property
    def codec(self) -> str | None:
        return self.peer.negotiated_codec if self.peer is not None else None

    @property
    def input_level_db(self) -> float | None:
        """The level sent now (dBFS, per frame), None without media."""
        return self.peer.input_level_db if self.peer is not None else None

    @property
    def output_level_db(self) -> float | None:
        """The level received now (dBFS, per frame), None without media."""
        return self.peer.output_level_db if self.peer is not None else None

    @property
    def duration(self) -> float:
        """Seconds since answer (until the end), 0 if never answered."""
        if self.answered_at is None:
            return 0.0
        return max(0.0, (self.ended_at or time.time()) - self.answered_at)

    # -- how it ended: read through the leg, so they are set as soon as its end is observable ----------
    @property
    def _end(self) -> ev.CallHangup | None:
        return self._hangup or (self._leg.hangup if self._leg.state.is_terminal else None)

    @property
    def ended_at(self) -> float | None:
        if self._ended_at is None and self._leg.state.is_terminal:
            self._ended_at = time.time()
        return self._ended_at

    @property
    def cause(self) -> str | None:
        return end.cause if (end := self._end) else None

    @property
    def cause_code(self) -> int | None:
        return end.cause_code if (end := self._end) else None

    @property
    def sip_code(self) -> int | None:
        return end.sip_code if (end := self._end) else None

    @property
    def sip_reason(self) -> str:
        return end.sip_reason if (end := self._end) else ""

    @property
    def hangup_reason(self) -> str:
        return end.reason if (end := self._end) else ""

    # -- parking (Call Control on the local switch marks it: protocol.verto.PARKED_HEADER) -----------
    @property
    def parked(self) -> bool:
        """True while an outbound call waits, unanswered, for a Call Control backend's commands."""
        return self.parked_since is not None

    def _update_parked(self) -> bool:
        """Recompute ``parked`` (and ``parked_since``); True if it changed."""
        now = self.direction == "outbound" and self.state in (CallState.RINGING, CallState.EARLY) and any(
            k.lower() == v.PARKED_HEADER.lower() and val.strip().lower() == "true" for k, val in self.custom_headers)
        if now == self.parked:
            return False
        self.parked_since = time.time() if now else None
        return True

    def cost(self, rate_per_minute: float = 0.002) -> float:
        """The call's price, billed per started second at ``rate_per_minute`` (:func:`softphone.app.billing.cost`)."""
        from softphone.app.billing import cost

        return cost(self.duration, rate_per_minute)

    def __repr__(self) -> str:
        return f"<Call {self.id} {self.direction} {self.state.value} {self.remote_number or self.destination!r}>"

    # -- intents --------------------------------------------------------------------------------
    def _send(self, intent: Intent) -> None:
        try:
            self._host.send(intent)
        except LocalProtocolError as exc:
            raise CommandError(str(exc)) from exc

    async def start_outbound(self, codecs: list[str] | None = None) -> None:
        """Open this call's media, build the offer and send the invite (``Client.new_call`` does this)."""
        self._codecs = codecs
        try:
            self._prepared = True
            await self._open_media()
            sdp = await (await self._new_peer()).create_offer()
        except BaseException:
            if not self.state.is_terminal:  # never sent: ends locally, no BYE
                self._host.send(Hangup(self.id, reason="media setup failed"))
            raise
        if self.state != CallState.NEW:
            raise CommandError(f"call ended before the invite ({self.state.value})")
        self._host.send(Invite(self.id, sdp))

    async def answer(self) -> None:
        """Answer a ringing inbound call (media first, then ``telnyx_rtc.answer``).

        When the offer cannot be accepted this raises :class:`MediaError` and reports
        :class:`~softphone.client.events.CallMediaFailed`; the call is left ringing.
        """
        if self.direction != "inbound" or self.state != CallState.RINGING:
            raise CommandError(f"cannot answer a {self.direction} call in state {self.state.value}")
        if self._offer_sdp is None:
            raise CallError("no offer to answer")
        if self._media_ready is not None:  # answering from a call.incoming handler: the source is not there yet
            await asyncio.shield(self._media_ready)
            if self.state != CallState.RINGING:
                raise CallError(f"call ended while answering ({self.state.value})")
        try:
            sdp = await (await self._new_peer()).accept_offer(self._offer_sdp)
        except MediaError as exc:
            if not self.state.is_terminal:
                self._host.emit(ce.CallMediaFailed(call_id=self.id, stage="answer", message=str(exc)))
            raise
        if self.state != CallState.RINGING:
            raise CallError(f"call ended while answering ({self.state.value})")
        self._host.send(Answer(self.id, sdp))

    async def reject(self) -> None:
        """Reject a ringing inbound call (BYE USER_BUSY)."""
        self._send(Reject(self.id))

    async def hangup(self, cause: str | None = None, *, reason: str = "local hangup") -> None:
        """Hang up. Default cause by state as the SDKs: NORMAL_CLEARING once answered, else USER_BUSY."""
        if self.state.is_terminal:
            return
        self._host.send(Hangup(self.id, cause, reason))

    async def dtmf(self, digits: str, delay: float = 0.15) -> None:
        """Send ``digits`` (0-9 * # A-D, a-d accepted), one ``telnyx_rtc.info`` per digit, ``delay`` apart."""
        digits = check_digits("dtmf", digits)  # the wire wants upper-case A-D (PROTOCOL.md §4.10)
        for i, digit in enumerate(digits):
            if i:
                await asyncio.sleep(delay)
            self._send(SendDtmf(self.id, digit))

    async def _modify(self, action: str, timeout: float = 10.0) -> bool:
        self._send(Modify(self.id, action))
        self._hold_waiter = waiter = asyncio.get_running_loop().create_future()
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError as exc:
            raise CallError(f"{action}: no answer") from exc
        finally:
            self._hold_waiter = None

    async def hold(self) -> bool:
        """Put the call on hold; returns the new held flag (from the server's holdState)."""
        return await self._modify("hold")

    async def unhold(self) -> bool:
        """Take the call off hold."""
        return await self._modify("unhold")

    async def toggle_hold(self) -> bool:
        """Toggle hold."""
        return await self._modify("toggleHold")

    def mute(self) -> None:
        """Send silence instead of the microphone."""
        self.muted = True
        self._apply_send_state()

    def unmute(self) -> None:
        """Send the microphone again."""
        self.muted = False
        self._apply_send_state()

    def set_input(self, source_or_device: AudioSource | str | int) -> None:
        """Send from an :class:`AudioSource`, or switch the input device (for every call of the client)."""
        if isinstance(source_or_device, str | int):
            self._host.set_audio_input(source_or_device)
            return
        self.input = source_or_device
        if self.peer is not None:
            self.peer.set_source(source_or_device)

    def set_output(self, sink_or_device: AudioSink | str | int) -> None:
        """Deliver received audio to an :class:`AudioSink`, or switch the output device (every call)."""
        if isinstance(sink_or_device, str | int):
            self._host.set_audio_output(sink_or_device)
            return
        self.output = sink_or_device

    async def wait_state(self, states: CallState | Iterable[CallState], timeout: float | None = 10.0) -> CallState:
        """Wait until the state is one of ``states``; raise CallError if the call ends first."""
        wanted = {states} if isinstance(states, CallState) else set(states)

        async def _wait() -> CallState:
            while self.state not in wanted:
                if self.state.is_terminal:
                    raise CallError(f"call ended ({self.cause or self.state.value}) before "
                                    f"{'/'.join(sorted(s.value for s in wanted))}")
                await self._state_changed.wait()
            return self.state

        return await asyncio.wait_for(_wait(), timeout)

    async def wait_ended(self, timeout: float | None = None) -> None:
        """Wait until the call has ended."""

        async def _wait() -> None:
            while not self.state.is_terminal:
                await self._state_changed.wait()

        await asyncio.wait_for(_wait(), timeout)

    # -- local tones (the application decides when: softphone.app.phone) ----------------------------
    @property
    def playing_tone(self) -> bool:
        """True while a local tone owns the output (received audio is not played meanwhile)."""
        return self._tone_task is not None

    def play_tone(self, tone: AudioSource) -> None:
        """Play ``tone`` (e.g. ringback) into this call's output until :meth:`stop_tone` (20 ms pacing)."""
        self.stop_tone()

        async def _run() -> None:
            loop = asyncio.get_running_loop()
            start = loop.time()
            n = 0
            while True:
                frame = tone.read_frame()
                if frame is not None:
                    with contextlib.suppress(Exception):
                        self.output.write_frame(frame)
                n += 1
                await asyncio.sleep(max(0.0, start + n * 0.02 - loop.time()))

        self._tone_task = self._host.spawn(_run(), f"tone-{self.id[:8]}")

    def stop_tone(self) -> None:
        """Stop the local tone, if one plays; received audio is played again."""
        task, self._tone_task = self._tone_task, None
        if task is not None:
            task.cancel()

    # -- shutdown ---------------------------------------------------------------------------------
    async def close_media(self) -> None:
        """Close the peer, source and sink (once; ``Client.close()`` waits for every call's)."""
        await asyncio.shield(self._start_closing_media())

    # -- the one entry for protocol events (from the host's reader; never awaits) --------------------
    def handle(self, event: ev.Event) -> None:
        """Apply one session event about this call."""
        match event:
            case ev.IncomingCall():
                self._prepared = True
                # Media first: a call.incoming handler may answer at once, and answer() waits for this task.
                self._media_ready = self._host.spawn(self._prepare_media(), f"inbound-{self.id[:8]}")
            case ev.AttachOffer():
                name = f"reattach-{self.id[:8]}" if self._prepared or self.peer else f"adopt-{self.id[:8]}"
                self._host.spawn(self._reattach(event), name)
            case ev.CallStateChanged(old=old, new=new):
                self._on_state(old, new)
            case ev.CallHangup():
                self._hangup = event
                self._host.emit(ce.CallHangup(
                    call_id=self.id, cause=event.cause, cause_code=event.cause_code, sip_code=event.sip_code,
                    sip_reason=event.sip_reason, remote=event.remote, reason=event.reason))
            case ev.RemoteEarlyMedia(sdp=sdp):
                self._host.spawn(self._apply_remote_sdp(sdp), f"early-{self.id[:8]}")
            case ev.RemoteAnswer(sdp=str() as sdp):
                self._host.spawn(self._apply_remote_sdp(sdp), f"answer-{self.id[:8]}")
            case ev.HoldChanged(held=held):
                self._apply_send_state()
                self._host.emit(ce.CallHeld(call_id=self.id, held=held))
                if self._hold_waiter is not None and not self._hold_waiter.done():
                    self._hold_waiter.set_result(held)
            case ev.HoldFailed(message=message):
                if self._hold_waiter is not None and not self._hold_waiter.done():
                    self._hold_waiter.set_exception(CallError(f"hold failed: {message}"))
            case ev.DtmfReceived(digits=digits):
                for digit in digits:
                    self._digit(digit, "info")

    def _on_state(self, old: CallState, new: CallState) -> None:
        if new in (CallState.ACTIVE, CallState.HELD) and self.answered_at is None:
            self.answered_at = time.time()
        if new.is_terminal and self._ended_at is None:
            self._ended_at = time.time()
        if new.is_terminal and self._hangup is None:
            self._hangup = self._leg.hangup
        parked_changed = self._update_parked()
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        self._host.emit(ce.CallStateChanged(call_id=self.id, old=old, new=new))
        if parked_changed:
            self._host.emit(ce.CallParked(call_id=self.id, parked=self.parked, since=self.parked_since,
                                          call_control_id=self.telnyx_call_control_id))
        if new == CallState.RINGING:
            self._host.emit(ce.CallRinging(call_id=self.id))
        elif new == CallState.EARLY:
            self._host.emit(ce.CallEarly(call_id=self.id))
        elif new == CallState.ACTIVE:
            self._host.emit(ce.CallActive(call_id=self.id))
        if new in (CallState.ACTIVE, CallState.HELD, CallState.EARLY):
            self._start_stats()
        if new in (CallState.ACTIVE, CallState.HELD):
            self._apply_send_state()
        if new.is_terminal:
            self._start_closing_media()

    def _digit(self, digit: str, source: str) -> None:
        self._host.emit(ce.CallDtmf(call_id=self.id, digits=digit, source=source))

    # -- media ------------------------------------------------------------------------------------
    def _current_output(self) -> AudioSink | None:
        return None if self._tone_task is not None else self.output  # a local tone owns the output

    async def _open_media(self) -> None:
        media = await self._host.open_media(self.id)
        self._media = media
        self.input, self.output = media.source, media.sink

    async def _prepare_media(self) -> None:
        """Inbound or adopted calls: devices now; a failure is a warning (the call goes on with silence)."""
        self._prepared = True
        try:
            await self._open_media()
        except SoftphoneError as exc:
            self._host.emit(ce.CallDeviceWarning(call_id=self.id, message=str(exc)))

    async def _new_peer(self) -> Peer:
        """A new peer for this call (the old one, if any, closed first)."""
        old, self.peer = self.peer, None
        if old is not None:
            await old.close()
        peer = self._host.new_peer(self.input, self._tap, name=f"call-{self.id[:8]}", codecs=self._codecs)
        if self._media is not None and self._media.send_tap is not None:  # the recording's local side
            peer.set_send_tap(self._media.send_tap)
        self.peer = peer
        self._apply_send_state()
        return peer

    def _apply_send_state(self) -> None:
        if self.peer is None:
            return
        if self.muted or self.held:
            self.peer.mute()
        else:
            self.peer.unmute()

    async def _apply_remote_sdp(self, sdp: str) -> None:
        """Remote answer or early SDP (task): apply it to our offer."""
        if self.peer is None:
            return
        try:
            await self.peer.set_answer(sdp)
        except MediaError as exc:
            logger.warning("call %s: cannot apply the remote SDP: %s", self.id, exc)
            if not self.state.is_terminal:
                self._host.emit(ce.CallMediaFailed(call_id=self.id, stage="remote_sdp", message=str(exc)))

    async def _reattach(self, offer: ev.AttachOffer) -> None:
        """Answer the server's attach with a NEW peer; id, hold intent, mute and devices stay."""
        if not self._prepared:  # a call this client did not know (adopted after a restart)
            await self._prepare_media()
        try:
            sdp = await (await self._new_peer()).accept_offer(offer.invite.sdp)
        except MediaError as exc:
            logger.warning("call %s: reattach failed: %s", self.id, exc)
            if not self.state.is_terminal:
                self._host.emit(ce.CallMediaFailed(call_id=self.id, stage="reattach", message=str(exc)))
            return
        if self.state == CallState.RECOVERING:
            self._host.send(AttachAnswer(self.id, sdp))

    def _start_stats(self) -> None:
        if self._stats_task is None or self._stats_task.done():
            self._stats_task = self._host.spawn(self._stats_loop(), f"stats-{self.id[:8]}")

    async def _stats_loop(self) -> None:
        while not self.state.is_terminal:
            await asyncio.sleep(1.0)
            peer = self.peer
            if peer is None or self.state.is_terminal:
                continue
            stats = await peer.stats()
            self.stats = stats
            self._host.emit(ce.CallStats(call_id=self.id, stats=stats))

    def _start_closing_media(self) -> asyncio.Task[None]:
        """Close the peer, source and sink once (a task the host waits for in close(), never cancels)."""
        if self._media_closing is None:
            self._media_closing = self._host.spawn(self._finish_media(), f"close-{self.id[:8]}", finish=True)
        return self._media_closing

    async def _finish_media(self) -> None:
        self.stop_tone()
        if self._stats_task is not None:
            self._stats_task.cancel()
        try:
            if self.peer is not None:
                await self.peer.close()
        finally:
            # Sinks first (the recorder finishes its file without suspending), even when cancelled.
            media = self._media
            if media is not None:
                with contextlib.suppress(Exception):
                    await media.sink.stop()
                with contextlib.suppress(Exception):
                    await media.source.stop()
