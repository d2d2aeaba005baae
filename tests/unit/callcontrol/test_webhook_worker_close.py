"""A webhook worker whose cancel is swallowed mid-delivery still stops, so Switch.stop() cannot hang.

Python 3.11's asyncio.wait_for returns the inner result and drops a cancel that lands as the inner
call completes; post_json runs under wait_for, so a worker could loop back to its queue and wait
forever (seen as a hung `sw.stop()` after undeliverable webhooks in tests/e2e/test_patterns.py).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from softphone.switch.callcontrol import webhooks


async def test_close_stops_a_worker_whose_cancel_was_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    started = asyncio.Event()

    async def swallowing_post(*args: Any, **kwargs: Any) -> int:
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            return 503  # what the wait_for race looks like from the caller: a result, no CancelledError
        return 200

    monkeypatch.setattr(webhooks, "post_json", swallowing_post)
    sender = webhooks.WebhookSender()
    sender.tries = 1
    sender.send("http://127.0.0.1:9/webhooks", "", "call.initiated", {"call_control_id": "v3:x"})
    await asyncio.wait_for(started.wait(), 2)
    await asyncio.wait_for(sender.close(), 2)  # hung forever before the fix
