"""Pieces of the TeXML tests: a tiny TeXML web server (asyncio, loopback) and a switch with a TeXML app.

:class:`TexmlServer` answers each path with a document (a string, or a function of the request's
parameters) and records every request (method, path, decoded form/query parameters), so a test
sees what the switch posted (``CallSid``, ``Digits``, ``DialCallStatus``...).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from softphone.switch import Switch
from softphone.switch.accounts import Accounts, Connection, Credential, default_accounts
from softphone.switch.callcontrol.apps import CallControlOptions, TexmlApp
from softphone.switch.callcontrol.engine import CallControl

IVR_NUMBER = "+13125550160"
IVR_KEY = "KEYtexml123"
AGENTS = {"agent1": "agent1-secret", "agent2": "agent2-secret"}
PROMPT = "Welcome to the test line. Press one for sales, press two for support."

Doc = str | Callable[[dict[str, str]], str]


@dataclass
class Hit:
    method: str
    path: str
    params: dict[str, str]


@dataclass
class TexmlServer:
    docs: dict[str, Doc] = field(default_factory=dict)
    hits: list[Hit] = field(default_factory=list)
    url: str = ""
    _server: asyncio.Server | None = None
    _new: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> TexmlServer:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method, target, _ = (await reader.readline()).decode().split(" ", 2)
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v)
        body = (await reader.readexactly(length)).decode() if length else ""
        parts = urlsplit(target)
        params = dict(parse_qsl(parts.query if method == "GET" else body, keep_blank_values=True))
        self.hits.append(Hit(method, parts.path, params))
        self._new.set()
        doc = self.docs.get(parts.path)
        if doc is None:
            status, text = 404, "not found"
        else:
            status, text = 200, doc(params) if callable(doc) else doc
        data = text.encode()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/xml\r\nContent-Length: {len(data)}\r\n"
            f"Connection: close\r\n\r\n".encode() + data
        )
        await writer.drain()
        writer.close()

    def requests(self, path: str) -> list[Hit]:
        return [h for h in self.hits if h.path == path]

    async def wait(self, path: str, timeout: float = 15.0, count: int = 1) -> Hit:
        async def scan() -> Hit:
            while True:
                got = self.requests(path)
                if len(got) >= count:
                    return got[count - 1]
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(scan(), timeout)


def texml_accounts() -> Accounts:
    accts = default_accounts()
    accts.connections.append(
        Connection(
            id="ivr",
            sip_username="ivruser",
            password="ivr-secret",
            numbers=(IVR_NUMBER,),
            inbound_format="e164",  # a client dialling the number reaches the TeXML app
            credentials=tuple(Credential(u, p, "ivr") for u, p in AGENTS.items()),
            api_key=IVR_KEY,
        )
    )
    return accts


async def texml_switch(
    tmp_path: Path, server: TexmlServer, *, voice: str = "/voice", fallback: str = "", status: str = "/status",
    **opts: Any,
) -> Any:
    def where(ref: str) -> str:  # "/path" is on the test server unless it is a file (a TeXML Bin)
        return server.url + ref if ref.startswith("/") and not Path(ref).is_file() else ref

    app = TexmlApp(
        "ivr",
        where(voice),
        "POST",
        server.url + status if status else "",
        "POST",
        where(fallback),
    )
    options = CallControlOptions(
        api_port=0, park_timeout=30.0, outside_ring_s=0.3, data_dir=tmp_path / "switch-data",
        texml_apps={"ivr": app}, **opts,
    )
    return Switch(accounts=texml_accounts(), port=0, call_control=options)


@pytest.fixture
async def texml_server() -> AsyncIterator[TexmlServer]:
    server = await TexmlServer().start()
    yield server
    await server.stop()


@pytest.fixture
async def tcc(texml_server: TexmlServer, tmp_path: Path) -> AsyncIterator[CallControl]:
    async with await texml_switch(tmp_path, texml_server) as sw:
        assert sw.call_control is not None
        yield sw.call_control
