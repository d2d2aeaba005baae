"""Issue 10, item 10: what the switch keeps after 1,000 clients came and went (raw websocket logins).

Counts the switch's sessions, registrations, calls, tasks and the live Session / Call / socket
objects (after a GC) once every client has left; RSS before and after is printed (``-s``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from pathlib import Path

from conftest import dummy_offer
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection

from softphone.switch import Switch, default_accounts
from softphone.switch.calls import Call
from softphone.switch.server import Session

CLIENTS = 1000
BATCH = 50
CALLERS = 20
"""Clients that also place a call (to a user who is not registered: created, routed, ended)."""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def live(kind: type) -> int:
    return sum(1 for o in gc.get_objects() if isinstance(o, kind))


async def one_client(url: str, user: str, passwd: str, offer: str | None) -> None:
    async with connect(url) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "login",
                                  "params": {"login": user, "passwd": passwd}}))
        while "result" not in json.loads(await ws.recv()):
            pass
        if offer is not None:
            call_id = str(uuid.uuid4())
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "telnyx_rtc.invite", "params": {
                "sdp": offer, "dialogParams": {"callID": call_id, "destination_number": "alice"}}}))
            while True:  # wait for the switch's bye (alice is not registered)
                frame = json.loads(await ws.recv())
                if frame.get("method") == "telnyx_rtc.bye":
                    break


async def wait_until(pred: object, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if callable(pred) and pred():
            return
        await asyncio.sleep(0.05)


async def test_nothing_kept_after_1000_clients() -> None:
    offer = await dummy_offer()
    users = [("demo", "demo-secret"), ("bob", "bob-secret"), ("gencred1", "gencred1-secret")]
    async with Switch(accounts=default_accounts(), port=0) as sw:
        await one_client(sw.url, "demo", "demo-secret", offer)  # warm up (media import, first call)
        await wait_until(lambda: not sw._calls and not sw._sessions)
        gc.collect()
        # Earlier tests in the same process may have left objects of these types behind: count growth.
        base_live = {kind: live(kind) for kind in (Session, Call, ServerConnection)}
        base_tasks = len(asyncio.all_tasks())
        base_switch_tasks = len(sw._tasks)
        before = rss_mb()
        for start in range(0, CLIENTS, BATCH):
            await asyncio.gather(*(
                one_client(sw.url, *users[i % len(users)], offer if i < CALLERS else None)
                for i in range(start, start + BATCH)
            ))
        await wait_until(lambda: not sw._sessions and not sw._calls and len(sw._tasks) <= base_switch_tasks)
        assert sw._sessions == {}
        assert sw.registrations() == []
        assert sw._calls == [] and sw.active_calls() == []
        assert len(sw._tasks) <= base_switch_tasks, [t.get_name() for t in sw._tasks]
        assert len(sw.throttle) == 0
        await wait_until(lambda: len(asyncio.all_tasks()) <= base_tasks)
        assert len(asyncio.all_tasks()) <= base_tasks, [t.get_name() for t in asyncio.all_tasks()]
        gc.collect()
        grown = {kind.__name__: (n, live(kind)) for kind, n in base_live.items() if live(kind) > n}
        assert not grown, f"live objects (before, after) the 1000 clients: {grown}"
        after = rss_mb()
        print(f"\nRSS after warm-up {before:.1f} MB, after {CLIENTS} clients ({CALLERS} calls) {after:.1f} MB")
        assert len(sw.records) == 2 * (CALLERS + 1) or len(sw.records) >= CALLERS  # records are kept on purpose


def test_in_memory_records_and_webhook_events_are_bounded(monkeypatch: object) -> None:
    import pytest

    from softphone.switch import records
    from softphone.switch.callcontrol import webhooks
    from softphone.switch.records import CallRecord, RecordStore

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.setattr(records, "KEEP_RECORDS", 100)
    monkeypatch.setattr(webhooks, "KEEP_EVENTS", 100)
    store = RecordStore(None)
    for i in range(1000):
        store.add(CallRecord(str(i), "a", "inbound", "s", "demo", "demo", "echo", 0.0))
    assert 100 <= len(store.records) <= 110 and store.records[-1].call_id == "999"
    sender = webhooks.WebhookSender()
    for _ in range(1000):
        sender.send("", "", "call.initiated", {})
    assert 100 <= len(sender.events) <= 110
