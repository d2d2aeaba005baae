"""Connection over the transport seam: an in-memory duplex, no socket (tests/unit/support/duplex.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from unit.support.duplex import DuplexEnd, FakeVertoServer, duplex_pair
from websockets.exceptions import ConnectionClosedError, InvalidURI
from websockets.frames import Close

from softphone.client.connection import Connection, map_transport_errors, should_retry
from softphone.errors import (
    CommandError,
    ConnectionLost,
    LocalProtocolError,
    LoginFailed,
    RpcError,
    SoftphoneError,
    TransportError,
)
from softphone.protocol import events as ev
from softphone.protocol.session import Credentials, VertoSession
from softphone.protocol.states import ClientState

URL = "ws://switch.invalid/ws"


class Host:
    """The owner's side of a Connection, as Client plays it: records events, reports login results."""

    def __init__(self, server: FakeVertoServer | None = None, **kw: Any) -> None:
        self.server = server or FakeVertoServer()
        n = iter(range(1, 10**6))
        self.session = VertoSession(new_id=lambda: f"r{next(n)}", clock=lambda: 0.0)
        self.session.login(Credentials(login="alice", password="secret"))
        self.emitted: list[tuple[str, dict[str, Any]]] = []
        self.events: list[ev.Event] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        kw.setdefault("connect", self.server.connect)
        kw.setdefault("random", lambda: 0.5)
        self.conn = Connection(self.session, URL, emit=lambda name, data: self.emitted.append((name, data)),
                               process_events=self.process_events, spawn=self.spawn, **kw)

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.add(task)
        return task

    def process_events(self) -> None:
        for e in self.session.events_received():
            self.events.append(e)
            if isinstance(e, ev.Ready):
                self.conn.ready()
            elif isinstance(e, ev.LoginRejected):
                self.conn.fail(LoginFailed(e.code, e.message, "login"))

    def names(self) -> list[str]:
        return [name for name, _ in self.emitted]

    async def close(self) -> None:
        await self.conn.close_socket_and_wait(1.0)
        await self.conn.stop()
        await self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def until(cond: Any, timeout: float = 2.0) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.005)
    await asyncio.wait_for(poll(), timeout)


# -- login over the duplex ----------------------------------------------------------------------------


async def test_login_over_the_duplex_reaches_ready() -> None:
    host = Host()
    await asyncio.wait_for(host.conn.start(), 2.0)
    assert host.session.state == ClientState.READY
    assert host.session.sessid == "S1"
    assert host.server.urls == [URL]
    login = host.server.requests("login")[0]
    assert login["params"]["login"] == "alice" and login["params"]["passwd"] == "secret"
    assert host.server.requests("telnyx_rtc.gatewayState"), "the core asked for the gateway after clientReady"
    ack = [m for m in host.server.received if m.get("result", {}).get("method") == "telnyx_rtc.clientReady"]
    assert ack, "clientReady was acknowledged"
    assert host.names()[:2] == ["socket.connecting", "socket.open"]
    assert host.conn.ws is not None
    await host.close()
    assert host.conn.ws is None


async def test_refused_login_raises_login_failed_and_does_not_retry() -> None:
    host = Host(FakeVertoServer(login_error=(-32001, "Authentication Required")))
    with pytest.raises(LoginFailed, match="Authentication Required"):
        await asyncio.wait_for(host.conn.start(), 2.0)
    assert host.server.connections == 1
    await until(lambda: host.server.end is not None and host.server.end.closed)  # the socket was closed
    assert host.session.state == ClientState.DISCONNECTED
    await host.close()


async def test_connect_failure_before_login_is_reported_not_retried() -> None:
    host = Host()
    host.server.refuse = ConnectionRefusedError(111, "Connection refused")
    with pytest.raises(TransportError, match=r"cannot connect to ws://switch.invalid/ws: .*refused") as info:
        await asyncio.wait_for(host.conn.start(), 2.0)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)  # mapped with `from`
    assert ("socket.error", {"message": str(info.value)}) in host.emitted
    assert host.server.connections == 0 and len(host.server.urls) == 1
    await host.close()


async def test_a_lost_connection_after_ready_reconnects_with_the_same_sessid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("softphone.client.connection.BACKOFF_START", 0.01)  # 10 ms, not 1 s
    host = Host()
    await asyncio.wait_for(host.conn.start(), 2.0)
    host.server.push("telnyx_rtc.ping", {}, msg_id=77)  # carries no voice_sdk_id: the URL stays
    host.server.drop()
    await until(lambda: host.server.connections == 2 and host.session.state == ClientState.READY, 5.0)
    relogin = host.server.requests("login")[1]
    assert relogin["params"]["sessid"] == "S1" and relogin["params"]["reconnection"] is True
    assert ("socket.closed", {"code": 1006, "reason": ""}) in host.emitted
    assert ("socket.reconnecting", {"attempt": 1, "delay": 0.01}) in host.emitted
    await host.close()


async def test_kill_transport_aborts_without_a_closing_handshake() -> None:
    host = Host(reconnect=False)
    await asyncio.wait_for(host.conn.start(), 2.0)
    server_end = host.server.end
    assert server_end is not None
    host.conn.kill_transport()
    await until(lambda: host.conn.ws is None)
    assert server_end.close_code == 1006
    assert host.session.state == ClientState.DISCONNECTED  # reconnect off: calls end, no retry
    await host.close()


async def test_close_socket_closes_after_queued_frames() -> None:
    host = Host(reconnect=False)
    await asyncio.wait_for(host.conn.start(), 2.0)
    host.session.ping()
    host.conn.pump()
    host.conn.close_socket()
    server_end = host.server.end
    assert server_end is not None
    await until(lambda: server_end.closed)
    assert host.server.requests("telnyx_rtc.ping"), "the frame queued before the close went out first"
    assert server_end.close_code == 1000
    await host.close()


async def test_frames_queued_while_offline_are_dropped() -> None:
    host = Host()
    host.session.ping()
    host.conn.pump()  # no transport yet: nothing to write to, nothing raised
    assert host.session.data_to_send() == []


async def test_a_failed_send_is_logged_and_the_writer_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    host = Host(reconnect=False)
    await asyncio.wait_for(host.conn.start(), 2.0)
    client_end = host.conn.ws
    assert isinstance(client_end, DuplexEnd)
    client_end.close_code = 1001  # this end believes it is closed; the reader has not noticed yet
    with caplog.at_level("INFO", logger="softphone.client.client"):
        host.session.ping()
        host.conn.pump()
        await until(lambda: any("send failed" in r.message for r in caplog.records))
    client_end.close_code = None
    client_end.abort()
    await host.close()


# -- reconnect decision: a pure function of the exception ------------------------------------------------


@pytest.mark.parametrize(("exc", "retry"), [
    (ConnectionLost("reset"), True),
    (TransportError("cannot connect"), True),
    (LoginFailed(-32001, "Authentication Required"), False),
    (RpcError(-32602, "bad params"), False),
    (LocalProtocolError("can't handle hangup in state hangup"), False),
    (CommandError("nope"), False),
    (asyncio.CancelledError(), False),
    (OSError("not mapped yet"), False),
])
def test_should_retry_is_a_function_of_the_exception(exc: BaseException, retry: bool) -> None:
    assert should_retry(exc) is retry


async def test_will_reconnect_prefers_the_fatal_error_over_the_loss() -> None:
    host = Host()
    host.conn.was_ready = True
    assert host.conn.will_reconnect(ConnectionLost("gone"))
    host.conn.stop_error = LoginFailed(-32001, "Authentication Required")
    assert not host.conn.will_reconnect(ConnectionLost("gone"))
    host.conn.stop_error = None
    host.conn.was_ready = False
    assert not host.conn.will_reconnect(ConnectionLost("gone")), "before the first login: report, never retry"


# -- exception mapping, once, at the boundary ------------------------------------------------------------


def test_mapping_while_opening_gives_transport_error_from_the_original() -> None:
    original = InvalidURI("htp://x", "scheme isn't ws or wss")
    with pytest.raises(TransportError) as info, map_transport_errors(opening="htp://x"):
        raise original
    assert not isinstance(info.value, ConnectionLost)
    assert str(info.value).startswith("cannot connect to htp://x: ")
    assert info.value.__cause__ is original


@pytest.mark.parametrize("original", [
    ConnectionClosedError(Close(1011, "boom"), None),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
])
def test_mapping_an_open_transport_gives_connection_lost(original: Exception) -> None:
    with pytest.raises(ConnectionLost) as info, map_transport_errors():
        raise original
    assert info.value.__cause__ is original
    assert str(info.value)


@pytest.mark.parametrize("passing", [ValueError("a bug stays a bug"), ConnectionLost("ours already")])
def test_mapping_lets_other_exceptions_through_unchanged(passing: Exception) -> None:
    with pytest.raises(type(passing)) as info, map_transport_errors():
        raise passing
    assert info.value is passing
    assert isinstance(info.value, SoftphoneError) == isinstance(passing, SoftphoneError)


async def test_a_third_party_error_from_a_custom_transport_is_mapped_on_recv() -> None:
    class Flaky:
        close_code: int | None = None

        def __init__(self) -> None:
            self.inner, self.peer = duplex_pair()

        async def send(self, text: str, /) -> None:
            await self.inner.send(text)

        async def recv(self) -> str | bytes:
            raise ConnectionResetError(104, "Connection reset by peer")

        async def close(self) -> None:
            self.close_code = 1000

        def abort(self) -> None:
            self.close_code = 1006

    async def connect(url: str) -> Flaky:
        return Flaky()

    host = Host(connect=connect)
    with pytest.raises(ConnectionLost, match="before login completed"):
        await asyncio.wait_for(host.conn.start(), 2.0)
    assert ("socket.closed", {"code": None, "reason": ""}) in host.emitted
    await host.close()


# -- the duplex itself ----------------------------------------------------------------------------------


async def test_duplex_delivers_in_order_and_closes_both_ends() -> None:
    a, b = duplex_pair()
    await a.send("one")
    a.send_nowait(b"two")
    assert [await b.recv(), await b.recv()] == ["one", b"two"]
    assert a.sent == ["one", "b'two'"]
    await b.close()
    assert a.close_code == b.close_code == 1000
    for end in (a, b, a):
        with pytest.raises(ConnectionLost):
            await end.recv()
    with pytest.raises(ConnectionLost):
        await a.send("late")


async def test_fake_server_replies_can_be_scripted() -> None:
    server = FakeVertoServer()
    server.replies["telnyx_rtc.invite"] = lambda msg: {"result": {"callID": msg["params"]["dialogParams"]["callID"]}}
    server.replies["telnyx_rtc.info"] = lambda msg: None
    end = await server.connect(URL)
    await end.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "telnyx_rtc.invite",
                               "params": {"dialogParams": {"callID": "K1"}}}))
    await end.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "telnyx_rtc.info", "params": {}}))
    await end.send(json.dumps({"jsonrpc": "2.0", "id": 3, "method": "telnyx_rtc.modify",
                               "params": {"action": "hold", "dialogParams": {"callID": "K1"}}}))
    assert json.loads(await end.recv()) == {"result": {"callID": "K1"}, "jsonrpc": "2.0", "id": 1}
    assert json.loads(await end.recv())["result"]["holdState"] == "held"
    for action, state in (("toggleHold", "active"), ("toggleHold", "held"), ("unhold", "active")):
        await end.send(json.dumps({"jsonrpc": "2.0", "id": 4, "method": "telnyx_rtc.modify",
                                   "params": {"action": action, "dialogParams": {"callID": "K1"}}}))
        assert json.loads(await end.recv())["result"]["holdState"] == state, action
    await server.wait_for("telnyx_rtc.info")
    rid = server.push("telnyx_rtc.bye", {"callID": "K1"})
    assert json.loads(await end.recv())["id"] == rid
    server.drop()
    with pytest.raises(ConnectionLost):
        await end.recv()
    await server.close()
