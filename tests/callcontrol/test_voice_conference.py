# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""Conference media through the official SDK (conferences.actions.play/speak/stop/record_*): every
participant hears the play over the room, the conference webhooks validate against the SDK's models,
and the room's recording holds the creator on channel A and the others on B."""

from __future__ import annotations

import asyncio
import io
import wave

import httpx
import numpy as np
import pytest
import telnyx
from phones import Phone, PhoneCall, wait_hz
from sdkfixtures import AGENTS, APP_NUMBER, SdkEnv, sdk, validate_webhook  # noqa: F401
from voicekit import answered_call, band_db, voiced_seconds, wait_band

from softphone.media.dsp import dominant_frequency
from softphone.switch.callcontrol.pstn import PstnEndpoint


async def room(sdk: SdkEnv, phone: Phone, audio: str = "tone:500") -> tuple[str, str, PstnEndpoint, PhoneCall]:
    call, ccid = await answered_call(sdk, phone)
    outside = await sdk.cc.outside_call("+15550005555", APP_NUMBER, audio=audio)
    await sdk.aclient.calls.actions.answer(outside.call_control_id)
    conf = await sdk.aclient.conferences.create(call_control_id=ccid, name="media-room")
    assert conf.data is not None
    await sdk.aclient.conferences.actions.join(conf.data.id, call_control_id=outside.call_control_id)
    if audio:
        await wait_hz(call, 500)
    assert isinstance(outside.endpoint, PstnEndpoint)
    return conf.data.id, ccid, outside.endpoint, call


async def test_play_speak_stop_heard_by_every_participant(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"], tone_hz=600) as phone:
        conf_id, ccid, far, call = await room(sdk, phone)
        actions = sdk.aclient.conferences.actions
        res = await actions.play(conf_id, audio_url="tone:1300:800")
        assert res.data is not None and res.data.result == "ok"
        await wait_band(call.sink.samples, 1300)
        assert band_db(far.heard(0.3), 1300) > -20  # the outside participant hears it too
        assert band_db(call.sink.samples(0.3), 500) > -25  # mixed over the room, not instead of it
        ended = await sdk.hooks.wait("conference.playback.ended", lambda p: p["conference_id"] == conf_id)
        assert ended["payload"]["media_url"] == "tone:1300:800"
        await sdk.run(sdk.client.conferences.actions.speak, conf_id, payload="Welcome to the conference.",
                      voice="female")
        await sdk.hooks.wait("conference.speak.ended", lambda p: p["conference_id"] == conf_id, timeout=10)
        await actions.play(conf_id, audio_url="tone:900", loop="infinity", call_control_ids=[ccid])
        await wait_band(call.sink.samples, 900)
        assert band_db(far.heard(0.3), 900) < -45  # only the listed participant
        await actions.stop(conf_id)
        await sdk.hooks.wait("conference.playback.ended", lambda p: p.get("media_url") == "tone:900")
        await asyncio.sleep(0.5)
        assert band_db(call.sink.samples(0.3), 900) < -45
    assert voiced_seconds(far.heard(10.0)) > 1.0
    for kind in ("conference.playback.started", "conference.playback.ended",
                 "conference.speak.started", "conference.speak.ended"):
        raws = sdk.hooks.raw_for(kind)
        assert raws, kind
        for raw in raws:
            validate_webhook(raw.body)


async def test_conference_recording_creator_on_channel_a(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"], tone_hz=600) as phone:
        conf_id, _, _, _ = await room(sdk, phone)
        actions = sdk.aclient.conferences.actions
        await actions.record_start(conf_id, format="wav", channels="dual")
        await asyncio.sleep(1.0)
        await actions.record_pause(conf_id)
        await asyncio.sleep(1.0)
        await actions.record_resume(conf_id)
        await actions.play(conf_id, audio_url="tone:1500:400")
        await asyncio.sleep(1.0)
        await actions.record_stop(conf_id, client_state="cm9vbQ==")
        saved = await sdk.hooks.wait("conference.recording.saved", lambda p: p["conference_id"] == conf_id)
    validate_webhook(sdk.hooks.raw_for("conference.recording.saved")[0].body)
    p = saved["payload"]
    assert (p["channels"], p["format"], p["client_state"]) == ("dual", "wav", "cm9vbQ==")
    async with httpx.AsyncClient() as http:
        r = await http.get(p["recording_urls"]["wav"])
    with wave.open(io.BytesIO(r.content)) as wf:
        assert (wf.getnchannels(), wf.getframerate()) == (2, 48000)
        pcm = np.frombuffer(wf.readframes(wf.getnframes()), "<i2").reshape(-1, 2)
    assert 1.8 < pcm.shape[0] / 48000 < 2.3  # the paused second is not there
    assert abs(dominant_frequency(pcm[4800:, 0]) - 600) < 10  # the creator
    assert band_db(pcm[:, 1], 500) > -25 and band_db(pcm[:, 1], 1500) > -30  # the others and the play
    rec = await sdk.aclient.recordings.retrieve(p["recording_id"])
    assert rec.data is not None and rec.data.source == "conference" and rec.data.conference_id == conf_id


async def test_bad_conference_media_input(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        conf_id, _, _, _ = await room(sdk, phone)
        actions = sdk.aclient.conferences.actions
        with pytest.raises(telnyx.NotFoundError):
            await actions.play("no-such-conference", audio_url="tone:440")
        for kwargs in ({"audio_url": "tone:440", "call_control_ids": ["v3:stranger"]}, {},
                       {"audio_url": "http://192.0.2.7/x.wav"}, {"audio_url": "tone:440", "loop": 0}):
            with pytest.raises(telnyx.UnprocessableEntityError):
                await actions.play(conf_id, **kwargs)
        with pytest.raises(telnyx.UnprocessableEntityError):
            await actions.speak(conf_id, payload="", voice="female")
        with pytest.raises(telnyx.UnprocessableEntityError):
            await actions.record_stop(conf_id)
        with pytest.raises(telnyx.UnprocessableEntityError):
            await actions.record_start(conf_id, format="ogg")


async def test_conference_send_dtmf_and_participant_gather(sdk: SdkEnv) -> None:
    from softphone.media.dsp import detect_dtmf

    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        conf_id, ccid, far, call = await room(sdk, phone, audio="")  # a quiet room: DTMF detection
        await asyncio.sleep(0.5)
        actions = sdk.aclient.conferences.actions
        await actions.send_dtmf(conf_id, digits="19", call_control_ids=[ccid])
        await asyncio.sleep(1.2)
        assert call.methods.count("telnyx_rtc.info") == 2  # the client is told of each digit
        assert detect_dtmf(call.sink.samples(1.5)) == "19"
        assert detect_dtmf(far.heard(1.5)) == ""  # not listed: hears nothing of it
        await actions.gather_dtmf_audio(conf_id, call_control_id=ccid, audio_url="tone:700:2000",
                                        maximum_digits=1, gather_id="menu-1")
        await wait_band(call.sink.samples, 700)
        await phone.dtmf(call, "5")
        ended = await sdk.hooks.wait("call.gather.ended", lambda p: p["call_control_id"] == ccid)
        p = ended["payload"]
        assert (p["digits"], p["status"], p["gather_id"]) == ("5", "valid", "menu-1")
        with pytest.raises(telnyx.UnprocessableEntityError):
            await actions.gather_dtmf_audio(conf_id, call_control_id="v3:stranger", audio_url="tone:700:200")
        with pytest.raises(telnyx.UnprocessableEntityError):
            await actions.send_dtmf(conf_id, digits="x")
