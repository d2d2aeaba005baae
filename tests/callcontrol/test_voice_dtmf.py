# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""send_dtmf and client_state_update through the official SDK: the softphone client receives the
digits (telnyx_rtc.info, as the SDKs report DTMF) and hears them in band; an outside phone hears
them; client_state rides on the later webhooks; bad input is a 422."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import telnyx
from phones import Phone
from sdkfixtures import AGENTS, APP_NUMBER, SdkEnv, sdk  # noqa: F401
from voicekit import answered_call, wait_until

from softphone.client.client import Client
from softphone.media.dsp import detect_dtmf
from softphone.media.hub import AudioConfig
from softphone.protocol import CallState, Credentials
from softphone.switch.callcontrol.pstn import PstnEndpoint


async def test_send_dtmf_reaches_the_softphone_client(sdk: SdkEnv) -> None:
    client = Client(
        url=sdk.cc.switch.url,
        credentials=Credentials(login="agent2", password=AGENTS["agent2"]),
        audio=AudioConfig(backend="null"),
        ice_servers=[],
    )
    got: list[Any] = []
    client.on("call.dtmf", got.append)
    await client.connect()
    try:
        call = await client.new_call("+18005550777")
        init = await sdk.hooks.wait("call.initiated", lambda p: p["to"] == "+18005550777")
        ccid = init["payload"]["call_control_id"]
        await sdk.run(sdk.client.calls.actions.answer, ccid)
        await call.wait_state(CallState.ACTIVE, timeout=10)
        res = await sdk.run(sdk.client.calls.actions.send_dtmf, ccid, digits="12w#9", duration_millis=120)
        assert res.data is not None and res.data.result == "ok"
        def info_digits() -> str:  # Client.on handlers get ClientEvent(name, data)
            return "".join(e.data["digits"] for e in got if e.data.get("source") == "info")

        await wait_until(lambda: len(info_digits()) >= 4, timeout=10)
        assert info_digits() == "12#9"
    finally:
        await client.close()


async def test_send_dtmf_is_heard_in_band(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        await asyncio.sleep(0.3)
        call.sink.clear()
        await sdk.aclient.calls.actions.send_dtmf(ccid, digits="5*0D")
        await wait_until(lambda: call.methods.count("telnyx_rtc.info") >= 4, timeout=10)
        await asyncio.sleep(0.6)
        assert detect_dtmf(call.sink.samples()) == "5*0D"
    outside = await sdk.cc.outside_call("+15550002222", APP_NUMBER)
    await sdk.aclient.calls.actions.answer(outside.call_control_id)
    await sdk.aclient.calls.actions.send_dtmf(outside.call_control_id, digits="73")
    await asyncio.sleep(1.2)
    assert isinstance(outside.endpoint, PstnEndpoint)
    assert detect_dtmf(outside.endpoint.heard(2.0)) == "73"


async def test_client_state_update(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        a = sdk.aclient.calls.actions
        res = await a.update_client_state(ccid, client_state="bmV3LXN0YXRl")
        assert res.data is not None and res.data.result == "ok"
        status = await sdk.aclient.calls.retrieve_status(ccid)
        assert status.data is not None and status.data.client_state == "bmV3LXN0YXRl"
        for bad in ("", "not base64!!"):
            with pytest.raises(telnyx.UnprocessableEntityError):
                await a.update_client_state(ccid, client_state=bad)
        await phone.hangup(call)
        hup = await sdk.hooks.wait("call.hangup", lambda p: p["call_control_id"] == ccid)
        assert hup["payload"]["client_state"] == "bmV3LXN0YXRl"
        with pytest.raises(telnyx.UnprocessableEntityError) as err:  # the call is gone
            await a.update_client_state(ccid, client_state="eA==")
        assert err.value.body["errors"][0]["code"] == "90018"  # type: ignore[index]


@pytest.mark.parametrize("body", [{"digits": ""}, {"digits": "12x"}, {"digits": "1", "duration_millis": 50},
                                  {"digits": "1" * 129}])
async def test_bad_send_dtmf_is_a_422(sdk: SdkEnv, body: dict[str, Any]) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        _, ccid = await answered_call(sdk, phone)
        with pytest.raises(telnyx.UnprocessableEntityError):
            await sdk.aclient.calls.actions.send_dtmf(ccid, **body)
