"""The official ``telnyx`` SDK pointed at a real local switch: the judge of the Call Control API.

Import the fixtures into a test module (no conftest.py here, see ccfixtures.py)::

    from sdkfixtures import sdk  # noqa: F401
    from sdkfixtures import SdkEnv

    async def test_x(sdk: SdkEnv) -> None:
        res = await sdk.run(sdk.client.calls.dial, connection_id="app", to="agent1", from_="+1...")
        assert res.data is not None and res.data.is_alive          # typed pydantic models
        await sdk.aclient.calls.actions.hangup(res.data.call_control_id)

``sdk.client`` is the sync ``telnyx.Telnyx`` and ``sdk.aclient`` the async ``telnyx.AsyncTelnyx``,
both with the ``app`` connection's API key and ``base_url=<switch API>/v2``, no retries (a test sees
the first answer) and a 10 s timeout. The switch runs in the test's event loop, so a sync SDK
call must not block it: run it with ``await sdk.run(fn, *args, **kwargs)`` (a worker thread).

``sdk.hooks`` is the webhook receiver of the ``app`` connection (a
:class:`ccfixtures.WebhookCatcher` with ``events()``/``wait()``) that also keeps each request's
headers and raw body (``sdk.hooks.raw``), so signatures can be checked with
``sdk.client.webhooks.unwrap(body, headers=headers, key=sdk.public_key)``; after each test that
passed, the fixture checks that every webhook it received was signed by the switch.

:func:`sdk_env` builds the same thing with other accounts or options (an async context manager).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import telnyx
from ccfixtures import AGENTS, API_KEY, APP_NUMBER, WebhookCatcher, app_accounts

from softphone.switch import Switch
from softphone.switch.accounts import Accounts
from softphone.switch.callcontrol.apps import CallControlOptions
from softphone.switch.callcontrol.engine import CallControl

__all__ = ["AGENTS", "API_KEY", "APP_NUMBER", "RawWebhook", "SdkEnv", "SignedCatcher", "sdk", "sdk_env"]

T = TypeVar("T")


@dataclass(frozen=True)
class RawWebhook:
    """One webhook request as received: header names lower-cased, the body exactly as sent."""

    path: str
    headers: dict[str, str]
    body: str
    received_at: float


class SignedCatcher(WebhookCatcher):
    """A :class:`WebhookCatcher` that also keeps the headers and the raw body of every request."""

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__(fail_first)
        self.raw: list[RawWebhook] = []

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request_line = (await reader.readline()).decode("latin-1").split()
        headers: dict[str, str] = {}
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        data = await reader.readexactly(int(headers.get("content-length", "0")))
        self.hits += 1
        status = 500 if self.hits <= self.fail_first else 200
        if status == 200:
            text = data.decode("utf-8")
            path = request_line[1] if len(request_line) > 1 else ""
            self.raw.append(RawWebhook(path, headers, text, asyncio.get_running_loop().time()))
            self.bodies.append(json.loads(text))
            self._new.set()
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode())
        with contextlib.suppress(Exception):
            await writer.drain()
            writer.close()

    def check_signed(self, public_key: str) -> int:
        """Assert that every webhook received so far carries a valid signature by ``public_key`` (the
        switch's); returns how many. The ``sdk`` fixture runs it after each test."""
        from softphone.switch.callcontrol.webhooks import verify_signature

        bad = [r for r in self.raw if not verify_signature(public_key, r.body.encode(), r.headers, tolerance_s=600)]
        assert not bad, f"{len(bad)} of {len(self.raw)} webhooks not signed by the switch, e.g. {bad[0]}"
        return len(self.raw)

    def raw_for(self, event_type: str) -> list[RawWebhook]:
        """The raw requests that carried an event of ``event_type``."""
        return [r for r in self.raw if json.loads(r.body)["data"]["event_type"] == event_type]


@dataclass
class SdkEnv:
    """A running switch with Call Control, its webhook receiver and the SDK clients."""

    switch: Switch
    cc: CallControl
    hooks: SignedCatcher
    client: telnyx.Telnyx
    aclient: telnyx.AsyncTelnyx
    api_key: str = API_KEY
    base_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a sync SDK method in a worker thread (the switch keeps serving meanwhile)."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    @property
    def public_key(self) -> str:
        """The switch's webhook-signing public key (base64, as Telnyx's portal shows it)."""
        key = getattr(self.cc.webhooks, "signing_key", None)
        return key.public_key_b64 if key is not None else ""

    def clients(self, api_key: str) -> tuple[telnyx.Telnyx, telnyx.AsyncTelnyx]:
        """Another pair of SDK clients with another key (closed with the environment)."""
        sync, async_ = make_clients(self.base_url, api_key, self.public_key)
        self.extra.setdefault("clients", []).append((sync, async_))
        return sync, async_


def make_clients(base_url: str, api_key: str, public_key: str = "") -> tuple[telnyx.Telnyx, telnyx.AsyncTelnyx]:
    common: dict[str, Any] = {"api_key": api_key, "base_url": base_url, "max_retries": 0, "timeout": 10.0}
    if public_key:
        common["public_key"] = public_key
    return telnyx.Telnyx(**common), telnyx.AsyncTelnyx(**common)


@contextlib.asynccontextmanager
async def sdk_env(
    tmp_path: Path,
    *,
    accounts: Callable[[str], Accounts] = app_accounts,
    options: CallControlOptions | None = None,
    api_key: str = API_KEY,
) -> AsyncIterator[SdkEnv]:
    """A switch (accounts built from the receiver's URL) with Call Control and SDK clients."""
    hooks = SignedCatcher()
    await hooks.start()
    opts = options or CallControlOptions(
        api_port=0, park_timeout=30.0, outside_ring_s=0.3, data_dir=tmp_path / "switch-data"
    )
    try:
        async with Switch(accounts=accounts(hooks.url), port=0, call_control=opts) as sw:
            assert sw.call_control is not None
            base = f"{sw.call_control.api_url}/v2"
            env = SdkEnv(sw, sw.call_control, hooks, *make_clients(base, api_key), api_key=api_key, base_url=base)
            if env.public_key:
                env.client.public_key = env.aclient.public_key = env.public_key
            try:
                yield env
                env.hooks.check_signed(env.public_key)  # every webhook of the test, once it passed
            finally:
                for sync, async_ in [(env.client, env.aclient), *env.extra.get("clients", [])]:
                    sync.close()
                    await async_.close()
    finally:
        await hooks.stop()


@pytest.fixture
async def sdk(tmp_path: Path) -> AsyncIterator[SdkEnv]:
    async with sdk_env(tmp_path) as env:
        yield env


def _literals(annotation: Any) -> list[str]:
    import typing

    out: list[str] = []
    for arg in typing.get_args(annotation) or ():
        if isinstance(arg, str):
            out.append(arg)
        else:
            out.extend(_literals(arg))
    return out


def webhook_models() -> dict[str, type[telnyx.BaseModel]]:
    """``{event_type: the SDK's <...>WebhookEvent model}`` for every webhook event type the SDK declares."""
    import typing

    import telnyx.types as types

    found: dict[str, type[telnyx.BaseModel]] = {}
    for name in sorted(dir(types)):
        cls = getattr(types, name)
        if not (name.endswith("WebhookEvent") and isinstance(cls, type) and issubclass(cls, telnyx.BaseModel)):
            continue
        data = cls.model_fields.get("data")
        if data is None:
            continue
        for inner in typing.get_args(data.annotation) or (data.annotation,):
            fields = getattr(inner, "model_fields", {})
            if "event_type" in fields:
                for event_type in _literals(fields["event_type"].annotation):
                    found.setdefault(event_type, cls)
    return found


def validate_webhook(body: str | dict[str, Any]) -> telnyx.BaseModel:
    """A webhook body validated strictly by pydantic against the SDK's model of its event type
    (raises ``KeyError`` for an event type the SDK does not know, ``ValidationError`` for a bad shape)."""
    doc = json.loads(body) if isinstance(body, str) else body
    return webhook_models()[doc["data"]["event_type"]].model_validate(doc)
