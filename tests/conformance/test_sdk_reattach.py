"""Reattach after a dropped websocket, with the official SDK's own reconnect path.

The reconnect can be triggered from the page: ``BrowserClient.close_socket()`` closes the SDK's
websocket under it (code 4000), and SDK 2.27.10 then, by itself, about a second later:

1. opens a new socket and sends ``login`` with ``reconnection: true`` and the ``sessid`` the
   switch gave it;
2. gets ``clientReady`` with ``reattached_sessions: [<callID>]`` and a ``telnyx_rtc.attach``
   from the switch carrying a fresh offer (its call goes ``recovering``);
3. acknowledges it and answers with its own ``telnyx_rtc.attach`` (the SDP answer), and the call
   is ``active`` again on a new peer connection.

So no raw websocket client is needed here. The check is a real bridged call: alice (500 Hz)
calls demo (900 Hz), demo's socket drops mid-call, the call survives on the switch, and after
the reattach both hear each other again; hanging up on the recovered call object reaches
alice as NORMAL_CLEARING.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_sdk_support import assert_hears, browser, login, states, switch  # noqa: F401

from softphone.switch import Switch

pytestmark = pytest.mark.conformance

ALICE_HZ = 500.0
DEMO_HZ = 900.0


async def test_socket_drop_mid_call_reattaches(switch: Switch, tmp_path: Path) -> None:  # noqa: F811
    sw = switch
    async with browser(tmp_path, ALICE_HZ, "alice") as a, browser(tmp_path, DEMO_HZ, "demo") as d:
        await asyncio.gather(
            login(a, sw, login="alice", password="alice-secret"), login(d, sw, login="demo", password="demo-secret")
        )
        sessid = d.frames("recv")[0]["result"]["sessid"]
        ca = await a.new_call("demo")
        cd = await d.wait_incoming_call(timeout=10)
        await d.answer(cd)
        await asyncio.gather(a.wait_call_state(ca, "active"), d.wait_call_state(cd, "active"))
        await asyncio.gather(assert_hears(a, ca, DEMO_HZ), assert_hears(d, cd, ALICE_HZ))
        logins_before = len(d.frames("send", "login"))

        # Demo's websocket drops under the SDK.
        assert await d.close_socket(4000, "conformance: drop mid-call")
        await d.wait_event("telnyx.socket.close", timeout=5)
        await asyncio.sleep(0.2)
        assert len(sw.active_calls()) == 1, f"the call must survive the dropped socket: {sw.active_calls()}"

        # The SDK reconnects by itself and logs in again with its sessid.
        await d.wait_event("telnyx.ready", timeout=10)
        relogin = d.frames("send", "login")[logins_before:]
        assert relogin, "the SDK did not log in again after the socket dropped"
        params = relogin[0]["params"]
        assert params.get("reconnection") is True and params.get("sessid") == sessid, params
        ready = d.frames("recv", "telnyx_rtc.clientReady")[-1]
        assert ready["params"]["reattached_sessions"] == [cd], ready

        # The switch offers the call again (telnyx_rtc.attach); the SDK answers with its SDP.
        await d.wait_call_state(cd, "recovering", timeout=5)
        attach = [f for f in d.frames("recv", "telnyx_rtc.attach") if f["params"]["callID"] == cd]
        assert attach and attach[0]["params"]["sdp"].startswith("v=0"), d.frames("recv")[-5:]
        await d.wait_call_state(cd, "active", timeout=10)
        answer = [f for f in d.frames("send", "telnyx_rtc.attach") if f["params"]["dialogParams"]["callID"] == cd]
        assert answer and answer[0]["params"]["sdp"].startswith("v=0"), d.frames("send")[-5:]
        assert (await d.call_state(cd))["pc"]["connectionState"] in ("connecting", "connected")

        # Media flows both ways again on the new peer connection; alice's call never blinked.
        await asyncio.gather(
            assert_hears(a, ca, DEMO_HZ, what="alice after demo reattached"),
            assert_hears(d, cd, ALICE_HZ, what="demo after reattaching"),
        )
        assert states(a, ca) == ["new", "requesting", "trying", "active"], states(a, ca)

        # The recovered call object works for signaling too.
        await d.hangup(cd)
        await a.wait_call_state(ca, "destroy", timeout=5)
        info = await a.call_state(ca)
        assert (info["cause"], info["causeCode"]) == ("NORMAL_CLEARING", 16), info
    assert not sw.active_calls(), sw.active_calls()
