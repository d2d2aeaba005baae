"""Trickle ICE (``trickleIce: true``) from the official SDK, both directions, with real audio.

Outbound: the SDK sends its invite with ``trickle: true`` and an SDP without candidates, then
``telnyx_rtc.candidate`` requests and ``telnyx_rtc.endOfCandidates`` (as in the captured
``trickle`` trace). The switch must fold the trickled candidates into the offer before
answering, or ICE never completes and no audio comes back from the echo service.

Inbound: a non-trickle client (alice) calls a trickle client (demo), who answers with a
candidate-less SDP and trickles; the bridge must carry audio both ways.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_sdk_support import assert_hears, browser, login, switch  # noqa: F401

from softphone.switch import Switch

pytestmark = pytest.mark.conformance

MIC_HZ = 750.0
ALICE_HZ = 520.0


async def test_trickle_outbound_to_echo_and_inbound_answer(switch: Switch, tmp_path: Path) -> None:  # noqa: F811
    sw = switch
    async with browser(tmp_path, MIC_HZ, name="demo") as demo:
        await login(demo, sw, login="demo", password="demo-secret", trickleIce=True)

        call = await demo.new_call("echo", trickleIce=True)
        await demo.wait_call_state(call, "active", timeout=10)
        invite = demo.frames("send", "telnyx_rtc.invite")[-1]["params"]
        assert invite.get("trickle") is True or invite["dialogParams"].get("trickleIce") is True, invite
        assert demo.frames("send", "telnyx_rtc.candidate"), "the SDK trickled no candidates"
        await assert_hears(demo, call, MIC_HZ, what="echo over a trickled offer")
        await demo.hangup(call)
        await demo.wait_call_state(call, "destroy", timeout=5)

        async with browser(tmp_path, ALICE_HZ, name="alice") as alice:
            await login(alice, sw, login="alice", password="alice-secret")
            out = await alice.new_call("demo")
            inc = await demo.wait_incoming_call(timeout=10)
            await demo.answer(inc, trickleIce=True)
            await asyncio.gather(alice.wait_call_state(out, "active"), demo.wait_call_state(inc, "active"))
            answer = demo.frames("send", "telnyx_rtc.answer")[-1]["params"]
            assert answer["dialogParams"]["callID"] == inc, answer
            trickled = [
                f for f in demo.frames("send", "telnyx_rtc.candidate") if f["params"]["dialogParams"]["callID"] == inc
            ]
            assert trickled, "the callee trickled no candidates for its answer"
            await asyncio.gather(
                assert_hears(alice, out, MIC_HZ, what="alice hearing the trickling callee"),
                assert_hears(demo, inc, ALICE_HZ, what="the trickling callee hearing alice"),
            )
            await alice.hangup(out)
            await demo.wait_call_state(inc, "destroy", timeout=5)
