# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""Call transcription through the official SDK: real softphone legs (aiortc) play phrases spoken by
Debian's flite (generated here; flite is a required dependency), the switch recognises them with
pocketsphinx, and the webhook receiver gets ``call.transcription`` with the phrases' words."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import telnyx
from phones import Phone, PhoneCall
from sdkfixtures import AGENTS, APP_NUMBER, SdkEnv, sdk, validate_webhook  # noqa: F401

from softphone.media.sources import FileSource
from softphone.switch.callcontrol.transcription import transcriber_of

PHRASE_A = "Welcome to the test line. Press one for sales, press two for support."
PHRASE_B = "Please enter your account number followed by the pound key."


def flite_wav(text: str, path: Path) -> Path:
    flite = shutil.which("flite")
    if flite is None:
        pytest.fail("flite is not installed (Debian package flite): it is a required dependency", pytrace=False)
    subprocess.run([flite, "-voice", "slt", "-t", text, "-o", str(path)], check=True, capture_output=True)
    return path


async def answered_leg(sdk: SdkEnv, phone: Phone) -> tuple[str, PhoneCall]:
    res = await sdk.run(sdk.client.calls.dial, connection_id="app", to=phone.user, from_=APP_NUMBER)
    assert res.data is not None
    inc = await phone.next_incoming()
    await phone.answer(inc)
    ccid = res.data.call_control_id
    await sdk.hooks.wait("call.answered", lambda p: p["call_control_id"] == ccid)
    return ccid, inc


def word_accuracy(expected: str, heard: str) -> float:
    """1 - word error rate (Levenshtein over words), floored at 0."""
    ref = "".join(c.lower() if c.isalnum() else " " for c in expected).split()
    hyp = heard.split()
    d = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, d[0] = d[0], i
        for j, h in enumerate(hyp, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (r != h))
    return max(0.0, 1.0 - d[len(hyp)] / len(ref))


def transcripts(sdk: SdkEnv, ccid: str, track: str | None = None) -> list[dict[str, Any]]:
    return [
        e["payload"]
        for e in sdk.hooks.events("call.transcription")
        if e["payload"]["call_control_id"] == ccid
        and (track is None or e["payload"]["transcription_data"]["transcription_track"] == track)
    ]


async def wait_words(sdk: SdkEnv, ccid: str, phrase: str, track: str, timeout: float = 20.0) -> str:
    """Wait until this leg's transcripts on ``track`` have ``phrase`` with >= 80 % of its words right;
    the joined text."""
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = " ".join(p["transcription_data"]["transcript"] for p in transcripts(sdk, ccid, track))
        if word_accuracy(phrase, text) >= 0.8:
            return text
        await asyncio.sleep(0.2)
    raise AssertionError(f"{track} transcript {text!r}: {word_accuracy(phrase, text):.2f} of {phrase!r}")


async def test_inbound_transcription_of_a_spoken_prompt(sdk: SdkEnv, tmp_path: Path) -> None:
    wav = flite_wav(PHRASE_A, tmp_path / "a.wav")
    async with Phone(sdk.switch.url, "agent1", AGENTS["agent1"]) as phone:
        ccid, call = await answered_leg(sdk, phone)
        res = await sdk.run(
            sdk.client.calls.actions.start_transcription,
            ccid,
            transcription_engine="B",
            transcription_tracks="inbound",
            client_state="dHJhbnM=",
        )
        assert res.data is not None and res.data.result == "ok"
        transcriber = transcriber_of(sdk.cc.leg(ccid))
        assert transcriber is not None
        call.peer.set_source(FileSource(wav))
        started = time.monotonic()
        text = await wait_words(sdk, ccid, PHRASE_A, "inbound")
        assert {"welcome", "sales", "support"} <= set(text.split()), text
        payload = transcripts(sdk, ccid)[0]
        data = payload["transcription_data"]
        assert data["is_final"] is True and 0.0 <= data["confidence"] <= 1.0
        assert payload["client_state"] == "dHJhbnM=" and payload["connection_id"] == "app"
        print(f"transcript {text!r} {time.monotonic() - started:.1f} s after the prompt started")
        for raw in sdk.hooks.raw_for("call.transcription"):  # signed, and in the SDK's shape
            assert sdk.client.webhooks.unwrap(raw.body, headers=raw.headers, key=sdk.public_key) is not None
            assert validate_webhook(raw.body).data.payload.transcription_data.is_final  # type: ignore[attr-defined]

        # A second start while one runs is refused; stop answers ok, a second stop is refused.
        with pytest.raises(telnyx.UnprocessableEntityError):
            await sdk.run(sdk.client.calls.actions.start_transcription, ccid)
        await asyncio.sleep(1.0)
        res2 = await sdk.aclient.calls.actions.stop_transcription(ccid)
        assert res2.data is not None and res2.data.result == "ok"
        await asyncio.wait_for(transcriber.done.wait(), 10.0)
        with pytest.raises(telnyx.UnprocessableEntityError):
            await sdk.aclient.calls.actions.stop_transcription(ccid)
        cost = transcriber.cpu_seconds / transcriber.audio_seconds
        print(
            f"transcription CPU: {transcriber.cpu_seconds:.2f} s for {transcriber.audio_seconds:.1f} s of call audio "
            f"= {cost:.3f} CPU s per call-second"
        )
        assert cost < 0.5, cost


async def test_both_tracks_of_a_bridged_call_are_told_apart(sdk: SdkEnv, tmp_path: Path) -> None:
    wav_a = flite_wav(PHRASE_A, tmp_path / "a.wav")
    wav_b = flite_wav(PHRASE_B, tmp_path / "b.wav")
    url = sdk.switch.url
    async with Phone(url, "agent1", AGENTS["agent1"]) as p1, Phone(url, "agent2", AGENTS["agent2"]) as p2:
        ccid1, call1 = await answered_leg(sdk, p1)
        ccid2, call2 = await answered_leg(sdk, p2)
        await sdk.run(sdk.client.calls.actions.bridge, ccid1, call_control_id_to_bridge_with=ccid2)
        await sdk.hooks.wait("call.bridged", lambda p: p["call_control_id"] == ccid1)
        await sdk.aclient.calls.actions.start_transcription(ccid1, transcription_tracks="both")
        call1.peer.set_source(FileSource(wav_a))
        call2.peer.set_source(FileSource(wav_b))
        said = await wait_words(sdk, ccid1, PHRASE_A, "inbound")
        heard = await wait_words(sdk, ccid1, PHRASE_B, "outbound")
        assert {"sales", "support"} <= set(said.split()) and {"pound", "key"} <= set(heard.split()), (said, heard)
        inbound = " ".join(p["transcription_data"]["transcript"] for p in transcripts(sdk, ccid1, "inbound"))
        assert not {"pound", "key"} & set(inbound.split())  # the other side's words stay on their own track
        assert not transcripts(sdk, ccid2)  # only the leg that asked is transcribed

        # Hanging up ends the transcription (the recogniser threads stop).
        transcriber = transcriber_of(sdk.cc.leg(ccid1))
        assert transcriber is not None
        await sdk.run(sdk.client.calls.actions.hangup, ccid1)
        await asyncio.wait_for(transcriber.done.wait(), 10.0)


async def test_transcription_refusals(sdk: SdkEnv) -> None:
    async with Phone(sdk.switch.url, "agent1", AGENTS["agent1"]) as phone:
        ccid, _ = await answered_leg(sdk, phone)
        for kwargs in (
            {"transcription_tracks": "sideways"},
            {"transcription_engine": "Nonesuch"},
            {"transcription_engine": "Google", "transcription_engine_config": {"language": "de"}},
        ):
            with pytest.raises(telnyx.UnprocessableEntityError) as ue:
                await sdk.aclient.calls.actions.start_transcription(ccid, **kwargs)  # type: ignore[arg-type]
            err = ue.value.response.json()["errors"][0]
            assert err["code"] == "10015" and err["detail"]
        with pytest.raises(telnyx.UnprocessableEntityError):
            await sdk.aclient.calls.actions.stop_transcription(ccid)


async def test_interim_results_come_before_the_final_one(sdk: SdkEnv, tmp_path: Path) -> None:
    wav = flite_wav(PHRASE_A, tmp_path / "a.wav")
    async with Phone(sdk.switch.url, "agent1", AGENTS["agent1"]) as phone:
        ccid, call = await answered_leg(sdk, phone)
        await sdk.run(
            sdk.client.calls.actions.start_transcription,
            ccid,
            transcription_engine="Google",
            transcription_engine_config={"transcription_engine": "Google", "interim_results": True, "language": "en"},
        )
        call.peer.set_source(FileSource(wav))
        await sdk.hooks.wait(
            "call.transcription",
            lambda p: p["call_control_id"] == ccid and p["transcription_data"]["is_final"],
            timeout=20.0,
        )
        results = [p["transcription_data"] for p in transcripts(sdk, ccid)]
        finals = [r for r in results if r["is_final"]]
        interims = [r for r in results if not r["is_final"]]
        assert finals and word_accuracy(PHRASE_A, finals[0]["transcript"]) >= 0.8, finals
        assert len(interims) >= 2, results  # the words so far, growing while the prompt plays
        assert results.index(interims[0]) < results.index(finals[0])
        assert all(r["confidence"] == 0.0 for r in interims)
        assert len(set(r["transcript"] for r in interims)) == len(interims)  # posted only when they change
        assert len(interims[-1]["transcript"].split()) > len(interims[0]["transcript"].split())
