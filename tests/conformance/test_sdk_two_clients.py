"""Two official SDK clients (two Chromiums, microphones at 500 and 900 Hz) call each other
through the switch: audio both ways, DTMF, hold/unhold and hangup from either side.

* DTMF: ``call.dtmf()`` on one side sends ``telnyx_rtc.info``; the other SDK gets the digits as a
  notification (type ``event``) and hears them in band (the caller's microphone is muted
  meanwhile, so the strongest frequency is a DTMF one: "1" is 697 + 1209 Hz).
* Hold: the SDK that holds goes ``held`` (then ``active`` on unhold) from the switch's
  ``holdState``; the held party hears the switch's 440 Hz hold tone instead of the other's
  microphone, and the holder hears silence. After unhold the tones come back both ways.
* Hangup: a ``telnyx_rtc.bye`` from either side reaches the other SDK as NORMAL_CLEARING / 16.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from harness import BrowserClient
from test_sdk_support import AUDIBLE_DBFS, TOLERANCE_HZ, assert_hears, browser, login, states, switch  # noqa: F401

from softphone.switch import Switch

pytestmark = pytest.mark.conformance

ALICE_HZ = 500.0
DEMO_HZ = 900.0
HOLD_TONE_HZ = 440.0
DTMF_1_HZ = (697.0, 1209.0)


async def connect_call(caller: BrowserClient, callee: BrowserClient, dest: str, **opts: str) -> tuple[str, str]:
    """``caller`` dials ``dest``; ``callee`` gets it ringing, answers; both reach active."""
    out = await caller.new_call(dest, **opts)
    inc = await callee.wait_incoming_call(timeout=10)
    await callee.answer(inc)
    await asyncio.gather(caller.wait_call_state(out, "active"), callee.wait_call_state(inc, "active"))
    return out, inc


async def both_hear(a: BrowserClient, ca: str, a_hz: float, d: BrowserClient, cd: str, d_hz: float) -> None:
    await asyncio.gather(
        assert_hears(a, ca, a_hz, what="alice's SDK"),
        assert_hears(d, cd, d_hz, what="demo's SDK"),
    )


async def hangup_seen_by_other(hanger: BrowserClient, hc: str, other: BrowserClient, oc: str) -> None:
    await hanger.hangup(hc)
    await hanger.wait_call_state(hc, "destroy", timeout=5)
    await other.wait_call_state(oc, "hangup", timeout=5)
    await other.wait_call_state(oc, "destroy", timeout=5)
    info = await other.call_state(oc)
    assert (info["cause"], info["causeCode"]) == ("NORMAL_CLEARING", 16), info
    bye = [f for f in other.frames("recv", "telnyx_rtc.bye") if f["params"]["callID"] == oc]
    assert bye and bye[-1]["params"]["causeCode"] == 16, bye


async def until_silent(b: BrowserClient, call_id: str, who: str, timeout: float = 3.0) -> None:
    """Short windows until the remote audio is silent (what is in flight has drained)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        tone = await b.dominant_frequency(call_id, seconds=0.15)
        if tone.rms_dbfs < AUDIBLE_DBFS - 10:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{who}: still hearing {tone} after {timeout} s")


async def test_two_sdk_clients_through_the_switch(switch: Switch, tmp_path: Path) -> None:  # noqa: F811
    sw = switch
    async with browser(tmp_path, ALICE_HZ, "alice") as a, browser(tmp_path, DEMO_HZ, "demo") as d:
        await asyncio.gather(
            login(a, sw, login="alice", password="alice-secret"), login(d, sw, login="demo", password="demo-secret")
        )

        # Call 1: alice -> demo (by SIP username), caller id passed through.
        ca, cd = await connect_call(a, d, "demo", callerName="Alice", callerNumber="+13125550111")
        inbound = await d.call_state(cd)
        assert inbound["direction"] == "inbound", inbound
        assert (inbound["remoteCallerName"], inbound["remoteCallerNumber"]) == ("Alice", "+13125550111"), inbound
        await both_hear(a, ca, DEMO_HZ, d, cd, ALICE_HZ)

        # DTMF alice -> demo: the digits as an SDK notification, and in band.
        # Alice mutes first (her SDK's muteAudio), so that demo hears nothing but the digits.
        await a.mute(ca)
        await until_silent(d, cd, "demo, after alice muted")
        await a.dtmf(ca, "11111")
        sent = a.frames("send", "telnyx_rtc.info")
        assert sent and sent[-1]["params"]["dtmf"] == "11111", sent
        note = await d.wait_event("telnyx.notification", timeout=5, match=lambda x: "dtmf" in x)
        assert note.data["dtmf"] == "11111" and note.data["callID"] == cd, note
        heard_at = asyncio.get_running_loop().time()
        tone = await d.dominant_frequency(cd, seconds=0.6)
        assert min(abs(tone.freq - f) for f in DTMF_1_HZ) <= TOLERANCE_HZ, f"no in-band DTMF '1' at demo: {tone}"
        await a.unmute(ca)
        # Five digits play in band for 5 x 170 ms: let them finish before the hold checks.
        await asyncio.sleep(max(0.0, heard_at + 1.0 - asyncio.get_running_loop().time()))

        # Hold by demo: demo's SDK goes held; alice hears the hold tone, demo hears nothing.
        held = await d.hold(cd)
        await d.wait_call_state(cd, "held", timeout=5)
        modify = d.frames("send", "telnyx_rtc.modify")[-1]["params"]
        assert modify["action"] == "hold", modify
        assert [f for f in d.frames("recv") if f.get("result", {}).get("holdState") == "held"], held
        # The hold tone beeps 0.5 s on / 1.5 s off, starting on: alice measures right away (and,
        # if a slow machine made her miss the first beep, over the next one); demo's audio goes
        # silent once what was in flight has drained.
        at_alice, _ = await asyncio.gather(a.dominant_frequency(ca, seconds=0.7), until_silent(d, cd, "demo, holding"))
        if at_alice.rms_dbfs <= AUDIBLE_DBFS:
            at_alice = await a.dominant_frequency(ca, seconds=1.6)
        assert abs(at_alice.freq - HOLD_TONE_HZ) <= TOLERANCE_HZ and at_alice.rms_dbfs > AUDIBLE_DBFS, (
            f"alice should hear the hold tone instead of demo's {DEMO_HZ} Hz, heard {at_alice}"
        )
        assert (await a.call_state(ca))["state"] == "active", "the held party's SDK state must not change"

        await d.unhold(cd)
        await d.wait_call_state(cd, "active", timeout=5)
        assert d.frames("send", "telnyx_rtc.modify")[-1]["params"]["action"] == "unhold"
        await both_hear(a, ca, DEMO_HZ, d, cd, ALICE_HZ)

        # The callee hangs up; the caller sees NORMAL_CLEARING.
        await hangup_seen_by_other(d, cd, a, ca)
        assert states(d, cd) == ["new", "ringing", "answering", "active", "held", "active", "hangup", "destroy"], (
            states(d, cd)
        )

        # Call 2: demo -> alice; the caller hangs up this time; the callee sees NORMAL_CLEARING.
        cd2, ca2 = await connect_call(d, a, "alice")
        await both_hear(a, ca2, DEMO_HZ, d, cd2, ALICE_HZ)
        await hangup_seen_by_other(d, cd2, a, ca2)
    assert not sw.active_calls(), sw.active_calls()
    assert len(sw.records) == 4, sw.records
