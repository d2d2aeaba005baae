"""The websocket side of :class:`~softphone.client.client.Client`: one socket, reconnects, session ticking.

A :class:`Connection` owns the socket around a sans-I/O :class:`VertoSession`: its
connection task opens the socket, reads frames into the session (never awaiting media
work) and, on loss, reconnects with backoff (1 s doubling to 30 s, ±25 % jitter,
PROTOCOL.md §7.2) to ``?voice_sdk_id=`` with the same ``sessid``. Its timer task drives
``session.tick()`` for request timeouts, gateway retries and keepalive (§1.5-1.6).

Send before dispatch, through one writer (websockets ``asyncio/connection.py`` ``data_received``):
after feeding the session, what it queued goes to the connection's single writer task (a queue
consumed in order) and only once those frames are written are the session's events dispatched,
so no event handler (a UI redraw included) can delay an acknowledgement.

The transport is a seam: ``connect(url)`` returns any :class:`Transport` (``send``/``recv``/
``close``/``abort``); the default opens a websocket with the ``websockets`` library, and unit
tests pass an in-memory duplex. Third-party exceptions (``websockets.*``, ``OSError``) are
translated once, in :func:`map_transport_errors`, into :class:`TransportError` (opening) and
:class:`ConnectionLost` (an open transport failing); they never leave this module.

It knows nothing about calls or client events: the owner passes ``emit`` (socket/client
events), ``process_events`` (dispatch what the session queued) and ``spawn`` (a tracked
task), and tells it about login results with :meth:`ready` and :meth:`fail`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random as _random
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from softphone.errors import ConnectionLost, SoftphoneError, TransportError
from softphone.log import redact
from softphone.protocol.session import VertoSession
from softphone.protocol.states import ClientState

__all__ = [
    "BACKOFF_JITTER",
    "BACKOFF_MAX",
    "BACKOFF_START",
    "ConnectFn",
    "Connection",
    "Transport",
    "backoff_delay",
    "frame_for_log",
    "map_transport_errors",
    "should_retry",
    "websocket_connector",
]

logger = logging.getLogger("softphone.client.client")

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
BACKOFF_JITTER = 0.25

Emit = Callable[[str, dict[str, Any]], None]
Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


class Transport(Protocol):
    """A message duplex: what :class:`Connection` needs from a websocket.

    ``send``, ``recv`` and ``close`` have the websockets ``ClientConnection`` shapes; ``recv``
    returns one whole frame and, once the transport is closed, raises :class:`ConnectionLost`.
    ``abort`` drops it without a closing handshake (tests simulate a network loss with it);
    ``close_code`` is the close code once closed (``None`` while open or unknown).
    """

    async def send(self, text: str, /) -> None: ...

    async def recv(self) -> str | bytes: ...

    async def close(self) -> None: ...

    def abort(self) -> None: ...

    @property
    def close_code(self) -> int | None: ...


#: Opens a transport to a URL (``ws://`` or ``wss://``); raises :class:`TransportError` if it cannot.
ConnectFn = Callable[[str], Awaitable[Transport]]


@contextlib.contextmanager
def map_transport_errors(opening: str | None = None) -> Iterator[None]:
    """The one place third-party transport exceptions become ours (httpx ``map_httpcore_exceptions``).

    ``OSError`` (``TimeoutError`` included) and any ``websockets`` exception become
    :class:`TransportError` while ``opening`` a URL, :class:`ConnectionLost` on an open transport,
    raised ``from`` the original. Our own errors and everything else pass through unchanged.
    """
    try:
        yield
    except SoftphoneError:
        raise
    except Exception as exc:
        from websockets.exceptions import WebSocketException

        if not isinstance(exc, OSError | WebSocketException):
            raise
        if opening is not None:
            raise TransportError(f"cannot connect to {opening}: {exc}") from exc
        raise ConnectionLost(str(exc) or type(exc).__name__) from exc


def should_retry(exc: BaseException) -> bool:
    """Whether the connection ``exc`` ended is worth reopening: a pure function of the exception.

    Transport trouble (:class:`TransportError`, :class:`ConnectionLost`: refused, reset, closed,
    timed out) is retried; a refused login (:class:`~softphone.errors.LoginFailed`), any other
    error and a cancellation are not. Policy (reconnect off, closing, punted, never ready) is the
    caller's: see :meth:`Connection.will_reconnect`.
    """
    return isinstance(exc, TransportError)


class _WebsocketTransport:
    """A websockets ``ClientConnection`` as a :class:`Transport` (exceptions are mapped by the caller)."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws

    async def send(self, text: str, /) -> None:
        await self._ws.send(text)

    async def recv(self) -> str | bytes:
        message: str | bytes = await self._ws.recv()
        return message

    async def close(self) -> None:
        await self._ws.close()

    def abort(self) -> None:
        self._ws.transport.abort()

    @property
    def close_code(self) -> int | None:
        code: int | None = self._ws.close_code
        return code


def websocket_connector(*, insecure: bool = False, open_timeout: float = 10.0) -> ConnectFn:
    """The default :data:`ConnectFn`: a websocket opened with the ``websockets`` library.

    ``insecure`` skips TLS verification for ``wss://``; frames up to 4 MiB; websocket pings every 20 s.
    """

    async def connect(url: str) -> Transport:
        from websockets.asyncio.client import connect as ws_connect

        ctx: ssl.SSLContext | None = None
        if urlsplit(url).scheme == "wss":
            ctx = ssl.create_default_context()
            if insecure:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
        ws = await ws_connect(url, ssl=ctx, open_timeout=open_timeout, max_size=2**22,
                              ping_interval=20, ping_timeout=20, compression=None)
        return _WebsocketTransport(ws)

    return connect


def backoff_delay(attempt: int, rand: Callable[[], float] = _random.random) -> float:
    """Delay before reconnect ``attempt`` (1-based): 1 s doubling to 30 s, ±25 % jitter."""
    base = min(BACKOFF_MAX, BACKOFF_START * 2 ** max(0, attempt - 1))
    return float(base * (1.0 + BACKOFF_JITTER * (2.0 * rand() - 1.0)))


def frame_for_log(text: str) -> str:
    """A frame safe to log: login frames reduced to their method, secrets redacted."""
    if '"login"' in text or "login_token" in text or "passwd" in text:
        return "<login frame, not logged>"
    return redact(text)


@dataclass
class _Mark:
    """A writer queue item: resolve ``done`` once everything queued before it was written (or closed)."""

    done: asyncio.Future[None]
    close: bool = False


def _resolve(mark: _Mark) -> None:
    if not mark.done.done():
        mark.done.set_result(None)


async def close_quietly(transport: Transport) -> None:
    """Close ``transport``, ignoring that it is already gone."""
    with contextlib.suppress(TransportError), map_transport_errors():
        await transport.close()


@dataclass
class _Writer:
    """The one writer of a transport: a single task writes queued frames in order."""

    transport: Transport
    queue: asyncio.Queue[str | _Mark] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run(), name="softphone-writer")

    def write(self, text: str) -> None:
        self.queue.put_nowait(text)

    def mark(self, *, close: bool = False) -> asyncio.Future[None]:
        """A future resolved once the frames queued so far are written (and, with ``close``, the transport closed)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait(_Mark(done, close))
        return done

    async def _run(self) -> None:
        item: str | _Mark | None = None
        try:
            while True:
                item = await self.queue.get()
                if isinstance(item, _Mark):
                    if item.close:
                        await close_quietly(self.transport)
                    _resolve(item)
                    continue
                try:
                    with map_transport_errors():
                        await self.transport.send(item)
                except TransportError as exc:
                    logger.info("send failed: %s", exc)
        finally:
            if isinstance(item, _Mark):
                _resolve(item)
            self._release()

    def _release(self) -> None:
        """Nothing waits forever on a writer that stopped: resolve every pending mark."""
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if isinstance(item, _Mark):
                _resolve(item)

    async def stop(self) -> None:
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._release()


class Connection:
    """The socket, reconnect loop and session timer of one client.

    ``connect`` opens the transport: ``connect(url) -> Transport`` (see :data:`ConnectFn`);
    by default :func:`websocket_connector` with ``insecure`` and ``connect_timeout``. Unit tests
    pass an in-memory duplex's connect (``tests/unit/support/duplex.py``); whatever it raises
    that is not already ours is mapped by :func:`map_transport_errors`.

    ``emit`` reports socket/client events by name, ``process_events`` dispatches what the
    session queued, ``spawn`` starts a tracked task; the owner tells it about login results
    with :meth:`ready` and :meth:`fail`.
    """

    def __init__(
        self,
        session: VertoSession,
        url: str,
        *,
        emit: Emit,
        process_events: Callable[[], None],
        spawn: Spawn,
        insecure: bool = False,
        connect_timeout: float = 10.0,
        reconnect: bool = True,
        max_reconnect_attempts: int = 0,
        random: Callable[[], float] = _random.random,
        connect: ConnectFn | None = None,
    ) -> None:
        self.session = session
        self.url = url
        self.insecure = insecure
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect
        self.max_reconnect_attempts = max_reconnect_attempts
        self._emit = emit
        self._process_events = process_events
        self._spawn = spawn
        self._random = random
        self._connect: ConnectFn = connect or websocket_connector(insecure=insecure, open_timeout=connect_timeout)
        #: The open transport, or ``None`` between connections.
        self.ws: Transport | None = None
        self._writer: _Writer | None = None
        self.closing = False
        self.stop_error: SoftphoneError | None = None
        self.was_ready = False
        self.attempt = 0
        self._conn_task: asyncio.Task[None] | None = None
        self._timer_task: asyncio.Task[None] | None = None
        self._first_result: asyncio.Future[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while the connection task runs (connected, reconnecting or waiting for login)."""
        return self._conn_task is not None and not self._conn_task.done()

    async def start(self) -> None:
        """Start the connection and timer tasks; return after the first login result (or raise it)."""
        self.closing = False
        loop = asyncio.get_running_loop()
        self._first_result = loop.create_future()
        self._conn_task = loop.create_task(self._run(), name="softphone-connection")
        if self._timer_task is None or self._timer_task.done():
            self._timer_task = loop.create_task(self._timer(), name="softphone-timer")
        try:
            await self._first_result
        except BaseException:
            await self.stop()
            if self.session.state not in (ClientState.DISCONNECTED, ClientState.CLOSED):
                self.session.connection_lost(will_reconnect=False)  # the first login failed: not reconnecting
                self._process_events()
            raise

    async def stop(self) -> None:
        """Stop reconnecting and cancel the connection and timer tasks."""
        self.closing = True
        for task in (self._conn_task, self._timer_task):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def close_socket_and_wait(self, timeout: float = 2.0) -> None:
        """Stop reconnecting and close the socket after the frames already queued (at most ``timeout`` s)."""
        self.closing = True
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer.mark(close=True)), timeout)

    def close_socket(self) -> None:
        """Close the socket once the frames already queued are written (the loop then reconnects unless told not to)."""
        writer = self._writer
        if writer is not None:
            writer.mark(close=True)

    def kill_transport(self) -> None:
        """Abort the socket without a closing handshake (tests: simulate a network loss)."""
        ws = self.ws
        if ws is not None:
            ws.abort()

    # -- login results (the owner reports them from the session's events) ----------------------------
    def ready(self) -> None:
        """The session is ready: reset the backoff, and ``start()`` returns."""
        self.attempt = 0
        self.was_ready = True
        self.resolve_first(None)

    def fail(self, err: SoftphoneError) -> None:
        """A fatal login error: no more reconnects, ``start()`` raises ``err``, the socket closes."""
        self.stop_error = err
        self.resolve_first(err)
        self.close_socket()

    def resolve_first(self, exc: BaseException | None) -> None:
        fut = self._first_result
        if fut is not None and not fut.done():
            if exc is None:
                fut.set_result(None)
            else:
                fut.set_exception(exc)

    # -- the socket ------------------------------------------------------------------------------
    def ws_url(self) -> str:
        """The URL to open: the configured one, with ``voice_sdk_id`` once the server gave one."""
        sdk_id = self.session.voice_sdk_id
        if not sdk_id:
            return self.url
        parts = urlsplit(self.url)
        query = [(k, val) for k, val in parse_qsl(parts.query) if k != "voice_sdk_id"]
        query.append(("voice_sdk_id", sdk_id))
        return urlunsplit(parts._replace(query=urlencode(query)))

    async def _open(self) -> Transport:
        url = self.ws_url()
        with map_transport_errors(opening=self.url):
            return await self._connect(url)

    async def _run(self) -> None:
        """Connection loop: open, read, and reconnect until closed, punted or login failed."""
        session = self.session
        while not self.closing:
            self._emit("socket.connecting", {"url": redact(self.ws_url())})
            if session.state in (ClientState.DISCONNECTED, ClientState.RECONNECTING):
                session.connecting()
                self._process_events()
            try:
                transport = await self._open()
            except TransportError as exc:
                self._emit("socket.error", {"message": str(exc)})
                session.connection_lost(will_reconnect=self.will_reconnect(exc))
                self._process_events()
                if not self.was_ready:
                    self.resolve_first(exc)
                    return
                if not await self._backoff():
                    return
                continue
            lost = await self._serve(transport)
            will = self.will_reconnect(lost)
            session.connection_lost(will_reconnect=will)
            self._process_events()
            if not self.was_ready:
                self.resolve_first(self.stop_error or ConnectionLost("connection closed before login completed"))
                return
            if not will:
                return
            if not await self._backoff():
                return

    async def _serve(self, transport: Transport) -> BaseException:
        """Run one open transport with its writer until it closes; return why it ended."""
        writer = _Writer(transport)
        writer.start()
        self.ws, self._writer = transport, writer
        try:
            self._emit("socket.open", {})
            self.session.data_to_send()  # anything queued while offline is stale (JS drops it too)
            self.session.connection_made()
            await self._pump_written()
            return await self._read(transport)
        finally:
            self.ws = self._writer = None
            await writer.stop()
            if transport.close_code is None:  # cancelled (a failed first login) before the close went out
                self._spawn(close_quietly(transport), "ws-close")

    def will_reconnect(self, exc: BaseException) -> bool:
        """Reopen after ``exc``? :func:`should_retry` of the cause, within this connection's policy.

        The cause is a fatal error reported with :meth:`fail` if there was one, else ``exc``. The
        policy: reconnecting is on, we are not closing, the server did not punt us, and the first
        login succeeded (before it, a failure is reported, not retried).
        """
        return self.should_reconnect() and self.was_ready and should_retry(self.stop_error or exc)

    def should_reconnect(self) -> bool:
        return self.reconnect and not self.closing and not self.session.punted and self.stop_error is None

    async def _backoff(self) -> bool:
        self.attempt += 1
        if self.max_reconnect_attempts and self.attempt > self.max_reconnect_attempts:
            self._emit("client.error", {"code": 45003, "message": "reconnection attempts exhausted"})
            self.session.close()
            self._process_events()
            return False
        delay = backoff_delay(self.attempt, self._random)
        self._emit("socket.reconnecting", {"attempt": self.attempt, "delay": round(delay, 3)})
        logger.info("reconnecting in %.1f s (attempt %d)", delay, self.attempt)
        await asyncio.sleep(delay)
        return not self.closing

    async def _read(self, transport: Transport) -> ConnectionLost:
        """Feed frames to the session until the transport closes; return the loss."""
        while True:
            try:
                with map_transport_errors():
                    message = await transport.recv()
            except ConnectionLost as exc:
                logger.info("socket closed: %s", exc)
                self._emit("socket.closed", {"code": transport.close_code, "reason": ""})
                return exc
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("<- %s", frame_for_log(message if isinstance(message, str) else "<binary>"))
            self.session.receive_text(message)
            await self._pump_written()

    def _flush(self) -> asyncio.Future[None] | None:
        """Hand what the session queued to the writer, in order; a future resolved once written."""
        frames = self.session.data_to_send()
        if not frames:
            return None
        writer = self._writer
        if writer is None:
            logger.debug("dropping %d frame(s): not connected", len(frames))
            return None
        for text in frames:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("-> %s", frame_for_log(text))
            writer.write(text)
        return writer.mark()

    def pump(self) -> None:
        """Send what the session queued, then dispatch its events, then send what the handlers queued.

        Never awaits (intents call it): the frames are queued to the one writer before any
        handler runs, so they go out ahead of anything a handler does.
        """
        self._flush()
        self._process_events()
        self._flush()

    async def _pump_written(self) -> None:
        """:meth:`pump` for frames from the network: dispatch only once the replies are written."""
        written = self._flush()
        if written is not None:
            await written
        self._process_events()
        self._flush()

    async def _timer(self) -> None:
        """Drive request timeouts, gateway retries and keepalive (session.tick)."""
        while self.session.state != ClientState.CLOSED:
            deadline = self.session.next_deadline()
            now = time.monotonic()
            wait = 0.5 if deadline is None else min(0.5, max(0.01, deadline - now))
            await asyncio.sleep(wait)
            self.session.tick(time.monotonic())
            await self._pump_written()
