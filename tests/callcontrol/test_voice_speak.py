# ruff: noqa: F811  (the sdk fixture is imported from sdkfixtures)
"""speak through the official SDK: the softphone client records the call and pocketsphinx hears the
prompt's words; webhooks, SSML, other languages, bad input; and the latency from the API command to
the first non-silent audio at a client (median of 10, printed for the closing note)."""

from __future__ import annotations

import asyncio
import statistics
import time
import wave
from pathlib import Path

import numpy as np
import pytest
import telnyx
from phones import Phone
from sdkfixtures import AGENTS, SdkEnv, sdk  # noqa: F401
from voicekit import answered_call, recognize, timed, voiced_seconds

from softphone.client.client import Client
from softphone.media.hub import AudioConfig
from softphone.protocol import CallState, Credentials

PROMPTS = {
    "Welcome to the test line. Press one for sales, press two for support.":
        "welcome to the test line press one for sales press two for support",
    "Your call is important to us. Please hold the line.":
        "your call is important to us please hold the line",
}


def words_right(heard: str, want: str) -> tuple[int, int]:
    """Words of ``want`` found in ``heard`` in order (a longest common subsequence), and len(want)."""
    h, w = heard.split(), want.split()
    table = [[0] * (len(h) + 1) for _ in range(len(w) + 1)]
    for i, a in enumerate(w):
        for j, b in enumerate(h):
            table[i + 1][j + 1] = table[i][j] + 1 if a == b else max(table[i][j + 1], table[i + 1][j])
    return table[len(w)][len(h)], len(w)


async def test_speak_is_heard_by_the_softphone_and_recognised(sdk: SdkEnv, tmp_path: Path) -> None:
    cc = sdk.cc
    rec = tmp_path / "client.wav"
    client = Client(
        url=cc.switch.url,
        credentials=Credentials(login="agent1", password=AGENTS["agent1"]),
        audio=AudioConfig(backend="null", record_file=str(rec), record_mode="remote"),
        ice_servers=[],
    )
    await client.connect()
    try:
        call = await client.new_call("+18005550123")
        init = await sdk.hooks.wait("call.initiated", lambda p: p["to"] == "+18005550123")
        ccid = init["payload"]["call_control_id"]
        await sdk.run(sdk.client.calls.actions.answer, ccid)
        await call.wait_state(CallState.ACTIVE, timeout=10)
        await asyncio.sleep(0.3)
        for i, text in enumerate(PROMPTS):
            res = await sdk.run(sdk.client.calls.actions.speak, ccid, payload=text, voice="female",
                                language="en-US", client_state=f"c3Bl{i}w==")
            assert res.data is not None and res.data.result == "ok"
            started = await sdk.hooks.wait("call.speak.started", lambda p, i=i: p["client_state"] == f"c3Bl{i}w==")
            assert started["payload"]["call_control_id"] == ccid
            ended = await sdk.hooks.wait("call.speak.ended", lambda p, i=i: p["client_state"] == f"c3Bl{i}w==",
                                         timeout=20)
            assert ended["payload"]["status"] == "completed"
            await asyncio.sleep(0.8)  # a pause between the prompts (the recogniser's utterance break)
        await call.hangup()
        await call.wait_ended(timeout=10)
    finally:
        await client.close()
    with wave.open(str(rec)) as wf:
        assert wf.getframerate() == 48000
        pcm = np.frombuffer(wf.readframes(wf.getnframes()), dtype="<i2").reshape(-1, wf.getnchannels())[:, -1]
    assert voiced_seconds(pcm) > 3.0
    heard = recognize(pcm, 48000)
    right = total = 0
    for want in PROMPTS.values():
        r, n = words_right(heard, want)
        right, total = right + r, total + n
    print(f"\nspeak -> client recording -> pocketsphinx: {right}/{total} words ({right / total:.0%}); heard {heard!r}")
    assert right / total >= 0.8, heard
    for key in ("welcome", "sales", "support", "important"):
        assert key in heard.split(), (key, heard)


async def test_speak_latency_to_first_audio(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        sink = timed(call)
        await asyncio.sleep(0.5)
        latencies = []
        words = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
        for i in range(10):  # a new text each time: nothing comes from the synthesis cache
            t0 = time.monotonic()
            await sdk.aclient.calls.actions.speak(ccid, payload=f"Hello caller {words[i]}", voice="female",
                                                  client_state=f"bA{i}=")
            await sdk.hooks.wait("call.speak.ended", lambda p, i=i: p["client_state"] == f"bA{i}=", timeout=10)
            first = sink.first_loud_after(t0)
            assert first is not None
            latencies.append(first - t0)
            await asyncio.sleep(0.2)
    median = statistics.median(latencies)
    print(f"\nspeak latency (API command -> first non-silent frame at the client), median of 10: "
          f"{median * 1000:.0f} ms (min {min(latencies) * 1000:.0f}, max {max(latencies) * 1000:.0f})")
    assert median < 1.0


async def test_speak_ssml_other_language_and_hangup(sdk: SdkEnv) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call, ccid = await answered_call(sdk, phone)
        a = sdk.aclient.calls.actions
        await a.speak(ccid, payload="<speak>One <break time='1500ms'/> two</speak>", payload_type="ssml",
                      voice="Polly.Joanna", client_state="c3NtbA==")
        ended = await sdk.hooks.wait("call.speak.ended", lambda p: p["client_state"] == "c3NtbA==", timeout=10)
        assert ended["payload"]["status"] == "completed"
        t0 = sdk.hooks.raw_for("call.speak.started")[0].received_at
        t1 = sdk.hooks.raw_for("call.speak.ended")[0].received_at
        assert t1 - t0 > 2.0, t1 - t0  # "one", 1.5 s of silence, "two"
        await a.speak(ccid, payload="Guten Tag und willkommen", voice="male", language="de-DE",
                      voice_settings={"type": "telnyx", "voice_speed": 1.3}, client_state="ZGU=")
        await sdk.hooks.wait("call.speak.ended", lambda p: p["client_state"] == "ZGU=", timeout=10)
        assert voiced_seconds(call.sink.samples(3.0), -40.0) > 0.5
        await a.speak(ccid, payload="This sentence is cut short by the caller hanging up.", voice="female",
                      client_state="aHU=")
        await sdk.hooks.wait("call.speak.started", lambda p: p["client_state"] == "aHU=")
        await asyncio.sleep(0.4)
        await phone.hangup(call)
        cut = await sdk.hooks.wait("call.speak.ended", lambda p: p["client_state"] == "aHU=")
        assert cut["payload"]["status"] == "call_hangup"


@pytest.mark.parametrize(
    "body",
    [
        {"payload": "", "voice": "female"},
        {"payload": "<speak>unclosed", "voice": "female", "payload_type": "ssml"},
        {"payload": "hello", "voice": "female", "payload_type": "html"},
        {"payload": "hello", "voice": "flite.nobody"},
        {"payload": "hello", "voice": "female", "language": "xx-YY"},
        {"payload": "a" * 3001, "voice": "female"},
        {"payload": "hello", "voice": "female", "loop": 0},
        {"payload": "hello", "voice": "female", "voice_settings": {"type": "telnyx", "voice_speed": 9}},
    ],
)
async def test_bad_speak_input_is_a_422(sdk: SdkEnv, body: dict[str, object]) -> None:
    async with Phone(sdk.cc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        _, ccid = await answered_call(sdk, phone)
        with pytest.raises(telnyx.UnprocessableEntityError) as err:
            await sdk.aclient.calls.actions.speak(ccid, **body)  # type: ignore[arg-type]
        assert err.value.body["errors"][0]["title"].startswith("Invalid value for")  # type: ignore[index]
