# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""record_start/stop/pause/resume through the official SDK: the call.recording.saved webhook's URL is
fetched from the switch and the audio checked (frames, channels, a tone on the expected channel)."""

from __future__ import annotations

import asyncio
import io
import wave

import av
import httpx
import numpy as np
import pytest
import telnyx
from phones import Phone, wait_hz
from sdkfixtures import AGENTS, SdkEnv, sdk  # noqa: F401
from voicekit import answered_call, band_db

from softphone.media.dsp import dominant_frequency


async def fetch(url: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(url)


def wav_channels(data: bytes) -> tuple[int, int, np.ndarray]:
    with wave.open(io.BytesIO(data)) as wf:
        ch, rate = wf.getnchannels(), wf.getframerate()
        pcm = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2").reshape(-1, ch)
    return ch, rate, pcm


async def test_dual_wav_with_pause_tone_per_channel(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"], tone_hz=600) as phone:
        call, ccid = await answered_call(sdk, phone)
        a = sdk.client.calls.actions
        await sdk.run(a.start_playback, ccid, audio_url="tone:1100")
        await wait_hz(call, 1100)
        res = await sdk.run(a.start_recording, ccid, format="wav", channels="dual", client_state="cmVj")
        assert res.data is not None and res.data.result == "ok"
        await asyncio.sleep(1.5)
        await sdk.run(a.pause_recording, ccid)
        await asyncio.sleep(1.5)  # nothing of this is written
        await sdk.run(a.resume_recording, ccid)
        await asyncio.sleep(1.0)
        await sdk.run(a.stop_recording, ccid)
        saved = await sdk.hooks.wait("call.recording.saved", lambda p: p["call_control_id"] == ccid)
    p = saved["payload"]
    assert p["channels"] == "dual" and p["client_state"] == "cmVj"
    assert p["recording_started_at"] < p["recording_ended_at"]
    url = p["recording_urls"]["wav"]
    assert url.startswith(sdk.cc.api_url + "/") and p["public_recording_urls"]["wav"] == url
    r = await fetch(url)
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    ch, rate, pcm = wav_channels(r.content)
    assert (ch, rate) == (2, 48000)
    seconds = pcm.shape[0] / rate
    assert 2.1 < seconds < 2.9, seconds  # 1.5 s + 1.0 s recorded, the 1.5 s pause left out
    said, heard = pcm[rate // 2 :, 0], pcm[rate // 2 :, 1]
    assert abs(dominant_frequency(said) - 600) < 10  # channel A: the client's own voice
    assert abs(dominant_frequency(heard) - 1100) < 10  # channel B: what it hears
    assert band_db(said, 1100) < -40 and band_db(heard, 600) < -40


async def test_mp3_single_inbound_track_and_saved_on_hangup(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"], tone_hz=750) as phone:
        call, ccid = await answered_call(sdk, phone)
        a = sdk.aclient.calls.actions
        await a.start_playback(ccid, audio_url="tone:1300")
        await wait_hz(call, 1300)
        await a.start_recording(ccid, format="mp3", channels="single", recording_track="inbound")
        await asyncio.sleep(1.5)
        await phone.hangup(call)  # the recording ends with the call
        saved = await sdk.hooks.wait("call.recording.saved", lambda p: p["call_control_id"] == ccid)
    names = [e["event_type"] for e in sdk.hooks.events() if e["payload"].get("call_control_id") == ccid]
    assert names.index("call.hangup") < names.index("call.recording.saved")
    r = await fetch(saved["payload"]["recording_urls"]["mp3"])
    assert r.status_code == 200 and r.headers["content-type"] == "audio/mpeg"
    with av.open(io.BytesIO(r.content)) as container:
        stream = container.streams.audio[0]
        assert stream.channels == 1
        pcm = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
    assert 1.2 < pcm.shape[0] / 48000 < 2.0
    mono = (pcm * 32767).astype(np.int16)[4800:]
    assert abs(dominant_frequency(mono) - 750) < 10  # inbound only: the client, not the playback
    assert band_db(mono, 1300) < -40


async def test_max_length_ends_the_recording(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"], tone_hz=500) as phone:
        _, ccid = await answered_call(sdk, phone)
        await sdk.aclient.calls.actions.start_recording(ccid, format="wav", channels="single", max_length=1)
        saved = await sdk.hooks.wait("call.recording.saved", lambda p: p["call_control_id"] == ccid, timeout=8)
        r = await fetch(saved["payload"]["recording_urls"]["wav"])
        ch, rate, pcm = wav_channels(r.content)
        assert ch == 1 and abs(pcm.shape[0] / rate - 1.0) < 0.05
        assert abs(dominant_frequency(pcm[:, 0]) - 500) < 10
        with pytest.raises(telnyx.UnprocessableEntityError):  # nothing left to stop
            await sdk.aclient.calls.actions.stop_recording(ccid)


async def test_bad_recording_input(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        _, ccid = await answered_call(sdk, phone)
        a = sdk.aclient.calls.actions
        auth = {"Authorization": f"Bearer {sdk.api_key}"}
        async with httpx.AsyncClient(base_url=sdk.base_url, headers=auth) as http:
            for body in ({"format": "ogg", "channels": "single"}, {"format": "wav"}, {"channels": "dual"},
                         {"format": "wav", "channels": "single", "recording_track": "sideways"},
                         {"format": "wav", "channels": "single", "max_length": -1},
                         {"format": "wav", "channels": "single", "custom_file_name": "../x"}):
                r = await http.post(f"/calls/{ccid}/actions/record_start", json=body)
                assert r.status_code == 422 and r.json()["errors"][0]["code"] == "10015", (body, r.text)
        for fn in (a.stop_recording, a.pause_recording, a.resume_recording):
            with pytest.raises(telnyx.UnprocessableEntityError):
                await fn(ccid)
        await a.start_recording(ccid, format="wav", channels="single")
        with pytest.raises(telnyx.UnprocessableEntityError):
            await a.pause_recording(ccid, recording_id="no-such-recording")
        r = await fetch(f"{sdk.cc.api_url}/switch/recordings/00000000-0000-0000-0000-000000000000.wav")
        assert r.status_code == 404 and r.json()["errors"][0]["code"] == "10005"
        r = await fetch(f"{sdk.cc.api_url}/switch/recordings/..%2Fwebhook_signing_key.pem")
        assert r.status_code == 404


async def test_recordings_resource_through_the_sdk(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"], tone_hz=500) as phone:
        _, ccid = await answered_call(sdk, phone)
        await sdk.aclient.calls.actions.start_recording(ccid, format="wav", channels="single", max_length=1)
        saved = await sdk.hooks.wait("call.recording.saved", lambda p: p["call_control_id"] == ccid, timeout=8)
    rid = saved["payload"]["recording_id"]
    page = await sdk.run(sdk.client.recordings.list, filter={"call_control_id": ccid})
    assert [r.id for r in page.data] == [rid]
    assert not (await sdk.aclient.recordings.list(filter={"call_control_id": "v3:nope"})).data
    got = await sdk.aclient.recordings.retrieve(rid)
    assert got.data is not None
    rec = got.data
    assert (rec.call_control_id, rec.channels, rec.status, rec.source) == (ccid, "single", "completed", "call")
    assert rec.download_urls is not None and rec.download_urls.wav == saved["payload"]["recording_urls"]["wav"]
    assert 900 < (rec.duration_millis or 0) < 1100
    other, _ = sdk.clients("KEYsomeoneelse")
    with pytest.raises((telnyx.NotFoundError, telnyx.AuthenticationError)):
        await sdk.run(other.recordings.retrieve, rid)
    await sdk.aclient.recordings.delete(rid)
    with pytest.raises(telnyx.NotFoundError):
        await sdk.aclient.recordings.retrieve(rid)
    assert (await fetch(rec.download_urls.wav)).status_code == 404


async def test_trim_silence(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        _, ccid = await answered_call(sdk, phone)
        a = sdk.aclient.calls.actions
        await a.start_recording(ccid, format="wav", channels="single", trim="trim-silence")
        await asyncio.sleep(1.0)
        await a.start_playback(ccid, audio_url="tone:800:500")
        await sdk.hooks.wait("call.playback.ended", lambda p: p["call_control_id"] == ccid)
        await asyncio.sleep(1.0)
        await a.stop_recording(ccid)
        saved = await sdk.hooks.wait("call.recording.saved", lambda p: p["call_control_id"] == ccid)
    r = await fetch(saved["payload"]["recording_urls"]["wav"])
    _, rate, pcm = wav_channels(r.content)
    assert 0.4 < pcm.shape[0] / rate < 0.7  # the second of silence either side is gone
    assert abs(dominant_frequency(pcm[:, 0]) - 800) < 10
    assert 400 < saved["payload"]["duration_millis"] < 700


async def test_a_recording_that_cannot_be_written_posts_recording_error(
    sdk: SdkEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sdkfixtures import validate_webhook

    from softphone.switch.callcontrol import recording

    def boom(*args: object, **kwargs: object) -> float:
        raise OSError("disk full")

    monkeypatch.setattr(recording, "write_final", boom)
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        _, ccid = await answered_call(sdk, phone)
        await sdk.aclient.calls.actions.start_recording(ccid, format="mp3", channels="single", client_state="ZXJy")
        await asyncio.sleep(0.3)
        await sdk.aclient.calls.actions.stop_recording(ccid)
        err = await sdk.hooks.wait("call.recording.error", lambda p: p["call_control_id"] == ccid)
    assert err["payload"]["reason"] == "Internal server error" and err["payload"]["client_state"] == "ZXJy"
    validate_webhook(sdk.hooks.raw_for("call.recording.error")[0].body)
    assert not sdk.hooks.events("call.recording.saved")
