"""One call: where signaling (the session's :class:`CallLeg`) meets media (a :class:`MediaPeer`).

A :class:`Call` is created by :class:`~softphone.client.client.Client` (``new_call`` or an
inbound invite) and driven by it: the client's reader hands session events to the
call's ``_on_*`` methods, which never await media work themselves; anything slow
(applying SDP, reattaching) runs in a task tracked by the client.

DTMF received is reported once per key press whichever path saw it first: the
server's ``telnyx_rtc.info`` or in-band tones found in the received audio. A digit
reported by one path suppresses the same digit from the *other* path for
:data:`DTMF_DEDUP_WINDOW` seconds (one suppression per report, so "55" still
yields two fives).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from softphone.errors import CallError, CommandError, LocalProtocolError, MediaError
from softphone.media.frames import Frame
from softphone.media.hub import ringback_tone, ringtone_tone
from softphone.media.sinks import AudioSink, BaseSink, NullSink
from softphone.media.sources import AudioSource, NullSource, ToneSource
from softphone.protocol import events as ev
from softphone.protocol import verto as v
from softphone.protocol.session import CallLeg
from softphone.protocol.states import CallState

if TYPE_CHECKING:
    from softphone.client.client import Client
    from softphone.media.peer import MediaPeer
    from softphone.media.stats import MediaStats

logger = logging.getLogger("softphone.client.call")

DTMF_DEDUP_WINDOW = 1.0
"""Seconds within which the same digit from the other path is a duplicate."""


class _CallTap(BaseSink):
    """The peer's sink: feeds the in-band DTMF detector, then the call's current output."""

    def __init__(self, call: Call) -> None:
        self.call = call
        from softphone.media.dsp import DtmfDetector

        # No pre-check in front of the detector: it rejects quiet blocks before any
        # projection and costs a few microseconds a frame otherwise (bench/dtmf_bench.py).
        self.detector = DtmfDetector()

    def write_frame(self, frame: Frame) -> None:
        call = self.call
        if call._tone_task is None:  # a local ringback/ringtone owns the output until media flows
            call.output.write_frame(frame)
        for digit in self.detector.feed(frame):
            call._report_dtmf(digit, "inband")


class Call:
    """A call, as the SDKs expose it. Create calls with :meth:`Client.new_call`."""

    def __init__(self, client: Client, leg: CallLeg, *, offer_sdp: str | None = None) -> None:
        self._client = client
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
        self.dtmf_received = ""
        self.peer: MediaPeer | None = None
        self.input: AudioSource = NullSource()
        self.output: AudioSink = NullSink()
        self._own_media: list[AudioSource | AudioSink] = []
        self._send_tap: AudioSink | None = None
        self._tap = _CallTap(self)
        self._state_changed = asyncio.Event()
        self._hold_waiter: asyncio.Future[bool] | None = None
        self._tone_task: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._dtmf_recent: list[tuple[str, float, str]] = []
        self._media_closing: asyncio.Task[None] | None = None
        self._media_ready: asyncio.Task[None] | None = None
        """The inbound call's device/recorder setup (set by the client); answer() waits for it."""

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
        """The call's price billed per started second at ``rate_per_minute``."""
        d = self.duration
        return 0.0 if d <= 0 else round(math.ceil(d - 1e-9) * rate_per_minute / 60.0, 6)

    def __repr__(self) -> str:
        return f"<Call {self.id} {self.direction} {self.state.value} {self.remote_number or self.destination!r}>"

    # -- intents --------------------------------------------------------------------------------
    async def answer(self) -> None:
        """Answer a ringing inbound call (media first, then ``telnyx_rtc.answer``)."""
        if self.direction != "inbound" or self.state != CallState.RINGING:
            raise CommandError(f"cannot answer a {self.direction} call in state {self.state.value}")
        if self._offer_sdp is None:
            raise CallError("no offer to answer")
        self._stop_tone()
        if self._media_ready is not None:  # answering from a call.incoming handler: the source is not there yet
            await asyncio.shield(self._media_ready)
            if self.state != CallState.RINGING:
                raise CallError(f"call ended while answering ({self.state.value})")
        peer = await self._new_peer()
        try:
            sdp = await peer.accept_offer(self._offer_sdp)
        except MediaError:
            if not self.state.is_terminal:
                self._client._session.hangup(self.id, "INCOMPATIBLE_DESTINATION", reason="media failed")
                self._client._pump()
            raise
        if self.state != CallState.RINGING:
            raise CallError(f"call ended while answering ({self.state.value})")
        self._client._session.answer(self.id, sdp)
        self._client._pump()

    async def reject(self) -> None:
        """Reject a ringing inbound call (BYE USER_BUSY)."""
        try:
            self._client._session.reject(self.id)
        except LocalProtocolError as exc:
            raise CommandError(str(exc)) from exc
        self._client._pump()

    async def hangup(self, cause: str | None = None) -> None:
        """Hang up. Default cause by state as the SDKs: NORMAL_CLEARING once answered, else USER_BUSY."""
        if self.state.is_terminal:
            return
        self._client._session.hangup(self.id, cause, reason="local hangup")
        self._client._pump()

    async def dtmf(self, digits: str, delay: float = 0.15) -> None:
        """Send ``digits`` (0-9 * # A-D, a-d accepted), one ``telnyx_rtc.info`` per digit, ``delay`` apart."""
        digits = digits.upper()  # the wire wants upper-case A-D (PROTOCOL.md §4.10)
        if not digits or not v.valid_dtmf(digits):
            raise CommandError(f"invalid DTMF {digits!r}: use 0-9 * # A-D")
        for i, digit in enumerate(digits):
            if i:
                await asyncio.sleep(delay)
            try:
                self._client._session.dtmf(self.id, digit)
            except LocalProtocolError as exc:
                raise CommandError(str(exc)) from exc
            self._client._pump()

    async def _modify(self, action: str, timeout: float = 10.0) -> bool:
        try:
            self._client._session.modify(self.id, action)
        except LocalProtocolError as exc:
            raise CommandError(str(exc)) from exc
        self._hold_waiter = asyncio.get_running_loop().create_future()
        self._client._pump()
        try:
            return await asyncio.wait_for(self._hold_waiter, timeout)
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
            self._client.set_audio_input(source_or_device)
            return
        self.input = source_or_device
        if self.peer is not None:
            self.peer.set_source(source_or_device)

    def set_output(self, sink_or_device: AudioSink | str | int) -> None:
        """Deliver received audio to an :class:`AudioSink`, or switch the output device (every call)."""
        if isinstance(sink_or_device, str | int):
            self._client.set_audio_output(sink_or_device)
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

    # -- media helpers -----------------------------------------------------------------------------
    async def _prepare_media(self) -> None:
        """Get this call's source and sink from the client's audio manager (may raise device errors)."""
        source, sink = await self._client._audio.call_media()
        self.input, self.output = source, sink
        self._own_media = [source, sink]
        self._send_tap = getattr(sink, "send_tap", None)  # what we send, for the recording's local side

    async def _new_peer(self) -> MediaPeer:
        from softphone.media.peer import MediaPeer

        old, self.peer = self.peer, None
        if old is not None:
            await old.close()
        peer = MediaPeer(self._client._peer_options(), source=self.input, sink=self._tap, name=f"call-{self.id[:8]}")
        if self._send_tap is not None:
            peer.set_send_tap(self._send_tap)
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

    def _play_tone(self, tone: ToneSource) -> None:
        """Play a local tone into the output until stopped (20 ms pacing on the loop)."""
        self._stop_tone()

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

        self._tone_task = self._client._spawn(_run(), name=f"tone-{self.id[:8]}")

    def _stop_tone(self) -> None:
        task, self._tone_task = self._tone_task, None
        if task is not None:
            task.cancel()

    def _start_stats(self) -> None:
        if self._stats_task is None or self._stats_task.done():
            self._stats_task = self._client._spawn(self._stats_loop(), name=f"stats-{self.id[:8]}")

    async def _stats_loop(self) -> None:
        while not self.state.is_terminal:
            await asyncio.sleep(1.0)
            peer = self.peer
            if peer is None or self.state.is_terminal:
                continue
            stats = await peer.stats()
            self.stats = stats
            self._client._emit("call.stats", dataclasses.asdict(stats), self.id)

    def _start_closing_media(self) -> asyncio.Task[None]:
        """Close the peer, source and sink once (a task the client waits for in close(), never cancels)."""
        if self._media_closing is None:
            self._media_closing = self._client._spawn(self._finish_media(), name=f"close-{self.id[:8]}",
                                                      finish=True)
        return self._media_closing

    async def _close_media(self) -> None:
        await asyncio.shield(self._start_closing_media())

    async def _finish_media(self) -> None:
        self._stop_tone()
        if self._stats_task is not None:
            self._stats_task.cancel()
        try:
            if self.peer is not None:
                await self.peer.close()
        finally:
            # Sinks first (the recorder finishes its file without suspending), even when cancelled.
            for item in reversed(self._own_media):
                with contextlib.suppress(Exception):
                    await item.stop()

    def _report_dtmf(self, digit: str, source: str) -> None:
        now = time.monotonic()
        self._dtmf_recent = [e for e in self._dtmf_recent if now - e[1] <= DTMF_DEDUP_WINDOW]
        for i, (d, _t, src) in enumerate(self._dtmf_recent):
            if d == digit and src != source:
                del self._dtmf_recent[i]  # the other path already reported this press
                return
        self._dtmf_recent.append((digit, now, source))
        self.dtmf_received += digit
        self._client._emit("call.dtmf", {"digits": digit, "source": source}, self.id)

    # -- session events (called by the client's reader; never await) ------------------------------
    def _on_state(self, old: CallState, new: CallState) -> None:
        if new in (CallState.ACTIVE, CallState.HELD) and self.answered_at is None:
            self.answered_at = time.time()
        if new not in (CallState.RINGING,) and old in (CallState.RINGING, CallState.TRYING, CallState.REQUESTING):
            self._stop_tone()
        if new.is_terminal and self._ended_at is None:
            self._ended_at = time.time()
        if new.is_terminal and self._hangup is None:
            self._hangup = self._leg.hangup
        parked_changed = self._update_parked()
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        self._client._emit("call.state", {"old": old.value, "new": new.value}, self.id)
        if parked_changed:
            self._client._emit("call.parked", {"parked": self.parked, "since": self.parked_since,
                                               "call_control_id": self.telnyx_call_control_id}, self.id)
        named = {CallState.RINGING: "call.ringing", CallState.EARLY: "call.early", CallState.ACTIVE: "call.active"}
        if new in named:
            self._client._emit(named[new], {}, self.id)
        if new == CallState.RINGING and self.direction == "outbound" and self._client._audio.config.ringback \
                and self._client.ringback:
            self._play_tone(ringback_tone())
        if new == CallState.RINGING and self.direction == "inbound" and self._client._audio.config.ringtone \
                and self._client.ringtone:
            self._play_tone(ringtone_tone())
        if new in (CallState.ACTIVE, CallState.HELD, CallState.EARLY):
            self._stop_tone()
            self._start_stats()
        if new in (CallState.ACTIVE, CallState.HELD):
            self._apply_send_state()
        if new.is_terminal:
            self._start_closing_media()

    def _on_hangup(self, hang: ev.CallHangup) -> None:
        self._hangup = hang
        self._client._emit("call.hangup", {
            "cause": hang.cause, "cause_code": hang.cause_code, "sip_code": hang.sip_code,
            "sip_reason": hang.sip_reason, "remote": hang.remote, "reason": hang.reason}, self.id)

    def _on_hold(self, held: bool) -> None:
        self._apply_send_state()
        self._client._emit("call.held", {"held": held}, self.id)
        if self._hold_waiter is not None and not self._hold_waiter.done():
            self._hold_waiter.set_result(held)

    def _on_hold_failed(self, message: str) -> None:
        if self._hold_waiter is not None and not self._hold_waiter.done():
            self._hold_waiter.set_exception(CallError(f"hold failed: {message}"))

    async def _apply_answer(self, sdp: str) -> None:
        """Remote answer or early SDP (task): apply it to our offer."""
        if self.peer is None:
            return
        try:
            await self.peer.set_answer(sdp)
        except MediaError as exc:
            logger.warning("call %s: cannot apply the remote SDP: %s", self.id, exc)
            if not self.state.is_terminal:
                self._client._session.hangup(self.id, "INCOMPATIBLE_DESTINATION", reason=str(exc))
                self._client._pump()

    async def _reattach(self, offer: ev.AttachOffer) -> None:
        """Answer the server's attach with a NEW peer; id, hold intent, mute and devices stay."""
        try:
            peer = await self._new_peer()
            sdp = await peer.accept_offer(offer.invite.sdp)
        except MediaError as exc:
            logger.warning("call %s: reattach failed: %s", self.id, exc)
            if not self.state.is_terminal:
                self._client._session.hangup(self.id, reason=f"reattach failed: {exc}")
                self._client._pump()
            return
        if self.state == CallState.RECOVERING:
            self._client._session.attach_answer(self.id, sdp)
            self._client._pump()

    def _snapshot(self) -> dict[str, Any]:
        """Plain data for events and front-ends."""
        return {"id": self.id, "direction": self.direction, "state": self.state.value,
                "remote_name": self.remote_name, "remote_number": self.remote_number,
                "destination": self.destination, "muted": self.muted, "held": self.held}
