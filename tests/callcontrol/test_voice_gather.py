# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""gather_using_speak / gather_using_audio / gather_stop through the official SDK: the prompt is heard,
the client's DTMF ends it (valid), wrong input replays the invalid prompt then the prompt, silence
times out after maximum_tries, gather_stop cancels, a hangup ends it with call_hangup."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import telnyx
from harness import write_tone_wav
from phones import Phone, wait_hz
from sdkfixtures import AGENTS, SdkEnv, sdk  # noqa: F401
from voicekit import answered_call, recognize, voiced_seconds, wait_until

from softphone.switch.callcontrol.pstn_cli import serve_file


async def test_gather_using_speak_valid(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        await asyncio.sleep(0.3)
        call.sink.clear()  # the ringback before the answer is not the prompt
        res = await sdk.run(
            sdk.client.calls.actions.gather_using_speak, ccid,
            payload="Welcome to the test line. Press one for sales, press two for support.",
            voice="female", language="en-US",
            maximum_digits=1, valid_digits="12", client_state="Z2F0aGVy",
        )
        assert res.data is not None and res.data.result == "ok"
        await asyncio.sleep(0.5)
        await wait_until(lambda: voiced_seconds(call.sink.samples(0.6), -40.0) == 0.0, timeout=15)  # it ended
        heard = recognize(call.sink.samples(), 48000).split()
        assert len({"welcome", "test", "sales", "support"} & set(heard)) >= 3, heard
        await phone.dtmf(call, "2")
        ended = await sdk.hooks.wait("call.gather.ended", lambda p: p["call_control_id"] == ccid)
    p = ended["payload"]
    assert (p["digits"], p["status"], p["client_state"]) == ("2", "valid", "Z2F0aGVy")
    assert p["to"].startswith("+1800555")
    assert [e["event_type"] for e in sdk.hooks.events() if e["event_type"].startswith("call.speak")] == [
        "call.speak.started", "call.speak.ended"]  # the prompt's


async def test_gather_using_audio_invalid_then_valid(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        await sdk.aclient.calls.actions.gather_using_audio(
            ccid, audio_url="tone:700:3000", invalid_audio_url="tone:400:600",
            minimum_digits=2, maximum_digits=3, valid_digits="0123456789", maximum_tries=3,
            inter_digit_timeout_millis=1500,
        )
        await wait_hz(call, 700)
        await phone.dtmf(call, "9#")  # one digit, minimum two: invalid
        await wait_hz(call, 400)  # the invalid prompt ...
        await wait_hz(call, 700)  # ... then the prompt again
        await phone.dtmf(call, "42#")
        ended = await sdk.hooks.wait("call.gather.ended", lambda p: p["call_control_id"] == ccid)
        assert (ended["payload"]["digits"], ended["payload"]["status"]) == ("42", "valid")
        urls = [e["payload"]["media_url"] for e in sdk.hooks.events("call.playback.started")]
        assert urls == ["tone:700:3000", "tone:400:600", "tone:700:3000"]
        assert len(sdk.hooks.events("call.dtmf.received")) == 5


async def test_gather_using_audio_times_out_after_its_tries(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        _, ccid = await answered_call(sdk, phone)
        await sdk.aclient.calls.actions.gather_using_audio(
            ccid, audio_url="tone:650:300", timeout_millis=400, maximum_tries=2
        )
        ended = await sdk.hooks.wait("call.gather.ended", lambda p: p["call_control_id"] == ccid, timeout=10)
        assert (ended["payload"]["digits"], ended["payload"]["status"]) == ("", "timeout")
        assert len(sdk.hooks.events("call.playback.started")) == 2  # the prompt, replayed once


async def test_invalid_input_on_the_last_try_and_wrong_digit(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        await sdk.aclient.calls.actions.gather_using_audio(
            ccid, audio_url="tone:700:500", valid_digits="12", maximum_digits=1, maximum_tries=1
        )
        await phone.dtmf(call, "7")
        ended = await sdk.hooks.wait("call.gather.ended", lambda p: p["call_control_id"] == ccid)
        assert (ended["payload"]["digits"], ended["payload"]["status"]) == ("7", "invalid")


async def test_gather_stop_cancels_and_hangup_ends(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        a = sdk.aclient.calls.actions
        await a.gather_using_speak(ccid, payload="Please enter your account number.", voice="male")
        await wait_until(lambda: voiced_seconds(call.sink.samples(0.3), -40.0) > 0.1)  # the prompt plays
        await a.stop_gather(ccid)
        ended = await sdk.hooks.wait("call.gather.ended", lambda p: p["call_control_id"] == ccid)
        assert ended["payload"]["status"] == "cancelled"
        await asyncio.sleep(0.5)
        assert voiced_seconds(call.sink.samples(0.3), -40.0) == 0.0  # the prompt stopped too
        await a.gather_using_audio(ccid, audio_url="tone:700:300", timeout_millis=10000)
        await asyncio.sleep(0.5)
        await phone.hangup(call)
        ends = await sdk.hooks.wait("call.gather.ended", lambda p: p["status"] == "call_hangup")
        assert ends["payload"]["call_control_id"] == ccid


@pytest.mark.parametrize(
    ("action", "body"),
    [
        ("gather_using_audio", {}),
        ("gather_using_audio", {"audio_url": "tone:440:200", "maximum_digits": 0}),
        ("gather_using_audio", {"audio_url": "tone:440:200", "minimum_digits": 5, "maximum_digits": 2}),
        ("gather_using_audio", {"audio_url": "tone:440:200", "valid_digits": "12x"}),
        ("gather_using_audio", {"audio_url": "tone:440:200", "terminating_digit": "##"}),
        ("gather_using_audio", {"audio_url": "http://192.0.2.1/a.wav"}),
        ("gather_using_speak", {"voice": "female", "payload": ""}),
        ("gather_using_speak", {"voice": "female", "payload": "hi", "maximum_tries": 0}),
    ],
)
async def test_bad_gather_input_is_a_422(sdk: SdkEnv, action: str, body: dict[str, object]) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        _, ccid = await answered_call(sdk, phone)
        with pytest.raises(telnyx.UnprocessableEntityError):
            await getattr(sdk.aclient.calls.actions, action)(ccid, **body)


async def test_gather_using_audio_with_a_loopback_http_prompt(sdk: SdkEnv, tmp_path: Path) -> None:
    prompt = write_tone_wav(tmp_path / "menu.wav", 880.0, seconds=2.0)
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        with serve_file(prompt) as url:
            await sdk.aclient.calls.actions.gather_using_audio(ccid, audio_url=url, maximum_digits=2,
                                                              inter_digit_timeout_millis=800)
            await wait_hz(call, 880)
        await phone.dtmf(call, "7")  # then nothing: the inter-digit timeout ends the input
        ended = await sdk.hooks.wait("call.gather.ended", lambda p: p["call_control_id"] == ccid)
        assert (ended["payload"]["digits"], ended["payload"]["status"]) == ("7", "valid")
        started = sdk.hooks.events("call.playback.started")
        assert [e["payload"]["media_url"] for e in started] == [url]
