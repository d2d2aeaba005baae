"""The hearing commands: phrase matching, the per-call listener (tone, silence, audio, prompt end,
speech), and the commands through a Phone on the in-memory duplex with frames pushed into the call's
received audio (the fake peer's sink is the call's tap, as aiortc's receiver would feed it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from unit.client.callfakes import ANSWER, FakePeer, until
from unit.support.duplex import FakeVertoServer

from softphone.app.commands import CheckFailed, CommandContext, run_line
from softphone.app.hearing import Hearing, best_choice, letter_score, normalize_words, parse_tone, phrase_score
from softphone.app.phone import Phone
from softphone.client.client import Client
from softphone.config import BUILTIN_PROFILES, Profile
from softphone.errors import CommandError
from softphone.media.frames import FRAME_SAMPLES, SAMPLE_RATE
from softphone.media.sources import ToneSource
from softphone.protocol import CallState

LOCAL = replace(BUILTIN_PROFILES["local"], audio_backend="null")
SILENT = np.zeros(FRAME_SAMPLES, dtype=np.int16)


def tone_frames(freq: float, seconds: float) -> Iterator[np.ndarray]:
    src = ToneSource(freq, duration_ms=int(seconds * 1000))
    while (frame := src.read_frame()) is not None and not src.finished:
        yield frame


# --- matching -------------------------------------------------------------------------------


def test_words_are_normalised_and_digits_spelled() -> None:
    assert normalize_words("Press 1, for Sales!") == ["press", "one", "for", "sales"]
    assert normalize_words("dial 42") == ["dial", "four", "two"]


def test_phrase_matches_with_the_documented_tolerance() -> None:
    heard = "welcome to the test line press line for sales press two for support"
    assert phrase_score("press one for sales", heard) == 0.75  # 'one' heard as 'line': 3 of 4 in order
    assert best_choice("press one for sales", heard) is not None
    assert best_choice("press three for billing", heard) is None  # 'press', 'for' only: 2 of 4
    assert phrase_score("sales for one press", heard) < 0.75  # the words must come in order
    assert best_choice("goodbye|press two for support", heard) == ("press two for support", 1.0)
    # words scattered over a long transcript do not add up to a match
    assert phrase_score("welcome support", "welcome " + "x " * 20 + "support") == 0.5


def test_letters_match_when_words_split_differently() -> None:
    heard = "the offices closed today please help well we connect you"
    assert phrase_score("the office is closed today", heard) == 0.6  # 3 of 5 words
    assert letter_score("the office is closed today", heard) == pytest.approx(1 - 1 / 22)  # 'i' dropped
    assert best_choice("the office is closed today", heard) == ("the office is closed today", pytest.approx(21 / 22))
    assert best_choice("please hold while we connect you", heard) is not None  # 0.81 of its letters
    assert best_choice("press one for sales", "press two for support") is None
    assert best_choice("the store is open tomorrow", heard) is None
    assert best_choice("yes", "yesterday") is None  # the letter rule needs a phrase of three words or more
    assert letter_score("abc", "") == 0.0 and letter_score("", "abc") == 1.0


def test_tone_spec() -> None:
    assert parse_tone("1004") == (1004.0, pytest.approx(20.08))
    assert parse_tone("440±5") == (440.0, 5.0)
    assert parse_tone("440+-5") == (440.0, 5.0)
    with pytest.raises(CommandError):
        parse_tone("loud")
    with pytest.raises(CommandError):
        parse_tone("9000")


# --- the listener, fed directly ---------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def feed(hearing: Hearing, clock: FakeClock, frames: Iterator[np.ndarray] | list[np.ndarray]) -> None:
    for frame in frames:
        clock.now += 0.02
        hearing.write_frame(frame)
        await asyncio.sleep(0)


async def test_expect_tone_both_ways() -> None:
    clock = FakeClock()
    hearing = Hearing(speech=False, clock=clock)
    feeder = asyncio.ensure_future(feed(hearing, clock, tone_frames(1004, 0.5)))
    assert await hearing.expect_tone(1004, 20, 2.0) == (True, pytest.approx(1004, abs=5))
    await feeder
    feeder = asyncio.ensure_future(feed(hearing, clock, tone_frames(1004, 0.5)))
    ok, heard = await hearing.expect_tone(440, 10, 0.3)
    await feeder
    assert not ok and heard == pytest.approx(1004, abs=5)


async def test_expect_silence_and_audio() -> None:
    clock = FakeClock()
    hearing = Hearing(speech=False, clock=clock)
    feeder = asyncio.ensure_future(feed(hearing, clock, [SILENT] * 60))
    assert await hearing.expect_silence(1.0, 2.0) >= 1.0
    await feeder
    assert hearing.stats.first_audio is None
    # a tone all along: no silence of 0.5 s, the longest quiet stretch is reported
    feeder = asyncio.ensure_future(feed(hearing, clock, tone_frames(440, 1.0)))
    best = await hearing.expect_silence(0.5, 0.3)
    await feeder
    assert best < 0.5
    feeder = asyncio.ensure_future(feed(hearing, clock, [SILENT] * 10 + list(tone_frames(440, 0.3))))
    assert await hearing.expect_audio(2.0)
    await feeder
    assert hearing.stats.first_audio is not None
    await feed(hearing, clock, [SILENT] * 30)  # the tone is more than LOOKBACK (0.5 s) ago
    feeder = asyncio.ensure_future(feed(hearing, clock, [SILENT] * 10))
    assert not await hearing.expect_audio(0.2)
    await feeder
    # a tone that just ended (within LOOKBACK) still counts: `play` blocks until its tone is sent
    await feed(hearing, clock, list(tone_frames(440, 0.3)) + [SILENT] * 5)
    assert await hearing.expect_audio(0.1)


async def test_prompt_end_waits_for_speech_then_quiet() -> None:
    clock = FakeClock()
    hearing = Hearing(speech=False, clock=clock)
    frames = list(tone_frames(600, 1.0)) + [SILENT] * 10 + list(tone_frames(600, 0.5)) + [SILENT] * 60
    feeder = asyncio.ensure_future(feed(hearing, clock, frames))
    assert await hearing.wait_prompt_end(5.0)
    # ended after the second stretch (the 0.2 s gap is inside one prompt) plus the quiet gap
    assert clock.now - 100.0 >= 1.0 + 0.2 + 0.5 + 0.8 - 0.05
    await feeder
    assert hearing.prompt_durations() == [pytest.approx(1.7, abs=0.1)]
    # no new speech since that prompt ended: the next wait times out
    assert not await hearing.wait_prompt_end(0.2)


class FakeRecognizer:
    """Stands in for RecognizerProcess: the test says what was 'recognised'."""

    def __init__(self, rate: int, on_utterance: Callable[..., object]) -> None:
        self.on_utterance = on_utterance
        self.fed = 0

    async def start(self) -> None:
        pass

    def feed(self, samples: np.ndarray) -> None:
        self.fed += samples.shape[0]

    async def finish(self, timeout: float = 10.0) -> None:
        await asyncio.sleep(self.finish_takes)

    async def close(self) -> None:
        self.closed = True

    finish_takes = 0.0
    closed = False


class Utt:
    def __init__(self, text: str, final: bool = True) -> None:
        self.text, self.final, self.confidence = text, final, 0.9


async def test_expect_speech_consumes_what_it_matched() -> None:
    recs: list[FakeRecognizer] = []

    def factory(rate: int, cb: Callable[..., object]) -> FakeRecognizer:
        recs.append(FakeRecognizer(rate, cb))
        return recs[-1]

    hearing = Hearing(recognizer_factory=factory)
    await hearing.start()
    for _ in range(10):
        hearing.write_frame(SILENT)
    assert recs[0].fed == 10 * FRAME_SAMPLES  # 0.1 s pieces go to the recogniser
    recs[0].on_utterance(Utt("welcome to the test line press line for sales"))
    assert await hearing.expect_speech("press one for sales", 1.0) == (True, "press one for sales", None)
    # the same prompt does not satisfy the next expectation; the failure carries what was heard since
    recs[0].on_utterance(Utt("press two for", final=False))  # interim words of an utterance under way
    assert await hearing.expect_speech("thank you for calling", 0.2) == (False, "press two for", None)
    assert await hearing.expect_speech("goodbye|press two for support now", 0.2) == (False, "press two for", None)
    recs[0].on_utterance(Utt("press two for support", final=False))
    ok, what, _lat = await hearing.expect_speech("goodbye|press two for support now", 0.2)
    assert ok and what == "press two for support now"
    recs[0].on_utterance(Utt("press two for support"))  # its final: already matched, consumed
    assert not (await hearing.expect_speech("press two for support", 0.1))[0]
    assert hearing.transcript() == "welcome to the test line press line for sales press two for support"
    await hearing.stop()


# --- the commands through a Phone on the duplex -----------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[FakeVertoServer]:
    FakePeer.reset()
    srv = FakeVertoServer()
    yield srv
    await srv.close()


@pytest.fixture
async def phone(server: FakeVertoServer) -> AsyncIterator[Phone]:
    def factory(profile: Profile) -> Client:
        return Client.from_profile(profile, connect=server.connect, peer_factory=FakePeer, random=lambda: 0.0)

    p = Phone(LOCAL, client_factory=factory)
    await p.login()
    yield p
    await p.close()


def ctx_of(phone: Phone) -> tuple[CommandContext, list[str]]:
    said: list[str] = []
    return CommandContext(phone=phone, say=said.append, table=lambda *a: None), said


async def answered(phone: Phone, server: FakeVertoServer, line: str, **answer: Any,
                   ) -> tuple[CommandContext, list[str], str]:
    ctx, said = ctx_of(phone)
    await run_line(ctx, line)
    call_id = phone.snapshot.current
    assert call_id is not None
    server.push("telnyx_rtc.answer", {"callID": call_id, "sdp": ANSWER, **answer})
    await until(lambda: phone.snapshot.call(call_id) is not None
                and phone.snapshot.call(call_id).state == CallState.ACTIVE)  # type: ignore[union-attr]
    return ctx, said, call_id


async def push_audio(frames: list[np.ndarray]) -> None:
    sink = FakePeer.instances[-1].sink  # the call's tap: the hearing is teed off its output
    for frame in frames:
        sink.write_frame(frame)
        await asyncio.sleep(0.02)


async def test_expect_tone_command_on_a_named_call(phone: Phone, server: FakeVertoServer) -> None:
    phone.listen = "levels"
    ctx, said, call_id = await answered(phone, server, "dial tone as caller")
    pushing = asyncio.ensure_future(push_audio(list(tone_frames(1004, 0.6))))
    await run_line(ctx, "expect tone 1004±20 3 on caller")
    await pushing
    assert said[-1] == "heard a 1004 Hz tone"
    pushing = asyncio.ensure_future(push_audio(list(tone_frames(1004, 0.6))))
    with pytest.raises(CheckFailed, match=r"wanted 440±10 Hz within 0.4s; the strongest frequency heard last "
                                          r"was 100\d Hz"):
        await run_line(ctx, "expect tone 440±10 0.4 on caller")
    await pushing
    timings = phone.timings(call_id)
    assert timings["name"] == "caller"
    assert timings["to_answer_s"] >= 0
    assert [e["ok"] for e in timings["expects"]] == [True, False]
    assert timings["to_first_audio_s"] >= 0
    await run_line(ctx, "hangup caller")
    await until(lambda: phone.snapshot.call(call_id).ended)  # type: ignore[union-attr]


async def test_expect_header_caller_state_hangup(phone: Phone, server: FakeVertoServer) -> None:
    ctx, said, call_id = await answered(
        phone, server, "dial echo X-Ticket=41 as c1",
        dialogParams={"custom_headers": [{"name": "X-Ticket", "value": "42"}]})  # the far end's headers
    await run_line(ctx, "expect state active 1 on c1")
    await run_line(ctx, "expect header X-Ticket 42 on c1")
    assert said[-1] == "header X-Ticket=42"
    with pytest.raises(CheckFailed, match=r"wanted X-Ticket=43; the call's custom headers: X-Ticket=42"):
        await run_line(ctx, "expect header X-Ticket 43")
    with pytest.raises(CheckFailed, match=r"wanted 'held' within 0\.1s; the call is active"):
        await run_line(ctx, "expect state held 0.1")
    with pytest.raises(CheckFailed, match=r"wanted the call to end within 0\.1s; it is active"):
        await run_line(ctx, "expect hangup 0.1 on c1")
    server.push("telnyx_rtc.bye", {"callID": call_id, "cause": "USER_BUSY", "causeCode": 17})
    with pytest.raises(CheckFailed, match="wanted cause NORMAL_CLEARING, the call ended with USER_BUSY"):
        await run_line(ctx, "expect hangup NORMAL_CLEARING 2 on c1")
    await run_line(ctx, "expect hangup USER_BUSY 2 on c1")
    with pytest.raises(CheckFailed, match="expect caller: wanted 'Alice'"):
        await run_line(ctx, "expect caller Alice on c1")


async def test_play_tone_goes_back_to_the_profiles_source(phone: Phone, server: FakeVertoServer) -> None:
    ctx, _said, _call_id = await answered(phone, server, "dial echo")
    peer = FakePeer.instances[-1]
    before = peer.source
    seen: list[object] = []
    orig = peer.set_source

    def watch(source: Any) -> None:
        seen.append(source)
        orig(source)

    peer.set_source = watch  # type: ignore[method-assign]

    async def pull() -> None:  # what aiortc's sender does: read a frame every 20 ms
        while True:
            peer.source.read_frame()
            await asyncio.sleep(0.005)

    puller = asyncio.ensure_future(pull())
    await run_line(ctx, "play tone 440 0.2")
    puller.cancel()
    assert len(seen) == 2 and isinstance(seen[0], ToneSource) and seen[1] is before
    assert SAMPLE_RATE == 48000


async def test_shell_lines_take_the_phones_variables(phone: Phone, server: FakeVertoServer) -> None:
    """The shell's --var: run_line fills ${NAME} from Phone.variables (then the environment)."""
    phone.variables["DEST"] = "tone"
    ctx, said = ctx_of(phone)
    await run_line(ctx, "dial ${DEST} as t")
    assert said[-1].startswith("dialing tone (call ") and said[-1].endswith(", t)")
    with pytest.raises(CommandError, match=r"unknown variable \$\{NOPE\}"):
        await run_line(ctx, "dtmf ${NOPE}")


async def test_abort_reaps_the_child_a_cancelled_stop_left() -> None:
    """Phone.close cancels the stop spawned at hangup; abort() must still close the recogniser."""
    recs: list[FakeRecognizer] = []

    def factory(rate: int, cb: Callable[..., object]) -> FakeRecognizer:
        recs.append(FakeRecognizer(rate, cb))
        recs[-1].finish_takes = 10.0
        return recs[-1]

    hearing = Hearing(recognizer_factory=factory)
    await hearing.start()
    stopping = asyncio.ensure_future(hearing.stop())
    await asyncio.sleep(0.01)
    stopping.cancel()
    await asyncio.gather(stopping, return_exceptions=True)
    assert not recs[0].closed
    await hearing.abort()
    assert recs[0].closed


async def test_a_levels_listener_gains_a_recogniser_when_speech_is_expected() -> None:
    recs: list[FakeRecognizer] = []

    def factory(rate: int, cb: Callable[..., object]) -> FakeRecognizer:
        recs.append(FakeRecognizer(rate, cb))
        return recs[-1]

    hearing = Hearing(speech=False, recognizer_factory=factory)
    await hearing.start()
    assert not recs
    await hearing.enable_speech()
    await hearing.enable_speech()  # once
    assert len(recs) == 1 and hearing.speech
    recs[0].on_utterance(Utt("hello there"))
    assert (await hearing.expect_speech("hello there", 0.1))[0]
    await hearing.stop()


async def test_one_utterance_serves_two_expectations_in_order() -> None:
    """The IVR's menu is one utterance: matching its start leaves the rest for the next expectation."""
    recs: list[FakeRecognizer] = []

    def factory(rate: int, cb: Callable[..., object]) -> FakeRecognizer:
        recs.append(FakeRecognizer(rate, cb))
        return recs[-1]

    hearing = Hearing(recognizer_factory=factory)
    await hearing.start()
    recs[0].on_utterance(Utt("welcome to the test line press", final=False))
    assert (await hearing.expect_speech("welcome to the test line", 0.1))[0]
    recs[0].on_utterance(Utt("welcome to the test line press line for sales press two for support"))
    assert (await hearing.expect_speech("press two for support", 0.1))[0]
    assert not (await hearing.expect_speech("press one for sales", 0.1))[0]  # it came before: consumed
    recs[0].on_utterance(Utt("", final=True))  # an empty utterance changes nothing
    recs[0].on_utterance(Utt("you chose support"))
    assert await hearing.expect_speech("you chose sales|you chose support", 0.1) == (True, "you chose support", None)
    await hearing.stop()
