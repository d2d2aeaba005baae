"""The harness itself works: Chromium loads the official SDK, which logs in to a tiny
test-only websocket server (shared/PROTOCOL.md §10.1) and fires ``telnyx.ready``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from harness import BrowserClient, write_tone_wav
from websockets.asyncio.server import ServerConnection, serve

pytestmark = pytest.mark.conformance


@dataclass
class MiniServer:
    """Answers login, sends clientReady, answers gatewayState with REGED; records frames."""

    received: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    accept: bool = True

    async def handler(self, ws: ServerConnection) -> None:
        self.paths.append(ws.request.path if ws.request else "")
        sessid = str(uuid.uuid4())
        async for text in ws:
            msg = json.loads(text)
            self.received.append(msg)
            method, rid = msg.get("method"), msg.get("id")
            if method == "login":
                if not self.accept:
                    await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid,
                                              "error": {"code": -32001, "message": "Login Incorrect"}}))
                    continue
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid,
                                          "result": {"message": "logged in", "sessid": sessid}}))
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": 4401, "method": "telnyx_rtc.clientReady",
                                          "params": {"reattached_sessions": []}}))
            elif method == "telnyx_rtc.gatewayState":
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid,
                                          "result": {"params": {"state": "REGED"}, "sessid": sessid}}))
            elif rid is not None and method is not None:
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": rid, "result": {"method": method}}))


@pytest.fixture
async def mini_server(unused_tcp_port: int) -> AsyncIterator[tuple[MiniServer, str]]:
    srv = MiniServer()
    async with serve(srv.handler, "127.0.0.1", unused_tcp_port):
        yield srv, f"ws://127.0.0.1:{unused_tcp_port}/ws?scenario=smoke"


async def test_sdk_logs_in_and_fires_ready(mini_server: tuple[MiniServer, str], tmp_path: Path) -> None:
    srv, url = mini_server
    t0 = time.monotonic()
    async with BrowserClient(fake_audio_wav=write_tone_wav(tmp_path / "mic.wav", 1000)) as b:
        launched = time.monotonic() - t0
        await b.connect(url, login="harness-user", password="harness-pass")
        await b.wait_event("telnyx.socket.open", timeout=5)
        await b.wait_event("telnyx.ready", timeout=5)
        ready = time.monotonic() - t0
        print(f"chromium launch+page {launched:.2f}s, +login to telnyx.ready {ready - launched:.2f}s")

        login = srv.received[0]
        assert login["method"] == "login"
        assert login["params"]["login"] == "harness-user"
        assert login["params"]["passwd"] == "harness-pass"
        assert login["params"]["User-Agent"]["sdkVersion"] == "2.27.10"
        assert srv.paths == ["/ws?scenario=smoke"]  # the host option is used as given
        assert [f["method"] for f in b.frames("send")][:2] == ["login", "telnyx_rtc.gatewayState"]
        assert b.frames("recv", "telnyx_rtc.clientReady")

        await b.close_socket()
        await b.wait_event("ws.close", timeout=5)
        await b.wait_event("telnyx.socket.close", timeout=5)
        assert not [e for e in b.events if e.name == "page.error"], b.log_text()
        assert any("SDK version: 2.27.10" in c for c in b.console)


async def test_login_error_reaches_the_page(mini_server: tuple[MiniServer, str]) -> None:
    srv, url = mini_server
    srv.accept = False
    async with BrowserClient() as b:
        await b.connect(url, login_token="not-a-jwt")
        ev = await b.wait_event("telnyx.error", timeout=5)
        assert ev.data["error"]["name"] == "LOGIN_FAILED"
        assert b.frames("recv")[0]["error"]["message"] == "Login Incorrect"
        assert srv.received[0]["params"]["login_token"] == "not-a-jwt"
        await b.disconnect()


def test_write_tone_wav(tmp_path: Path) -> None:
    import wave

    p = write_tone_wav(tmp_path / "t.wav", 440, seconds=0.5, rate=8000)
    with wave.open(str(p)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()) == (1, 2, 8000, 4000)
