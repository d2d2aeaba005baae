"""Shared pieces of the Call Control tests: accounts with an ``app`` connection, a webhook catcher,
and the ``cc``/``catcher`` fixtures (test modules import them: no conftest.py here, because
tests/switch imports its own ``conftest`` by name).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from softphone.switch import Switch
from softphone.switch.accounts import Accounts, Connection, Credential, default_accounts
from softphone.switch.callcontrol.apps import CallControlOptions
from softphone.switch.callcontrol.engine import CallControl

APP_NUMBER = "+13125550150"
API_KEY = "KEYtest123"
AGENTS = {"agent1": "agent1-secret", "agent2": "agent2-secret", "agent3": "agent3-secret"}


class WebhookCatcher:
    """A tiny HTTP server recording webhook bodies; ``fail_first`` requests get a 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.hits = 0
        self.fail_first = fail_first
        self._server: asyncio.Server | None = None
        self.url = ""
        self._new = asyncio.Event()

    async def start(self) -> WebhookCatcher:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/webhooks"
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            k, _, v = line.decode().partition(":")
            if k.lower() == "content-length":
                length = int(v)
        body = json.loads(await reader.readexactly(length))
        self.hits += 1
        status = 500 if self.hits <= self.fail_first else 200
        if status == 200:
            self.bodies.append(body)
            self._new.set()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    def events(self, event_type: str | None = None) -> list[dict[str, Any]]:
        return [b["data"] for b in self.bodies if event_type is None or b["data"]["event_type"] == event_type]

    async def wait(self, event_type: str, pred: Any = None, timeout: float = 10.0) -> dict[str, Any]:
        async def scan() -> dict[str, Any]:
            while True:
                for e in self.events(event_type):
                    if pred is None or pred(e["payload"]):
                        return e
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(scan(), timeout)


def app_accounts(webhook_url: str) -> Accounts:
    accts = default_accounts()
    accts.connections.append(
        Connection(
            id="app",
            sip_username="appuser",
            password="app-secret",
            numbers=(APP_NUMBER,),
            webhook_url=webhook_url,
            credentials=tuple(Credential(u, p, "app") for u, p in AGENTS.items()),
            api_key=API_KEY,
        )
    )
    return accts


@pytest.fixture
async def catcher() -> AsyncIterator[WebhookCatcher]:
    c = await WebhookCatcher().start()
    yield c
    await c.stop()


@pytest.fixture
async def cc(catcher: WebhookCatcher, tmp_path: Path) -> AsyncIterator[CallControl]:
    opts = CallControlOptions(api_port=0, park_timeout=30.0, outside_ring_s=0.3, data_dir=tmp_path / "switch-data")
    async with Switch(accounts=app_accounts(catcher.url), port=0, call_control=opts) as sw:
        assert sw.call_control is not None
        yield sw.call_control
