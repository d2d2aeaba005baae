"""The asyncio client: the sans-I/O :class:`VertoSession` on a websocket, and its calls.

The socket, the reconnect loop (backoff, ``?voice_sdk_id=``) and the session timer live
in :class:`softphone.client.connection.Connection`; this module turns the session's events
into client and call events and owns the calls. Media work (applying SDP) runs in
tasks tracked per client, never in the reader.

Second inbound call while one is up: it is announced (``call.incoming``) and can be
answered or rejected; answering it does **not** hold the first call automatically
(each call has its own peer, and a shared microphone is copied to both). Front-ends
that want desk-phone behaviour call ``hold()`` on the first call themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random as _random
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from softphone import SDK_NAME, USER_AGENT, __version__
from softphone.client.call import Call
from softphone.client.connection import BACKOFF_JITTER, BACKOFF_MAX, BACKOFF_START, Connection, backoff_delay
from softphone.config import TELNYX_DEFAULT_ICE_SERVERS, is_loopback_host, is_telnyx_host
from softphone.errors import CommandError, ConfigError, LoginFailed, SoftphoneError, TransportError
from softphone.log import redact
from softphone.media.hub import AudioConfig, AudioManager
from softphone.protocol import events as ev
from softphone.protocol import verto as v
from softphone.protocol.session import REQUEST_TIMEOUTS, Credentials, VertoSession
from softphone.protocol.states import CallState, ClientState, GatewayState

if TYPE_CHECKING:
    from softphone.config import Profile
    from softphone.media.peer import PeerOptions

__all__ = ["BACKOFF_JITTER", "BACKOFF_MAX", "BACKOFF_START", "AudioConfig", "Client", "ClientEvent",
           "backoff_delay"]

logger = logging.getLogger("softphone.client.client")

DEFAULT_URL = "wss://rtc.telnyx.com"
#: What a client offers when no codecs are chosen (config.Profile's default too).
DEFAULT_CODECS = ["opus", "PCMU", "PCMA"]

Handler = Callable[["ClientEvent"], object]


@dataclass(frozen=True)
class ClientEvent:
    """One event: ``name`` (``socket.*``, ``client.*``, ``call.*``), JSON-able ``data``, ``call_id``, ``ts``."""

    name: str
    data: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    ts: float = field(default_factory=time.time)


class Client:
    """A Telnyx WebRTC client (see docs/python-api.md for the contract)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        credentials: Credentials | None = None,
        audio: AudioConfig | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
        codecs: list[str] | None = None,
        caller_name: str = "",
        caller_number: str = "",
        ringback: bool = True,
        ringtone: bool = True,
        gather_timeout: float = 1.0,
        reconnect: bool = True,
        insecure: bool = False,
        *,
        random: Callable[[], float] = _random.random,
        connect_timeout: float = 10.0,
        max_reconnect_attempts: int = 0,
        jitter_buffer: int | None = None,
    ) -> None:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if parts.scheme not in ("ws", "wss"):
            raise ConfigError(f"server URL must start with wss:// (or ws:// for a local switch): {url!r}")
        if parts.scheme == "ws" and not is_loopback_host(host) and not insecure:
            raise ConfigError(f"refusing unencrypted ws:// to {host!r}: use wss://, or insecure=True to allow it")
        self.url = url
        self.credentials = credentials
        self.codecs = list(codecs or DEFAULT_CODECS)
        self.caller_name, self.caller_number = caller_name, caller_number
        self.ringback, self.ringtone = ringback, ringtone
        self.gather_timeout = gather_timeout
        self.insecure = insecure
        self.connect_timeout = connect_timeout
        self._loopback = is_loopback_host(host)
        # 20 ms frames the receive buffer holds before playout. On loopback (a local switch) packets
        # arrive in order and on time, so one frame is enough and saves ~60 ms of mouth-to-ear delay;
        # over a real network keep aiortc's default (4) to absorb jitter (bench/compare_sdk.py).
        self.jitter_buffer = jitter_buffer if jitter_buffer is not None else (1 if self._loopback else None)
        if ice_servers is not None:
            self.ice_servers = list(ice_servers)
        elif is_telnyx_host(host):
            self.ice_servers = [s.as_dict() for s in TELNYX_DEFAULT_ICE_SERVERS]
        else:
            self.ice_servers = []
        self._audio = AudioManager(audio or AudioConfig(ringback=ringback, ringtone=ringtone), self._device_warning)
        self._session = VertoSession(new_id=lambda: str(uuid.uuid4()), clock=time.monotonic, random=random,
                                     sdk_name=SDK_NAME, sdk_version=__version__, user_agent=USER_AGENT)
        self.calls: dict[str, Call] = {}
        self._known: dict[str, Call] = {}  # every call the session still tracks (live or hanging up)
        self._handlers: dict[str, list[Handler]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finishing: set[asyncio.Task[Any]] = set()  # close() waits for these (calls' media teardown)
        self._ready = asyncio.Event()
        self._conn = Connection(
            self._session, url, emit=self._emit, process_events=self._process_events,
            spawn=lambda coro, name: self._spawn(coro, name=name), insecure=insecure,
            connect_timeout=connect_timeout, reconnect=reconnect, max_reconnect_attempts=max_reconnect_attempts,
            random=random)

    @classmethod
    def from_profile(cls, profile: Profile, **overrides: Any) -> Client:
        """Build a client from a resolved :class:`softphone.config.Profile`."""
        from softphone.config import effective_ice_servers, resolve_ws_url

        url = resolve_ws_url(profile)
        if profile.auth == "token":
            creds = Credentials(token=profile.token)
        else:
            creds = Credentials(login=profile.username, password=profile.password)
        audio = AudioConfig(
            backend=profile.audio_backend, input_device=profile.input_device or None,
            output_device=profile.output_device or None, input_file=profile.input_file or None,
            record_file=profile.record_file or None, record_mode=profile.record_mode,
            ringback=profile.ringback, ringtone=profile.ringtone)
        kwargs: dict[str, Any] = dict(
            url=url, credentials=creds, audio=audio,
            ice_servers=[s.as_dict() for s in effective_ice_servers(profile, url)],
            codecs=list(profile.codecs), caller_name=profile.caller_id_name,
            caller_number=profile.caller_id_number, ringback=profile.ringback, ringtone=profile.ringtone,
            gather_timeout=profile.gather_timeout, insecure=profile.insecure)
        kwargs.update(overrides)
        return cls(**kwargs)

    # -- public state ------------------------------------------------------------------------------
    @property
    def state(self) -> ClientState:
        return self._session.state

    @property
    def gateway_state(self) -> GatewayState:
        return self._session.gateway_state

    @property
    def sessid(self) -> str | None:
        return self._session.sessid

    @property
    def dc(self) -> str:
        return self._session.dc

    @property
    def region(self) -> str:
        return self._session.region

    @property
    def reconnect(self) -> bool:
        """Reconnect (with backoff) after a lost connection once ready."""
        return self._conn.reconnect

    @reconnect.setter
    def reconnect(self, value: bool) -> None:
        self._conn.reconnect = value

    @property
    def max_reconnect_attempts(self) -> int:
        """Reconnect attempts before giving up (0: unlimited)."""
        return self._conn.max_reconnect_attempts

    @max_reconnect_attempts.setter
    def max_reconnect_attempts(self, value: int) -> None:
        self._conn.max_reconnect_attempts = value

    @property
    def user(self) -> str:
        return self.credentials.user if self.credentials else ""

    @property
    def audio_note(self) -> str:
        """Why the ``auto`` audio backend fell back to a tone (one line), else ``""``."""
        self._audio.resolve()
        return self._audio.note

    @property
    def audio_backend(self) -> str:
        """The backend in use (``auto`` resolved)."""
        return self._audio.resolve()

    # -- events ---------------------------------------------------------------------------------
    def on(self, name: str, handler: Handler) -> None:
        """Call ``handler(event)`` (sync or async) for events named ``name`` (``"*"``: all)."""
        self._handlers.setdefault(name, []).append(handler)

    def off(self, name: str, handler: Handler | None = None) -> None:
        """Remove ``handler`` (or every handler) for ``name``."""
        if handler is None:
            self._handlers.pop(name, None)
        elif handler in self._handlers.get(name, []):
            self._handlers[name].remove(handler)

    def _emit(self, name: str, data: dict[str, Any] | None = None, call_id: str | None = None) -> None:
        event = ClientEvent(name, data or {}, call_id)
        logger.debug("event %s %s %s", name, call_id or "", redact(json.dumps(event.data, default=str)))
        for handler in [*self._handlers.get(name, ()), *self._handlers.get("*", ())]:
            try:
                result = handler(event)
                if inspect.isawaitable(result):
                    self._spawn(self._guard(result, name), name=f"handler-{name}")
            except Exception:
                logger.exception("event handler for %s failed", name)

    @staticmethod
    async def _guard(awaitable: Awaitable[object], name: str) -> None:
        try:
            await awaitable
        except Exception:
            logger.exception("event handler for %s failed", name)

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, name: str = "", finish: bool = False) -> asyncio.Task[Any]:
        """Run ``coro`` as a tracked task; close() cancels it, or waits for it with ``finish``."""
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._tasks.add(task)
        if finish:
            self._finishing.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._finishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    def _device_warning(self, message: str) -> None:
        logger.warning("%s", message)
        for call in self.calls.values():
            self._emit("call.device_warning", {"message": message}, call.id)
        if not self.calls:
            self._emit("client.error", {"code": 0, "message": message})

    # -- connection (softphone.client.connection) --------------------------------------------------------
    async def connect(self) -> None:
        """Connect and log in; return when ready (REGED). Raises LoginFailed or TransportError."""
        if self.credentials is None:
            raise ConfigError("no credentials")
        if self._conn.running:
            await self.wait_ready(self.connect_timeout + 20)
            return
        self._session.login(self.credentials)
        await self._conn.start()

    async def wait_ready(self, timeout: float | None = 10) -> None:
        """Wait until the client is ready."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    @property
    def _ws(self) -> Any:
        return self._conn.ws

    def _pump(self) -> None:
        """Dispatch the session's events and send what it queued (never awaits)."""
        self._conn.pump()

    # -- session events -> client events --------------------------------------------------------------
    def _process_events(self) -> None:
        for event in self._session.events_received():
            try:
                self._dispatch(event)
            except Exception:
                logger.exception("error while handling %s", type(event).__name__)

    def _dispatch(self, e: ev.Event) -> None:
        if isinstance(e, ev.ClientStateChanged):
            self._emit("client.state", {"old": e.old.value, "new": e.new.value})
            if e.new != ClientState.READY:
                self._ready.clear()
        elif isinstance(e, ev.LoggedIn):
            self._emit("client.logged_in", {"sessid": e.sessid})
        elif isinstance(e, ev.LoginRejected):
            self._emit("client.login_failed", {"code": e.code, "message": e.message})
            self._conn.fail(LoginFailed(e.code, e.message, "login"))
        elif isinstance(e, ev.GatewayStateChanged):
            self._emit("client.gateway_state", {"state": e.state.value})
        elif isinstance(e, ev.Ready):
            self._conn.ready()  # backoff reset; connect() returns
            self._ready.set()
            self._emit("client.ready", {"dc": e.dc, "region": e.region})
        elif isinstance(e, ev.RegistrationFailed):
            self._emit("client.error", {"code": e.code, "message": e.message})
            if not self._conn.was_ready and e.code != -32004:
                self._emit("client.login_failed", {"code": e.code, "message": e.message})
                self._conn.fail(LoginFailed(e.code, e.message, "gatewayState"))
        elif isinstance(e, ev.ReconnectRequested):
            if e.reason == f"{v.LOGIN} timed out" and not self._conn.was_ready:
                # A server that accepted the socket but never answers the login: give up, say so.
                secs = REQUEST_TIMEOUTS[v.LOGIN]
                self._conn.fail(TransportError(f"timed out waiting for the login reply ({secs:g} s)"))
                return
            logger.info("reconnect requested: %s", e.reason)
            self._conn.close_socket()
        elif isinstance(e, ev.Punted):
            self._emit("client.punted", {"reason": e.reason})
            logger.warning("%s; not reconnecting", e.reason)
            self._conn.close_socket()
        elif isinstance(e, ev.RpcErrorReceived):
            self._emit("client.error", {"code": e.code, "message": e.message, "method": e.method})
        elif isinstance(e, ev.ProtocolViolation):
            logger.warning("protocol violation: %s", e.detail)
        elif isinstance(e, ev.CallsNotReattached):
            logger.info("calls not reattached after reconnect: %s", ", ".join(e.call_ids))
        else:
            self._dispatch_call(e)

    def _dispatch_call(self, e: ev.Event) -> None:
        if isinstance(e, ev.IncomingCall):
            leg = self._session.calls.get(e.invite.call_id)
            if leg is None:
                return
            call = Call(self, leg, offer_sdp=e.invite.sdp)
            self.calls[call.id] = self._known[call.id] = call
            # Media first: a call.incoming handler may answer at once, and answer() waits for this task.
            call._media_ready = self._spawn(self._prepare_inbound(call), name=f"inbound-{call.id[:8]}")
            self._emit("call.created", {"direction": "inbound", "remote": leg.remote_number}, call.id)
            self._emit("call.incoming", {"remote_name": leg.remote_name, "remote_number": leg.remote_number,
                                         "active_calls": len(self.calls) - 1}, call.id)
            return
        call_id = getattr(e, "call_id", None)
        found = self._known.get(call_id) if isinstance(call_id, str) else None
        if isinstance(e, ev.AttachOffer):
            known = self.calls.get(e.invite.call_id)
            if known is None:
                leg = self._session.calls.get(e.invite.call_id)
                if leg is None:
                    return
                adopted = Call(self, leg)
                self.calls[adopted.id] = self._known[adopted.id] = adopted
                self._spawn(self._adopt(adopted, e), name=f"adopt-{adopted.id[:8]}")
                return
            self._spawn(known._reattach(e), name=f"reattach-{known.id[:8]}")
            return
        if found is None:
            return
        call = found
        if isinstance(e, ev.CallStateChanged):
            call._on_state(e.old, e.new)
            if e.new.is_terminal:  # client.calls holds live calls only
                self.calls.pop(call.id, None)
            if e.new == CallState.DESTROYED:
                self._known.pop(call.id, None)
        elif isinstance(e, ev.CallHangup):
            call._on_hangup(e)
        elif isinstance(e, ev.RemoteEarlyMedia):
            self._spawn(call._apply_answer(e.sdp), name=f"early-{call.id[:8]}")
        elif isinstance(e, ev.RemoteAnswer):
            if e.sdp is not None:
                self._spawn(call._apply_answer(e.sdp), name=f"answer-{call.id[:8]}")
        elif isinstance(e, ev.HoldChanged):
            call._on_hold(e.held)
        elif isinstance(e, ev.HoldFailed):
            call._on_hold_failed(e.message)
        elif isinstance(e, ev.DtmfReceived):
            for digit in e.digits:
                call._report_dtmf(digit, "info")

    async def _prepare_inbound(self, call: Call) -> None:
        try:
            await call._prepare_media()
        except SoftphoneError as exc:
            self._emit("call.device_warning", {"message": str(exc)}, call.id)

    async def _adopt(self, call: Call, offer: ev.AttachOffer) -> None:
        await self._prepare_inbound(call)
        await call._reattach(offer)

    def _peer_options(self, codecs: list[str] | None = None) -> PeerOptions:
        from softphone.media.peer import PeerOptions

        return PeerOptions(ice_servers=list(self.ice_servers), loopback_only=self._loopback,
                           codecs=list(codecs or self.codecs), gather_timeout=self.gather_timeout,
                           jitter_prefetch=self.jitter_buffer)

    # -- calls -----------------------------------------------------------------------------------------
    async def new_call(
        self,
        destination: str,
        *,
        caller_name: str | None = None,
        caller_number: str | None = None,
        custom_headers: list[tuple[str, str]] | None = None,
        client_state: str = "",
        codecs: list[str] | None = None,
    ) -> Call:
        """Dial ``destination``: open audio, build the offer, send the invite. Returns the Call."""
        if self.state != ClientState.READY:
            raise CommandError(f"not ready (client is {self.state.value})")
        call_id = str(uuid.uuid4())
        leg = self._session.new_call(
            call_id, destination, caller_name=self.caller_name if caller_name is None else caller_name,
            caller_number=self.caller_number if caller_number is None else caller_number,
            custom_headers=custom_headers, client_state=client_state,
            # preferred_codecs only when codecs were chosen (as the JS SDK): the default list is no choice
            codecs=codecs or (self.codecs if self.codecs != DEFAULT_CODECS else None))
        call = Call(self, leg)
        self.calls[call_id] = self._known[call_id] = call
        self._emit("call.created", {"direction": "outbound", "remote": destination}, call_id)
        try:
            await call._prepare_media()
            from softphone.media.peer import MediaPeer

            peer = MediaPeer(self._peer_options(codecs), source=call.input, sink=call._tap,
                             name=f"call-{call_id[:8]}")
            if call._send_tap is not None:  # the recording's local side
                peer.set_send_tap(call._send_tap)
            call.peer = peer
            sdp = await peer.create_offer()
        except BaseException:
            if not call.state.is_terminal:
                self._session.hangup(call_id, reason="media setup failed")
                self._pump()
            raise
        if call.state != CallState.NEW:
            raise CommandError(f"call ended before the invite ({call.state.value})")
        self._session.invite(call_id, sdp)
        self._pump()
        return call

    def set_audio_input(self, device: str | int) -> None:
        """Switch the input device for every live and future call (errors become device warnings)."""
        from softphone.media.hub import find_device

        if self._audio.resolve() == "pyaudio":
            find_device(device, output=False)  # DeviceNotFound now, not later
        self._spawn(self._switch(self._audio.set_input(device)), name="audio-input")

    def set_audio_output(self, device: str | int) -> None:
        """Switch the output device for every live and future call."""
        from softphone.media.hub import find_device

        if self._audio.resolve() == "pyaudio":
            find_device(device, output=True)
        self._spawn(self._switch(self._audio.set_output(device)), name="audio-output")

    async def _switch(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            await coro
        except SoftphoneError as exc:
            self._device_warning(str(exc))

    # -- shutdown ---------------------------------------------------------------------------------------
    async def close(self) -> None:
        """Hang up live calls (BYE), log out, close the socket; the state becomes ``closed``."""
        if self.state == ClientState.CLOSED:
            return
        if self._ws is not None and self.state == ClientState.READY:
            self._session.logout()
            self._pump()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._byes_done(), 2.0)
        await self._conn.close_socket_and_wait(2.0)
        await self._conn.stop()
        self._session.close()
        self._process_events()
        for call in list(self._known.values()):
            await call._close_media()
        if self._finishing:  # calls that ended earlier: their recordings are complete only once closed
            await asyncio.wait(list(self._finishing), timeout=5.0)
        self.calls.clear()
        self._known.clear()
        await self._audio.close()
        pending = [t for t in self._tasks if not t.done()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _byes_done(self) -> None:
        while any(m == "telnyx_rtc.bye" for m in self._session.pending_methods().values()):
            await asyncio.sleep(0.02)

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- test hooks ------------------------------------------------------------------------------------
    def _kill_transport(self) -> None:
        """Abort the socket without a closing handshake (tests: simulate a network loss)."""
        self._conn.kill_transport()
