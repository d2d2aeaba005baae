"""A scripted WebRTC phone for Call Control tests: raw telnyx_rtc over websockets + a MediaPeer.

Each call sends a steady tone (``tone_hz``) and keeps what it hears in a BufferSink, so a
test can check audio across a bridge with ``heard_hz(call)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from softphone.media.dsp import dominant_frequency
from softphone.media.peer import MediaPeer, PeerOptions
from softphone.media.sinks import BufferSink
from softphone.media.sources import ToneSource


@dataclass(eq=False)
class PhoneCall:
    call_id: str
    peer: MediaPeer
    sink: BufferSink
    direction: str
    state: str = "new"
    params: dict[str, Any] = field(default_factory=dict)
    """The server's invite (inbound) or the latest progress params (outbound)."""
    methods: list[str] = field(default_factory=list)
    bye: dict[str, Any] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class Phone:
    """One logged-in client."""

    def __init__(self, url: str, user: str, password: str, tone_hz: float = 0.0) -> None:
        self.url, self.user, self.password, self.tone_hz = url, user, password, tone_hz
        self.ws: ClientConnection | None = None
        self.sessid = ""
        self.calls: dict[str, PhoneCall] = {}
        self.incoming: asyncio.Queue[PhoneCall] = asyncio.Queue()
        self._results: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Phone:
        self.ws = await connect(self.url)
        self._reader = asyncio.create_task(self._read())
        res = await self.request(
            "login", {"login": self.user, "passwd": self.password, "userVariables": {}, "loginParams": {}}
        )
        self.sessid = res["sessid"]
        await self.request("telnyx_rtc.gatewayState", {})
        return self

    async def __aexit__(self, *exc: object) -> None:
        for call in self.calls.values():
            with contextlib.suppress(Exception):
                await call.peer.close()
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def request(self, method: str, params: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        assert self.ws is not None
        rid = f"{self.user}-{next(self._ids)}"
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._results[rid] = fut
        if self.sessid:
            params = {"sessid": self.sessid, **params}
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": params}))
        msg = await asyncio.wait_for(fut, timeout)
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        result: dict[str, Any] = msg.get("result", {})
        return result

    async def _read(self) -> None:
        assert self.ws is not None
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                msg = json.loads(raw)
                if "method" not in msg:
                    fut = self._results.pop(str(msg.get("id")), None)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    continue
                method, p = msg["method"], msg.get("params", {})
                if "id" in msg:
                    await self.ws.send(json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": {"method": method}}))
                await self._on_request(method, p)

    async def _on_request(self, method: str, p: dict[str, Any]) -> None:
        cid = p.get("callID") or p.get("dialogParams", {}).get("callID", "")
        if method == "telnyx_rtc.invite":
            call = self._new_call(cid, "inbound")
            call.params = p
            call.state = "ringing"
            await self.incoming.put(call)
            return
        call = self.calls.get(cid)
        if call is None:
            return
        call.methods.append(method)
        if method == "telnyx_rtc.ringing":
            call.state = "ringing"
            call.params = p
        elif method == "telnyx_rtc.media":
            await call.peer.set_answer(p["sdp"])
            call.state = "early"
        elif method == "telnyx_rtc.answer":
            if p.get("sdp"):
                await call.peer.set_answer(p["sdp"])
            call.state = "active"
        elif method == "telnyx_rtc.bye":
            call.state = "hangup"
            call.bye = p
        call.changed.set()

    def _new_call(self, call_id: str, direction: str) -> PhoneCall:
        sink = BufferSink(seconds=20)
        src = ToneSource(self.tone_hz, 0.3) if self.tone_hz else None
        peer = MediaPeer(PeerOptions.loopback(), source=src, sink=sink, name=f"{self.user}:{call_id[:6]}")
        call = PhoneCall(call_id, peer, sink, direction)
        self.calls[call_id] = call
        return call

    async def dial(self, dest: str, **dialog: Any) -> PhoneCall:
        call = self._new_call(str(uuid.uuid4()), "outbound")
        sdp = await call.peer.create_offer()
        params = {
            "sdp": sdp,
            "dialogParams": {
                "callID": call.call_id,
                "destination_number": dest,
                "caller_id_name": self.user,
                "caller_id_number": "",
                "audio": True,
                "video": False,
                **dialog,
            },
        }
        await self.request("telnyx_rtc.invite", params)
        return call

    async def next_incoming(self, timeout: float = 10.0) -> PhoneCall:
        return await asyncio.wait_for(self.incoming.get(), timeout)

    async def answer(self, call: PhoneCall) -> None:
        sdp = await call.peer.accept_offer(call.params["sdp"])
        await self.request("telnyx_rtc.answer", {"sdp": sdp, "dialogParams": {"callID": call.call_id, "audio": True}})
        call.state = "active"

    async def dtmf(self, call: PhoneCall, digits: str) -> None:
        for d in digits:
            await self.request("telnyx_rtc.info", {"dtmf": d, "dialogParams": {"callID": call.call_id}})
            await asyncio.sleep(0.12)

    async def hangup(self, call: PhoneCall) -> None:
        await self.request(
            "telnyx_rtc.bye",
            {"cause": "NORMAL_CLEARING", "causeCode": 16, "dialogParams": {"callID": call.call_id}},
        )
        call.state = "hangup"

    async def wait_state(self, call: PhoneCall, state: str, timeout: float = 10.0) -> None:
        async def loop() -> None:
            while call.state != state:
                call.changed.clear()
                await call.changed.wait()

        await asyncio.wait_for(loop(), timeout)


def heard_hz(call: PhoneCall, seconds: float = 1.0) -> float:
    """The dominant frequency of the last ``seconds`` this call heard."""
    return dominant_frequency(call.sink.samples(seconds))


async def wait_hz(
    call: PhoneCall, hz: float, *, tol: float = 15.0, timeout: float = 8.0, seconds: float = 0.6
) -> float:
    """Wait until the call hears ``hz`` (within ``tol``); returns the measured frequency."""
    deadline = asyncio.get_running_loop().time() + timeout
    got = 0.0
    while asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        got = heard_hz(call, seconds)
        if abs(got - hz) <= tol:
            return got
    raise AssertionError(f"{call.call_id[:8]} heard {got:.0f} Hz, wanted {hz:.0f} Hz")


async def api(base: str, method: str, path: str, body: dict[str, Any] | None = None, key: str = "") -> tuple[int, Any]:
    """One HTTP request to the commands API; ``(status, decoded JSON)``."""
    host_port = base.split("//", 1)[1]
    host, port = host_port.split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    data = json.dumps(body or {}).encode()
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    writer.write(
        f"{method} {path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode()
        + data
    )
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10.0)
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    return status, json.loads(payload) if payload else None
