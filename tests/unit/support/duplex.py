"""In-memory transports for unit tests: no socket, no port, no thread.

- :func:`duplex_pair` gives two connected :class:`DuplexEnd` objects. Each has the shape of
  :class:`softphone.client.connection.Transport` (``send``, ``recv``, ``close``, ``abort``,
  ``close_code``), so one end can be handed to a ``Connection``/``Client`` through
  ``connect=`` while the test (or :class:`FakeVertoServer`) drives the other.
  Like the real adapter, a closed end raises :class:`softphone.errors.ConnectionLost`.
- :class:`FakeVertoServer` is a tiny scripted Verto server: its :meth:`~FakeVertoServer.connect`
  is a ``ConnectFn``; it answers ``login`` with a result (then pushes ``clientReady``), answers
  ``telnyx_rtc.gatewayState`` with ``REGED``, records every frame, and lets a test push server
  messages, override replies per method, refuse a connection or drop it.

Import as ``from unit.support.duplex import duplex_pair, FakeVertoServer`` (``tests/`` is on
``sys.path`` because ``tests/conftest.py`` has no package around it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

from softphone.errors import ConnectionLost

__all__ = ["DuplexEnd", "FakeVertoServer", "duplex_pair"]

#: Close codes, as a websocket would report them.
NORMAL_CLOSURE = 1000
ABNORMAL_CLOSURE = 1006


class _Closed:
    """The end-of-stream marker in an inbox."""


_CLOSED = _Closed()


class DuplexEnd:
    """One end of an in-memory duplex. ``sent`` lists every frame this end wrote, in order."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.peer: DuplexEnd | None = None
        self.sent: list[str] = []
        self.close_code: int | None = None
        self._inbox: asyncio.Queue[str | bytes | _Closed] = asyncio.Queue()

    @property
    def closed(self) -> bool:
        return self.close_code is not None

    async def send(self, text: str) -> None:
        if self.closed:
            raise ConnectionLost(f"{self.name or 'duplex'} is closed ({self.close_code})")
        self.sent.append(text)
        assert self.peer is not None
        self.peer._inbox.put_nowait(text)

    def send_nowait(self, text: str | bytes) -> None:
        """Deliver ``text`` to the peer at once (a test pushing a frame, binary ones included)."""
        if self.closed:
            raise ConnectionLost(f"{self.name or 'duplex'} is closed ({self.close_code})")
        self.sent.append(text if isinstance(text, str) else repr(text))
        assert self.peer is not None
        self.peer._inbox.put_nowait(text)

    async def recv(self) -> str | bytes:
        item = await self._inbox.get()
        if isinstance(item, _Closed):
            self._inbox.put_nowait(item)  # every later recv() fails too
            raise ConnectionLost(f"{self.name or 'duplex'} closed ({self.close_code})")
        return item

    def _shut(self, code: int) -> None:
        for end in (self, self.peer):
            if end is not None and end.close_code is None:
                end.close_code = code
                end._inbox.put_nowait(_CLOSED)

    async def close(self) -> None:
        """A clean close: both ends see code 1000 after the frames already in flight."""
        self._shut(NORMAL_CLOSURE)

    def abort(self) -> None:
        """A network loss: both ends see code 1006."""
        self._shut(ABNORMAL_CLOSURE)


def duplex_pair(names: tuple[str, str] = ("client", "server")) -> tuple[DuplexEnd, DuplexEnd]:
    """Two connected ends: what one sends, the other receives, in order."""
    a, b = DuplexEnd(names[0]), DuplexEnd(names[1])
    a.peer, b.peer = b, a
    return a, b


Reply = Callable[[dict[str, Any]], "dict[str, Any] | None"]


class FakeVertoServer:
    """A scripted Verto server for unit tests (pass ``server.connect`` as ``connect=``).

    Defaults: ``login`` -> ``{"message": "logged in", "sessid": sessid}`` then a pushed
    ``telnyx_rtc.clientReady``; ``telnyx_rtc.gatewayState`` -> ``REGED``; ``telnyx_rtc.ping``,
    ``telnyx_rtc.modify`` and any other request -> a ``{"method": ...}`` result (modify adds
    ``holdState``, tracked per call so ``toggleHold`` flips it). ``replies[method]`` overrides
    one: return the reply object (an ``id`` is added), or ``None`` to stay silent. Answers to the
    server's own requests are only recorded.
    """

    def __init__(self, *, sessid: str = "S1", gateway_state: str = "REGED",
                 login_error: tuple[int, str] | None = None) -> None:
        self.sessid = sessid
        self.gateway_state = gateway_state
        self.login_error = login_error
        self.replies: dict[str, Reply] = {}
        #: Every frame received from clients, decoded, across connections.
        self.received: list[dict[str, Any]] = []
        self.urls: list[str] = []
        #: When set, the next connect() raises it instead (then it is cleared).
        self.refuse: BaseException | None = None
        self.end: DuplexEnd | None = None  # the server end of the current connection
        self.connections = 0
        #: Hold state per callID, as the modify results reported it (``toggleHold`` flips it).
        self.held: dict[str, bool] = {}
        self._next_id = 4400
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()

    # -- the ConnectFn ---------------------------------------------------------------------
    async def connect(self, url: str) -> DuplexEnd:
        self.urls.append(url)
        if self.refuse is not None:
            exc, self.refuse = self.refuse, None
            raise exc
        client_end, server_end = duplex_pair()
        self.end = server_end
        self.connections += 1
        task = asyncio.get_running_loop().create_task(self._serve(server_end), name="fake-verto-server")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return client_end

    # -- driving it from a test ------------------------------------------------------------------
    def push(self, method: str, params: dict[str, Any] | None = None, *, msg_id: int | None = None) -> int:
        """Send a server request to the connected client; returns its id."""
        rid = msg_id if msg_id is not None else self._new_id()
        self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        return rid

    def send(self, obj: dict[str, Any] | str) -> None:
        """Send any frame (an object, or raw text) to the connected client."""
        if self.end is None:
            raise ConnectionLost("no client connected")
        self.end.send_nowait(obj if isinstance(obj, str) else json.dumps(obj))

    def drop(self) -> None:
        """Abort the current connection (a network loss)."""
        if self.end is not None:
            self.end.abort()

    def requests(self, method: str) -> list[dict[str, Any]]:
        """The requests received with ``method``."""
        return [m for m in self.received if m.get("method") == method]

    async def wait_for(self, method: str, count: int = 1, timeout: float = 2.0) -> dict[str, Any]:
        """Wait until ``count`` requests with ``method`` arrived; return the last."""
        async def until() -> dict[str, Any]:
            while len(self.requests(method)) < count:
                self._changed.clear()
                await self._changed.wait()
            return self.requests(method)[count - 1]
        return await asyncio.wait_for(until(), timeout)

    async def close(self) -> None:
        """Stop serving (close the connection and end the server tasks)."""
        if self.end is not None:
            await self.end.close()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- serving ---------------------------------------------------------------------------------
    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    async def _serve(self, end: DuplexEnd) -> None:
        with contextlib.suppress(ConnectionLost):
            while True:
                text = await end.recv()
                msg = json.loads(text)
                self.received.append(msg)
                self._changed.set()
                method = msg.get("method")
                if not isinstance(method, str) or "id" not in msg:
                    continue  # an answer to one of our requests
                reply = self._reply(msg)
                if reply is not None:
                    reply.setdefault("jsonrpc", "2.0")
                    reply["id"] = msg["id"]
                    await end.send(json.dumps(reply))
                if method == "login" and reply is not None and "result" in reply:
                    self.push("telnyx_rtc.clientReady", {"reattached_sessions": []})

    def _reply(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        method = msg["method"]
        if method in self.replies:
            return self.replies[method](msg)
        if method == "login":
            if self.login_error is not None:
                code, message = self.login_error
                return {"error": {"code": code, "message": message}}
            return {"result": {"message": "logged in", "sessid": self.sessid}}
        if method == "telnyx_rtc.gatewayState":
            return {"result": {"params": {"state": self.gateway_state}, "sessid": self.sessid}}
        if method == "telnyx_rtc.modify":
            params = msg.get("params", {})
            action = params.get("action")
            call_id = str(params.get("dialogParams", {}).get("callID", ""))
            held = {"hold": True, "unhold": False}.get(action, not self.held.get(call_id, False))
            self.held[call_id] = held
            return {"result": {"method": method, "action": action, "holdState": "held" if held else "active"}}
        return {"result": {"method": method}}
