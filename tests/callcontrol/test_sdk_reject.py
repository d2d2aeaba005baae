# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""``calls.actions.reject`` through the official SDK: a parked incoming call is refused with the
cause's SIP response (USER_BUSY 486, CALL_REJECTED 603, NOT_FOUND 404, TEMPORARILY_UNAVAILABLE 480)."""

from __future__ import annotations

import pytest
import telnyx
from phones import Phone
from sdkfixtures import AGENTS, APP_NUMBER, SdkEnv, sdk  # noqa: F401


async def test_reject_a_parked_webrtc_call_as_busy(sdk: SdkEnv) -> None:
    async with Phone(sdk.switch.url, "agent1", AGENTS["agent1"], 600) as caller:
        call = await caller.dial("+18005550199")  # a number the app owns: the call parks
        init = await sdk.hooks.wait("call.initiated", lambda p: p["direction"] == "incoming")
        ccid = init["payload"]["call_control_id"]
        res = await sdk.run(sdk.client.calls.actions.reject, ccid, cause="USER_BUSY", client_state="cmVq")
        assert res.data is not None and res.data.result == "ok"
        await caller.wait_state(call, "hangup")
        assert call.bye.get("cause") == "USER_BUSY", call.bye
        assert 486 in (call.bye.get("sipCode"), call.bye.get("sip_code")), call.bye
        hang = await sdk.hooks.wait("call.hangup", lambda p: p["call_control_id"] == ccid)
        assert hang["payload"]["hangup_cause"] == "user_busy" and hang["payload"]["client_state"] == "cmVq"
        assert not [e for e in sdk.hooks.events("call.answered") if e["payload"]["call_control_id"] == ccid]


@pytest.mark.parametrize("cause, q850, sip", [
    ("NOT_FOUND", "UNALLOCATED_NUMBER", 404),
    ("TEMPORARILY_UNAVAILABLE", "NO_ANSWER", 480),
    ("CALL_REJECTED", "CALL_REJECTED", 603),
])
async def test_reject_an_outside_caller(sdk: SdkEnv, cause: str, q850: str, sip: int) -> None:
    leg = await sdk.cc.outside_call("+15550000007", APP_NUMBER)
    ccid = leg.call_control_id
    await sdk.hooks.wait("call.initiated", lambda p: p["call_control_id"] == ccid)
    await sdk.run(sdk.client.calls.actions.reject, ccid, cause=cause)
    await sdk.hooks.wait("call.hangup", lambda p: p["call_control_id"] == ccid)
    assert (leg.hangup_cause, leg.sip_code) == (q850, sip)


async def test_reject_refuses_what_it_cannot_do(sdk: SdkEnv) -> None:
    leg = await sdk.cc.outside_call("+15550000008", APP_NUMBER)
    ccid = leg.call_control_id
    await sdk.hooks.wait("call.initiated", lambda p: p["call_control_id"] == ccid)
    with pytest.raises(telnyx.UnprocessableEntityError) as bad:
        await sdk.run(sdk.client.calls.actions.reject, ccid, cause="BECAUSE")  # type: ignore[arg-type]
    assert "cause" in bad.value.response.json()["errors"][0]["title"]
    await sdk.run(sdk.client.calls.actions.answer, ccid)
    await sdk.hooks.wait("call.answered", lambda p: p["call_control_id"] == ccid)
    with pytest.raises(telnyx.UnprocessableEntityError) as answered:
        await sdk.run(sdk.client.calls.actions.reject, ccid, cause="USER_BUSY")
    assert answered.value.response.json()["errors"][0]["code"] == "90016"
    out = await sdk.run(sdk.client.calls.dial, connection_id="app", to="+15550001234", from_=APP_NUMBER)
    assert out.data is not None
    with pytest.raises(telnyx.UnprocessableEntityError) as outbound:
        await sdk.run(sdk.client.calls.actions.reject, out.data.call_control_id, cause="USER_BUSY")
    assert outbound.value.response.json()["errors"][0]["code"] == "90015"
    await sdk.run(sdk.client.calls.actions.hangup, ccid)
