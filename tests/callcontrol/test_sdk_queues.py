# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""Queues and a connection's active calls through the official SDK (queues.list/retrieve,
queues.calls.list/retrieve, connections.list_active_calls), validated against its types."""

from __future__ import annotations

import asyncio

import pytest
import telnyx
from sdkfixtures import APP_NUMBER, SdkEnv, sdk  # noqa: F401
from telnyx.types import QueueRetrieveResponse
from telnyx.types.queues import CallRetrieveResponse
from test_sdk_calls import strict


async def test_queues_and_queued_calls(sdk: SdkEnv) -> None:
    legs = [await sdk.cc.outside_call(f"+1555000003{i}", APP_NUMBER, client_state="cQ==") for i in range(3)]
    ids = [leg.call_control_id for leg in legs]
    for ccid in ids:
        await sdk.aclient.calls.actions.answer(ccid)
        await sdk.aclient.calls.actions.enqueue(ccid, queue_name="support")
    await asyncio.sleep(1.1)
    q = strict(await sdk.aclient.queues.retrieve("support"))
    assert isinstance(q, QueueRetrieveResponse) and q.data is not None
    assert q.data.name == "support" and q.data.current_size == 3 and q.data.record_type == "queue"
    assert q.data.max_size == 100 and q.data.id and q.data.created_at
    listed = await sdk.aclient.queues.list()
    assert [x.name for x in listed.data] == ["support"]
    calls = await sdk.run(lambda: list(sdk.client.queues.calls.list("support")))
    assert [c.call_control_id for c in calls] == ids and [c.queue_position for c in calls] == [1, 2, 3]
    assert calls[0].wait_time_secs >= 1 and calls[0].from_ == "+15550000030" and calls[0].queue_id == q.data.id
    one = strict(await sdk.aclient.queues.calls.retrieve(ids[1], queue_name="support"))
    assert isinstance(one, CallRetrieveResponse) and one.data is not None
    assert one.data.queue_position == 2 and one.data.record_type == "queue_call" and one.data.is_alive

    await sdk.aclient.calls.actions.leave_queue(ids[0])
    q = strict(await sdk.aclient.queues.retrieve("support"))
    assert q.data is not None and q.data.current_size == 2 and q.data.average_wait_time_secs >= 1
    with pytest.raises(telnyx.NotFoundError):
        await sdk.aclient.queues.calls.retrieve(ids[0], queue_name="support")
    with pytest.raises(telnyx.NotFoundError):
        await sdk.aclient.queues.retrieve("no-such-queue")
    _, bad = sdk.clients("KEYwrong")
    with pytest.raises(telnyx.AuthenticationError):
        await bad.queues.list()

    active = await sdk.aclient.connections.list_active_calls("app")
    assert {c.call_control_id for c in active.data} == set(ids)
    assert all(c.record_type == "call" and c.client_state == "cQ==" and c.call_duration >= 1 for c in active.data)
    assert active.meta is not None and active.meta.total_results == 3
    with pytest.raises(telnyx.AuthenticationError):
        await bad.connections.list_active_calls("app")
    with pytest.raises(telnyx.NotFoundError):
        await sdk.aclient.connections.list_active_calls("no-such-connection")
    for ccid in ids:
        await sdk.aclient.calls.actions.hangup(ccid)
    active = await sdk.aclient.connections.list_active_calls("app")
    assert active.data == []
