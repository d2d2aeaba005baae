"""The websocket side of :class:`~softphone.client.client.Client`: one socket, reconnects, session ticking.

A :class:`Connection` owns the socket around a sans-I/O :class:`VertoSession`: its
connection task opens the socket, reads frames into the session (never awaiting media
work) and, on loss, reconnects with backoff (1 s doubling to 30 s, ±25 % jitter,
PROTOCOL.md §7.2) to ``?voice_sdk_id=`` with the same ``sessid``. Its timer task drives
``session.tick()`` for request timeouts, gateway retries and keepalive (§1.5-1.6).
websockets exceptions become :class:`TransportError` here and never leave this module.

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
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from softphone.errors import ConnectionLost, SoftphoneError, TransportError
from softphone.log import redact
from softphone.protocol.session import VertoSession
from softphone.protocol.states import ClientState

__all__ = ["BACKOFF_JITTER", "BACKOFF_MAX", "BACKOFF_START", "Connection", "backoff_delay", "frame_for_log"]

logger = logging.getLogger("softphone.client.client")

BACKOFF_START = 1.0
BACKOFF_MAX = 30.0
BACKOFF_JITTER = 0.25

Emit = Callable[[str, dict[str, Any]], None]
Spawn = Callable[[Coroutine[Any, Any, Any], str], "asyncio.Task[Any]"]


def backoff_delay(attempt: int, rand: Callable[[], float] = _random.random) -> float:
    """Delay before reconnect ``attempt`` (1-based): 1 s doubling to 30 s, ±25 % jitter."""
    base = min(BACKOFF_MAX, BACKOFF_START * 2 ** max(0, attempt - 1))
    return float(base * (1.0 + BACKOFF_JITTER * (2.0 * rand() - 1.0)))


def frame_for_log(text: str) -> str:
    """A frame safe to log: login frames reduced to their method, secrets redacted."""
    if '"login"' in text or "login_token" in text or "passwd" in text:
        return "<login frame, not logged>"
    return redact(text)


class Connection:
    """The socket, reconnect loop and session timer of one client."""

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
        self.ws: Any = None
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
        """Stop reconnecting and close the socket (closing handshake, at most ``timeout`` s)."""
        self.closing = True
        ws = self.ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), timeout)

    def close_socket(self) -> None:
        """Close the socket in a task (the loop then reconnects unless told not to)."""
        ws = self.ws
        if ws is not None:
            self._spawn(ws.close(), "ws-close")

    def kill_transport(self) -> None:
        """Abort the socket without a closing handshake (tests: simulate a network loss)."""
        ws = self.ws
        if ws is not None:
            ws.transport.abort()

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

    def _ssl(self) -> ssl.SSLContext | None:
        if urlsplit(self.url).scheme != "wss":
            return None
        ctx = ssl.create_default_context()
        if self.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    async def _open(self) -> Any:
        from websockets.asyncio.client import connect as ws_connect
        from websockets.exceptions import InvalidHandshake, InvalidURI

        try:
            return await ws_connect(self.ws_url(), ssl=self._ssl(), open_timeout=self.connect_timeout,
                                    max_size=2**22, ping_interval=20, ping_timeout=20, compression=None)
        except (OSError, TimeoutError, InvalidHandshake, InvalidURI) as exc:
            raise TransportError(f"cannot connect to {self.url}: {exc}") from exc

    async def _run(self) -> None:
        """Connection loop: open, read, and reconnect until closed, punted or login failed."""
        session = self.session
        while not self.closing:
            self._emit("socket.connecting", {"url": redact(self.ws_url())})
            if session.state in (ClientState.DISCONNECTED, ClientState.RECONNECTING):
                session.connecting()
                self._process_events()
            try:
                ws = await self._open()
            except TransportError as exc:
                self._emit("socket.error", {"message": str(exc)})
                session.connection_lost(will_reconnect=self.should_reconnect() and self.was_ready)
                self._process_events()
                if not self.was_ready:
                    self.resolve_first(exc)
                    return
                if not await self._backoff():
                    return
                continue
            self.ws = ws
            self._emit("socket.open", {})
            session.data_to_send()  # anything queued while offline is stale (JS drops it too)
            session.connection_made()
            self.pump()
            await self._read(ws)
            self.ws = None
            will = self.should_reconnect() and self.was_ready  # before the first login: no retry
            session.connection_lost(will_reconnect=will)
            self._process_events()
            if not self.was_ready:
                self.resolve_first(self.stop_error or ConnectionLost("connection closed before login completed"))
                return
            if not will:
                return
            if not await self._backoff():
                return

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

    async def _read(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for message in ws:
                if logger.isEnabledFor(logging.DEBUG):
                    logger.debug("<- %s", frame_for_log(message if isinstance(message, str) else "<binary>"))
                self.session.receive_text(message)
                self.pump()
        except ConnectionClosed as exc:
            logger.info("socket closed: %s", exc)
        except OSError as exc:
            logger.info("socket error: %s", exc)
        self._emit("socket.closed", {"code": getattr(ws, "close_code", None), "reason": ""})

    def pump(self) -> None:
        """Dispatch the session's events and send what it queued (never awaits)."""
        self._process_events()
        frames = self.session.data_to_send()
        ws = self.ws
        if not frames:
            return
        if ws is None:
            logger.debug("dropping %d frame(s): not connected", len(frames))
            return
        for text in frames:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug("-> %s", frame_for_log(text))
            self._spawn(self._send(ws, text), "ws-send")

    async def _send(self, ws: Any, text: str) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            await ws.send(text)
        except (ConnectionClosed, OSError) as exc:
            logger.info("send failed: %s", exc)

    async def _timer(self) -> None:
        """Drive request timeouts, gateway retries and keepalive (session.tick)."""
        while self.session.state != ClientState.CLOSED:
            deadline = self.session.next_deadline()
            now = time.monotonic()
            wait = 0.5 if deadline is None else min(0.5, max(0.01, deadline - now))
            await asyncio.sleep(wait)
            self.session.tick(time.monotonic())
            self.pump()
