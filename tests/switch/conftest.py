"""Raw websocket clients for switch tests (JSON in, JSON out), plus a real Switch on port 0."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from softphone.switch import Switch, default_accounts


class RawClient:
    """A minimal Verto client: sends dicts, buffers every received frame."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []
        self._new = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())
        self.sessid = ""
        self.client_ready: dict[str, Any] = {}
        self.closed = asyncio.Event()
        self._seq = itertools.count()

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                obj = json.loads(raw)
                async with self._new:
                    self.frames.append(obj)
                    self._new.notify_all()
        except Exception:
            pass
        finally:
            self.closed.set()
            async with self._new:
                self._new.notify_all()

    async def send(self, obj: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(obj if isinstance(obj, str | bytes) else json.dumps(obj))

    async def wait_for(self, pred: Any, timeout: float = 5.0) -> dict[str, Any]:
        """The first buffered frame matching ``pred`` (removed from the buffer)."""

        async def scan() -> dict[str, Any]:
            async with self._new:
                while True:
                    for i, f in enumerate(self.frames):
                        if pred(f):
                            return self.frames.pop(i)
                    if self.closed.is_set():
                        raise ConnectionError("closed")
                    await self._new.wait()

        return await asyncio.wait_for(scan(), timeout)

    async def request(self, method: str, params: dict[str, Any], timeout: float = 5.0, **extra: Any) -> dict[str, Any]:
        rid = str(uuid.uuid4())
        await self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params, **extra})
        return await self.wait_for(lambda f: f.get("id") == rid and "method" not in f, timeout)

    async def method(self, method: str, timeout: float = 5.0) -> dict[str, Any]:
        """Wait for a server request with ``method`` and acknowledge it (JS style)."""
        frame = await self.wait_for(lambda f: f.get("method") == method, timeout)
        if "id" in frame:
            await self.send({"jsonrpc": "2.0", "id": frame["id"], "result": {"method": method}})
        return frame

    def pending(self, method: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("method") == method]

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader

    # --- call helpers ----------------------------------------------------------------------

    def dialog(self, call_id: str, dest: str = "", **extra: Any) -> dict[str, Any]:
        return {
            "callID": call_id,
            "destination_number": dest,
            "caller_id_name": "Test",
            "caller_id_number": "",
            "audio": True,
            "video": False,
            "attach": False,
            **extra,
        }

    async def invite(self, dest: str, sdp: str, call_id: str | None = None) -> str:
        cid = call_id or str(uuid.uuid4())
        res = await self.request(
            "telnyx_rtc.invite", {"sessid": self.sessid, "sdp": sdp, "dialogParams": self.dialog(cid, dest)}
        )
        assert res["result"]["message"] == "CALL CREATED", res
        return cid

    async def bye(self, call_id: str, cause: str = "NORMAL_CLEARING", code: int = 16) -> dict[str, Any]:
        return await self.request(
            "telnyx_rtc.bye",
            {"sessid": self.sessid, "cause": cause, "causeCode": code, "dialogParams": {"callID": call_id}},
        )


async def login(
    sw: Switch,
    user: str | None = None,
    passwd: str | None = None,
    *,
    token: str | None = None,
    sessid: str | None = None,
    gateway: bool = True,
) -> RawClient:
    """Connect and log in; raises AssertionError on a login error."""
    ws = await connect(sw.url)
    c = RawClient(ws)
    params: dict[str, Any] = {"userVariables": {}, "loginParams": {}, "User-Agent": {"sdkVersion": "test"}}
    if token is not None:
        params["login_token"] = token
    else:
        params["login"], params["passwd"] = user, passwd
    if sessid:
        params["sessid"] = sessid
        params["reconnection"] = True
    res = await c.request("login", params)
    assert "result" in res, res
    c.sessid = res["result"]["sessid"]
    c.client_ready = await c.method("telnyx_rtc.clientReady")
    if gateway:
        gw = await c.request("telnyx_rtc.gatewayState", {})
        assert gw["result"]["params"]["state"] == "REGED", gw
    return c


@pytest.fixture
async def switch() -> AsyncIterator[Switch]:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        yield sw


_OFFER_CACHE: list[str] = []


async def dummy_offer() -> str:
    """A real browser-like offer SDP (from a throwaway MediaPeer) for signaling-only tests."""
    if not _OFFER_CACHE:
        from softphone.media.peer import MediaPeer, PeerOptions

        peer = MediaPeer(PeerOptions.loopback())
        _OFFER_CACHE.append(await peer.create_offer())
        await peer.close()
    return _OFFER_CACHE[0]
