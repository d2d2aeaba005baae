"""The application service: the one writer of application state, and its policies.

:class:`Phone` owns a :class:`~softphone.client.client.Client`, subscribes to its typed events
(:mod:`softphone.client.events`) on the event loop and is the only code that writes the
:class:`~softphone.app.snapshot.Snapshot`: each event is applied by ``match`` on its class. It
publishes the snapshot (level-triggered, for panels) and a
:class:`~softphone.app.snapshot.PhoneEvent` per event (edge-triggered, for logs, ``--json``
and ``wait``; string names exist only there). A ticker refreshes call timers and levels five
times a second and emits one ``call.stats`` event per live call per second. Finished calls go
to the :class:`~softphone.app.history.CallHistory`.

Policy lives here, not in the client:

- local tones: ringback while an outbound call rings (profile ``ringback``), a ringtone while
  an inbound call rings (``ringtone``, from its ``call.incoming``; not while another call is up);
  they stop on any other state;
- a call whose media fails (the remote SDP cannot be applied, a reattach fails) is hung up;
- DTMF received twice for one key press (``telnyx_rtc.info`` and in-band tones) is reported
  once: a digit from one path suppresses the same digit from the other path for
  :data:`DTMF_DEDUP_WINDOW` seconds, one suppression per report (so "55" is two fives);
- a second call: dialling or answering one puts the active call on hold first (profile
  ``auto_hold``, default true), as desk phones do.

Front-ends call these methods through :mod:`softphone.app.commands`. Nothing here prints or
imports rich, prompt-toolkit or typer; the client (and with it aiortc) is imported only when a
Phone logs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import replace as dc_replace
from typing import TYPE_CHECKING, Any

from softphone.app.history import CallHistory, record_for
from softphone.app.snapshot import CallSnapshot, PhoneEvent, Snapshot, call_snapshot, level_from_db, replace
from softphone.client import events as ce
from softphone.client.events import SocketState, call_id_of
from softphone.errors import CommandError, MediaError, SoftphoneError
from softphone.protocol.states import CallState

if TYPE_CHECKING:
    from softphone.app.hearing import Hearing
    from softphone.client.call import Call
    from softphone.client.client import Client
    from softphone.config import Profile
    from softphone.media.impair import ImpairSpec
    from softphone.media.sources import AudioSource

__all__ = ["DTMF_DEDUP_WINDOW", "ClientFactory", "Phone", "level_from_db"]

logger = logging.getLogger("softphone.app.phone")

TICK = 0.2  #: panel refresh period (s)
STATS_EVERY = 5  #: ticks per call.stats event (one a second)
KEEP_ENDED = 3  #: finished calls kept in snapshots
DTMF_DEDUP_WINDOW = 1.0
"""Seconds within which the same digit from the other path is a duplicate."""

#: Builds the client for a profile (credentials already chosen); default ``Client.from_profile``.
ClientFactory = Callable[["Profile"], "Client"]


class _DtmfDedup:
    """One key press, two paths (info and inband): report it once (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._recent: list[tuple[str, float, str]] = []

    def first(self, digit: str, source: str) -> bool:
        """True when this report is new; False when the other path already reported this press."""
        now = self._clock()
        self._recent = [e for e in self._recent if now - e[1] <= DTMF_DEDUP_WINDOW]
        for i, (d, _t, src) in enumerate(self._recent):
            if d == digit and src != source:
                del self._recent[i]  # the other path already reported this press
                return False
        self._recent.append((digit, now, source))
        return True


class Phone:
    """Application state and the verbs that change it.

    ``client_factory(profile) -> Client`` is the seam for tests (a client on an in-memory
    duplex); by default :meth:`Client.from_profile <softphone.client.client.Client.from_profile>`.
    """

    def __init__(
        self,
        profile: Profile,
        *,
        history: CallHistory | None = None,
        clock: Callable[[], float] = time.time,
        caller_name: str | None = None,
        caller_number: str | None = None,
        client_factory: ClientFactory | None = None,
        dtmf_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.profile = profile
        self.history = history
        self.caller_name = caller_name
        self.caller_number = caller_number
        self._clock = clock
        self._dtmf_clock = dtmf_clock
        self._client_factory = client_factory
        self.client: Client | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._calls: dict[str, Call] = {}
        self._dtmf: dict[str, _DtmfDedup] = {}
        self._snap = Snapshot(ts=clock(), impair=profile.impair)
        self._snap_listeners: list[Callable[[Snapshot], None]] = []
        self._event_listeners: list[Callable[[PhoneEvent], None]] = []
        self._changed = asyncio.Event()
        self._recorded: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ticks = 0
        #: Listen to every call dialled or answered: "off", "levels" (tone/silence/audio) or "speech"
        #: (also recognition, one pocketsphinx child per call). Command files turn it on when they
        #: use a hearing command.
        self.listen = "off"
        self._hearings: dict[str, Hearing] = {}
        #: ``${NAME}`` values for command lines (the shell's ``--var``); the environment fills the rest.
        self.variables: dict[str, str] = {}
        self._deaf: set[str] = set()  # ended calls whose hearing was stopped
        self._names: dict[str, str] = {}  # call name (dial ... as NAME) -> call id
        self._timeline: dict[str, dict[str, float]] = {}  # call id -> first time of each state/milestone
        self._expects: dict[str, list[dict[str, Any]]] = {}  # call id -> expectations met/failed

    # --- subscriptions -----------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The latest snapshot."""
        return self._snap

    def on_snapshot(self, listener: Callable[[Snapshot], None]) -> Callable[[], None]:
        """Call ``listener`` with every new snapshot; returns an unsubscribe function."""
        self._snap_listeners.append(listener)
        return lambda: self._snap_listeners.remove(listener) if listener in self._snap_listeners else None

    def on_event(self, listener: Callable[[PhoneEvent], None]) -> Callable[[], None]:
        """Call ``listener`` with every event; returns an unsubscribe function."""
        self._event_listeners.append(listener)
        return lambda: self._event_listeners.remove(listener) if listener in self._event_listeners else None

    def emit(self, type_: str, call_id: str | None = None, **data: Any) -> None:
        """Publish an event of the phone's own (``notice``, ``summary``, ``script.line`` ...)."""
        self._publish_event(PhoneEvent(type_, self._clock(), call_id, data))

    def notice(self, text: str) -> None:
        self._set(notice=text)

    def _publish_event(self, event: PhoneEvent) -> None:
        for listener in list(self._event_listeners):
            try:
                listener(event)
            except Exception:
                logger.exception("event listener failed")

    def _set(self, **changes: Any) -> None:
        self._snap = replace(self._snap, ts=self._clock(), **changes)
        for listener in list(self._snap_listeners):
            try:
                listener(self._snap)
            except Exception:
                logger.exception("snapshot listener failed")
        self._changed.set()

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Start the ticker (idempotent)."""
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick_loop(), name="phone-ticker")

    async def close(self) -> None:
        """Hang up, log out, stop the ticker."""
        await self.logout()
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for hearing in list(self._hearings.values()):  # recogniser children a cancelled stop left behind
            await hearing.abort()

    async def __aenter__(self) -> Phone:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self._ticks += 1
            self._refresh_calls()
            if self._ticks % STATS_EVERY == 0:
                for call in self._snap.calls:
                    if call.state in (CallState.ACTIVE, CallState.HELD):
                        data = _stats_data(call, self._snap.ts)
                        self._publish_event(PhoneEvent("call.stats", self._snap.ts, call.id, data))

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- client -----------------------------------------------------------------------

    def _make_client(self, user: str | None, password: str | None, token: str | None) -> Client:
        from softphone.log import register_secret

        profile = self.profile
        if token is None and user is None:
            profile.require_credentials()  # a ConfigError that says what to do next, before any socket
        if token is not None:
            register_secret(token)
            profile = dc_replace(profile, auth="token", token=token, token_cmd="", username="", password="")
        elif user is not None:
            register_secret(password or "")
            profile = dc_replace(profile, auth="sip", username=user, password=password or "", password_cmd="",
                                 token="")
        if self._client_factory is not None:
            return self._client_factory(profile)
        from softphone.client.client import Client

        return Client.from_profile(profile)

    async def login(self, user: str | None = None, password: str | None = None, token: str | None = None) -> None:
        """Connect and log in (profile credentials unless given); raises LoginFailed / TransportError."""
        await self.start()
        if self.client is not None:
            await self.logout()
        client = self._make_client(user, password, token)
        self.client = client
        self._unsubscribe = client.subscribe(self._on_client_event)
        self._set(socket=replace(self._snap.socket, url=client.url))
        try:
            await client.connect()
        finally:
            self._sync_client(client)

    async def logout(self) -> None:
        """Hang up every call and close the connection."""
        client, self.client = self.client, None
        if client is None:
            return
        try:
            await client.close()
        finally:
            for call in list(self._calls.values()):
                self._sync_call(call)
            self._sync_client(client)
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None

    def _require_client(self) -> Client:
        if self.client is None:
            raise CommandError("not logged in (use 'login')")
        return self.client

    def _sync_client(self, client: Client) -> None:
        self._set(client=replace(self._snap.client, state=client.state, user=client.user,
                                 gateway_state=client.gateway_state, dc=client.dc, region=client.region))

    # --- the one writer: typed events in, snapshot and PhoneEvents out ----------------------------

    def _on_client_event(self, event: ce.Event) -> None:
        snap = self._snap
        sock = snap.socket
        match event:
            case ce.SocketConnecting():
                self._set(socket=replace(sock, state=SocketState.CONNECTING, retry_at=None))
            case ce.SocketOpen() | ce.SocketClosed():
                state = SocketState.OPEN if isinstance(event, ce.SocketOpen) else SocketState.CLOSED
                self._set(socket=replace(sock, state=state, retry_at=None, attempt=0))
            case ce.SocketReconnecting(attempt=attempt, delay=delay):
                self._set(socket=replace(sock, state=SocketState.RECONNECTING, attempt=attempt or sock.attempt + 1,
                                         retry_at=event.ts + delay))
            case ce.SocketError():
                pass
            case ce.LoginRefused(message=message) | ce.ClientError(message=message):
                from softphone.log import redact

                self._set(client=replace(snap.client, error=redact(message)))
                self._sync_current_client()
            case ce.ClientStateChanged() | ce.LoggedIn() | ce.GatewayStateChanged() | ce.Ready() | ce.Punted():
                self._sync_current_client()
            case ce.TokenExpiring(expires_in=left, refresh=refresh):
                self._set(notice=f"login token expires in {left:.0f} s"
                                 + ("; minting a new one" if refresh else "; log in again with a fresh one"))
            case ce.TokenRefreshed():
                self._set(notice="logged in again with a fresh token")
            case ce.ClientWarning(code=code):  # its cause (token_expiring, login_failed) set the notice/error
                self._set(warnings=(*snap.warnings, code))
            case ce.CallWarning(call_id=call_id, code=code) | ce.CallWarningCleared(call_id=call_id, code=code):
                old = snap.call(call_id)
                if (call := self._call(call_id)) is not None and old is not None:
                    active = tuple(c for c in old.warnings if c != code)
                    if isinstance(event, ce.CallWarning):
                        self._sync_call(call, warnings=(*active, code), warnings_seen=(*old.warnings_seen, code))
                    else:
                        self._sync_call(call, warnings=active)
            case ce.CallStats(call_id=call_id):
                if (call := self._call(call_id)) is not None:
                    self._sync_call(call)
                return  # the ticker emits call.stats once a second per call
            case ce.CallDtmf(call_id=call_id, digits=digit, source=source):
                dedup = self._dtmf.setdefault(call_id, _DtmfDedup(self._dtmf_clock))
                if not dedup.first(digit, source):
                    return  # the same key press, already reported by the other path
                if (call := self._call(call_id)) is not None:
                    old = self._snap.call(call_id)
                    self._sync_call(call, dtmf_received=(old.dtmf_received if old else "") + digit)
            case ce.CallMediaFailed(call_id=call_id, stage=stage, message=message):
                self._media_failed(call_id, stage, message)
                return  # the hang-up that follows is the event users see
            case ce.CallStateChanged(call_id=call_id, new=new):
                if (call := self._call(call_id)) is not None:
                    self._tones(call, new)
                    self._sync_call(call)
            case ce.CallIncoming(call_id=call_id) | ce.CallCreated(call_id=call_id, direction="inbound"):
                if (call := self._call(call_id)) is not None:
                    if isinstance(event, ce.CallIncoming):
                        self._tones(call, call.state)  # an inbound call is ringing when announced
                    self._sync_call(call)
                    self._set(current=self._snap.current or call.id)
                    ringing = self._snap.call(call.id)
                    if isinstance(event, ce.CallIncoming) and ringing is not None:
                        self._set(notice=f"incoming call from {ringing.remote or '?'}: a answer, r reject")
            case (ce.CallCreated(call_id=call_id) | ce.CallRinging(call_id=call_id) | ce.CallEarly(call_id=call_id)
                  | ce.CallActive(call_id=call_id) | ce.CallParked(call_id=call_id) | ce.CallHangup(call_id=call_id)
                  | ce.CallHeld(call_id=call_id) | ce.CallDeviceWarning(call_id=call_id)):
                if (call := self._call(call_id)) is not None:
                    self._sync_call(call)
        self._publish_event(PhoneEvent(event.name, event.ts, call_id_of(event), event.data()))

    def _sync_current_client(self) -> None:
        if self.client is not None:
            self._sync_client(self.client)

    def _call(self, call_id: str) -> Call | None:
        call = self._calls.get(call_id)
        if call is None and self.client is not None:
            call = self.client.calls.get(call_id)
            if call is not None:
                self._calls[call_id] = call
        return call

    # --- policies -------------------------------------------------------------------------

    def _tones(self, call: Call, state: CallState) -> None:
        """Ringback / ringtone exactly while the call rings (profile ``ringback`` / ``ringtone``)."""
        if state == CallState.RINGING:
            from softphone.media.tones import ringback_tone, ringtone

            if call.direction == "outbound" and self.profile.ringback:
                call.play_tone(ringback_tone())
            elif call.direction == "inbound" and self.profile.ringtone and not self._others_live(call.id):
                call.play_tone(ringtone())  # not over a call in progress: the notice says it rings
        elif call.playing_tone:
            call.stop_tone()

    def _others_live(self, call_id: str) -> bool:
        return any(c.id != call_id and not c.ended for c in self._snap.calls)

    def _media_failed(self, call_id: str, stage: str, message: str) -> None:
        """A call without working media is hung up (INCOMPATIBLE_DESTINATION; a failed reattach: the default)."""
        call = self._call(call_id)
        if call is None or call.state.is_terminal:
            return
        logger.warning("call %s: media failed (%s): %s; hanging up", call_id[:8], stage, message)
        if stage == "reattach":
            cause, reason = None, f"reattach failed: {message}"
        else:
            cause, reason = "INCOMPATIBLE_DESTINATION", "media failed" if stage == "answer" else message
        self._spawn(call.hangup(cause, reason=reason), f"media-failed-{call_id[:8]}")

    async def _hold_others(self, keep: str | None = None) -> None:
        """Second-call policy (``auto_hold``): put every other active call on hold first."""
        if not self.profile.auto_hold:
            return
        for snap in self._snap.calls:
            if snap.id == keep or snap.state != CallState.ACTIVE:
                continue
            call = self._calls.get(snap.id)
            if call is None:
                continue
            try:
                await call.hold()
            except SoftphoneError as exc:
                logger.warning("call %s: could not hold it for the new call: %s", snap.id[:8], exc)
            self._sync_call(call)

    # --- snapshots of calls ----------------------------------------------------------------

    def _sync_call(self, call: Call, **overrides: Any) -> CallSnapshot:
        old = self._snap.call(call.id)
        new = call_snapshot(call, old, self._clock(), self.profile.rate_per_minute)
        if overrides:
            new = replace(new, **overrides)
        calls = [c for c in self._snap.calls if c.id != call.id]
        calls.append(new) if old is None else calls.insert(self._snap.calls.index(old), new)
        ended = [c for c in calls if c.ended]
        for stale in ended[:-KEEP_ENDED]:
            calls.remove(stale)
            self._calls.pop(stale.id, None)
            self._dtmf.pop(stale.id, None)
        current = self._snap.current
        notice = self._snap.notice
        self._mark(new.id, new.state.value, self._clock())
        if new.ended:
            if (hearing := self._hearings.get(new.id)) is not None and new.id not in self._deaf:
                self._deaf.add(new.id)
                self._spawn(hearing.stop(), f"hearing-stop-{new.id[:8]}")
            if self.history is not None and new.id not in self._recorded:
                self._recorded.add(new.id)
                try:
                    self.history.append(record_for(new, self._clock()))
                except OSError as exc:
                    logger.warning("cannot write call history: %s", exc)
            if current == new.id:
                live = [c for c in calls if not c.ended]
                current = live[-1].id if live else new.id
            if notice.startswith("incoming call") and not any(c.state == CallState.RINGING for c in calls):
                notice = ""
        elif new.state != CallState.RINGING and notice.startswith("incoming call") and new.direction == "inbound":
            notice = ""
        self._set(calls=tuple(calls), current=current, notice=notice)
        return new

    def _refresh_calls(self) -> None:
        for call in list(self._calls.values()):
            snap = self._snap.call(call.id)
            if snap is not None and not snap.ended:
                self._sync_call(call)
        self._set()

    # --- verbs -------------------------------------------------------------------------

    def _resolve(self, call_id: str | None, *, live: bool = True) -> Call:
        snap = self._snap
        if call_id:
            call_id = self._names.get(call_id, call_id)
            matches = [c for c in snap.calls if c.id.startswith(call_id)]
            if len(matches) != 1:
                raise CommandError(f"no call {call_id!r}" if not matches else f"call id {call_id!r} is ambiguous")
            target: CallSnapshot | None = matches[0]
        else:
            target = snap.call()
            if target is None or (live and target.ended):
                others = [c for c in snap.calls if not c.ended]
                target = others[-1] if others else None
        if target is None or (live and target.ended):
            raise CommandError("no call")
        call = self._calls.get(target.id)
        if call is None:
            raise CommandError("no call")
        return call

    async def dial(self, destination: str, headers: Sequence[tuple[str, str]] = (), client_state: str | None = None,
                   ) -> str:
        """Place a call (the active one goes on hold first, with ``auto_hold``); returns its id."""
        client = self._require_client()
        kwargs: dict[str, Any] = {}
        if self.caller_name:
            kwargs["caller_name"] = self.caller_name
        if self.caller_number:
            kwargs["caller_number"] = self.caller_number
        if headers:
            kwargs["custom_headers"] = list(headers)
        if client_state:
            kwargs["client_state"] = client_state
        await self._hold_others()
        dialled_at = self._clock()
        call = await client.new_call(destination, **kwargs)
        self._calls[call.id] = call
        self._mark(call.id, "dial", dialled_at)
        self._sync_call(call)
        self._set(current=call.id)
        if self.listen != "off":
            await self._attach_hearing(call, speech=self.listen == "speech")
        return call.id

    async def answer(self, call_id: str | None = None) -> None:
        """Answer the ringing call (the active one goes on hold first, with ``auto_hold``)."""
        call = self._ringing(call_id)
        call.stop_tone()
        await self._hold_others(keep=call.id)
        try:
            await call.answer()
        except MediaError:
            await call.hangup("INCOMPATIBLE_DESTINATION", reason="media failed")  # at once, not from the event
            raise
        self._set(current=call.id, notice="")
        self._sync_call(call)
        if self.listen != "off":
            await self._attach_hearing(call, speech=self.listen == "speech")

    def _ringing(self, call_id: str | None) -> Call:
        if call_id is None:
            ringing = self._snap.ringing_inbound
            if ringing is None:
                raise CommandError("no inbound call is ringing")
            call_id = ringing.id
        return self._resolve(call_id)

    async def reject(self, call_id: str | None = None) -> None:
        call = self._ringing(call_id)
        self._sync_call(call, hangup_by="local")
        await call.reject()
        self._sync_call(call)

    async def hangup(self, call_id: str | None = None) -> None:
        call = self._resolve(call_id)
        self._sync_call(call, hangup_by="local")
        await call.hangup()
        self._sync_call(call)

    async def hangup_all(self) -> None:
        for snap in self._snap.calls:
            if not snap.ended:
                with contextlib.suppress(Exception):
                    await self.hangup(snap.id)

    async def hold(self, call_id: str | None = None) -> None:
        call = self._resolve(call_id)
        await call.hold()
        self._sync_call(call)

    async def unhold(self, call_id: str | None = None) -> None:
        call = self._resolve(call_id)
        await call.unhold()
        self._sync_call(call)

    def set_impairment(self, spec: ImpairSpec | None) -> None:
        """Impair the calls' media from now on, live calls and later logins too; None lifts it."""
        from softphone.media.impair import describe

        self.profile = dc_replace(self.profile, impair=describe(spec) if spec is not None else "")
        if self.client is not None:
            self.client.set_impairment(spec)
        self._set(notice=f"impairment: {describe(spec)}", impair=self.profile.impair)

    def mute(self, call_id: str | None = None) -> None:
        call = self._resolve(call_id)
        call.mute()
        self._sync_call(call)

    def unmute(self, call_id: str | None = None) -> None:
        call = self._resolve(call_id)
        call.unmute()
        self._sync_call(call)

    def send_from(self, source: AudioSource, call_id: str | None = None) -> None:
        """Send ``source`` instead of the microphone (or test tone) on a live call, from the next frame on."""
        self._resolve(call_id).set_input(source)

    async def dtmf(self, digits: str, call_id: str | None = None, delay: float | None = None) -> None:
        call = self._resolve(call_id)
        if delay is None:
            await call.dtmf(digits)
        else:
            await call.dtmf(digits, delay=delay)
        old = self._snap.call(call.id)
        self._sync_call(call, dtmf_sent=(old.dtmf_sent if old else "") + digits)
        self.emit("call.dtmf_sent", call.id, digits=digits)

    async def devices(self) -> list[dict[str, object]]:
        """Audio devices as dicts (index, kind, name, default)."""
        from softphone.media.devices import list_devices

        out: list[dict[str, object]] = []
        for d in await asyncio.to_thread(list_devices):
            kind = "/".join(k for k, on in (("input", d.is_input), ("output", d.is_output)) if on)
            out.append({"index": d.index, "kind": kind, "name": d.name, "host_api": d.host_api,
                        "default": d.is_default_input or d.is_default_output})
        return out

    def use_input(self, device: str) -> None:
        self._require_client().set_audio_input(device)

    def use_output(self, device: str) -> None:
        self._require_client().set_audio_output(device)

    def history_records(self) -> list[dict[str, Any]]:
        return self.history.records() if self.history is not None else []

    # --- waiting -----------------------------------------------------------------------

    async def wait_until(self, predicate: Callable[[Snapshot], bool | None], timeout: float | None) -> bool:
        """Wait until ``predicate(snapshot)`` is true (True) or false-y None means keep waiting; False on timeout.

        A predicate may return ``None`` to say "keep waiting" and ``False`` to give up at once.
        """
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            verdict = predicate(self._snap)
            if verdict is not None:
                return verdict
            self._changed.clear()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return predicate(self._snap) is True

    async def wait_for(self, what: str, state: str, timeout: float | None) -> bool:
        """``wait socket|client|call STATE``: True when reached in time."""
        state = state.lower()
        if what == "socket":
            return await self.wait_until(lambda s: True if s.socket.state == state else None, timeout)
        if what == "client":
            return await self.wait_until(lambda s: True if s.client.state == state else None, timeout)
        if what != "call":
            raise CommandError(f"wait: unknown target {what!r}")
        wanted = {state} | ({"hangup", "destroyed"} if state in ("hangup", "ended", "destroyed") else set())

        def check(s: Snapshot) -> bool | None:
            call = s.call() or (s.calls[-1] if s.calls else None)
            if call is None:
                return None
            if call.state in wanted:
                return True
            return False if call.ended else None

        return await self.wait_until(check, timeout)

    async def expect_dtmf(self, digits: str, timeout: float, call_id: str | None = None) -> str | None:
        """None when the current call (or ``call_id``, a name or id prefix) received ``digits`` in time,
        else what it did receive."""
        def check(s: Snapshot) -> bool | None:
            call = s.call() if call_id is None else self.call_named(call_id)
            if call is None:
                return None
            return True if digits.upper() in call.dtmf_received.upper() else (False if call.ended else None)

        if await self.wait_until(check, timeout):
            return None
        call = self._snap.call() if call_id is None else self.call_named(call_id)
        return call.dtmf_received if call else ""


    # --- names, hearing, timings (call-flow scripts) --------------------------------------

    def name_call(self, name: str, call_id: str | None = None) -> str:
        """Give a call a name (``dial ... as NAME``, ``answer as NAME``) that commands take for a call."""
        call = self._resolve(call_id, live=False)
        self._names[name] = call.id
        return call.id

    def call_named(self, name: str | None) -> CallSnapshot | None:
        """The snapshot of the call a name, id prefix or None (the current call) stands for."""
        if name is None:
            return self._snap.call() or (self._snap.calls[-1] if self._snap.calls else None)
        name = self._names.get(name, name)
        matches = [c for c in self._snap.calls if c.id.startswith(name)]
        if len(matches) == 1:
            return matches[0]
        return None

    def call_name(self, call_id: str) -> str:
        """The name given to a call, or "" ."""
        return next((n for n, cid in self._names.items() if cid == call_id), "")

    async def _attach_hearing(self, call: Call, *, speech: bool) -> Hearing:
        from softphone.app.hearing import Hearing
        from softphone.media.sinks import TeeSink

        hearing = Hearing(speech=speech)
        self._hearings[call.id] = hearing
        call.set_output(TeeSink([call.output, hearing]))
        await hearing.start()
        return hearing

    async def hearing(self, call_id: str | None = None, *, speech: bool = True) -> Hearing:
        """The listener of a call (attached now when the call has none: earlier audio is not heard)."""
        call = self._resolve(call_id, live=False)
        hearing = self._hearings.get(call.id)
        if hearing is None:
            if call.state.is_terminal:
                raise CommandError("the call has ended and was not listened to")
            hearing = await self._attach_hearing(call, speech=speech)
        elif speech and not hearing.speech:
            await hearing.enable_speech()  # from now on: what it heard before was not recognised
        return hearing

    async def play(self, source: AudioSource, call_id: str | None = None, *, timeout: float = 600.0) -> float:
        """Send ``source`` into a live call until it finishes, then go back to what was sent before
        (the profile's source). Returns the seconds it played."""
        from softphone.media.sources import FiniteSource

        call = self._resolve(call_id)
        before = call.input
        loop = asyncio.get_running_loop()
        started = loop.time()
        call.set_input(source)
        try:
            # A source that never says it has finished (a device, silence) plays no longer than this line.
            while isinstance(source, FiniteSource) and not source.finished and loop.time() - started < timeout:
                if call.state.is_terminal:
                    break
                await asyncio.sleep(0.02)
        finally:
            if not call.state.is_terminal and call.input is source:
                call.set_input(before)
        return loop.time() - started

    def _mark(self, call_id: str, what: str, at: float) -> None:
        self._timeline.setdefault(call_id, {}).setdefault(what, at)

    def record_expect(self, call_id: str | None, what: str, ok: bool, seconds: float,
                      latency: float | None = None) -> None:
        """Note one expectation of a call for its timings (``expect speech`` ..., how long it waited)."""
        if call_id is None:
            return
        entry: dict[str, Any] = {"expect": what, "ok": ok, "waited_s": round(seconds, 3)}
        if latency is not None:
            entry["latency_s"] = round(latency, 3)
        self._expects.setdefault(call_id, []).append(entry)

    def timings(self, call_id: str) -> dict[str, Any]:
        """Per-call timings (seconds): dial to ringing, answer, first audio; expects; prompt durations;
        and the quality figures the call ended with."""
        marks = self._timeline.get(call_id, {})
        start = marks.get("dial", marks.get(CallState.RINGING.value, marks.get(CallState.NEW.value)))
        out: dict[str, Any] = {}
        name = self.call_name(call_id)
        if name:
            out["name"] = name
        if start is not None:
            for key, state in (("to_ringing_s", CallState.RINGING), ("to_early_s", CallState.EARLY),
                               ("to_answer_s", CallState.ACTIVE)):
                if state.value in marks:
                    out[key] = round(marks[state.value] - start, 3)
        hearing = self._hearings.get(call_id)
        if hearing is not None:
            if hearing.stats.first_audio_wall is not None and start is not None:
                out["to_first_audio_s"] = round(hearing.stats.first_audio_wall - start, 3)
            out["prompts_s"] = hearing.prompt_durations()
        if call_id in self._expects:
            out["expects"] = list(self._expects[call_id])
        snap = self._snap.call(call_id)
        if snap is not None:
            out["quality"] = {"rtt_ms": snap.rtt_ms, "jitter_ms": snap.jitter_ms, "loss_pct": snap.loss_pct,
                              "mos": snap.mos}
        return out


def _stats_data(call: CallSnapshot, now: float) -> dict[str, Any]:
    return {
        "state": call.state.value,
        "duration": round(call.duration(now), 3),
        "codec": call.codec,
        "rtt_ms": call.rtt_ms,
        "jitter_ms": call.jitter_ms,
        "loss_pct": call.loss_pct,
        "mos": call.mos,
        "input_level": round(call.input_level, 3),
        "output_level": round(call.output_level, 3),
        "muted": call.muted,
        "held": call.held,
        "cost": call.cost(now),
    }
