"""Cheap signaling in the switch (issue 14, "How" item 4), against the real switch over real websockets.

* A call that is rejected, busy, unanswered, to nobody registered or to nowhere builds no media peer
  (counted by :data:`softphone.media.dtls_cert.connections_made`, which every MediaPeer goes through),
  and the client still gets the same messages (CALL CREATED, ringing where it rang, the bye and cause).
* Answers share one DTLS certificate: two calls' answers carry the same ``a=fingerprint``, and real
  aiortc media flows on both (a tone in, its frequency heard back through echo).
* Idle sessions cost no task each once logged in (the login watchdog is a timer until login).

The caller is lean: raw websockets and Verto frames, with a real :class:`MediaPeer` for the media.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from softphone.media import dtls_cert
from softphone.media.dsp import dominant_frequency
from softphone.media.peer import MediaPeer, PeerOptions
from softphone.media.sinks import BufferSink
from softphone.media.sources import ToneSource
from softphone.protocol import verto
from softphone.protocol.jsonrpc import build_request, build_result
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]


class Verto:
    """One logged-in websocket: requests by id, server requests acked and queued by callID."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.sessid = ""
        self.n = 0
        self.replies: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.events: dict[str, asyncio.Queue[tuple[str, dict[str, Any]]]] = {}
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            msg = json.loads(raw)
            if "method" in msg:
                if "id" in msg:
                    await self.ws.send(build_result(msg["id"], {"method": msg["method"]}))
                call_id = msg.get("params", {}).get("callID", "")
                self.events.setdefault(call_id, asyncio.Queue()).put_nowait((msg["method"], msg["params"]))
            else:
                fut = self.replies.pop(str(msg.get("id")), None)
                if fut is not None:
                    fut.set_result(msg)

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        key = f"t{self.n}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.replies[key] = fut
        await self.ws.send(build_request(key, method, params))
        return await asyncio.wait_for(fut, 15)

    async def login(self, user: str, password: str) -> None:
        params = verto.login_params(login=user, passwd=password, login_token=None, sessid=None,
                                    reconnection=False, sdk_version="2.27.10", user_agent="test")
        res = await self.request(verto.LOGIN, params)
        self.sessid = res["result"]["sessid"]

    async def invite(self, dest: str, sdp: str) -> str:
        call_id = str(uuid.uuid4())
        self.events.setdefault(call_id, asyncio.Queue())
        dialog = verto.CallDialog(call_id=call_id, destination=dest, caller_name="t", caller_number="t")
        res = await self.request(verto.INVITE, verto.invite_params(self.sessid, sdp, dialog, "test"))
        assert res["result"]["message"] == "CALL CREATED", res
        return call_id

    async def until(self, call_id: str, method: str) -> tuple[list[str], dict[str, Any]]:
        """Server requests for ``call_id`` up to the first ``method`` (their names, its params)."""
        seen: list[str] = []
        while True:
            m, params = await asyncio.wait_for(self.events[call_id].get(), 20)
            seen.append(m)
            if m == method:
                return seen, params


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0, call_control=False) as sw:
        yield sw


async def _client(sw: Switch, user: str = "demo", password: str = "demo-secret") -> Verto:
    ws = await connect(sw.url, ping_interval=None)
    v = Verto(ws)
    await v.login(user, password)
    return v


async def _offer() -> str:
    peer = MediaPeer(PeerOptions.loopback())
    try:
        return await peer.create_offer()
    finally:
        await peer.close()


def _fingerprint(sdp: str) -> str:
    return next(ln for ln in sdp.splitlines() if ln.startswith("a=fingerprint:sha-256 "))


async def test_calls_that_never_answer_build_no_media_peer(switch: Switch) -> None:
    offer = await _offer()
    caller = await _client(switch)
    try:
        before = dtls_cert.connections_made
        expected = {
            "reject": (["telnyx_rtc.bye"], "CALL_REJECTED"),
            "busy": (["telnyx_rtc.ringing", "telnyx_rtc.bye"], "USER_BUSY"),
            "alice": (["telnyx_rtc.bye"], "USER_NOT_REGISTERED"),  # a registration slot with nobody in it
            "+19995550123": (["telnyx_rtc.bye"], "UNALLOCATED_NUMBER"),  # nowhere
        }
        ids = {dest: await caller.invite(dest, offer) for dest in expected}
        for dest, (messages, cause) in expected.items():
            seen, bye = await caller.until(ids[dest], verto.BYE)
            assert (seen, bye["cause"]) == (messages, cause), dest
        noanswer = await caller.invite("noanswer", offer)
        seen, _ = await caller.until(noanswer, verto.RINGING)
        await caller.request(verto.BYE, verto.bye_params(caller.sessid, verto.CallDialog(call_id=noanswer),
                                                         "USER_BUSY", 17))
        await asyncio.sleep(0.2)
        assert dtls_cert.connections_made == before, "a call that never answers built a media peer"
        assert not switch.active_calls()
        # The counter does count: an echo call builds exactly the one peer of its A leg.
        echo = await caller.invite("echo", offer)
        _, answer = await caller.until(echo, verto.ANSWER)
        assert "a=fingerprint:" in answer["sdp"]
        assert dtls_cert.connections_made == before + 1
    finally:
        await caller.ws.close()


async def test_two_calls_share_one_certificate_and_both_hear_their_tone(switch: Switch) -> None:
    caller = await _client(switch)
    peers: list[MediaPeer] = []
    try:
        answers: list[str] = []
        sinks: list[BufferSink] = []
        for freq in (440.0, 660.0):
            sink = BufferSink()
            peer = MediaPeer(PeerOptions.loopback(), source=ToneSource(freq, 0.3), sink=sink, name=f"t{freq:.0f}")
            peers.append(peer)
            sinks.append(sink)
            call_id = await caller.invite("echo", await peer.create_offer())
            _, params = await caller.until(call_id, verto.ANSWER)
            answers.append(params["sdp"])
            await peer.set_answer(params["sdp"])
        assert _fingerprint(answers[0]) == _fingerprint(answers[1])
        for peer in peers:
            await peer.wait_connected(15)
        for freq, sink in zip((440.0, 660.0), sinks, strict=True):
            heard = None
            for _ in range(100):  # up to 10 s on a busy machine
                await asyncio.sleep(0.1)
                tail = sink.samples(0.5)
                if tail.shape[0] >= 16000 and abs(dominant_frequency(tail) - freq) < 10:
                    heard = tail
                    break
            assert heard is not None, f"{freq} Hz did not come back through echo"
    finally:
        for peer in peers:
            await peer.close()
        await caller.ws.close()


async def test_a_logged_in_socket_costs_no_watchdog_task_and_no_compressor(switch: Switch) -> None:
    clients = [await _client(switch, "alice", "alice-secret") for _ in range(5)]
    # A browser offers permessage-deflate; the switch declines it (its zlib state was ~48 KB per socket).
    browser_like = await connect(switch.url, ping_interval=None, compression="deflate")
    try:
        assert browser_like.response.headers.get("Sec-WebSocket-Extensions") is None
        v = Verto(browser_like)
        await v.login("alice", "alice-secret")
        names = [t.get_name() for t in asyncio.all_tasks()]
        assert not [n for n in names if "watchdog" in n]
        assert len(switch.registrations()) == 6
    finally:
        await browser_like.close()
        for c in clients:
            await c.ws.close()


async def test_a_socket_that_never_logs_in_is_still_dropped() -> None:
    """The login watchdog is a timer now: a silent socket that never logs in is closed after ping_timeout."""
    async with Switch(accounts=default_accounts(), port=0, call_control=False, ping_timeout=1.0) as sw:
        ws = await connect(sw.url, ping_interval=None)
        try:
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 4000
        finally:
            await ws.close()


async def test_the_gc_policy_freezes_idle_sessions_and_calls_still_work() -> None:
    """As `softphone switch serve` runs: idle sessions frozen out of full GC walks, logins, reject and echo as ever."""
    import gc

    from softphone.switch.gc_freeze import IdleFreezer

    try:
        async with Switch(accounts=default_accounts(), port=0, call_control=False) as sw:
            sw.gc_freezer = freezer = IdleFreezer(every=4)
            clients = [await _client(sw, "alice", "alice-secret") for _ in range(8)]
            assert freezer.freezes == 2 and gc.get_freeze_count() > 0
            offer = await _offer()
            call_id = await clients[0].invite("reject", offer)
            _, bye = await clients[0].until(call_id, verto.BYE)
            assert bye["cause"] == "CALL_REJECTED"
            call_id = await clients[1].invite("echo", offer)
            _, answer = await clients[1].until(call_id, verto.ANSWER)
            assert "a=fingerprint:" in answer["sdp"]
            bye_params = verto.bye_params(clients[1].sessid, verto.CallDialog(call_id=call_id), "NORMAL_CLEARING", 16)
            await clients[1].request(verto.BYE, bye_params)  # (a session with a call outlives its socket)
            for c in clients:
                await c.ws.close()
            for _ in range(100):
                if freezer.unfreezes:
                    break
                await asyncio.sleep(0.05)
            assert freezer.unfreezes == 1 and gc.get_freeze_count() == 0  # the 8 are gone: thawed
    finally:
        gc.unfreeze()


async def test_with_media_workers_a_ringing_busy_call_has_no_leg_in_a_worker() -> None:
    """Media workers (as `softphone switch serve` runs by default): a call that never answers stays here, with
    no leg in a worker (no IPC per setup) and no peer; an echo call still goes to a worker."""
    async with Switch(accounts=default_accounts(), port=0, call_control=False, media_workers=1) as sw:
        for _ in range(200):  # the worker process starts in the background
            if [w["alive"] for w in sw.media_workers()] == [True]:
                break
            await asyncio.sleep(0.05)
        caller = await _client(sw)
        try:
            offer = await _offer()
            before = dtls_cert.connections_made
            busy = await caller.invite("busy", offer)
            await caller.until(busy, verto.RINGING)
            assert sum(w["legs"] for w in sw.media_workers()) == 0
            _, bye = await caller.until(busy, verto.BYE)
            assert bye["cause"] == "USER_BUSY" and dtls_cert.connections_made == before
            echo = await caller.invite("echo", offer)
            _, answer = await caller.until(echo, verto.ANSWER)
            assert "a=fingerprint:" in answer["sdp"]
            assert sum(w["legs"] for w in sw.media_workers()) == 1
        finally:
            await caller.ws.close()


async def test_pings_come_from_one_task_spread_as_the_logins_were() -> None:
    """Every session is pinged ping_interval after its last ping, by the pinger itself (no task per ping)."""
    async with Switch(accounts=default_accounts(), port=0, call_control=False, ping_interval=0.6,
                      ping_timeout=30.0) as sw:
        early = [await _client(sw, "alice", "alice-secret") for _ in range(10)]
        await asyncio.sleep(0.3)
        late = [await _client(sw, "demo", "demo-secret") for _ in range(10)]
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            first: dict[int, float] = {}
            ping_tasks = 0
            while len(first) < 20 and loop.time() - started < 10:
                ping_tasks = max(ping_tasks, sum("ping" in t.get_name() and t.get_name() != "switch-pinger"
                                                 for t in asyncio.all_tasks()))
                for i, c in enumerate(early + late):
                    q = c.events.get("")
                    if i not in first and q is not None and not q.empty() and q.get_nowait()[0] == verto.PING:
                        first[i] = loop.time() - started
                await asyncio.sleep(0.02)
            assert len(first) == 20, f"only {len(first)} of 20 sessions were pinged"
            assert ping_tasks == 0
            # The early ten logged in ~0.3 s before the late ten: their first pings come ~0.3 s earlier
            # (one tick for everybody would ping all twenty at once).
            assert min(first[i] for i in range(10, 20)) >= max(first[i] for i in range(10)) + 0.1, first
        finally:
            for c in early + late:
                await c.ws.close()
