# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""Every Call Control route of the switch, driven through the official telnyx SDK (sync and async).

Responses are checked as the SDK's typed models, re-validated strictly against the SDK's own
pydantic types (``strict()``: a missing required field or a wrong type fails here, where the
SDK's lenient parsing would let it through); audio is checked where the action makes audio.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import pytest
import telnyx
from phones import Phone, wait_hz
from sdkfixtures import AGENTS, APP_NUMBER, SdkEnv, sdk  # noqa: F401
from telnyx.types import (
    CallDialResponse,
    CallRetrieveStatusResponse,
    ConferenceCreateResponse,
    ConferenceRetrieveResponse,
)

M = TypeVar("M", bound=telnyx.BaseModel)


def strict(model: M) -> M:
    """``model`` validated by pydantic against its SDK type (raises on a shape the SDK declares otherwise)."""
    return type(model).model_validate(model.to_dict(mode="json", exclude_unset=False))


async def answered_agent_leg(sdk: SdkEnv, phone: Phone, *, client_state: str = "") -> tuple[str, Any]:
    """Dial the phone's user from the app through the SDK; the phone answers. Returns (ccid, phone call)."""
    kwargs: dict[str, Any] = {"client_state": client_state} if client_state else {}
    res = strict(
        await sdk.run(sdk.client.calls.dial, connection_id="app", to=phone.user, from_=APP_NUMBER, **kwargs)
    )
    assert isinstance(res, CallDialResponse) and res.data is not None
    assert res.data.record_type == "call" and res.data.is_alive and res.data.call_control_id
    assert res.data.call_leg_id and res.data.call_session_id and res.data.start_time
    if client_state:
        assert res.data.client_state == client_state
    inc = await phone.next_incoming()
    assert inc.params["telnyx_call_control_id"] == res.data.call_control_id
    await phone.answer(inc)
    ccid = res.data.call_control_id
    await sdk.hooks.wait("call.answered", lambda p: p["call_control_id"] == ccid)
    return ccid, inc


async def test_sync_dial_status_and_every_leg_action(sdk: SdkEnv) -> None:
    url = sdk.switch.url
    actions = sdk.client.calls.actions
    async with Phone(url, "agent1", AGENTS["agent1"], 600) as a1, Phone(url, "agent2", AGENTS["agent2"], 900) as a2:
        ccid, call1 = await answered_agent_leg(sdk, a1, client_state="c3RhdGU=")

        status = strict(await sdk.run(sdk.client.calls.retrieve_status, ccid))
        assert isinstance(status, CallRetrieveStatusResponse) and status.data is not None
        assert status.data.is_alive and status.data.call_control_id == ccid and status.data.record_type == "call"
        assert status.data.client_state == "c3RhdGU=" and status.data.start_time and status.data.end_time is None
        assert isinstance(status.data.call_duration, int)

        # An outside number: rings 0.3 s, then answers (silence).
        out = strict(await sdk.run(sdk.client.calls.dial, connection_id="app", to="+15550001234", from_=APP_NUMBER))
        assert out.data is not None
        other = out.data.call_control_id
        await sdk.hooks.wait("call.answered", lambda p: p["call_control_id"] == other)

        res = strict(await sdk.run(actions.bridge, ccid, call_control_id_to_bridge_with=other))
        assert res.data is not None and res.data.result == "ok"
        await sdk.hooks.wait("call.bridged", lambda p: p["call_control_id"] == other)

        # Playback: a tone the agent hears, then stopped (call.playback.ended, status cancelled).
        res = strict(await sdk.run(actions.start_playback, ccid, audio_url="tone:700", loop="infinity",
                                   client_state="cGxheQ=="))
        assert res.data is not None and res.data.result == "ok"
        await wait_hz(call1, 700)
        started = await sdk.hooks.wait("call.playback.started", lambda p: p["call_control_id"] == ccid)
        assert started["payload"]["client_state"] == "cGxheQ=="
        res = strict(await sdk.run(actions.stop_playback, ccid))
        assert res.data is not None and res.data.result == "ok"
        ended = await sdk.hooks.wait("call.playback.ended", lambda p: p["call_control_id"] == ccid)
        assert ended["payload"]["status"] == "cancelled"

        # Gather: the agent presses 4 2 #.
        res = strict(await sdk.run(actions.gather, ccid, maximum_digits=5, terminating_digit="#",
                                   timeout_millis=10000))
        assert res.data is not None and res.data.result == "ok"
        await asyncio.sleep(0.2)
        await a1.dtmf(call1, "42#")
        g = await sdk.hooks.wait("call.gather.ended", lambda p: p["call_control_id"] == ccid)
        assert g["payload"]["digits"] == "42"

        # Enqueue the outside leg, then take it out again.
        res = strict(await sdk.run(actions.enqueue, other, queue_name="support"))
        assert res.data is not None and res.data.result == "ok"
        q = await sdk.hooks.wait("call.enqueued", lambda p: p["call_control_id"] == other)
        assert q["payload"]["queue"] == "support" and q["payload"]["current_position"] == 1
        res = strict(await sdk.run(actions.leave_queue, other))
        assert res.data is not None and res.data.result == "ok"
        await sdk.hooks.wait("call.dequeued", lambda p: p["call_control_id"] == other)

        # Transfer the agent to agent2: agent2 rings, answers, and the two hear each other.
        res = strict(await sdk.run(actions.transfer, ccid, to="agent2", from_=APP_NUMBER))
        assert res.data is not None and res.data.result == "ok"
        inc2 = await a2.next_incoming()
        await a2.answer(inc2)
        await wait_hz(call1, 900)
        await wait_hz(inc2, 600)

        res = strict(await sdk.run(actions.hangup, other))
        assert res.data is not None and res.data.result == "ok"
        res = strict(await sdk.run(actions.hangup, ccid, client_state="Ynll"))
        assert res.data is not None and res.data.result == "ok"
        hup = await sdk.hooks.wait("call.hangup", lambda p: p["call_control_id"] == ccid)
        assert hup["payload"]["client_state"] == "Ynll" and hup["payload"]["hangup_cause"] == "normal_clearing"
        status = strict(await sdk.run(sdk.client.calls.retrieve_status, ccid))
        assert status.data is not None and not status.data.is_alive and status.data.end_time


async def test_answer_reject_shapes_and_errors_through_the_sdk(sdk: SdkEnv) -> None:
    """An outside caller parks; answer answers it. Errors come back as the SDK's typed exceptions."""
    leg = await sdk.cc.outside_call("+15550000007", APP_NUMBER)
    ccid = leg.call_control_id
    init = await sdk.hooks.wait("call.initiated", lambda p: p["call_control_id"] == ccid)
    assert init["payload"]["direction"] == "incoming"
    res = strict(await sdk.run(sdk.client.calls.actions.answer, ccid))
    assert res.data is not None and res.data.result == "ok"
    await sdk.hooks.wait("call.answered", lambda p: p["call_control_id"] == ccid)

    # An action the switch does not implement: Telnyx's 404 error shape, through the SDK.
    with pytest.raises(telnyx.NotFoundError) as nf:
        await sdk.run(sdk.client.calls.actions.start_siprec, ccid)
    assert nf.value.status_code == 404
    err = nf.value.response.json()["errors"][0]
    assert err["code"] == "10005" and err["title"] == "Unknown action" and err["detail"] == "siprec_start"
    # A call that does not exist.
    with pytest.raises(telnyx.NotFoundError) as nf:
        await sdk.run(sdk.client.calls.retrieve_status, "v3:nope")
    assert nf.value.response.json()["errors"][0]["code"] == "10005"
    # A wrong key.
    bad, abad = sdk.clients("KEYwrong")
    with pytest.raises(telnyx.AuthenticationError) as au:
        await sdk.run(bad.calls.actions.hangup, ccid)
    assert au.value.status_code == 401 and au.value.response.json()["errors"][0]["code"] == "10009"
    with pytest.raises(telnyx.AuthenticationError):
        await abad.calls.retrieve_status(ccid)
    # A bad value: 422 with the parameter named.
    with pytest.raises(telnyx.UnprocessableEntityError) as ue:
        await sdk.run(sdk.client.calls.dial, connection_id="nope", to="agent1", from_=APP_NUMBER)
    assert ue.value.status_code == 422 and ue.value.response.json()["errors"][0]["code"] == "10015"
    with pytest.raises(telnyx.UnprocessableEntityError) as ue:
        await sdk.run(sdk.client.calls.actions.enqueue, ccid, queue_name="")
    assert "queue_name" in ue.value.response.json()["errors"][0]["title"]
    await sdk.run(sdk.client.calls.actions.hangup, ccid)
    with pytest.raises(telnyx.UnprocessableEntityError) as ue:  # the call has ended
        await sdk.run(sdk.client.calls.actions.hangup, ccid)
    assert ue.value.response.json()["errors"][0]["code"] == "90018"


async def test_async_conferences_create_list_retrieve_join_leave(sdk: SdkEnv) -> None:
    url = sdk.switch.url
    ac = sdk.aclient
    async with Phone(url, "agent1", AGENTS["agent1"], 600) as a1, Phone(url, "agent2", AGENTS["agent2"], 900) as a2:
        legs = []
        for phone in (a1, a2):
            res = strict(await ac.calls.dial(connection_id="app", to=phone.user, from_=APP_NUMBER))
            assert res.data is not None and res.data.is_alive
            inc = await phone.next_incoming()
            await phone.answer(inc)
            ccid = res.data.call_control_id
            await sdk.hooks.wait("call.answered", lambda p, c=ccid: p["call_control_id"] == c)
            legs.append((ccid, inc))
        (c1, call1), (c2, call2) = legs

        created = strict(await ac.conferences.create(call_control_id=c1, name="standup"))
        assert isinstance(created, ConferenceCreateResponse) and created.data is not None
        conf = created.data
        assert conf.record_type == "conference" and conf.name == "standup" and conf.status == "in_progress"
        assert conf.id and conf.created_at and conf.expires_at and conf.connection_id == "app"

        joined = strict(await ac.conferences.actions.join(conf.id, call_control_id=c2))
        assert joined.data is not None and joined.data.result == "ok"
        await wait_hz(call1, 900)
        await wait_hz(call2, 600)

        page = await ac.conferences.list()
        assert [c.id for c in page.data] == [conf.id] and page.meta is not None and page.meta.total_pages == 1
        assert [c.id async for c in ac.conferences.list()] == [conf.id]  # auto-pagination ends
        sync_ids = [c.id for c in await sdk.run(lambda: list(sdk.client.conferences.list()))]
        assert sync_ids == [conf.id]

        got = strict(await ac.conferences.retrieve(conf.id))
        assert isinstance(got, ConferenceRetrieveResponse) and got.data is not None
        assert got.data.id == conf.id and got.data.name == "standup"

        parts = await ac.conferences.list_participants(conf.id)
        assert [p.call_control_id for p in parts.data] == [c1, c2] and parts.meta is not None
        assert all(strict(p).status == "joined" and p.conference.id == conf.id for p in parts.data)
        one = strict(await ac.conferences.retrieve_participant(parts.data[1].id, id=conf.id))
        assert one.data is not None and one.data.call_control_id == c2 and one.data.conference_id == conf.id
        assert one.data.created_at is not None and one.data.muted is False
        by_ccid = await ac.conferences.retrieve_participant(c1, id=conf.id)
        assert by_ccid.data is not None and by_ccid.data.id == parts.data[0].id
        with pytest.raises(telnyx.NotFoundError):
            await ac.conferences.retrieve_participant("nobody", id=conf.id)

        left = strict(await ac.conferences.actions.leave(conf.id, call_control_id=c2))
        assert left.data is not None and left.data.result == "ok"
        await sdk.hooks.wait("conference.participant.left", lambda p: p["call_control_id"] == c2)
        left = strict(await ac.conferences.actions.leave(conf.id, call_control_id=c1))
        await sdk.hooks.wait("conference.ended", lambda p: p["conference_id"] == conf.id)
        got = strict(await ac.conferences.retrieve(conf.id))
        assert got.data is not None and got.data.status == "completed" and got.data.end_reason == "all_left"

        with pytest.raises(telnyx.NotFoundError):
            await ac.conferences.retrieve("no-such-conference")
        with pytest.raises(telnyx.UnprocessableEntityError) as ue:
            await ac.conferences.actions.join(conf.id, call_control_id=c2)
        assert ue.value.response.json()["errors"][0]["code"] == "90041"
        for c in (c1, c2):
            await ac.calls.actions.hangup(c)


def sdk_action_paths() -> dict[str, str]:
    """``{action path segment: SDK method name}`` read from the SDK's ``calls.actions`` resource."""
    import inspect
    import re

    from telnyx.resources.calls.actions import ActionsResource

    found: dict[str, str] = {}
    for name, fn in inspect.getmembers(ActionsResource, inspect.isfunction):
        m = re.search(r'"/calls/\{[a-z_]+\}/actions/([a-z_]+)"', inspect.getsource(fn))
        if m:
            found[m.group(1)] = name
    return found


async def test_every_action_is_an_sdk_action_and_answers_in_telnyx_shape(sdk: SdkEnv) -> None:
    """Each name in the ACTIONS table is a path the SDK calls; on an ended call each answers 4xx with
    Telnyx's error shape (never 404 "Unknown action", never 5xx), through the SDK's own client."""
    from softphone.switch.callcontrol.commands import ACTIONS

    paths = sdk_action_paths()
    assert {"answer", "hangup", "bridge", "playback_start", "gather"} <= set(paths)
    missing = sorted(set(ACTIONS) - set(paths))
    assert not missing, f"actions the SDK has no method for: {missing}"
    leg = await sdk.cc.outside_call("+15550000008", APP_NUMBER)
    await sdk.cc.hangup_leg(leg)
    for name in sorted(ACTIONS):
        with pytest.raises(telnyx.APIStatusError) as exc:
            await sdk.aclient.post(f"/calls/{leg.call_control_id}/actions/{name}", body={}, cast_to=object)
        status, body = exc.value.status_code, exc.value.response.json()
        assert 400 <= status < 500 and status != 404, (name, status, body)
        assert set(body["errors"][0]) >= {"code", "title", "detail"}, (name, body)


async def test_command_id_runs_a_command_once_per_call(sdk: SdkEnv) -> None:
    legs = [await sdk.cc.outside_call(f"+1555000002{i}", APP_NUMBER) for i in range(2)]
    a, b = (leg.call_control_id for leg in legs)
    actions = sdk.aclient.calls.actions
    for c in (a, b):
        await actions.answer(c)
    for _ in range(3):  # the same command_id: one playback
        res = strict(await actions.start_playback(a, audio_url="tone:600", command_id="cmd-1"))
        assert res.data is not None and res.data.result == "ok"
    await asyncio.gather(*(actions.start_playback(b, audio_url="tone:600", command_id="cmd-1") for _ in range(3)))
    await actions.start_playback(a, audio_url="tone:650", command_id="cmd-2", stop="all")
    await sdk.hooks.wait("call.playback.started", lambda p: p["media_url"] == "tone:650")
    await asyncio.sleep(0.3)
    started = [e["payload"]["call_control_id"] for e in sdk.hooks.events("call.playback.started")]
    assert started.count(a) == 2 and started.count(b) == 1, started  # per call, and once while in flight
    # A command that failed may be sent again with its command_id.
    with pytest.raises(telnyx.UnprocessableEntityError):
        await actions.enqueue(a, queue_name="", command_id="cmd-3")
    await actions.enqueue(a, queue_name="q", command_id="cmd-3")
    await sdk.hooks.wait("call.enqueued", lambda p: p["call_control_id"] == a)
    for c in (a, b):
        await actions.hangup(c)
