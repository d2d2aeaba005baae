"""The application service: the one writer of application state.

:class:`Phone` owns a :class:`~softphone.client.client.Client`, listens to every client event
on the event loop, keeps a :class:`~softphone.app.snapshot.Snapshot` up to date and
publishes it (level-triggered, for panels) plus :class:`~softphone.app.snapshot.PhoneEvent`
(edge-triggered, for logs, ``--json`` and ``wait``). A ticker refreshes call timers and
levels five times a second and emits one ``call.stats`` event per live call per second.
Finished calls go to the :class:`~softphone.app.history.CallHistory`.

Policy lives here; front-ends call these methods through :mod:`softphone.app.commands`.
Nothing here prints or imports rich, prompt-toolkit or typer; the client (and with it
aiortc) is imported only when a Phone logs in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from softphone.app.history import CallHistory, record_for
from softphone.app.snapshot import CallSnapshot, PhoneEvent, Snapshot, replace
from softphone.errors import CommandError

if TYPE_CHECKING:
    from softphone.client.call import Call
    from softphone.client.client import Client, ClientEvent
    from softphone.config import Profile
    from softphone.media.sources import AudioSource

__all__ = ["Phone", "level_from_db"]

logger = logging.getLogger("softphone.app.phone")

TICK = 0.2  #: panel refresh period (s)
STATS_EVERY = 5  #: ticks per call.stats event (one a second)
KEEP_ENDED = 3  #: finished calls kept in snapshots
_CALL_TERMINAL = ("hangup", "destroyed")


def level_from_db(db: float | None) -> float:
    """Map dBFS (-60 .. 0) to a meter level 0 .. 1."""
    if db is None:
        return 0.0
    return min(1.0, max(0.0, (db + 60.0) / 60.0))


def _str(value: object) -> str:
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _opt_float(value: object) -> float | None:
    if isinstance(value, int | float) and value == value:
        return float(value)
    return None


def _live_level(call: object, stats: object, name: str) -> float | None:
    """A level in dBFS read from the call's media peer now (its meters run per frame), else from the
    last once-a-second stats: the panel ticks five times a second and its meters should too."""
    peer = getattr(call, "peer", None)
    level = _opt_float(getattr(peer, name, None)) if peer is not None else None
    return level if level is not None else _opt_float(getattr(stats, name, None))


def _opt_int(value: object) -> int | None:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


class Phone:
    """Application state and the verbs that change it."""

    def __init__(
        self,
        profile: Profile,
        *,
        history: CallHistory | None = None,
        clock: Callable[[], float] = time.time,
        caller_name: str | None = None,
        caller_number: str | None = None,
    ) -> None:
        self.profile = profile
        self.history = history
        self.caller_name = caller_name
        self.caller_number = caller_number
        self._clock = clock
        self.client: Client | None = None
        self._calls: dict[str, Call] = {}
        self._snap = Snapshot(ts=clock())
        self._snap_listeners: list[Callable[[Snapshot], None]] = []
        self._event_listeners: list[Callable[[PhoneEvent], None]] = []
        self._changed = asyncio.Event()
        self._recorded: set[str] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._ticks = 0

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
                    if call.state in ("active", "held"):
                        data = _stats_data(call, self._snap.ts)
                        self._publish_event(PhoneEvent("call.stats", self._snap.ts, call.id, data))

    # --- client -----------------------------------------------------------------------

    def _make_client(self, user: str | None, password: str | None, token: str | None) -> Client:
        from dataclasses import replace as dc_replace

        from softphone.client.client import Client
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
        return Client.from_profile(profile)

    async def login(self, user: str | None = None, password: str | None = None, token: str | None = None) -> None:
        """Connect and log in (profile credentials unless given); raises LoginFailed / TransportError."""
        await self.start()
        if self.client is not None:
            await self.logout()
        client = self._make_client(user, password, token)
        self.client = client
        client.on("*", self._on_client_event)
        self._set(socket=replace(self._snap.socket, url=str(getattr(client, "url", ""))))
        try:
            await client.connect()
        except BaseException:
            self._sync_client()
            raise
        self._sync_client()

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
            client.off("*", None)

    def _require_client(self) -> Client:
        if self.client is None:
            raise CommandError("not logged in (use 'login')")
        return self.client

    def _sync_client(self, client: Client | None = None) -> None:
        c = client or self.client
        if c is None:
            return
        self._set(
            client=replace(
                self._snap.client,
                state=_str(c.state),
                user=_str(getattr(c, "user", "")),
                gateway_state=_str(getattr(c, "gateway_state", "")),
                dc=_str(getattr(c, "dc", "")),
                region=_str(getattr(c, "region", "")),
            )
        )

    def _on_client_event(self, event: ClientEvent) -> None:
        name, data = event.name, dict(event.data or {})
        snap = self._snap
        if name.startswith("socket."):
            sock = snap.socket
            kind = name.split(".", 1)[1]
            if kind == "reconnecting":
                delay = _opt_float(data.get("delay")) or 0.0
                sock = replace(sock, state="reconnecting", attempt=_opt_int(data.get("attempt")) or sock.attempt + 1,
                               retry_at=event.ts + delay)
            elif kind in ("connecting", "open", "closed"):
                sock = replace(sock, state=kind, retry_at=None, attempt=sock.attempt if kind == "connecting" else 0)
            self._set(socket=sock)
        elif name.startswith("client."):
            client = self.client
            if name in ("client.login_failed", "client.error"):
                from softphone.log import redact

                self._set(client=replace(snap.client, error=redact(str(data.get("message", "")))))
            if client is not None:
                self._sync_client(client)
        elif name.startswith("call.") and event.call_id:
            call = self._find_call_object(event.call_id)
            if call is not None:
                if name == "call.stats":
                    self._sync_call(call)
                    return  # the ticker emits call.stats once a second per call
                self._sync_call(call)
                if name == "call.incoming" or (name == "call.created" and data.get("direction") == "inbound"):
                    self._set(current=self._snap.current or call.id)
                    ringing = self._snap.call(call.id)
                    if name == "call.incoming" and ringing is not None:
                        self._set(notice=f"incoming call from {ringing.remote or '?'}: a answer, r reject")
        self._publish_event(PhoneEvent(name, event.ts, event.call_id, data))

    def _find_call_object(self, call_id: str) -> Call | None:
        call = self._calls.get(call_id)
        if call is None and self.client is not None:
            call = self.client.calls.get(call_id)
            if call is not None:
                self._calls[call_id] = call
        return call

    def _call_snapshot(self, call: Call, old: CallSnapshot | None) -> CallSnapshot:
        now = self._clock()
        state = _str(call.state)
        stats = getattr(call, "stats", None)
        rate = float(getattr(self.profile, "rate_per_minute", 0.002))
        headers = tuple((str(k), str(v)) for k, v in _headers(getattr(call, "custom_headers", None)))
        ended_at = _opt_float(getattr(call, "ended_at", None))
        if state in _CALL_TERMINAL and ended_at is None:
            ended_at = old.ended_at if old and old.ended_at else now
        codec = _str(getattr(call, "codec", "")) or (_str(getattr(stats, "codec", "")) if stats else "")
        return CallSnapshot(
            id=call.id,
            direction=_str(call.direction),
            remote_name=_str(getattr(call, "remote_name", "")),
            remote_number=_str(getattr(call, "remote_number", "")) or _str(getattr(call, "destination", "")),
            state=state,
            state_since=old.state_since if old and old.state == state else now,
            created_at=_opt_float(getattr(call, "created_at", None)) or (old.created_at if old else now),
            answered_at=_opt_float(getattr(call, "answered_at", None)),
            ended_at=ended_at,
            codec=codec,
            rtt_ms=_opt_float(getattr(stats, "rtt_ms", None)),
            jitter_ms=_opt_float(getattr(stats, "jitter_ms", None)),
            loss_pct=_opt_float(getattr(stats, "packet_loss_pct", None)),
            mos=_opt_float(getattr(stats, "mos", None)),
            input_level=level_from_db(_live_level(call, stats, "input_level_db")),
            output_level=level_from_db(_live_level(call, stats, "output_level_db")),
            muted=bool(getattr(call, "muted", False)),
            held=bool(getattr(call, "held", False)) or state == "held",
            rate_per_minute=rate,
            dtmf_received=_str(getattr(call, "dtmf_received", "")),
            dtmf_sent=old.dtmf_sent if old else "",
            parked=bool(getattr(call, "parked", False)),
            call_control_id=_str(getattr(call, "telnyx_call_control_id", "")),
            session_id=_str(getattr(call, "telnyx_session_id", "")),
            leg_id=_str(getattr(call, "telnyx_leg_id", "")),
            client_state=_str(getattr(call, "client_state", "")),
            custom_headers=headers,
            cause=_str(getattr(call, "cause", "")),
            cause_code=_opt_int(getattr(call, "cause_code", None)),
            sip_code=_opt_int(getattr(call, "sip_code", None)),
            sip_reason=_str(getattr(call, "sip_reason", "")),
            hangup_by=old.hangup_by if old else "",
        )

    def _sync_call(self, call: Call, **overrides: Any) -> CallSnapshot:
        old = self._snap.call(call.id)
        new = self._call_snapshot(call, old)
        if overrides:
            new = replace(new, **overrides)
        calls = [c for c in self._snap.calls if c.id != call.id]
        calls.append(new) if old is None else calls.insert(self._snap.calls.index(old), new)
        ended = [c for c in calls if c.ended]
        for stale in ended[:-KEEP_ENDED]:
            calls.remove(stale)
            self._calls.pop(stale.id, None)
        current = self._snap.current
        notice = self._snap.notice
        if new.ended:
            if self.history is not None and new.id not in self._recorded:
                self._recorded.add(new.id)
                try:
                    self.history.append(record_for(new, self._clock()))
                except OSError as exc:
                    logger.warning("cannot write call history: %s", exc)
            if current == new.id:
                live = [c for c in calls if not c.ended]
                current = live[-1].id if live else new.id
            if notice.startswith("incoming call") and not any(c.state == "ringing" for c in calls):
                notice = ""
        elif new.state != "ringing" and notice.startswith("incoming call") and new.direction == "inbound":
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
        """Place a call; returns its id."""
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
        call = await client.new_call(destination, **kwargs)
        self._calls[call.id] = call
        self._sync_call(call)
        self._set(current=call.id)
        return call.id

    async def answer(self, call_id: str | None = None) -> None:
        call = self._ringing(call_id)
        await call.answer()
        self._set(current=call.id, notice="")
        self._sync_call(call)

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

    async def expect_dtmf(self, digits: str, timeout: float) -> str | None:
        """None when the current call received ``digits`` in time, else what it did receive."""
        def check(s: Snapshot) -> bool | None:
            call = s.call()
            if call is None:
                return None
            return True if digits.upper() in call.dtmf_received.upper() else (False if call.ended else None)

        if await self.wait_until(check, timeout):
            return None
        call = self._snap.call()
        return call.dtmf_received if call else ""


def _headers(value: object) -> list[tuple[object, object]]:
    if isinstance(value, dict):
        return list(value.items())
    if isinstance(value, list | tuple):
        out: list[tuple[object, object]] = []
        for item in value:
            if isinstance(item, dict):
                out.append((item.get("name", ""), item.get("value", "")))
            elif isinstance(item, list | tuple) and len(item) == 2:
                out.append((item[0], item[1]))
        return out
    return []


def _stats_data(call: CallSnapshot, now: float) -> dict[str, Any]:
    return {
        "state": call.state,
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
