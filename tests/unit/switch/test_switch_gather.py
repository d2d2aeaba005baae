"""Call Control gather (DTMF collection) as plain logic: a real CCLeg, a recording endpoint, no socket."""

from __future__ import annotations

import asyncio
from typing import Any

from softphone.switch.callcontrol.gather import Gather, end_gather, gather_digit, stop_playbacks
from softphone.switch.callcontrol.legs import CCLeg


class Endpoint:
    def __init__(self) -> None:
        self.stopped: list[Any] = []

    def set_receiver(self, fn: Any) -> None: ...

    def push(self, frame: Any) -> None: ...

    def play(self, source: Any) -> None: ...

    def stop_playing(self, source: Any) -> None:
        self.stopped.append(source)

    async def close(self) -> None: ...


class Engine:
    """The gather's only port: emit(leg, event_type, **extra)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def emit(self, leg: CCLeg, event_type: str, **extra: Any) -> None:
        self.events.append((event_type, extra))


class Playback:
    def __init__(self, source: str) -> None:
        self.source = source
        self.stopped = ""


def leg_with(gather: Gather | None = None, playbacks: int = 0) -> CCLeg:
    leg = CCLeg("v3:1", "conn", "+1555", "+1312", "incoming", Endpoint(), "pstn")
    if gather is not None:
        leg.extras["gather"] = gather
    if playbacks:
        leg.extras["playbacks"] = {str(i): Playback(f"src{i}") for i in range(playbacks)}
    return leg


def feed(cc: Engine, leg: CCLeg, digits: str) -> None:
    for d in digits:
        gather_digit(cc, leg, d)


async def test_terminating_digit_ends_valid_or_invalid_by_minimum() -> None:
    cc = Engine()
    leg = leg_with(Gather(maximum_digits=10, minimum_digits=3, terminating_digit="#", valid_digits="0123456789#"))
    feed(cc, leg, "12#")
    assert cc.events == [("call.gather.ended", {"digits": "12", "status": "invalid"})]
    assert "gather" not in leg.extras
    leg = leg_with(Gather(maximum_digits=10, minimum_digits=3, terminating_digit="#", valid_digits="0123456789#"))
    feed(cc, leg, "123#")
    assert cc.events[-1] == ("call.gather.ended", {"digits": "123", "status": "valid"})


async def test_maximum_digits_ends_and_invalid_digits_are_ignored() -> None:
    cc = Engine()
    leg = leg_with(Gather(maximum_digits=3, minimum_digits=1, terminating_digit="", valid_digits="123"))
    feed(cc, leg, "1x9" + "23")
    assert cc.events == [("call.gather.ended", {"digits": "123", "status": "valid"})]
    feed(cc, leg, "1")  # no gather any more: nothing happens
    assert len(cc.events) == 1


async def test_first_digit_interrupts_the_prompt_once() -> None:
    cc = Engine()
    leg = leg_with(Gather(maximum_digits=5, minimum_digits=1, terminating_digit="#", valid_digits="0123456789"), 2)
    feed(cc, leg, "1")
    assert leg.endpoint.stopped == ["src0", "src1"]  # type: ignore[attr-defined]
    assert all(pb.stopped for pb in leg.extras["playbacks"].values())  # each marked with why it stopped
    feed(cc, leg, "2")
    assert len(leg.endpoint.stopped) == 2  # type: ignore[attr-defined]
    end_gather(cc, leg, "cancelled")


async def test_inter_digit_timeout_ends_with_what_was_collected() -> None:
    cc = Engine()
    leg = leg_with(Gather(5, 1, "#", "0123456789", inter_digit_s=0.01))
    feed(cc, leg, "42")
    await asyncio.sleep(0.05)
    assert cc.events == [("call.gather.ended", {"digits": "42", "status": "timeout"})]


def test_stop_playbacks_counts_and_end_gather_without_gather_is_silent() -> None:
    leg = leg_with(None, 3)
    assert stop_playbacks(leg, "call_hangup") == 3
    cc = Engine()
    end_gather(cc, leg, "call_hangup")
    assert cc.events == []
