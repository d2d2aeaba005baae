"""Calls from the official SDK (headless Chromium) to the switch's services, with real audio.

* echo: the browser's fake microphone plays 700 Hz; the SDK's remote audio must be 700 Hz.
* tone: the remote audio is the 1004 Hz test tone.
* early: ``telnyx_rtc.media`` (ringback as early media) puts the SDK in ``early``, then the
  answer without SDP makes it ``active`` on the same media path (the echo comes back).
* busy / reject: the SDK's call ends with USER_BUSY (17, SIP 486) / CALL_REJECTED (21, SIP 603),
  never having been active.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import BrowserClient
from test_sdk_support import TOLERANCE_HZ, assert_hears, browser, login, states, switch  # noqa: F401

from softphone.switch import Switch

pytestmark = pytest.mark.conformance

MIC_HZ = 700.0


async def hang_up(b: BrowserClient, call_id: str) -> None:
    await b.hangup(call_id)
    await b.wait_call_state(call_id, "destroy", timeout=5)
    bye = [f for f in b.frames("send", "telnyx_rtc.bye") if f["params"]["dialogParams"]["callID"] == call_id]
    assert bye and bye[-1]["params"]["causeCode"] == 16 and bye[-1]["params"]["cause"] == "NORMAL_CLEARING", bye


async def test_echo_and_tone_services(switch: Switch, tmp_path: Path) -> None:  # noqa: F811
    sw = switch
    async with browser(tmp_path, MIC_HZ) as b:
        await login(b, sw, login="demo", password="demo-secret")

        call = await b.new_call("echo")
        await b.wait_call_state(call, "active", timeout=10)
        await assert_hears(b, call, MIC_HZ, what="echo service")
        stats = await b.rtp_stats(call)
        assert stats["inbound"]["packetsReceived"] > 20 and stats["outbound"]["packetsSent"] > 20, stats
        assert sw.active_calls()[0]["service"] == "echo", sw.active_calls()
        await hang_up(b, call)

        call = await b.new_call("+15550001002")  # the tone service by number
        await b.wait_call_state(call, "active", timeout=10)
        await assert_hears(b, call, 1004.0, what="tone service")
        await hang_up(b, call)
        assert states(b, call) == ["new", "requesting", "trying", "active", "hangup", "destroy"], states(b, call)
    assert not sw.active_calls(), sw.active_calls()


async def test_early_media_busy_reject(switch: Switch, tmp_path: Path) -> None:  # noqa: F811
    sw = switch
    async with browser(tmp_path, MIC_HZ) as b:
        await login(b, sw, login="alice", password="alice-secret")

        # Early media: ringback (440+480 Hz) while early, then active without a new SDP.
        call = await b.new_call("+15550001006")
        await b.wait_call_state(call, "early", timeout=10)
        media = b.frames("recv", "telnyx_rtc.media")
        assert media and media[0]["params"]["sdp"].startswith("v=0"), media
        ringback = await b.dominant_frequency(call, seconds=0.6)
        assert (await b.call_state(call))["state"] == "early", "measured ringback after the answer"
        assert min(abs(ringback.freq - 440), abs(ringback.freq - 480)) <= TOLERANCE_HZ, ringback
        await b.wait_call_state(call, "active", timeout=10)
        answer = b.frames("recv", "telnyx_rtc.answer")[-1]
        assert answer["params"]["callID"] == call and not answer["params"].get("sdp"), answer
        await assert_hears(b, call, MIC_HZ, what="early service after answer (echo)")
        await hang_up(b, call)
        assert states(b, call) == ["new", "requesting", "trying", "early", "active", "hangup", "destroy"], states(
            b, call
        )

        # Busy and reject: the switch's bye sets the SDK's cause, causeCode and sipCode.
        for dest, cause, code, sip in (("busy", "USER_BUSY", 17, 486), ("reject", "CALL_REJECTED", 21, 603)):
            call = await b.new_call(dest)
            await b.wait_call_state(call, "hangup", timeout=10)
            await b.wait_call_state(call, "destroy", timeout=5)
            info = await b.call_state(call)
            assert (info["cause"], info["causeCode"], info["sipCode"]) == (cause, code, sip), info
            assert "active" not in states(b, call), states(b, call)
            assert not [f for f in b.frames("send", "telnyx_rtc.bye") if f["params"]["dialogParams"]["callID"] == call]
    assert not sw.active_calls(), sw.active_calls()
