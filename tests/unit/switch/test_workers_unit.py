"""The media worker protocol in memory: a WorkerLink (the signaling side, RemoteMediaLeg proxies) joined
to a WorkerCore (the worker's side) over pack/unpack, with fake legs; placement and exit texts.

No process and no socket: the real processes are tests/e2e/test_switch_workers.py.
"""

from __future__ import annotations

import asyncio
import pickle
import signal
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from softphone.media.frames import Frame
from softphone.media.sources import ToneSource
from softphone.switch.media_legs import AudioTap
from softphone.switch.media_worker import (
    MAX_BUFFERED,
    PushOf,
    ToMain,
    WorkerCore,
    pack,
    read_message,
    unpack,
)
from softphone.switch.workers import RemoteMediaLeg, WorkerLink, choose, describe_exit


class FakeLeg:
    """A worker-side leg that records what it is asked."""

    def __init__(self, label: str, **options: Any) -> None:
        self.label = label
        self.options = options
        self.taps: list[AudioTap] = []
        self.frames_in = 0
        self.packets_forwarded = 0
        self.packets_decoded = 0
        self.mode = "idle"
        self.sends_packets = False
        self.codec = ""
        self.receiver: Callable[[Frame], Any] | None = None
        self.pushed: list[Frame] = []
        self.playing: list[Any] = []
        self.closed = False
        self.candidates: list[tuple[str, str | None, int | None]] = []
        self.impair: Any = None

    async def answer(self, offer: str) -> str:
        if offer == "bad":
            raise ValueError("no usable codec")
        if offer == "weird":
            raise _Unpicklable()
        self.codec = "opus/48000"
        return f"answer-to-{offer}"

    async def offer(self) -> str:
        return "offer"

    async def renew(self) -> str:
        return "offer-2"

    async def accept_answer(self, sdp: str) -> None:
        self.codec = "PCMU/8000"

    async def add_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        self.candidates.append((candidate, sdp_mid, sdp_mline_index))

    async def end_of_candidates(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True

    def set_receiver(self, fn: Callable[[Frame], Any] | None) -> None:
        self.receiver = fn

    def push(self, frame: Frame) -> None:
        self.pushed.append(frame)

    def play(self, source: Any) -> None:
        self.playing.append(source)

    def stop_playing(self, source: Any) -> None:
        self.playing.remove(source)

    def set_impairment(self, spec: Any) -> None:
        self.impair = spec


class _Unpicklable(Exception):
    def __reduce__(self) -> Any:
        raise TypeError("not picklable")


class Wire:
    """A WorkerLink and a WorkerCore joined in memory (every message through pack/unpack)."""

    def __init__(self, index: int = 0) -> None:
        self.buffered = 0
        self.core = WorkerCore(self.to_main, FakeLeg, lambda: self.buffered)
        self.link = WorkerLink(index, self.to_worker, lambda: self.buffered)

    def to_worker(self, data: bytes) -> None:
        self.core.handle(unpack(data))

    def to_main(self, msg: tuple[Any, ...]) -> None:
        self.link.received(unpack(pack(msg)))

    def leg(self, remote: RemoteMediaLeg) -> FakeLeg:
        leg = self.core.legs[remote.leg_id]
        assert isinstance(leg, FakeLeg)
        return leg


def frame(value: int = 100) -> Frame:
    return np.full(960, value, dtype=np.int16)


async def test_the_wire_round_trip_through_a_stream() -> None:
    reader = asyncio.StreamReader()
    msg = ("push", "0.1", frame(7))
    reader.feed_data(pack(msg) + pack(("stop",)))
    reader.feed_eof()
    got = await read_message(reader)
    assert got[:2] == ("push", "0.1") and np.array_equal(got[2], frame(7))
    assert await read_message(reader) == ("stop",)
    with pytest.raises(asyncio.IncompleteReadError):
        await read_message(reader)
    with pytest.raises(ValueError, match="malformed"):
        body = pickle.dumps(["not", "a", "tuple"])
        unpack(len(body).to_bytes(4, "big") + body)


async def test_requests_return_values_and_the_codec() -> None:
    w = Wire()
    leg = w.link.new_leg("a:12345678", impair="spec")
    assert w.leg(leg).label == "a:12345678" and w.leg(leg).options == {"impair": "spec"}
    assert await leg.answer("offer-sdp") == "answer-to-offer-sdp"
    assert leg.codec == "opus/48000"
    assert await leg.offer() == "offer" and await leg.renew() == "offer-2"
    await leg.accept_answer("sdp")
    assert leg.codec == "PCMU/8000"
    await leg.add_candidate("candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", 0)
    await leg.end_of_candidates()
    assert w.leg(leg).candidates == [("candidate:1 1 udp 1 127.0.0.1 9 typ host", "0", 0)]
    assert w.link.load == 1
    fake = w.leg(leg)
    await leg.close()
    assert fake.closed and leg.leg_id not in w.core.legs and w.link.load == 0
    await leg.close()  # twice is fine


async def test_errors_cross_the_channel() -> None:
    w = Wire()
    leg = w.link.new_leg("a")
    with pytest.raises(ValueError, match="no usable codec"):
        await leg.answer("bad")
    with pytest.raises(RuntimeError, match="_Unpicklable"):
        await leg.answer("weird")
    await leg.close()
    with pytest.raises(ConnectionError):
        await w.link.request(leg.leg_id, "offer", ())  # closed in the worker


async def test_wiring_between_legs_of_one_worker_stays_inside_it() -> None:
    w = Wire()
    a, b = w.link.new_leg("a"), w.link.new_leg("b")
    a.set_receiver(b.push)  # a bridge
    b.set_receiver(b.push)  # echo
    fa, fb = w.leg(a), w.leg(b)
    assert fa.receiver == fb.push and fb.receiver == fb.push
    a.set_receiver(None)
    assert fa.receiver is None
    a.forward_to(b)  # MediaLeg's name for the same wiring
    assert fa.receiver == fb.push
    a.stop_forwarding()
    assert fa.receiver is None
    # A leg of another worker is not "inside": its frames come to this process.
    other = Wire(1).link.new_leg("c")
    a.set_receiver(other.push)
    assert fa.receiver is not None and fa.receiver != fb.push


async def test_a_receiver_here_gets_the_frames_and_push_reaches_the_worker() -> None:
    w = Wire()
    leg = w.link.new_leg("a")
    got: list[Frame] = []
    leg.set_receiver(got.append)
    fake = w.leg(leg)
    assert fake.receiver is not None
    fake.receiver(frame(5))
    assert len(got) == 1 and got[0][0] == 5
    leg.push(frame(9))
    assert len(fake.pushed) == 1 and fake.pushed[0][0] == 9
    # A backed-up channel drops PCM (both ways) but never requests.
    w.buffered = MAX_BUFFERED + 1
    leg.push(frame(1))
    fake.receiver(frame(1))
    assert len(fake.pushed) == 1 and len(got) == 1
    assert w.link.pcm_dropped == 1 and w.core.pcm_dropped == 1
    assert await leg.offer() == "offer"


async def test_play_sends_a_copy_and_stop_playing_finds_it() -> None:
    w = Wire()
    leg = w.link.new_leg("a")
    tone = ToneSource(440.0, 0.2)
    leg.play(tone)
    leg.play(tone)  # idempotent, like MediaLeg.play
    fake = w.leg(leg)
    assert len(fake.playing) == 1
    copy = fake.playing[0]
    assert isinstance(copy, ToneSource) and copy is not tone
    leg.stop_playing(tone)
    assert fake.playing == []
    leg.stop_playing(tone)  # not playing: nothing happens
    # A one-shot overlay that finished in the worker is forgotten on both sides at the next stats.
    beep = ToneSource(1000.0, 0.2, duration_ms=40)
    leg.play(beep)
    copy = fake.playing[-1]
    w.to_main(w.core.stats(0.0))
    assert len(w.core.sources) == 1
    while copy.read_frame() is not None:
        pass
    w.to_main(w.core.stats(0.0))
    assert w.core.sources == {}
    leg.play(beep)  # a new copy goes out (the first one ended)
    assert len(fake.playing) == 2


async def test_taps_are_proxied_only_while_there_are_some() -> None:
    w = Wire()
    leg = w.link.new_leg("a")
    fake = w.leg(leg)
    seen: list[tuple[str, Frame | None]] = []

    class Tap:
        def said(self, f: Frame | None) -> None:
            seen.append(("said", f))

        def heard(self, f: Frame | None) -> None:
            seen.append(("heard", f))

    first, second = Tap(), Tap()
    leg.taps.append(first)
    leg.taps.append(second)
    assert len(fake.taps) == 1  # one proxy, however many taps here
    fake.taps[0].said(frame(3))
    fake.taps[0].heard(None)
    assert [k for k, _ in seen] == ["said", "said", "heard", "heard"]
    leg.taps.remove(first)
    assert len(fake.taps) == 1
    leg.taps.pop()
    assert fake.taps == []
    leg.taps.extend([first])
    assert len(fake.taps) == 1
    leg.taps.clear()
    assert fake.taps == []


async def test_impairment_reaches_the_worker_leg() -> None:
    w = Wire()
    leg = w.link.new_leg("a")
    leg.set_impairment(None)
    leg.set_impairment("loss=5%")  # type: ignore[arg-type]  # any picklable spec crosses
    assert w.leg(leg).impair == "loss=5%"


async def test_stats_update_frames_in_and_cpu() -> None:
    w = Wire()
    leg = w.link.new_leg("a")
    fake = w.leg(leg)
    fake.frames_in, fake.packets_forwarded, fake.packets_decoded, fake.mode = 42, 40, 2, "forward"
    fake.sends_packets = True
    w.to_main(w.core.stats(0.25))
    assert leg.frames_in == 42 and w.link.cpu == 0.25
    assert (leg.packets_forwarded, leg.packets_decoded, leg.mode, leg.sends_packets) == (40, 2, "forward", True)


async def test_a_lost_worker_fails_requests_and_tells_the_owner_once() -> None:
    lost: list[str] = []
    sent: list[bytes] = []
    link = WorkerLink(0, sent.append)
    a = link.new_leg("a", lambda: lost.append("a"))
    b = link.new_leg("b", lambda: lost.append("b"))
    pending = asyncio.ensure_future(a.answer("offer"))
    await asyncio.sleep(0)
    assert len(sent) == 3  # two "new", one request
    assert link.lost() == [a, b]
    with pytest.raises(ConnectionError, match="media worker 0 is gone"):
        await pending
    assert lost == ["a", "b"]
    a.worker_lost()
    assert lost == ["a", "b"]
    with pytest.raises(ConnectionError):
        await a.offer()
    a.set_receiver(b.push)
    a.push(frame())
    a.play(ToneSource(440.0))
    assert len(sent) == 3  # nothing more is sent to a dead worker
    await a.close()  # no error
    assert not link.alive and link.load == 0


async def test_a_stopping_pool_does_not_report_its_legs_lost() -> None:
    lost: list[str] = []
    w = Wire()
    leg = w.link.new_leg("a", lambda: lost.append("a"))
    w.link.lost(notify=False)
    assert lost == [] and leg.lost
    with pytest.raises(ConnectionError):
        await leg.offer()


async def test_a_closed_leg_is_not_reported_lost() -> None:
    lost: list[str] = []
    w = Wire()
    leg = w.link.new_leg("a", lambda: lost.append("a"))
    await leg.close()
    w.link.lost()
    leg.worker_lost()
    assert lost == []


async def test_one_way_messages_to_a_closed_leg_are_ignored() -> None:
    core = WorkerCore(lambda msg: None, FakeLeg)
    core.handle(("push", "0.9", frame()))
    core.handle(("receiver", "0.9", PushOf("0.1")))
    core.handle(("receiver", "0.9", ToMain()))
    core.handle(("new", "0.1", "a", {}))
    core.handle(("receiver", "0.1", PushOf("0.9")))  # the other leg is gone: no receiver
    leg = core.legs["0.1"]
    assert isinstance(leg, FakeLeg) and leg.receiver is None
    core.handle(("nonsense", "0.1"))
    await core.close_all()
    assert leg.closed and core.legs == {}


def test_placement_fewest_legs_then_lowest_cpu() -> None:
    links = [WorkerLink(i, lambda data: None) for i in range(3)]
    assert choose(links) is links[0]
    links[0].new_leg("a")
    assert choose(links) is links[1]
    links[1].new_leg("b")
    links[2].new_leg("c")
    links[0].cpu, links[1].cpu, links[2].cpu = 0.5, 0.2, 0.3
    assert choose(links) is links[1]
    links[1].alive = False
    assert choose(links) is links[2]
    assert choose([links[1]]) is None


def test_exit_descriptions() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(None) == "still running"
