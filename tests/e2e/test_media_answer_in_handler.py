"""Answering at once (from the ``call.incoming`` handler, ``answer --auto-answer 0``) carries audio both ways.

Issue 9 item 1: the callee's source used to be attached after its media peer was built, so a call
answered inside the handler sent silence for the whole call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from softphone.client.client import AudioConfig, Client, ClientEvent
from softphone.media.dsp import dominant_frequency
from softphone.media.sinks import BufferSink
from softphone.protocol import CallState, Credentials
from softphone.switch import Switch, default_accounts

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]

DEMO = Credentials(login="demo", password="demo-secret")
ALICE = Credentials(login="alice", password="alice-secret")
CALLER_HZ, CALLEE_HZ = 660.0, 880.0


async def wait_for(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def hears(buf: BufferSink, hz: float) -> bool:
    return buf.duration_s >= 0.5 and abs(dominant_frequency(buf.samples(0.5)) - hz) <= 15


@pytest.mark.parametrize("handler_kind", ["async", "sync"])
async def test_answer_inside_the_incoming_handler_carries_audio_both_ways(handler_kind: str) -> None:
    async with Switch(accounts=default_accounts(), port=0) as sw:
        caller = Client(sw.url, DEMO, audio=AudioConfig(backend="tone", tone_hz=CALLER_HZ))
        callee = Client(sw.url, ALICE, audio=AudioConfig(backend="tone", tone_hz=CALLEE_HZ))
        answered: list[str] = []
        tasks: list[asyncio.Task[None]] = []

        async def answer_now(e: ClientEvent) -> None:
            assert e.call_id is not None
            await callee.calls[e.call_id].answer()
            answered.append(e.call_id)

        def answer_sync(e: ClientEvent) -> None:
            tasks.append(asyncio.get_running_loop().create_task(answer_now(e)))

        callee.on("call.incoming", answer_now if handler_kind == "async" else answer_sync)
        try:
            await caller.connect()
            await callee.connect()
            out = await caller.new_call("alice")
            heard_by_caller = BufferSink()
            out.set_output(heard_by_caller)
            await out.wait_state(CallState.ACTIVE)
            await wait_for(lambda: len(answered) == 1)
            inbound = callee.calls[answered[0]]
            heard_by_callee = BufferSink()
            inbound.set_output(heard_by_callee)
            # The caller hears the callee's tone (this was silence), the callee the caller's.
            await wait_for(lambda: hears(heard_by_caller, CALLEE_HZ), 4)
            await wait_for(lambda: hears(heard_by_callee, CALLER_HZ), 4)
            await out.hangup()
            await inbound.wait_ended(5)
        finally:
            await caller.close()
            await callee.close()
