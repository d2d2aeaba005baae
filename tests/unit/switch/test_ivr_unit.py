"""The ivr service's flow on a fake call (no sockets, no TTS engine): menu, digit by info or in-band
tones, barge-in, no digit, a missing TTS engine. What the caller hears is pulled from the leg's mix
every 20 ms, as the switch's media peer does."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from softphone.errors import MediaError
from softphone.media.dsp import dtmf_samples
from softphone.media.frames import FRAME_SAMPLES
from softphone.media.sources import ArraySource
from softphone.switch import ivr
from softphone.switch.media_legs import LegAudio

#: Each text "spoken" as a tone of its own, 0.4 s long per 10 characters (so the caller's ear can tell them apart).
FREQS = {ivr.MENU: 500.0, ivr.CHOICES["1"]: 600.0, ivr.CHOICES["2"]: 700.0, ivr.GOODBYE: 800.0}


def fake_speech(text: str, **_kw: Any) -> ArraySource:
    n = int(48000 * 0.04 * len(text))  # 40 ms a character: the menu ~2.8 s
    t = np.arange(n) / 48000
    return ArraySource((8000 * np.sin(2 * np.pi * FREQS[text] * t)).astype(np.int16))


@dataclass
class Leg:
    media: LegAudio = field(default_factory=lambda: LegAudio("a:test"))


@dataclass
class FakeCall:
    a: Leg = field(default_factory=Leg)
    ended: bool = False
    answered: bool = False
    cause: str | None = None
    heard: list[float] = field(default_factory=list)  # the dominant frequency of each 20 ms heard (0: silence)

    async def answer_a(self, *, with_sdp: bool = True) -> bool:
        self.answered = True
        return True

    async def end(self, by: Any, cause: str, *, sip_code: int | None = None) -> None:
        self.ended, self.cause = True, cause


async def ear(call: FakeCall) -> None:
    from softphone.media.dsp import dominant_frequency

    while True:
        frame = call.a.media.read_heard()
        loud = frame is not None and float(np.abs(frame.astype(np.int32)).max()) > 1000
        call.heard.append(round(dominant_frequency(frame), -2) if loud and frame is not None else 0.0)
        await asyncio.sleep(0.005)  # faster than real time: the flow only counts frames


def spoken(call: FakeCall) -> list[float]:
    """The distinct things heard, in order."""
    out: list[float] = []
    for f in call.heard:
        if f and (not out or out[-1] != f):
            out.append(f)
    return out


@pytest.fixture
async def call(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeCall]:
    import softphone.media.tts as tts

    monkeypatch.setattr(tts, "speech_source", fake_speech)
    monkeypatch.setattr(ivr, "_LEAD_S", 0.0)
    monkeypatch.setattr(ivr, "_PAUSE_S", 0.05)
    monkeypatch.setattr(ivr, "_TAIL_S", 0.05)
    c = FakeCall()
    task = asyncio.create_task(ear(c))
    yield c
    task.cancel()


async def until(pred: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not pred():
            await asyncio.sleep(0.01)


async def test_info_digit_after_the_menu_speaks_the_choice_and_hangs_up(call: FakeCall) -> None:
    service = ivr.IvrService(call)
    run = asyncio.create_task(service.run())
    await until(lambda: 500.0 in call.heard)
    await until(lambda: call.heard[-3:] == [0.0, 0.0, 0.0] and len(spoken(call)) == 1)  # the menu ended
    service.digit("2")
    await asyncio.wait_for(run, 5)
    assert call.answered and call.cause == "NORMAL_CLEARING" and service.choice == "2"
    assert spoken(call) == [500.0, 700.0]
    assert call.a.media.taps == []  # the in-band tap is removed


async def test_a_digit_during_the_menu_stops_it(call: FakeCall) -> None:
    service = ivr.IvrService(call)
    run = asyncio.create_task(service.run())
    await until(lambda: call.heard.count(500.0) >= 5)
    service.digit("1")
    await asyncio.wait_for(run, 5)
    assert spoken(call) == [500.0, 600.0] and call.heard.count(500.0) < 60  # the menu is ~140 frames long


async def test_in_band_tones_from_the_caller_choose(call: FakeCall) -> None:
    service = ivr.IvrService(call)
    run = asyncio.create_task(service.run())
    await until(lambda: bool(call.a.media.taps))
    tones = dtmf_samples("2", tone_ms=100, gap_ms=60)
    for i in range(0, tones.shape[0] - FRAME_SAMPLES + 1, FRAME_SAMPLES):  # what the caller says, frame by frame
        for tap in call.a.media.taps:
            tap.said(tones[i : i + FRAME_SAMPLES])
    await asyncio.wait_for(run, 5)
    assert service.choice == "2" and spoken(call)[-1] == 700.0


async def test_no_digit_or_another_digit_says_goodbye(call: FakeCall, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ivr, "GATHER_TIMEOUT_S", 0.2)
    service = ivr.IvrService(call)
    await asyncio.wait_for(service.run(), 10)
    assert service.choice is None and spoken(call) == [500.0, 800.0] and call.cause == "NORMAL_CLEARING"
    other = FakeCall()
    task = asyncio.create_task(ear(other))
    service = ivr.IvrService(other)
    service.digit("7")  # barge-in with a digit that is no choice
    await asyncio.wait_for(service.run(), 10)
    task.cancel()
    assert service.choice == "7" and spoken(other)[-1] == 800.0


async def test_the_caller_hanging_up_ends_the_flow(call: FakeCall) -> None:
    service = ivr.IvrService(call)
    run = asyncio.create_task(service.run())
    await until(lambda: 500.0 in call.heard)
    call.ended = True
    await asyncio.wait_for(run, 5)
    assert call.cause is None and 700.0 not in call.heard and 800.0 not in call.heard


async def test_a_missing_tts_engine_ends_the_call_before_answering(
    call: FakeCall, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import softphone.media.tts as tts

    def missing(text: str, **_kw: Any) -> ArraySource:
        raise MediaError("flite is not installed (apt install flite)")

    monkeypatch.setattr(tts, "speech_source", missing)
    await asyncio.wait_for(ivr.IvrService(call).run(), 5)
    assert not call.answered and call.cause == "NORMAL_TEMPORARY_FAILURE"
    assert "ivr: cannot speak: flite is not installed" in caplog.text
