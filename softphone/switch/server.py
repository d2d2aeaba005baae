"""The switch's websocket server: the server side of PROTOCOL.md §1-§4 and §10.

One :class:`Session` per logged-in client (keyed by ``sessid``; it outlives its socket
for :data:`REATTACH_WINDOW_S` while it has calls, so a reconnect can reattach them).
Frames are handled in the socket's read loop; anything that awaits media runs in a
task tracked by :meth:`SwitchServer.spawn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from softphone.errors import ConfigError, RemoteProtocolError, SoftphoneError
from softphone.media.sdp import sdp_problem
from softphone.protocol import verto
from softphone.protocol.jsonrpc import Request, build_error, build_result, parse_message
from softphone.switch.accounts import Accounts, Login, TokenRefused, default_accounts
from softphone.switch.calls import Call, Session
from softphone.switch.gc_freeze import IdleFreezer
from softphone.switch.hosts import is_loopback_host
from softphone.switch.media_legs import MediaLeg, ensure_media
from softphone.switch.records import DEFAULT_RATE_PER_MINUTE, CallRecord, RecordStore
from softphone.switch.registry import Registration, Registry
from softphone.switch.routing import NoRoute, NoRouteHook, Route, ServiceRoute, SlotRoute, route
from softphone.switch.throttle import CLOSE_CODE, ConnectionThrottle, LoginThrottle, Refused, ThrottleOptions
from softphone.switch.workers import WORKER_LOST_CAUSE, MediaPool, RemoteMediaLeg

if TYPE_CHECKING:
    from softphone.media.impair import ImpairSpec

logger = logging.getLogger(__name__)

REATTACH_WINDOW_S = 60.0
"""A client that reconnects with its ``sessid`` within this time gets its calls back."""
SHUTDOWN_CAUSE = "NORMAL_CLEARING"
"""The bye cause clients get when the switch stops."""
STOP_CALLS_S = 1.5
"""Longest wait for calls to end at stop."""
IN_PROCESS_SERVICES = frozenset({"ivr"})
"""Services whose media stays in the signaling process (the ivr taps the leg for in-band DTMF and
plays speech synthesised here)."""
SIGNALING_ONLY_SERVICES = frozenset({"reject", "busy", "noanswer"})
"""Services that never answer: their calls get no media peer (ringing and a bye only)."""
PARSE_ERROR = -32700
INVALID_REQUEST = -32600


class SwitchServer:
    """The switch core: a local Telnyx-compatible WebRTC server (see :mod:`softphone.switch`).

    It knows nothing of Call Control: :class:`softphone.switch.Switch` (the composition root,
    :mod:`softphone.switch.app`) adds it through :attr:`park_hook` and :meth:`start`/:meth:`stop`.
    """

    def __init__(
        self,
        accounts: Accounts | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        ping_interval: float = 30.0,
        ping_timeout: float = 60.0,
        rate_per_minute: float = DEFAULT_RATE_PER_MINUTE,
        records_path: str | Path | None = None,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        login_throttle: ThrottleOptions | None = None,
        media_workers: int = 0,
    ) -> None:
        self.accounts = accounts if accounts is not None else default_accounts()
        self.throttle = LoginThrottle(login_throttle)
        """Failed-login bookkeeping per credential (see :mod:`softphone.switch.throttle`)."""
        self.host = host
        self.port = port
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.rate_per_minute = rate_per_minute
        self.noanswer_timeout: float | None = None
        """Max ring time of the ``noanswer`` service (None: ring until the caller gives up)."""
        self.impair: ImpairSpec | None = None
        """Network impairment of every new leg's media (:mod:`softphone.media.impair`; Switch(impair=...))."""
        self.no_route_hook: NoRouteHook | None = None
        """Consulted when routing finds nothing and no park hook took the call."""
        self.park_hook: Callable[[Call], Awaitable[bool]] | None = None
        """Consulted first when routing finds nothing: True means it took the call (Call Control parking)."""
        self._records = RecordStore(Path(records_path) if records_path is not None else None)
        self._tls: ssl.SSLContext | None = None
        if tls_cert is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(str(tls_cert), str(tls_key) if tls_key is not None else None)
        self._server: Server | None = None
        self._sessions: dict[str, Session] = {}
        self._registry: Registry[Session] = Registry()
        self._gateway_states: dict[str, str] = {}
        self._calls: list[Call] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(4401)
        self._pinger: asyncio.Task[None] | None = None
        self.gc_freezer: IdleFreezer | None = None
        """Keeps idle sessions out of full GC walks (:mod:`softphone.switch.gc_freeze`); process-wide, so
        only ``softphone switch serve`` sets it."""
        self.media_pool: MediaPool | None = MediaPool(media_workers) if media_workers > 0 else None
        """Media worker processes (``media_workers`` > 0; see :meth:`new_media_leg`), else None."""

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0 picks a free one; see :attr:`url`).

        Raises :class:`~softphone.errors.ConfigError` when the accounts use the built-in JWT
        secret and ``host`` is not loopback (anyone could forge tokens).
        """
        if self.accounts.default_secret:
            if not is_loopback_host(self.host):
                raise ConfigError(
                    f"refusing to listen on {self.host}: the accounts use the built-in jwt_secret, so anyone could "
                    "forge login tokens; set jwt_secret in the accounts file"
                )
            logger.warning("the built-in jwt_secret is in use: login tokens are forgeable (fine on loopback only)")
        # No permessage-deflate: its zlib state is ~48 KB per socket (bench/signaling.py: 57 KB of RSS per
        # idle session with it) for frames of a few KB; declining it is standard (RFC 7692 §5), browsers
        # and the JS SDK go on uncompressed, and our own client never asks for it.
        self._server = await serve(
            self._handle, self.host, self.port, ssl=self._tls, ping_interval=None, max_size=2**20, compression=None
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        self._pinger = asyncio.create_task(self._ping_loop(), name="switch-pinger")
        if self.media_pool is not None:
            await self.media_pool.start()
        # Import aiortc in a thread now, so the first call does not wait for it.
        self.spawn(ensure_media(), "media-warmup")
        logger.info("switch listening on %s", self.url)

    async def stop(self) -> None:
        """End every call (a bye with NORMAL_CLEARING to each client), close every socket (1001) and task.

        Bounded: about 2 s at most even with calls whose media does not close.
        """
        if self._pinger is not None:
            self._pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pinger
            self._pinger = None
        await _bounded(
            [call.end(None, SHUTDOWN_CAUSE) for call in list(self._calls)], STOP_CALLS_S, "ending calls at stop"
        )
        if self._server is not None:
            self._server.close()  # closes every socket with 1001 (going away)
            await self._server.wait_closed()
            self._server = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        for sess in self._sessions.values():
            if sess.expiry is not None:
                sess.expiry.cancel()
        self._sessions.clear()
        if self.gc_freezer is not None:
            self.gc_freezer.release()
        if self.media_pool is not None:
            await self.media_pool.stop()  # every worker process exits (asked, then SIGTERM/SIGKILL)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        scheme = "wss" if self._tls is not None else "ws"
        return f"{scheme}://{self.host}:{self.port}"

    # --- inspection / test hooks --------------------------------------------------------

    @property
    def records(self) -> list[CallRecord]:
        """Finished legs, oldest first."""
        return self._records.records

    def registrations(self) -> list[Registration]:
        """Who is registered where, oldest registration first."""
        return [
            Registration(slot, sessid, sess.login.display, order, self._state_of(sess))
            for slot, order, sessid, sess in self._registry.entries()
        ]

    def active_calls(self) -> list[dict[str, Any]]:
        """A snapshot of calls in progress."""
        out: list[dict[str, Any]] = []
        for c in self._calls:
            out.append(
                {
                    "call_id": c.a.call_id,
                    "from": c.caller_number,
                    "to": c.destination,
                    "service": c.service.name if c.service else None,
                    "b_call_id": c.b.call_id if c.b else None,
                    "answered": c.answered_at is not None,
                    "held": any(leg.held for leg in c.legs()),
                    "legs": [leg.session.login.display for leg in c.legs()],
                }
            )
        return out

    def set_gateway_state(self, login_username: str, state: str) -> None:
        """Make gatewayState answer ``state`` for this login (and push it to live sessions)."""
        self._gateway_states[login_username] = state
        for sess in self._sessions.values():
            if sess.ws is not None and login_username in (sess.login.slot, sess.login.display):
                self.spawn(self.request(sess, verto.GATEWAY_STATE, {"state": state}), "push-gateway-state")

    def _state_of(self, sess: Session) -> str:
        return self._gateway_states.get(sess.login.display) or self._gateway_states.get(sess.login.slot) or "REGED"

    # --- plumbing -------------------------------------------------------------------------

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as a tracked task (cancelled on stop; failures are logged)."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, SoftphoneError):  # an expected failure (bad SDP, media): one line
                logger.warning("switch task %s failed: %s", task.get_name(), exc)
            else:
                logger.error("switch task %s failed", task.get_name(), exc_info=exc)

    async def request(self, session: Session, method: str, params: dict[str, Any]) -> None:
        """Send a server request to a session's socket (dropped if it has none)."""
        if session.ws is None:
            return
        text = verto.server_request(next(self._ids), method, params, session.voice_sdk_id)
        await self._send(session.ws, text)

    async def _send(self, ws: ServerConnection, text: str) -> None:
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)

    async def punt(self, who: str) -> bool:
        """Send ``telnyx_rtc.punt`` to a session (by sessid or login) and close its socket, as Telnyx
        does when the same user logs in elsewhere (a test hook: the switch never punts by itself)."""
        sess = self._sessions.get(who) or next(
            (s for s in self._sessions.values() if who in (s.login.slot, s.login.display)), None)
        if sess is None or sess.ws is None:
            return False
        ws = sess.ws
        await self.request(sess, verto.PUNT, {})
        with contextlib.suppress(Exception):
            await ws.close()
        return True

    def lookup_client(self, slot: str) -> Session | None:
        """The session a call to ``slot`` would ring (None if nobody is registered and ready)."""
        target = self._registry.lookup(slot)
        if target is None or target.ws is None or self._state_of(target) not in ("REGED", "REGISTER"):
            return None
        return target

    # --- media placement ----------------------------------------------------------------------

    def new_media_leg(self, label: str, call: Call) -> MediaLeg | RemoteMediaLeg:
        """The media of a new leg of ``call``: in a media worker or in this process.

        The placement policy (with ``media_workers`` > 0): a call a client places to a built-in
        service other than ``ivr`` (echo, tone, dtmf, early) or to another client (a bridge) goes to
        a worker, both legs on the same one; busy, noanswer and reject never answer, so their legs
        stay here and never build a peer (no IPC per setup); everything that needs the
        leg's PCM in this process stays here: Call Control's calls (parked, dialled, bridged to
        outside legs, in conferences), the ``ivr`` service, destinations with no route. When no
        worker is ready the call stays here too. A worker that dies ends its calls with
        :data:`~softphone.switch.workers.WORKER_LOST_CAUSE`.
        """
        pool = self.media_pool
        if pool is not None:
            if self._media_in_worker(call):
                remote = pool.new_leg(label, call, lambda: self._media_lost(call), impair=self.impair)
                if remote is not None:
                    return remote
            else:
                pool.keep_local(call)
        return MediaLeg(label, impair=self.impair)

    def _media_in_worker(self, call: Call) -> bool:
        if type(call) is not Call:
            return False  # a subclass (Call Control's WebRtcCall) drives the leg's PCM from here
        r = route(call.destination, self.accounts)
        if isinstance(r, ServiceRoute):
            return r.service.name not in IN_PROCESS_SERVICES and r.service.name not in SIGNALING_ONLY_SERVICES
        return isinstance(r, SlotRoute)

    def _media_lost(self, call: Call) -> None:
        if not call.ended:
            self.spawn(call.end(None, WORKER_LOST_CAUSE), f"media-worker-lost {call.a.call_id}")

    def media_of(self, call_id: str) -> MediaLeg | RemoteMediaLeg | None:
        """The media of the live leg whose callID is ``call_id`` (an A leg's is the caller's), or None."""
        for call in self._calls:
            for leg in call.legs():
                if leg.call_id == call_id:
                    return leg.media
        return None

    def media_workers(self) -> list[dict[str, Any]]:
        """The media worker processes: index, pid, legs, cpu, alive (empty without workers)."""
        return self.media_pool.workers() if self.media_pool is not None else []

    def add_call(self, call: Call, replaces: Call | None = None) -> None:
        """Track a call made outside the invite path (Call Control legs), optionally in place of another."""
        if replaces is not None and replaces in self._calls:
            self._calls[self._calls.index(replaces)] = call
        elif call not in self._calls:
            self._calls.append(call)

    def call_ended(self, call: Call) -> None:
        if call in self._calls:
            self._calls.remove(call)
        for leg in call.legs():
            self._records.add(leg.record)

    # --- keepalive --------------------------------------------------------------------

    async def _ping_loop(self) -> None:
        """Server pings and silent-client drops, in this one task (no task per ping).

        Each session is pinged ``ping_interval`` after its last ping, so pings stay spread out as
        the logins were (all sessions pinged on one tick would queue 10,000 sends ahead of every
        login frame for a second or more). A socket whose write buffer is still full skips its ping:
        it is slow or gone, and the silence check drops it.
        """
        tick = min(1.0, self.ping_interval / 4, self.ping_timeout / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            due: list[tuple[Session, ServerConnection]] = []
            for sess in list(self._sessions.values()):
                ws = sess.ws
                if ws is None:
                    continue
                if now - sess.last_heard > self.ping_timeout:
                    logger.info("dropping silent client %s", sess.login.display)
                    sess.last_heard = now  # one close per timeout, not one per tick while it closes
                    self.spawn(ws.close(4000, "ping timeout"), "close-silent")
                elif now - sess.last_ping >= self.ping_interval - 1e-3:
                    sess.last_ping = now
                    due.append((sess, ws))
            for sess, ws in due:
                try:
                    if ws.transport.get_write_buffer_size() == 0:
                        await self._send(ws, verto.server_request(next(self._ids), verto.PING, {}, sess.voice_sdk_id))
                except Exception:  # one broken socket must not stop the pings of the others
                    logger.debug("ping to %s failed", sess.login.display, exc_info=True)

    # --- the connection handler ---------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        # Per socket: this handler's task, one small _Conn, and a timer only until the first login
        # (no watchdog task: 10,000 idle clients would mean 10,000 wake-ups a second).
        conn = _Conn(ws, self.throttle.options)
        conn.watchdog = asyncio.get_running_loop().call_later(self.ping_timeout, self._login_watchdog, conn)
        try:
            async for raw in ws:
                conn.last_heard = time.monotonic()
                sess = conn.session
                if sess is not None:
                    sess.last_heard = conn.last_heard
                try:
                    await self._on_frame(ws, raw, conn)
                except Exception:  # one bad frame must never take the server down
                    logger.exception("error handling a frame")
        except ConnectionClosed:
            pass
        finally:
            if conn.watchdog is not None:
                conn.watchdog.cancel()
                conn.watchdog = None
            sess = conn.session
            if sess is not None and sess.ws is ws:
                self._detach(sess)

    def _login_watchdog(self, conn: _Conn) -> None:
        """Drop a socket that stays silent and never logs in past ``ping_timeout`` (a timer, re-armed)."""
        conn.watchdog = None
        if conn.session is not None:
            return
        silent = time.monotonic() - conn.last_heard
        if silent > self.ping_timeout:
            self.spawn(conn.ws.close(4000, "ping timeout"), "close-silent")
        else:
            delay = self.ping_timeout - silent + 1e-3
            conn.watchdog = asyncio.get_running_loop().call_later(delay, self._login_watchdog, conn)

    def _detach(self, sess: Session) -> None:
        sess.ws = None
        self._registry.unregister(sess.sessid)
        for leg in list(sess.legs.values()):
            if leg.call.answered_at is None:
                # A call still ringing cannot wait for a reconnect: end it now.
                sess.legs.pop(leg.call_id, None)
                cause = "ORIGINATOR_CANCEL" if leg is leg.call.a else "NORMAL_TEMPORARY_FAILURE"
                self.spawn(leg.call.end(leg, cause), f"drop-unanswered {leg.call_id}")
        if sess.legs:
            loop = asyncio.get_running_loop()
            sess.expiry = loop.call_later(REATTACH_WINDOW_S, self._expire, sess)
        else:
            self._session_gone(sess)

    def _session_gone(self, sess: Session) -> None:
        if self._sessions.pop(sess.sessid, None) is not None and self.gc_freezer is not None:
            self.gc_freezer.session_gone()

    def _expire(self, sess: Session) -> None:
        sess.expiry = None
        if sess.ws is not None:
            return
        self._session_gone(sess)
        for leg in list(sess.legs.values()):
            self.spawn(leg.call.end(leg, "RECOVERY_ON_TIMER_EXPIRE"), "expire-leg")

    async def _on_frame(self, ws: ServerConnection, raw: str | bytes, conn: _Conn) -> None:
        try:
            msg = parse_message(raw)
        except RemoteProtocolError as exc:
            text = str(exc)
            code = PARSE_ERROR if ("not JSON" in text or "UTF-8" in text) else INVALID_REQUEST
            await self._send(ws, build_error(None, code, text))
            return
        if not isinstance(msg, Request):
            return  # results/errors answering our requests (acks, pongs) need nothing
        if msg.method == "":
            # debug_report_* frames: the JS SDK waits for this before making an offer.
            await self._send(ws, build_result(msg.id, {}))
            return
        sess = conn.session
        if msg.method in (verto.LOGIN, verto.ANONYMOUS_LOGIN):
            try:
                conn.session = await self._login(ws, msg, sess, conn.login_throttle())
                if conn.session is not None and conn.watchdog is not None:
                    conn.watchdog.cancel()  # logged in: the ping loop watches it from now on
                    conn.watchdog = None
            except Refused as exc:
                await self._error(ws, msg, verto.LOGIN_INCORRECT, str(exc))
                await ws.close(CLOSE_CODE, "too many failed logins")
            return
        if msg.method == verto.PING:
            sessid = sess.sessid if sess else None
            await self._reply(ws, msg, {"message": "PONG", "sessid": sessid})
            return
        if sess is None:
            await self._error(ws, msg, verto.AUTH_REQUIRED, "Authentication Required")
            return
        try:
            await self._dispatch(ws, sess, msg)
        except RemoteProtocolError as exc:
            await self._error(ws, msg, verto.INVALID_PARAMS, str(exc))

    async def _reply(self, ws: ServerConnection, msg: Request, result: Any) -> None:
        if msg.id is not None:
            await self._send(ws, build_result(msg.id, result))

    async def _error(self, ws: ServerConnection, msg: Request, code: int, message: str) -> None:
        if msg.id is not None:
            await self._send(ws, build_error(msg.id, code, message))

    # --- login ----------------------------------------------------------------------------

    async def _login(
        self, ws: ServerConnection, msg: Request, current: Session | None, throttle: ConnectionThrottle
    ) -> Session | None:
        """Check a login (throttled: see :mod:`softphone.switch.throttle`); raises Refused to close the socket."""
        p = msg.params
        login: Login | None = None
        message = "Login Incorrect"
        user: Any = None
        if msg.method == verto.LOGIN:
            user, passwd, token = p.get("login"), p.get("passwd"), p.get("login_token")
            password = passwd if isinstance(passwd, str) else ""
            if not (isinstance(user, str) and user and isinstance(passwd, str)):
                user = None
            wait = throttle.wait_for()
            if user is not None:
                wait = max(wait, self.throttle.begin(user))
            try:
                if wait > 0:
                    await asyncio.sleep(wait)
                if user is not None:
                    self.throttle.check(user)  # locked meanwhile (by attempts on other sockets)?
                    login = self.accounts.check_password(user, password)
                elif isinstance(token, str) and token:
                    try:
                        login = self.accounts.token_login(token)
                    except TokenRefused as exc:
                        message = str(exc)
            finally:
                if user is not None:
                    self.throttle.end(user, login is not None)
        if login is None:
            if msg.method == verto.LOGIN:
                throttle.failed(_peer(ws))  # raises Refused at the per-connection limit
            await self._error(ws, msg, verto.LOGIN_INCORRECT, message)
            return current
        throttle.succeeded()
        wanted = p.get("sessid")
        sess: Session | None = None
        reattached: list[str] = []
        if current is not None and current.ws is ws and current.login.slot == login.slot:
            sess = current  # a re-login on the same socket (token refresh)
            sess.login = login
        elif isinstance(wanted, str) and wanted in self._sessions:
            old = self._sessions[wanted]
            if old.login.slot == login.slot and old.ws is None:
                sess = old
                if sess.expiry is not None:
                    sess.expiry.cancel()
                    sess.expiry = None
                sess.ws = ws
                sess.login = login
                sess.pending_attach = list(sess.legs.values())
                reattached = [leg.call_id for leg in sess.pending_attach]
        if sess is None:
            sessid = (
                wanted if isinstance(wanted, str) and wanted and wanted not in self._sessions else str(uuid.uuid4())
            )
            sess = Session(sessid=sessid, login=login, ws=ws, voice_sdk_id=f"VSDK1{uuid.uuid4().hex[:30]}")
            self._sessions[sessid] = sess
            if self.gc_freezer is not None:
                self.gc_freezer.logged_in(len(self._sessions))
        if current is not None and current is not sess:
            self._detach(current)
        sess.last_heard = time.monotonic()
        self._registry.register(login.slot, sess.sessid, sess)
        await self._send(ws, build_result(msg.id, verto.login_result(sess.sessid)))
        await self._send(
            ws,
            verto.server_request(
                next(self._ids), verto.CLIENT_READY, {"reattached_sessions": reattached}, sess.voice_sdk_id
            ),
        )
        return sess

    # --- requests of a logged-in client ------------------------------------------------------

    async def _dispatch(self, ws: ServerConnection, sess: Session, msg: Request) -> None:
        m, p = msg.method, msg.params
        if m == verto.GATEWAY_STATE:
            state = self._state_of(sess)
            result = verto.gateway_result(state, sess.sessid, dc="local", region="local")
            await self._send(ws, build_result(msg.id, result, voice_sdk_id=sess.voice_sdk_id))
            if state == "REGED" and sess.pending_attach:
                legs, sess.pending_attach = sess.pending_attach, []
                for leg in legs:
                    self.spawn(leg.call.reattach(leg), f"reattach {leg.call_id}")
        elif m == verto.INVITE:
            await self._invite(ws, sess, msg)
        elif m in (
            verto.ANSWER,
            verto.ATTACH,
            verto.BYE,
            verto.MODIFY,
            verto.INFO,
            verto.CANDIDATE,
            verto.END_OF_CANDIDATES,
        ):
            await self._in_call(ws, sess, msg)
        elif m in (
            "telnyx_rtc.ringing_ack",
            "telnyx_rtc.attachCalls",
            "telnyx_rtc.disable_push_notification",
            "telnyx_rtc.subscribe",
            "telnyx_rtc.unsubscribe",
            "telnyx_rtc.broadcast",
        ):
            await self._reply(ws, msg, {"method": m, "sessid": sess.sessid})
        elif m == verto.PUNT:
            await self._reply(ws, msg, {"method": m})
            await ws.close()
        else:
            await self._error(ws, msg, verto.METHOD_NOT_FOUND, f"Method not found: {m}")
        _ = p

    async def _invite(self, ws: ServerConnection, sess: Session, msg: Request) -> None:
        dialog = verto.DialogParams.parse(msg.params)
        sdp = msg.params.get("sdp")
        if not isinstance(sdp, str) or not sdp.strip():
            raise RemoteProtocolError("invite without an SDP offer")
        if dialog.call_id in sess.legs:
            await self._error(ws, msg, verto.INVALID_PARAMS, f"call {dialog.call_id} already exists")
            return
        problem = sdp_problem(sdp)
        if problem is not None:  # refuse before "CALL CREATED" (PROTOCOL.md §2.6: -32002 codec error)
            await self._error(ws, msg, verto.CODEC_ERROR, f"Codec error: {problem}")
            return
        await ensure_media()  # normally done already (warm-up at start)
        call = Call(self, sess, dialog, sdp)
        sess.legs[dialog.call_id] = call.a
        self._calls.append(call)
        await self._reply(ws, msg, {"callID": dialog.call_id, "message": "CALL CREATED", "sessid": sess.sessid})
        # No answer yet: routing decides whether the A leg needs media (_route_call).
        self.spawn(self._route_call(call), f"route {dialog.call_id}")

    @staticmethod
    def _answer_a(call: Call) -> None:
        """Start the switch's A-leg answer (an aiortc peer: the costly part of a setup) once."""
        if call.a.local_sdp is None and not call.ended:
            call.start_a_media()

    async def _route_call(self, call: Call) -> None:
        """Route a new call; the A leg gets a media answer only where the route can use one.

        A call that is rejected, busy, unanswered, unroutable or to nobody registered never builds
        a media peer (the answer SDP is sent only with ``telnyx_rtc.answer``/``media``, so clients see
        the same messages). Where media follows, the answer starts at once, overlapping the ringing.
        """
        r: Route = route(call.destination, self.accounts)
        if isinstance(r, NoRoute) and self.park_hook is not None:
            self._answer_a(call)  # Call Control may answer or play early media at any time
            if await self.park_hook(call):
                return
        if isinstance(r, NoRoute) and self.no_route_hook is not None:
            r = await self.no_route_hook(call.destination, call.caller_number) or r
        if isinstance(r, ServiceRoute):
            if r.service.name not in SIGNALING_ONLY_SERVICES:
                self._answer_a(call)
            await call.run_service(r.service)
        elif isinstance(r, SlotRoute):
            target = self._registry.lookup(r.slot)
            if target is None or target.ws is None or self._state_of(target) not in ("REGED", "REGISTER"):
                await call.end(None, "USER_NOT_REGISTERED")
            else:
                self._answer_a(call)
                await call.connect_to(target)
        else:
            await call.end(None, r.cause)

    async def _in_call(self, ws: ServerConnection, sess: Session, msg: Request) -> None:
        m, p = msg.method, msg.params
        call_id = verto.call_id_of(p)
        leg = sess.legs.get(call_id)
        if leg is None:
            if m == verto.BYE:
                await self._reply(ws, msg, {"callID": call_id, "message": "CALL ENDED", "sessid": sess.sessid})
            else:
                await self._error(ws, msg, verto.INVALID_PARAMS, f"no such call: {call_id}")
            return
        call = leg.call
        base = {"callID": call_id, "sessid": sess.sessid}
        if m == verto.ANSWER:
            sdp = p.get("sdp")
            if leg.role != "b" or not isinstance(sdp, str) or not sdp.strip():
                raise RemoteProtocolError("answer without an SDP, or for a call this client placed")
            await self._reply(ws, msg, {**base, "message": "CALL ANSWERED"})
            call.b_answered(sdp)
        elif m == verto.ATTACH:
            sdp = p.get("sdp")
            if not isinstance(sdp, str) or not sdp.strip():
                raise RemoteProtocolError("attach without an SDP answer")
            await self._reply(ws, msg, {**base, "message": "CALL ATTACHED"})
            self.spawn(call.attach_answered(leg, sdp), f"attach {call_id}")
        elif m == verto.BYE:
            bye = verto.ByeParams.parse(p)
            await self._reply(
                ws, msg, {**base, "message": "CALL ENDED", "causeCode": bye.cause_code, "cause": bye.cause}
            )
            self.spawn(call.end(leg, bye.cause, sip_code=bye.sip_code), f"bye {call_id}")
        elif m == verto.MODIFY:
            action = p.get("action")
            if action not in ("hold", "unhold", "toggleHold"):
                await self._error(ws, msg, verto.INVALID_PARAMS, f"unsupported modify action: {action!r}")
                return
            hold_state = call.modify(leg, action)
            await self._reply(ws, msg, {**base, "action": action, "holdState": hold_state})
        elif m == verto.INFO:
            digits = p.get("dtmf")
            await self._reply(ws, msg, {**base, "message": "SENT"})
            if isinstance(digits, str) and digits:
                self.spawn(call.dtmf(leg, digits), f"dtmf {call_id}")
        elif m == verto.CANDIDATE:
            cand = p.get("candidate")
            await self._reply(ws, msg, {"method": m, **base})
            if isinstance(cand, str) and cand:
                mid = p.get("sdpMid")
                idx = p.get("sdpMLineIndex")
                self.spawn(
                    leg.media.add_candidate(
                        cand, mid if isinstance(mid, str) else None, idx if isinstance(idx, int) else None
                    ),
                    f"candidate {call_id}",
                )
        elif m == verto.END_OF_CANDIDATES:
            await self._reply(ws, msg, {"method": m, **base})
            self.spawn(leg.media.end_of_candidates(), f"eoc {call_id}")


class _Conn:
    """One websocket's state in :meth:`SwitchServer._handle` (slots: 10,000 idle sockets add up)."""

    __slots__ = ("last_heard", "options", "session", "throttle", "watchdog", "ws")

    def __init__(self, ws: ServerConnection, options: ThrottleOptions) -> None:
        self.ws = ws
        self.session: Session | None = None
        self.last_heard = time.monotonic()
        self.options = options
        self.throttle: ConnectionThrottle | None = None
        self.watchdog: asyncio.TimerHandle | None = None

    def login_throttle(self) -> ConnectionThrottle:
        """The socket's failed-login counter (made on its first login attempt)."""
        if self.throttle is None:
            self.throttle = ConnectionThrottle(self.options)
        return self.throttle


def _peer(ws: ServerConnection) -> str:
    addr = ws.remote_address
    return f"{addr[0]}:{addr[1]}" if isinstance(addr, tuple) and len(addr) >= 2 else "a client"


async def _bounded(coros: list[Coroutine[Any, Any, Any]], timeout: float, what: str) -> None:
    """Run ``coros`` concurrently for at most ``timeout`` s (failures logged, stragglers cancelled)."""
    if not coros:
        return
    tasks = [asyncio.ensure_future(c) for c in coros]
    done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    if pending:
        logger.warning("%s: %d did not finish in %.1f s", what, len(pending), timeout)
        await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            logger.debug("%s: %s", what, task.exception())
