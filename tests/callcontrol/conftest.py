"""Fixtures for Call Control: a switch with an ``app`` connection, the engine, a webhook catcher."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ccfixtures import WebhookCatcher, app_accounts

from softphone.switch import Switch
from softphone.switch.callcontrol import CallControl
from softphone.switch.ccapps import CallControlOptions


@pytest.fixture
async def catcher() -> AsyncIterator[WebhookCatcher]:
    c = await WebhookCatcher().start()
    yield c
    await c.stop()


@pytest.fixture
async def cc(catcher: WebhookCatcher) -> AsyncIterator[CallControl]:
    opts = CallControlOptions(api_port=0, park_timeout=30.0, outside_ring_s=0.3)
    async with Switch(accounts=app_accounts(catcher.url), port=0, call_control=opts) as sw:
        assert sw.call_control is not None
        yield sw.call_control
