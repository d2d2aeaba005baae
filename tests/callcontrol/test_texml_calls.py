# ruff: noqa: F811  (fixtures are imported from texmlfixtures)
"""TeXML end to end: outside callers and softphone clients run documents, with the audio checked."""

from __future__ import annotations

import asyncio
import time

from phones import Phone, PhoneCall, api, wait_hz
from texmlfixtures import AGENTS, IVR_NUMBER, PROMPT, TexmlServer, tcc, texml_server  # noqa: F401

from softphone.media import asr
from softphone.media.dsp import dominant_frequency
from softphone.switch.callcontrol.engine import CallControl
from softphone.switch.callcontrol.pstn import PstnEndpoint
from softphone.switch.callcontrol.texml import runner_of


async def pstn_hears(ep: PstnEndpoint, hz: float, tol: float = 15.0, timeout: float = 8.0) -> float:
    got = 0.0
    for _ in range(int(timeout / 0.2)):
        await asyncio.sleep(0.2)
        got = dominant_frequency(ep.heard(0.6))
        if abs(got - hz) <= tol:
            return got
    raise AssertionError(f"outside caller heard {got:.0f} Hz, wanted {hz:.0f}")


def words(text: str) -> set[str]:
    return set(text.split())


PROMPT_WORDS = "welcome to the test line press one for sales press two for support".split()


def recall(heard: str) -> float:
    """Share of the prompt's words the recogniser heard (pocketsphinx on 8 kHz audio misses one now and then)."""
    got = words(heard)
    return sum(w in got for w in PROMPT_WORDS) / len(PROMPT_WORDS)


async def test_outside_call_hears_say_and_the_request_carries_telnyx_parameters(
    tcc: CallControl, texml_server: TexmlServer
) -> None:
    texml_server.docs["/voice"] = (
        f'<?xml version="1.0"?>\n<Response>\n  <Say voice="female">{PROMPT}</Say>\n</Response>'
    )
    t0 = time.monotonic()
    st, body = await api(tcc.api_url, "POST", "/switch/pstn_calls", {"from": "+15557654321", "to": IVR_NUMBER})
    assert st == 200, body
    ccid = body["data"]["call_control_id"]
    leg = tcc.legs[ccid]
    assert isinstance(leg.endpoint, PstnEndpoint)
    hit = await texml_server.wait("/voice")
    assert hit.method == "POST"
    p = hit.params
    assert p["CallSid"] == ccid and p["From"] == "+15557654321" and p["To"] == IVR_NUMBER
    assert p["CallStatus"] == "ringing" and p["Direction"] == "inbound" and p["AccountSid"]
    session = runner_of(tcc).sessions[ccid]
    while "first_say_audio" not in session.timings:
        await asyncio.sleep(0.01)
    first_audio = time.monotonic() - t0
    await asyncio.wait_for(leg.ended.wait(), 20)  # the document ran out: hung up
    heard = asr.recognize(leg.endpoint.heard(), 48000)
    print(f"\nTeXML outside call -> first Say audio: {first_audio * 1000:.0f} ms "
          f"(session {session.timings['first_say_audio'] * 1000:.0f} ms); heard: {heard!r}")
    # 8 kHz on the outside leg: measured recall 85-92 % over runs ("chest line", "pencil and four")
    assert {"welcome", "sales", "support"} <= words(heard) and recall(heard) >= 0.7, heard
    assert first_audio < 5.0
    status = await texml_server.wait("/status")
    assert status.params["CallStatus"] == "completed" and status.params["CallSid"] == ccid
    assert "ErrorCode" not in status.params


async def test_client_call_hears_say_recognised_on_the_softphone_side(
    tcc: CallControl, texml_server: TexmlServer
) -> None:
    texml_server.docs["/voice"] = f"<Response><Say>{PROMPT}</Say><Pause length='1'/></Response>"
    async with Phone(tcc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        t0 = time.monotonic()
        call = await phone.dial(IVR_NUMBER)
        await phone.wait_state(call, "active", 15)
        answered = time.monotonic() - t0
        await phone.wait_state(call, "hangup", 30)
        heard = asr.recognize(call.sink.samples(), 48000)
    hit = texml_server.requests("/voice")[0]
    session = runner_of(tcc).sessions[hit.params["CallSid"]]
    print(f"\nTeXML client call: answered after {answered * 1000:.0f} ms, first Say audio "
          f"{session.timings['first_say_audio'] * 1000:.0f} ms after the switch took the call")
    assert hit.params["To"] == IVR_NUMBER and hit.params["Direction"] == "inbound"
    print(f"\nTeXML Say heard by the softphone: {heard!r} (recall {recall(heard):.0%})")
    assert {"welcome", "sales"} <= words(heard) and recall(heard) >= 0.75, heard


async def test_play_tone_checked_by_frequency_on_the_client(tcc: CallControl, texml_server: TexmlServer) -> None:
    texml_server.docs["/voice"] = "<Response><Play>tone:700:4000</Play><Hangup/></Response>"
    async with Phone(tcc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call = await phone.dial(IVR_NUMBER)
        got = await wait_hz(call, 700, timeout=10)
        assert abs(got - 700) < 15
        await phone.wait_state(call, "hangup", 15)


async def test_gather_digits_from_the_client_reach_the_action_url(
    tcc: CallControl, texml_server: TexmlServer
) -> None:
    texml_server.docs["/voice"] = (
        "<Response>\n<Gather action='/gathered' numDigits='3' timeout='8'>\n"
        "<Say>Enter your code</Say></Gather>\n<Say>We did not get anything</Say></Response>"
    )
    texml_server.docs["/gathered"] = lambda p: "<Response><Play>tone:900:3000</Play><Hangup/></Response>"
    async with Phone(tcc.switch.url, "agent1", AGENTS["agent1"]) as phone:
        call = await phone.dial(IVR_NUMBER)
        await phone.wait_state(call, "active", 15)
        await asyncio.sleep(0.5)
        await phone.dtmf(call, "427")
        hit = await texml_server.wait("/gathered")
        assert hit.params["Digits"] == "427" and hit.params["CallStatus"] == "in-progress"
        await wait_hz(call, 900, timeout=8)  # the action's document replaced the first one
        await phone.wait_state(call, "hangup", 15)


async def test_dial_a_registered_client_both_hear_each_other(tcc: CallControl, texml_server: TexmlServer) -> None:
    texml_server.docs["/voice"] = (
        "<Response><Dial callerId='+15550001111' timeout='10' action='/dialed'>"
        "<Sip>sip:agent2@sip.telnyx.com</Sip></Dial></Response>"
    )
    texml_server.docs["/dialed"] = "<Response><Hangup/></Response>"
    async with (
        Phone(tcc.switch.url, "agent1", AGENTS["agent1"], 600) as caller,
        Phone(tcc.switch.url, "agent2", AGENTS["agent2"], 900) as callee,
    ):
        out = await caller.dial(IVR_NUMBER)
        inc = await callee.next_incoming(15)
        assert inc.params["caller_id_number"] == "+15550001111"
        await callee.answer(inc)
        await wait_hz(out, 900)
        await wait_hz(inc, 600)
        await callee.hangup(inc)
        hit = await texml_server.wait("/dialed")
        assert hit.params["DialCallStatus"] == "completed" and hit.params["DialCallSid"]
        await caller.wait_state(out, "hangup", 10)


class TalkingPhone(Phone):
    """A phone whose voice is a mix the test can add speech to while the call runs."""

    def __init__(self, *args: object, **kw: object) -> None:
        from softphone.media.sources import MixSource

        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.voice = MixSource()

    def _new_call(self, call_id: str, direction: str) -> PhoneCall:
        from softphone.media.peer import MediaPeer, PeerOptions
        from softphone.media.sinks import BufferSink

        sink = BufferSink(seconds=20)
        peer = MediaPeer(PeerOptions.loopback(), source=self.voice, sink=sink, name=f"{self.user}:{call_id[:6]}")
        call = PhoneCall(call_id, peer, sink, direction)
        self.calls[call_id] = call
        return call


async def test_gather_dtmf_or_speech_hears_the_softphone_say_it(tcc: CallControl, texml_server: TexmlServer) -> None:
    from softphone.media import tts

    texml_server.docs["/voice"] = (
        "<Response><Gather input='dtmf speech' action='/said' timeout='8'><Say>Which department</Say></Gather>"
        "</Response>"
    )
    texml_server.docs["/said"] = "<Response><Hangup/></Response>"
    talker = TalkingPhone(tcc.switch.url, "agent1", AGENTS["agent1"])
    async with talker as phone:
        call = await phone.dial(IVR_NUMBER)
        await phone.wait_state(call, "active", 15)
        talker.voice.add(await asyncio.to_thread(tts.speech_source, "press one for sales"))
        hit = await texml_server.wait("/said", timeout=30)
        print(f"\nTeXML Gather speech over WebRTC: {hit.params.get('SpeechResult')!r}")
        assert "sales" in hit.params["SpeechResult"].split() and "Digits" not in hit.params
        await phone.wait_state(call, "hangup", 10)
