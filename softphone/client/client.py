"""The asyncio client: the sans-I/O :class:`VertoSession` on a websocket, and its calls.

The socket, the reconnect loop (backoff, ``?voice_sdk_id=``) and the session timer live
in :class:`softphone.client.connection.Connection`; this module turns the session's events
into typed client events (:mod:`softphone.client.events`) and owns the calls. Each
:class:`~softphone.client.call.Call` gets the session's events about it through its one entry,
``Call.handle``, and talks back only through the :class:`~softphone.client.port.CallHost` port
this client implements (send an intent, emit an event, spawn a task, get media for a call).

Events: ``subscribe(handler)`` receives every typed :data:`~softphone.client.events.Event`;
``on(name, handler)`` receives :class:`~softphone.client.events.ClientEvent` (name, data,
call_id, ts) for the named events, as docs/python-api.md describes.

No policy here: a second inbound call is announced (``call.incoming``) and can be answered or
rejected; answering it does **not** hold the first call (each call has its own peer, and a
shared microphone is copied to both); local tones, hanging up when media fails and DTMF
de-duplication are the application's (:class:`softphone.app.phone.Phone`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import random as _random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from softphone.client import events as ce
from softphone.client.call import Call
from softphone.client.connection import (
    BACKOFF_JITTER,
    BACKOFF_MAX,
    BACKOFF_START,
    ConnectFn,
    Connection,
    backoff_delay,
)
from softphone.client.events import ClientEvent
from softphone.client.identity import SDK_NAME, USER_AGENT, VERSION
from softphone.client.port import (
    Answer,
    AttachAnswer,
    CallMedia,
    Hangup,
    Intent,
    Invite,
    Modify,
    Peer,
    Reject,
    SendDtmf,
)
from softphone.client.quality import Warnings
from softphone.config import TELNYX_DEFAULT_ICE_SERVERS, is_loopback_host, is_telnyx_host
from softphone.errors import CommandError, ConfigError, LoginFailed, SoftphoneError, TransportError
from softphone.log import redact
from softphone.media.hub import AudioConfig, AudioManager
from softphone.media.sinks import AudioSink
from softphone.media.sources import AudioSource
from softphone.protocol import events as ev
from softphone.protocol import verto as v
from softphone.protocol.session import REQUEST_TIMEOUTS, Credentials, VertoSession
from softphone.protocol.states import CallState, ClientState, GatewayState

if TYPE_CHECKING:
    from softphone.client.tokens import TokenMinter
    from softphone.config import Profile
    from softphone.media.impair import ImpairSpec
    from softphone.media.peer import PeerOptions

__all__ = ["BACKOFF_JITTER", "BACKOFF_MAX", "BACKOFF_START", "AudioConfig", "Client", "ClientEvent",
           "PeerFactory", "backoff_delay"]

logger = logging.getLogger("softphone.client.client")

DEFAULT_URL = "wss://rtc.telnyx.com"
#: What a client offers when no codecs are chosen (config.Profile's default too).
DEFAULT_CODECS = ["opus", "PCMU", "PCMA"]

Handler = Callable[[ClientEvent], object]
Subscriber = Callable[[ce.Event], object]
#: Builds a call's media peer: ``factory(source, sink, name, codecs)``; the default is a
#: ``softphone.media.peer.MediaPeer`` with this client's ICE servers, codecs and timeouts.
PeerFactory = Callable[[AudioSource, AudioSink, str, list[str]], Peer]


class Client:
    """A Telnyx WebRTC client (see docs/python-api.md for the contract).

    Seams for tests: ``connect`` opens the transport (``connect(url) -> Transport``, see
    :class:`softphone.client.connection.Connection`; an in-memory duplex in unit tests) and
    ``peer_factory`` builds each call's media peer.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        credentials: Credentials | None = None,
        audio: AudioConfig | None = None,
        ice_servers: list[dict[str, Any]] | None = None,
        codecs: list[str] | None = None,
        caller_name: str = "",
        caller_number: str = "",
        gather_timeout: float = 1.0,
        reconnect: bool = True,
        insecure: bool = False,
        *,
        random: Callable[[], float] = _random.random,
        connect_timeout: float = 10.0,
        max_reconnect_attempts: int = 0,
        jitter_buffer: int | None = None,
        connect: ConnectFn | None = None,
        peer_factory: PeerFactory | None = None,
        token_minter: TokenMinter | None = None,
        token_warning: float = 120.0,
        impair: ImpairSpec | None = None,
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
        self.gather_timeout = gather_timeout
        self.insecure = insecure
        self.connect_timeout = connect_timeout
        self._loopback = is_loopback_host(host)
        self.impair = impair
        """Network impairment of every new call's media (:mod:`softphone.media.impair`), None: none."""
        # 20 ms frames the receive buffer holds before playout. On loopback (a local switch) packets
        # arrive in order and on time, so one frame is enough and saves ~60 ms of mouth-to-ear delay;
        # over a real network keep aiortc's default (4) to absorb jitter (bench/compare_sdk.py).
        # An impairment with jitter emulates a real network: keep aiortc's buffer then.
        lan = self._loopback and not (impair is not None and impair.jitter_ms)
        self.jitter_buffer = jitter_buffer if jitter_buffer is not None else (1 if lan else None)
        if ice_servers is not None:
            self.ice_servers = list(ice_servers)
        elif is_telnyx_host(host):
            self.ice_servers = [s.as_dict() for s in TELNYX_DEFAULT_ICE_SERVERS]
        else:
            self.ice_servers = []
        self._audio = AudioManager(audio or AudioConfig(), self._device_warning)
        self._peer_factory = peer_factory
        self._session = VertoSession(new_id=lambda: str(uuid.uuid4()), clock=time.monotonic, random=random,
                                     sdk_name=SDK_NAME, sdk_version=VERSION, user_agent=USER_AGENT)
        self.calls: dict[str, Call] = {}
        self._known: dict[str, Call] = {}  # every call the session still tracks (live or hanging up)
        self._handlers: dict[str, list[Handler]] = {}
        self._subscribers: list[Subscriber] = []
        #: Raises the warning codes (softphone.client.quality): token, login, call quality, ICE.
        self.warnings = Warnings(self._emit_soon, self._local_sdp, ice_servers=bool(self.ice_servers))
        self._subscribers.append(self.warnings)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._finishing: set[asyncio.Task[Any]] = set()  # close() waits for these (calls' media teardown)
        self._ready = asyncio.Event()
        #: Mints login tokens (profile ``credential_id`` + API key): before the first login when no
        #: credentials are given, and before each token expires (softphone.client.tokens).
        self.token_minter = token_minter
        self.token_warning = token_warning
        self._token_task: asyncio.Task[None] | None = None
        self._token_refreshing = False
        self._conn = Connection(
            self._session, url, emit=self._connection_event, process_events=self._process_events,
            spawn=lambda coro, name: self.spawn(coro, name), insecure=insecure,
            connect_timeout=connect_timeout, reconnect=reconnect, max_reconnect_attempts=max_reconnect_attempts,
            random=random, connect=connect)

    @classmethod
    def from_profile(cls, profile: Profile, **overrides: Any) -> Client:
        """Build a client from a resolved :class:`softphone.config.Profile`."""
        from softphone.config import effective_ice_servers, resolve_ws_url

        url = resolve_ws_url(profile)
        creds: Credentials | None
        minter: TokenMinter | None = None
        if profile.auth == "token" and not profile.token and profile.credential_id:
            from softphone.client.tokens import TokenMinter

            creds = None  # minted in connect()
            minter = TokenMinter(profile.api_base_url, profile.api_key, profile.credential_id,
                                 insecure=profile.insecure)
        elif profile.auth == "token":
            creds = Credentials(token=profile.token)
        else:
            creds = Credentials(login=profile.username, password=profile.password)
        audio = AudioConfig(
            backend=profile.audio_backend, input_device=profile.input_device or None,
            output_device=profile.output_device or None, input_file=profile.input_file or None,
            record_file=profile.record_file or None, record_mode=profile.record_mode)
        kwargs: dict[str, Any] = dict(
            url=url, credentials=creds, audio=audio,
            ice_servers=[s.as_dict() for s in effective_ice_servers(profile, url)],
            codecs=list(profile.codecs), caller_name=profile.caller_id_name,
            caller_number=profile.caller_id_number,
            gather_timeout=profile.gather_timeout, insecure=profile.insecure, token_minter=minter)
        if profile.impair:
            from softphone.media.impair import parse

            kwargs["impair"] = parse(profile.impair)
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
    def audio(self) -> AudioManager:
        """The audio manager (devices shared by every call)."""
        return self._audio

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

    def subscribe(self, handler: Subscriber) -> Callable[[], None]:
        """Call ``handler(event)`` with every typed event, after the named handlers; returns an unsubscribe."""
        self._subscribers.append(handler)
        return lambda: self._subscribers.remove(handler) if handler in self._subscribers else None

    def emit(self, event: ce.Event) -> None:
        """Publish ``event``: named handlers (``on``), then ``"*"`` handlers, then subscribers.

        A handler that raises is logged, never propagated; an async handler runs as a task.
        """
        name = event.name
        named = [*self._handlers.get(name, ()), *self._handlers.get("*", ())]
        edge = ClientEvent.of(event) if named or logger.isEnabledFor(logging.DEBUG) else None
        if edge is not None:
            logger.debug("event %s %s %s", name, edge.call_id or "", redact(json.dumps(edge.data, default=str)))
        for handler in named:
            assert edge is not None
            self._run_handler(handler, edge, name)
        for subscriber in list(self._subscribers):
            self._run_handler(subscriber, event, name)

    def _run_handler(self, handler: Callable[[Any], object], event: object, name: str) -> None:
        try:
            result = handler(event)
            if inspect.isawaitable(result):
                self.spawn(self._guard(result, name), f"handler-{name}")
        except Exception:
            logger.exception("event handler for %s failed", name)

    @staticmethod
    async def _guard(awaitable: Awaitable[object], name: str) -> None:
        try:
            await awaitable
        except Exception:
            logger.exception("event handler for %s failed", name)

    def _connection_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "socket.reconnecting" and self.token_minter is not None and self._token_stale():
            # e.g. after a suspend past the token's expiry: mint during the backoff, or the reconnect's
            # login would be refused
            self.spawn(self._mint_for_reconnect(), "token-reconnect")
        event = ce.event_from_connection(name, data)
        if event is None:
            logger.debug("connection event %s not known", name)
            return
        self.emit(event)

    # -- the CallHost port (softphone.client.call) ----------------------------------------------------
    def spawn(self, coro: Coroutine[Any, Any, Any], name: str = "", *, finish: bool = False) -> asyncio.Task[Any]:
        """Run ``coro`` as a tracked task; close() cancels it, or waits for it with ``finish``."""
        task = asyncio.get_running_loop().create_task(coro, name=name or None)
        self._tasks.add(task)
        if finish:
            self._finishing.add(task)
        task.add_done_callback(self._task_done)
        return task

    def send(self, intent: Intent) -> None:
        """Apply a call's intent to the session and send it (raises LocalProtocolError when not allowed)."""
        session = self._session
        match intent:
            case Invite(call_id, sdp):
                session.invite(call_id, sdp)
            case Answer(call_id, sdp):
                session.answer(call_id, sdp)
            case AttachAnswer(call_id, sdp):
                session.attach_answer(call_id, sdp)
            case Hangup(call_id, cause, reason):
                session.hangup(call_id, cause, reason=reason)
            case Reject(call_id):
                session.reject(call_id)
            case SendDtmf(call_id, digits):
                session.dtmf(call_id, digits)
            case Modify(call_id, action):
                session.modify(call_id, action)
        self._conn.pump()

    async def open_media(self, call_id: str) -> CallMedia:
        """A call's source and sink from the audio manager (device errors raise)."""
        source, sink = await self._audio.call_media()
        # When recording both sides the sink carries the recorder's local side (media.hub).
        send_tap: AudioSink | None = getattr(sink, "send_tap", None)
        return CallMedia(source, sink, send_tap)

    def new_peer(self, source: AudioSource, sink: AudioSink, *, name: str, codecs: list[str] | None) -> Peer:
        """A media peer with this client's options (ICE servers, codecs, gather timeout, jitter buffer)."""
        if self._peer_factory is not None:
            return self._peer_factory(source, sink, name, list(codecs or self.codecs))
        from softphone.media.peer import MediaPeer

        return MediaPeer(self._peer_options(codecs), source=source, sink=sink, name=name)

    def set_impairment(self, spec: ImpairSpec | None) -> None:
        """Impair the media of every live call and of every later one (:mod:`softphone.media.impair`); None lifts it."""
        self.impair = spec
        if "softphone.media.peer" not in sys.modules:
            return
        from softphone.media.peer import MediaPeer

        for call in self.calls.values():
            if isinstance(call.peer, MediaPeer):
                call.peer.set_impairment(spec)

    def _emit_soon(self, event: ce.Event) -> None:
        """Emit ``event`` once the event being handled reached every subscriber (a warning after its cause)."""
        try:
            asyncio.get_running_loop().call_soon(self.emit, event)
        except RuntimeError:  # no loop (a synchronous test)
            self.emit(event)

    def _local_sdp(self, call_id: str) -> str | None:
        """The local SDP (before loopback filtering) of a call's media peer, for the ICE warning."""
        if "softphone.media.peer" not in sys.modules:  # no MediaPeer was ever made (a test's fake peers)
            return None
        from softphone.media.peer import MediaPeer

        call = self.calls.get(call_id)
        peer = call.peer if call is not None else None
        return peer.local_sdp if isinstance(peer, MediaPeer) else None

    def _peer_options(self, codecs: list[str] | None = None) -> PeerOptions:
        from softphone.media.peer import PeerOptions

        return PeerOptions(ice_servers=list(self.ice_servers), loopback_only=self._loopback,
                           codecs=list(codecs or self.codecs), gather_timeout=self.gather_timeout,
                           jitter_prefetch=self.jitter_buffer, impair=self.impair)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._finishing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    def _device_warning(self, message: str) -> None:
        logger.warning("%s", message)
        for call in self.calls.values():
            self.emit(ce.CallDeviceWarning(call_id=call.id, message=message))
        if not self.calls:
            self.emit(ce.ClientError(code=0, message=message))

    # -- connection (softphone.client.connection) --------------------------------------------------------
    async def connect(self) -> None:
        """Connect and log in; return when ready (REGED). Raises LoginFailed or TransportError.

        With a :attr:`token_minter` and no (or an expiring) token, a JWT is minted first
        (:class:`~softphone.client.tokens.TokenRefused` is a LoginFailed).
        """
        if self._conn.running:
            await self.wait_ready(self.connect_timeout + 20)
            return
        if self.token_minter is not None and self._token_stale():
            self.credentials = Credentials(token=await self.token_minter.mint())
        if self.credentials is None:
            raise ConfigError("no credentials")
        self._session.login(self.credentials)
        await self._conn.start()
        self._watch_token()

    # -- login token expiry (the SDKs warn 120 s ahead; we also mint a new one and log in again) ------
    def _token_stale(self) -> bool:
        """No token yet, or one inside its refresh window."""
        from softphone.client.tokens import refresh_lead, token_expiry, token_lifetime

        token = self.credentials.token if self.credentials else None
        exp = token_expiry(token) if token else None
        if not token:
            return True
        if exp is None:
            return False
        return time.time() >= exp - refresh_lead(token_lifetime(token) or 0.0, self.token_warning)

    def _watch_token(self) -> None:
        if self._token_task is None or self._token_task.done():
            self._token_task = self.spawn(self._token_loop(), "token-expiry")

    async def _token_loop(self) -> None:
        """Warn before the token expires; with a minter, mint a new one and log in again on the socket.

        A failed mint keeps the session as it is (a warning, a ``client.error``) and tries again
        (every 30 s at most, sooner near expiry); the loop follows whatever token is current.
        """
        from softphone.client.tokens import refresh_lead, token_expiry, token_lifetime

        warned: str | None = None
        retry_at: float | None = None
        while self.state != ClientState.CLOSED:
            token = self.credentials.token if self.credentials else None
            exp = token_expiry(token) if token else None
            if token is None or exp is None:
                return
            at = exp - refresh_lead(token_lifetime(token) or 0.0, self.token_warning)
            if retry_at is not None:
                at = retry_at
            # in steps of 30 s at most: the loop's clock stops while the machine sleeps, the token's does not
            await asyncio.sleep(min(30.0, max(0.0, at - time.time())))
            if time.time() < at:
                continue
            if self.credentials is None or self.credentials.token != token:
                retry_at = None
                continue  # a new token meanwhile (a login with other credentials)
            left = exp - time.time()
            if warned != token:
                warned = token
                logger.warning("the login token expires in %.0f s%s", max(left, 0.0),
                               "; minting a new one" if self.token_minter else "; log in again with a fresh one")
                self.emit(ce.TokenExpiring(expires_in=round(max(left, 0.0), 3),
                                           refresh=self.token_minter is not None))
            if self.token_minter is None:
                return
            try:
                fresh = await self.token_minter.mint()
            except SoftphoneError as exc:
                retry = min(30.0, max(1.0, left / 4)) if left > 0 else 30.0
                logger.warning("could not mint a new login token (%s); the session goes on, retrying in %.0f s",
                               redact(str(exc)), retry)
                self.emit(ce.ClientError(code=0, message=f"token refresh failed: {redact(str(exc))}",
                                         method="token_refresh"))
                retry_at = time.time() + retry
                continue
            retry_at = None
            self.credentials = Credentials(token=fresh)
            if self.state == ClientState.READY:
                self._token_refreshing = True
                self._session.refresh_login(self.credentials)
                self._conn.pump()
            else:  # not ready (reconnecting): the next login uses it
                self._session.credentials = self.credentials

    async def _mint_for_reconnect(self) -> None:
        assert self.token_minter is not None
        try:
            fresh = await self.token_minter.mint()
        except SoftphoneError as exc:
            logger.warning("could not mint a new login token before reconnecting (%s)", redact(str(exc)))
            return
        self.credentials = Credentials(token=fresh)
        self._session.credentials = self.credentials  # the reconnect's login uses it

    def _token_logged_in(self) -> None:
        if self._token_refreshing:
            from softphone.client.tokens import token_expiry

            self._token_refreshing = False
            exp = token_expiry(self.credentials.token or "") if self.credentials else None
            logger.info("logged in again with a fresh token")
            self.emit(ce.TokenRefreshed(expires_in=round(max((exp or 0.0) - time.time(), 0.0), 3)))

    async def wait_ready(self, timeout: float | None = 10) -> None:
        """Wait until the client is ready."""
        await asyncio.wait_for(self._ready.wait(), timeout)

    # -- session events -> client events and calls --------------------------------------------------
    def _process_events(self) -> None:
        for event in self._session.events_received():
            try:
                self._dispatch(event)
            except Exception:
                logger.exception("error while handling %s", type(event).__name__)

    def _dispatch(self, e: ev.Event) -> None:
        match e:
            case ev.ClientStateChanged(old=old, new=new):
                self.emit(ce.ClientStateChanged(old=old, new=new))
                if new != ClientState.READY:
                    self._ready.clear()
            case ev.LoggedIn(sessid=sessid):
                self.emit(ce.LoggedIn(sessid=sessid))
                self._token_logged_in()
            case ev.LoginRejected(code=code, message=message):
                self.emit(ce.LoginRefused(code=code, message=message))
                self._conn.fail(LoginFailed(code, message, "login"))
            case ev.GatewayStateChanged(state=state):
                self.emit(ce.GatewayStateChanged(state=state))
            case ev.Ready(dc=dc, region=region):
                self._conn.ready()  # backoff reset; connect() returns
                self._ready.set()
                self.emit(ce.Ready(dc=dc, region=region))
            case ev.RegistrationFailed(code=code, message=message):
                self.emit(ce.ClientError(code=code, message=message))
                if not self._conn.was_ready and code != -32004:
                    self.emit(ce.LoginRefused(code=code, message=message))
                    self._conn.fail(LoginFailed(code, message, "gatewayState"))
            case ev.ReconnectRequested(reason=reason):
                if reason == f"{v.LOGIN} timed out" and not self._conn.was_ready:
                    # A server that accepted the socket but never answers the login: give up, say so.
                    secs = REQUEST_TIMEOUTS[v.LOGIN]
                    self._conn.fail(TransportError(f"timed out waiting for the login reply ({secs:g} s)"))
                    return
                logger.info("reconnect requested: %s", reason)
                self._conn.close_socket()
            case ev.Punted(reason=reason):
                self.emit(ce.Punted(reason=reason))
                logger.warning("%s; not reconnecting", reason)
                self._conn.close_socket()
            case ev.RpcErrorReceived(code=code, message=message, method=method):
                if method == v.LOGIN and self._token_refreshing:  # refresh_login refused: the session goes on
                    self._token_refreshing = False
                    logger.warning("the login with a fresh token was refused (%s); the session goes on", message)
                self.emit(ce.ClientError(code=code, message=message, method=method))
            case ev.ProtocolViolation(detail=detail):
                logger.warning("protocol violation: %s", detail)
            case ev.CallsNotReattached(call_ids=ids):
                logger.info("calls not reattached after reconnect: %s", ", ".join(ids))
            case ev.IncomingCall(invite=invite):
                self._incoming(e, invite.call_id)
            case ev.AttachOffer(invite=invite):
                call = self.calls.get(invite.call_id) or self._adopt(invite.call_id)
                if call is not None:
                    call.handle(e)
            case (ev.CallStateChanged() | ev.CallHangup() | ev.RemoteEarlyMedia() | ev.RemoteAnswer()
                  | ev.HoldChanged() | ev.HoldFailed() | ev.DtmfReceived()):
                self._to_call(e, e.call_id)

    def _incoming(self, e: ev.IncomingCall, call_id: str) -> None:
        leg = self._session.calls.get(call_id)
        if leg is None:
            return
        call = Call(self, leg, offer_sdp=e.invite.sdp)
        self.calls[call.id] = self._known[call.id] = call
        call.handle(e)  # opens its media first: a call.incoming handler may answer at once
        self.emit(ce.CallCreated(call_id=call.id, direction="inbound", remote=leg.remote_number))
        self.emit(ce.CallIncoming(call_id=call.id, remote_name=leg.remote_name, remote_number=leg.remote_number,
                                  active_calls=len(self.calls) - 1))

    def _adopt(self, call_id: str) -> Call | None:
        """A call the server re-offers that this client did not know (e.g. after a restart)."""
        leg = self._session.calls.get(call_id)
        if leg is None:
            return None
        call = Call(self, leg)
        self.calls[call.id] = self._known[call.id] = call
        return call

    def _to_call(self, e: ev.Event, call_id: str) -> None:
        call = self._known.get(call_id)
        if call is None:
            return
        call.handle(e)
        if isinstance(e, ev.CallStateChanged):
            if e.new.is_terminal:  # client.calls holds live calls only
                self.calls.pop(call.id, None)
            if e.new == CallState.DESTROYED:
                self._known.pop(call.id, None)

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
        self.emit(ce.CallCreated(call_id=call_id, direction="outbound", remote=destination))
        await call.start_outbound(codecs)
        return call

    def set_audio_input(self, device: str | int) -> None:
        """Switch the input device for every live and future call (errors become device warnings)."""
        from softphone.media.hub import find_device

        if self._audio.resolve() == "pyaudio":
            find_device(device, output=False)  # DeviceNotFound now, not later
        self.spawn(self._switch(self._audio.set_input(device)), "audio-input")

    def set_audio_output(self, device: str | int) -> None:
        """Switch the output device for every live and future call."""
        from softphone.media.hub import find_device

        if self._audio.resolve() == "pyaudio":
            find_device(device, output=True)
        self.spawn(self._switch(self._audio.set_output(device)), "audio-output")

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
        if self._conn.ws is not None and self.state == ClientState.READY:
            self._session.logout()
            self._conn.pump()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._byes_done(), 2.0)
        await self._conn.close_socket_and_wait(2.0)
        await self._conn.stop()
        self._session.close()
        self._process_events()
        for call in list(self._known.values()):
            await call.close_media()
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
    def kill_transport(self) -> None:
        """Abort the socket without a closing handshake (tests: simulate a network loss)."""
        self._conn.kill_transport()
