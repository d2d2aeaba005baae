"""A webhook worker whose cancel was swallowed mid-delivery does not run its remaining retries
(each could take POST_TIMEOUT_S): close() returns at once even with tries > 1."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from softphone.switch.callcontrol import webhooks


async def test_close_skips_the_retries_after_a_swallowed_cancel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = 0
    started = asyncio.Event()

    async def swallowing_post(*args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        started.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            if calls > 1:
                raise
            return 503  # the wait_for race as the caller sees it once: a result, no CancelledError
        return 200

    monkeypatch.setattr(webhooks, "post_json", swallowing_post)
    sender = webhooks.WebhookSender(tries=3, backoff_s=0.01)
    sender.send("http://127.0.0.1:9/webhooks", "http://127.0.0.1:9/failover", "call.initiated", {"x": 1})
    await asyncio.wait_for(started.wait(), 2)
    await asyncio.wait_for(sender.close(), 2)  # waited ~30 s per remaining attempt before
    assert calls == 1
