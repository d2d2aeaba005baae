"""Send before dispatch, through one writer (websockets asyncio/connection.py data_received)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from unit.support.duplex import DuplexEnd, FakeVertoServer

from softphone.client.connection import Connection
from softphone.protocol import events as ev
from softphone.protocol.session import Credentials, VertoSession

URL = "ws://switch.invalid/ws"


class Recorder:
    """A Connection whose event handler records what the server had already received when it ran."""

    def __init__(self) -> None:
        self.server = FakeVertoServer()
        n = iter(range(1, 10**6))
        self.session = VertoSession(new_id=lambda: f"r{next(n)}", clock=lambda: 0.0)
        self.session.login(Credentials(login="alice", password="secret"))
        #: (event, ids of the frames the client had written when the event was dispatched)
        self.seen: list[tuple[ev.Event, list[Any]]] = []
        self.on_event: Any = None
        self.conn = Connection(self.session, URL, emit=lambda name, data: None, process_events=self.process,
                               spawn=lambda coro, name: asyncio.get_running_loop().create_task(coro, name=name),
                               connect=self.server.connect, random=lambda: 0.5)

    @property
    def client_end(self) -> DuplexEnd:
        ws = self.conn.ws
        assert isinstance(ws, DuplexEnd)
        return ws

    def written(self) -> list[Any]:
        ws = self.conn.ws
        return [json.loads(t).get("id") for t in ws.sent] if isinstance(ws, DuplexEnd) else []

    def process(self) -> None:
        for e in self.session.events_received():
            self.seen.append((e, self.written()))
            if isinstance(e, ev.Ready):
                self.conn.ready()
            if self.on_event is not None:
                self.on_event(e)

    async def close(self) -> None:
        await self.conn.close_socket_and_wait(1.0)
        await self.conn.stop()
        await self.server.close()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_the_ack_is_written_before_the_event_handler_runs() -> None:
    rec = Recorder()
    await asyncio.wait_for(rec.conn.start(), 2.0)
    rec.server.push("telnyx_rtc.invite", {
        "callID": "K9", "sdp": "v=0\r\n", "caller_id_name": "Bob", "caller_id_number": "+1555",
        "callee_id_name": "", "callee_id_number": "alice"}, msg_id=5150)
    for _ in range(100):
        if any(isinstance(e, ev.IncomingCall) for e, _ in rec.seen):
            break
        await asyncio.sleep(0.005)
    incoming = [written for e, written in rec.seen if isinstance(e, ev.IncomingCall)]
    assert incoming, "the invite was dispatched"
    assert 5150 in incoming[0], "the invite's ack was already written when the handler saw the call"
    await rec.close()


async def test_a_blocking_handler_does_not_delay_the_reply() -> None:
    """A handler that blocks (a slow UI redraw) runs only after the reply left: it cannot delay it."""
    rec = Recorder()
    at_entry: list[list[Any]] = []

    def on_event(e: ev.Event) -> None:
        if isinstance(e, ev.CallCreated):
            at_entry.append(rec.written())
            time.sleep(0.05)  # blocks the whole loop, as a slow synchronous redraw would

    rec.on_event = on_event
    await asyncio.wait_for(rec.conn.start(), 2.0)
    rec.server.push("telnyx_rtc.invite", {"callID": "K8", "sdp": "v=0\r\n", "callee_id_number": "alice"},
                    msg_id=6001)
    for _ in range(100):
        if at_entry:
            break
        await asyncio.sleep(0.005)
    assert at_entry and 6001 in at_entry[0], "the ack was written before the blocking handler started"
    await rec.close()


async def test_one_writer_task_sends_many_frames_in_order() -> None:
    rec = Recorder()
    await asyncio.wait_for(rec.conn.start(), 2.0)
    await settle()  # frames of the login still in the writer's queue are written before we count
    tasks_before = len(asyncio.all_tasks())
    first = len(rec.client_end.sent)
    for _ in range(50):
        rec.session.ping()
    rec.conn.pump()
    names = [t.get_name() for t in asyncio.all_tasks()]
    assert names.count("softphone-writer") == 1
    assert len(names) == tasks_before, "no task per frame: the one writer consumes a queue"
    await settle()
    pings = [json.loads(t) for t in rec.client_end.sent[first:]]
    # Under a loaded machine the session's own keepalive may add a ping of its own; the 50 queued
    # here must all be there, and everything must go out in the order the session queued it.
    assert {p["method"] for p in pings} == {"telnyx_rtc.ping"} and 50 <= len(pings) <= 51, pings
    ids = [int(p["id"][1:]) for p in pings]
    assert ids == sorted(ids), "in the order the session queued them"
    assert ids[:50] == list(range(ids[0], ids[0] + 50)), "the 50 pings, consecutive, none lost"
    await rec.close()


async def test_frames_a_handler_queues_go_out_after_the_frames_before_it() -> None:
    rec = Recorder()
    await asyncio.wait_for(rec.conn.start(), 2.0)

    def on_event(e: ev.Event) -> None:
        if isinstance(e, ev.IncomingCall):
            rec.session.hangup(e.invite.call_id)  # a handler's intent: its BYE follows the ack

    rec.on_event = on_event
    rec.server.push("telnyx_rtc.invite", {"callID": "K7", "sdp": "v=0\r\n", "callee_id_number": "alice"},
                    msg_id=7001)
    bye = await rec.server.wait_for("telnyx_rtc.bye")
    order = [m.get("id") if "method" not in m else m["method"] for m in rec.server.received]
    assert order.index(7001) < order.index("telnyx_rtc.bye")
    assert bye["params"]["cause"] == "USER_BUSY"
    await rec.close()
