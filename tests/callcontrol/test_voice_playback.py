# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""playback_start / playback_stop through the official SDK, with the audio checked at a client:
media-directory files, loopback http:// WAV and MP3, loop counts and infinity, the main queue,
overlay mixed over the call audio (a main playback replaces it), and bad input as Telnyx 422s."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import telnyx
from harness import write_tone_wav
from phones import Phone, wait_hz
from sdkfixtures import AGENTS, APP_NUMBER, SdkEnv, sdk  # noqa: F401
from voicekit import answered_call, band_db, voiced_seconds

from softphone.switch.callcontrol.pstn import PstnEndpoint
from softphone.switch.callcontrol.pstn_cli import serve_file
from softphone.switch.callcontrol.recording import encode_mp3


def media_dir(sdk: SdkEnv) -> Path:
    d = sdk.cc.options.media_root
    d.mkdir(parents=True, exist_ok=True)
    return d


async def test_media_file_loop_count_and_webhooks(sdk: SdkEnv) -> None:
    write_tone_wav(media_dir(sdk) / "beep700.wav", 700.0, seconds=0.5)
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        res = await sdk.run(
            sdk.client.calls.actions.start_playback, ccid, audio_url="beep700.wav", loop=3, client_state="cGI="
        )
        assert res.data is not None and res.data.result == "ok"
        started = await sdk.hooks.wait("call.playback.started", lambda p: p["call_control_id"] == ccid)
        assert started["payload"]["media_url"] == "beep700.wav" and started["payload"]["overlay"] is False
        assert started["payload"]["client_state"] == "cGI="
        await wait_hz(call, 700)
        ended = await sdk.hooks.wait("call.playback.ended", lambda p: p["call_control_id"] == ccid, timeout=10)
        assert ended["payload"]["status"] == "completed"
        t_start = sdk.hooks.raw_for("call.playback.started")[0].received_at
        t_end = sdk.hooks.raw_for("call.playback.ended")[0].received_at
        assert 1.3 < t_end - t_start < 2.2, t_end - t_start  # three 0.5 s loops
        await asyncio.sleep(0.3)
        heard = call.sink.samples(4.0)
        assert 1.2 < voiced_seconds(heard, -30.0) < 1.9
        assert band_db(heard, 700) > -20


async def test_http_wav_and_mp3_are_decoded_and_heard(sdk: SdkEnv, tmp_path: Path) -> None:
    wav = write_tone_wav(tmp_path / "t900.wav", 900.0, seconds=3.0)
    mp3 = tmp_path / "t1300.mp3"
    encode_mp3(write_tone_wav(tmp_path / "t1300.wav", 1300.0, seconds=3.0), mp3)
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        with serve_file(wav) as wav_url, serve_file(mp3) as mp3_url:
            await sdk.aclient.calls.actions.start_playback(ccid, audio_url=wav_url)
            await wait_hz(call, 900)
            await sdk.aclient.calls.actions.start_playback(ccid, audio_url=mp3_url, stop="current")
            await wait_hz(call, 1300)
        ended = [e["payload"] for e in sdk.hooks.events("call.playback.ended")]
        assert ended and ended[0]["media_url"] == wav_url and ended[0]["status"] == "cancelled"


async def test_queue_infinity_and_stop(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        a = sdk.aclient.calls.actions
        await a.start_playback(ccid, audio_url="tone:500:400")
        await a.start_playback(ccid, audio_url="tone:800:300", loop="infinity")  # queued behind the first
        await wait_hz(call, 500)
        first_end = await sdk.hooks.wait("call.playback.ended", lambda p: p["media_url"] == "tone:500:400")
        assert first_end["payload"]["status"] == "completed"
        await wait_hz(call, 800)
        await asyncio.sleep(1.5)  # 300 ms tone looped for ever: still going
        await wait_hz(call, 800, seconds=0.3)
        assert not [e for e in sdk.hooks.events("call.playback.ended") if e["payload"]["media_url"] == "tone:800:300"]
        await a.stop_playback(ccid)
        stopped = await sdk.hooks.wait("call.playback.ended", lambda p: p["media_url"] == "tone:800:300")
        assert stopped["payload"]["status"] == "cancelled"
        started = [e["payload"]["media_url"] for e in sdk.hooks.events("call.playback.started")]
        assert started == ["tone:500:400", "tone:800:300"]
        await asyncio.sleep(0.5)
        assert voiced_seconds(call.sink.samples(0.3), -40.0) == 0.0


async def test_overlay_mixes_over_the_call_audio_main_playback_replaces_it(sdk: SdkEnv) -> None:
    cc = sdk.cc
    async with Phone(cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        outside = await cc.outside_call("+15550001111", APP_NUMBER, audio="tone:500")
        await sdk.aclient.calls.actions.answer(outside.call_control_id)
        await sdk.aclient.calls.actions.bridge(ccid, call_control_id_to_bridge_with=outside.call_control_id)
        await wait_hz(call, 500)
        a = sdk.aclient.calls.actions
        await a.start_playback(ccid, audio_url="tone:1100")  # main: replaces what the client hears
        await wait_hz(call, 1100)
        await asyncio.sleep(0.4)
        heard = call.sink.samples(0.4)
        assert band_db(heard, 1100) > -20 and band_db(heard, 500) < -45, (band_db(heard, 1100), band_db(heard, 500))
        await a.stop_playback(ccid)
        await wait_hz(call, 500)
        await a.start_playback(ccid, audio_url="tone:1100", overlay=True)  # mixed over the bridge
        await asyncio.sleep(0.8)
        heard = call.sink.samples(0.4)
        assert band_db(heard, 1100) > -20 and band_db(heard, 500) > -20, (band_db(heard, 1100), band_db(heard, 500))
        started = await sdk.hooks.wait("call.playback.started", lambda p: p["overlay"] is True)
        assert started["payload"]["media_url"] == "tone:1100"
        await a.stop_playback(ccid, overlay=True)
        ended = await sdk.hooks.wait("call.playback.ended", lambda p: p["overlay"] is True)
        assert ended["payload"]["status"] == "cancelled"
        await asyncio.sleep(0.5)
        heard = call.sink.samples(0.4)
        assert band_db(heard, 1100) < -45 and band_db(heard, 500) > -20


@pytest.mark.parametrize(
    "body",
    [
        {"audio_url": "tone:440", "loop": 0},
        {"audio_url": "tone:440", "loop": 101},
        {"audio_url": "tone:440", "loop": "forever"},
        {"audio_url": "http://example.com/a.wav"},
        {"audio_url": "tone:440", "media_name": "x.wav"},
        {"audio_url": "tone:440", "overlay": "maybe"},
        {"audio_url": "tone:440", "target_legs": "opposite"},
        {"playback_content": "not base64!"},
        {},
    ],
)
async def test_bad_playback_input_is_a_422(sdk: SdkEnv, body: dict[str, object]) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        _, ccid = await answered_call(sdk, phone)
        with pytest.raises(telnyx.UnprocessableEntityError) as err:
            await sdk.aclient.calls.actions.start_playback(ccid, extra_body=body)
        errors = err.value.body["errors"]  # type: ignore[index]
        assert errors[0]["code"] == "10015" and errors[0]["title"].startswith("Invalid value for")


async def test_http_media_that_is_not_audio_is_a_422(sdk: SdkEnv, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"this is not audio at all" * 100)
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        _, ccid = await answered_call(sdk, phone)
        with serve_file(junk) as url, pytest.raises(telnyx.UnprocessableEntityError) as err:
            await sdk.aclient.calls.actions.start_playback(ccid, audio_url=url)
        assert "decode" in err.value.body["errors"][0]["detail"]  # type: ignore[index]


async def test_target_legs_opposite_and_both(sdk: SdkEnv) -> None:
    cc = sdk.cc
    async with Phone(cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        outside = await cc.outside_call("+15550003333", APP_NUMBER)
        await sdk.aclient.calls.actions.answer(outside.call_control_id)
        await sdk.aclient.calls.actions.bridge(ccid, call_control_id_to_bridge_with=outside.call_control_id)
        assert isinstance(outside.endpoint, PstnEndpoint)
        far = outside.endpoint
        a = sdk.aclient.calls.actions
        await a.start_playback(ccid, audio_url="tone:1250:1000", target_legs="opposite")
        await asyncio.sleep(0.7)
        assert band_db(far.heard(0.4), 1250) > -20  # the other leg hears it ...
        assert band_db(call.sink.samples(0.4), 1250) < -45  # ... this one does not
        await sdk.hooks.wait("call.playback.ended", lambda p: p["call_control_id"] == outside.call_control_id)
        await a.speak(ccid, payload="Both of you hear this sentence.", voice="female", target_legs="both")
        await asyncio.sleep(1.2)
        assert voiced_seconds(far.heard(1.0), -40.0) > 0.3 and voiced_seconds(call.sink.samples(1.0), -40.0) > 0.3
        ends = [e["payload"]["call_control_id"] for e in sdk.hooks.events("call.speak.started")]
        assert sorted(ends) == sorted([ccid, outside.call_control_id])


async def test_playback_content_base64_wav(sdk: SdkEnv, tmp_path: Path) -> None:
    import base64

    wav = write_tone_wav(tmp_path / "c.wav", 1400.0, seconds=1.0)
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        content = base64.b64encode(wav.read_bytes()).decode()
        await sdk.aclient.calls.actions.start_playback(ccid, playback_content=content)
        await wait_hz(call, 1400)
        ended = await sdk.hooks.wait("call.playback.ended", lambda p: p["call_control_id"] == ccid)
        assert ended["payload"]["status"] == "completed"


async def test_main_playback_replaces_the_conference_and_the_hold_tone_comes_back(sdk: SdkEnv) -> None:
    cc = sdk.cc
    async with Phone(cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        outside = await cc.outside_call("+15550004444", APP_NUMBER, audio="tone:500")
        await sdk.aclient.calls.actions.answer(outside.call_control_id)
        conf = await sdk.aclient.conferences.create(call_control_id=ccid, name="room")
        assert conf.data is not None
        await sdk.aclient.conferences.actions.join(conf.data.id, call_control_id=outside.call_control_id)
        await wait_hz(call, 500)
        a = sdk.aclient.calls.actions
        await a.start_playback(ccid, audio_url="tone:1100:1500")
        await wait_hz(call, 1100)
        await asyncio.sleep(0.3)
        heard = call.sink.samples(0.4)
        assert band_db(heard, 1100) > -20 and band_db(heard, 500) < -45, (band_db(heard, 1100), band_db(heard, 500))
        await sdk.hooks.wait("call.playback.ended", lambda p: p["call_control_id"] == ccid)
        await wait_hz(call, 500)  # the conference is back
        await a.start_playback(ccid, audio_url="tone:1100:800", overlay=True)
        await asyncio.sleep(0.5)
        heard = call.sink.samples(0.3)
        assert band_db(heard, 1100) > -20 and band_db(heard, 500) > -20
