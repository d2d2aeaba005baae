"""softphone.media.impair: the spec parser, the per-packet scheduling, the transport wrapper, the aiortc seam."""

from __future__ import annotations

import asyncio
import random
import statistics

import pytest
from aiortc.rtcicetransport import RTCIceGatherer, RTCIceTransport  # at import: aioice runs ldconfig once

from softphone.errors import ConfigError
from softphone.media import impair
from softphone.media.impair import PRESETS, Impairer, ImpairSpec, PathImpairment, describe, parse

RTP = bytes([0x80, 0x6F]) + bytes(30)  # an SRTP-looking datagram (first byte 128..191)
DTLS = bytes([22, 0xFE, 0xFD]) + bytes(20)


# --- parsing ----------------------------------------------------------------------------------------


def test_parse_keys_and_units() -> None:
    spec = parse("loss=5%,jitter=40ms,delay=0.1s,burst=3")
    assert spec == ImpairSpec(loss_pct=5, burst=3, delay_ms=100, jitter_ms=40)
    assert parse("loss=2.5, delay=30") == ImpairSpec(loss_pct=2.5, delay_ms=30)
    assert parse("delay=10ms,reorder=no,dir=out,seed=7") == ImpairSpec(
        delay_ms=10, reorder=False, direction="out", seed=7)


def test_parse_presets_and_overrides() -> None:
    for name, spec in PRESETS.items():
        assert parse(name) == spec
        assert parse(name.upper()) == spec
    assert parse("wifi,loss=3%") == ImpairSpec(loss_pct=3, burst=2, delay_ms=20, jitter_ms=15, preset="wifi")
    assert PRESETS["congested"].loss_pct > PRESETS["wifi"].loss_pct > PRESETS["good"].loss_pct
    assert PRESETS["satellite"].delay_ms >= 250


@pytest.mark.parametrize("text", ["", "none", "off", " None "])
def test_parse_nothing(text: str) -> None:
    assert parse(text) is None


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("lossy", "unknown preset 'lossy'"),
        ("loss=5%,wifi", "must come first"),
        ("loss=abc", "not a number"),
        ("loss=100%", "below 100%"),
        ("delay=5m", "unit 'm'"),
        ("jitter=-4ms", "not a number"),
        ("burst=0.5,loss=1", "at least 1"),
        ("burst=3", "burst needs loss"),
        ("speed=3", "unknown key 'speed'"),
        ("loss=1,loss=2", "loss given twice"),
        ("loss=1,,delay=3", "empty item"),
        ("reorder=maybe", "not yes or no"),
        ("dir=up", "not both, in or out"),
        ("seed=x", "not a whole number"),
        ("delay=20s", "limited to 10 s"),
    ],
)
def test_parse_errors_are_clear(text: str, why: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(text)
    message = str(info.value)
    assert why in message and repr(text) in message
    assert "good, wifi, congested, satellite" in message  # what is accepted is said too


def test_describe_round_trips() -> None:
    for text in ("loss=5%,burst=3,delay=80ms,jitter=40ms", "delay=10ms,reorder=no,dir=in", "loss=0.5%"):
        spec = parse(text)
        assert describe(spec) == text
        assert parse(describe(spec)) == spec
    assert describe(None) == "none" and describe(ImpairSpec()) == "none"
    assert parse("congested") is not None
    assert PRESETS["congested"].as_dict()["preset"] == "congested"


# --- scheduling ------------------------------------------------------------------------------------


def _run(spec: ImpairSpec, n: int, seed: int = 1) -> list[float | None]:
    imp = Impairer(spec, random.Random(seed))
    return [imp.plan(i * 0.02) for i in range(n)]


def _bursts(plan: list[float | None]) -> list[int]:
    runs, cur = [], 0
    for at in plan:
        if at is None:
            cur += 1
        elif cur:
            runs.append(cur)
            cur = 0
    return runs


def test_independent_loss_rate() -> None:
    plan = _run(ImpairSpec(loss_pct=20), 20000)
    lost = sum(at is None for at in plan) / len(plan)
    assert 0.19 < lost < 0.21
    assert statistics.mean(_bursts(plan)) < 1.4  # 1 / (1 - p) = 1.25 for independent losses


def test_burst_loss_keeps_the_rate_and_lengthens_bursts() -> None:
    plan = _run(ImpairSpec(loss_pct=10, burst=4), 50000)
    lost = sum(at is None for at in plan) / len(plan)
    assert 0.09 < lost < 0.11
    assert 3.5 < statistics.mean(_bursts(plan)) < 4.5


def test_delay_and_jitter() -> None:
    plan = _run(ImpairSpec(delay_ms=100), 100)
    assert all(at is not None and abs(at - i * 0.02 - 0.1) < 1e-9 for i, at in enumerate(plan))
    plan = _run(ImpairSpec(delay_ms=50, jitter_ms=40), 5000)
    extra = [at - i * 0.02 for i, at in enumerate(plan) if at is not None]
    assert min(extra) >= 0.05 and max(extra) <= 0.05 + 0.08
    assert abs(statistics.mean(extra) - 0.09) < 0.003  # delay + J on average
    order = [at for at in plan if at is not None]
    assert order != sorted(order)  # jittered independently: reordered


def test_reorder_no_keeps_the_order() -> None:
    plan = _run(ImpairSpec(jitter_ms=40, reorder=False), 2000)
    order = [at for at in plan if at is not None]
    assert order == sorted(order) and len(set(order)) == len(order)


def test_seed_is_reproducible_and_set_spec_lifts() -> None:
    spec = ImpairSpec(loss_pct=30, jitter_ms=10, seed=42)
    a = Impairer(spec, random.Random(0))
    a.set_spec(spec)
    b = Impairer(spec, random.Random(99))
    b.set_spec(spec)
    assert [a.plan(i / 50) for i in range(200)] == [b.plan(i / 50) for i in range(200)]
    a.set_spec(ImpairSpec())
    assert all(a.plan(i) == i for i in range(100))
    assert a.counters.packets == 300 and a.counters.dropped > 30


# --- the transport wrapper (fake send/recv, no sockets) ----------------------------------------------


class FakeWire:
    def __init__(self) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.incoming: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def send(self, data: bytes) -> None:
        self.sent.append((asyncio.get_running_loop().time(), data))

    async def recv(self) -> bytes:
        item = await self.incoming.get()
        if item is None:
            raise ConnectionError("closed")
        return item


async def test_path_delays_and_drops_only_srtp() -> None:
    wire = FakeWire()
    path = PathImpairment(ImpairSpec(delay_ms=60, direction="out"), wire.send, wire.recv)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await path.send(DTLS)
    await path.send(RTP)
    assert [d for _, d in wire.sent] == [DTLS]  # DTLS at once, RTP held
    await asyncio.sleep(0.2)
    assert [d for _, d in wire.sent] == [DTLS, RTP]
    assert wire.sent[1][0] - t0 >= 0.055
    path.set_spec(ImpairSpec(loss_pct=99.9, seed=3))
    for _ in range(50):
        await path.send(RTP)
        await path.send(DTLS)
    assert sum(d == RTP for _, d in wire.sent) <= 3 and sum(d == DTLS for _, d in wire.sent) == 51
    path.set_spec(None)
    await path.send(RTP)
    assert wire.sent[-1][1] == RTP
    assert path.stats()["out"]["dropped"] >= 47 and path.stats()["in"]["packets"] == 0


async def test_path_receive_side_and_close() -> None:
    wire = FakeWire()
    path = PathImpairment(ImpairSpec(delay_ms=50, direction="in"), wire.send, wire.recv)
    loop = asyncio.get_running_loop()
    wire.incoming.put_nowait(RTP)
    wire.incoming.put_nowait(DTLS)
    t0 = loop.time()
    assert await asyncio.wait_for(path.recv(), 1) == DTLS  # overtakes the held RTP packet
    assert await asyncio.wait_for(path.recv(), 1) == RTP
    assert loop.time() - t0 >= 0.045
    await path.send(RTP)  # dir=in: sending is untouched
    assert len(wire.sent) == 1
    wire.incoming.put_nowait(None)  # the connection closes: every later read fails
    for _ in range(2):
        with pytest.raises(ConnectionError):
            await asyncio.wait_for(path.recv(), 1)
    path.close()
    path.close()


async def test_close_cancels_the_reader() -> None:
    wire = FakeWire()
    path = PathImpairment(ImpairSpec(loss_pct=10), wire.send, wire.recv)
    reader = asyncio.ensure_future(path.recv())
    await asyncio.sleep(0.01)
    path.close()
    with pytest.raises(ConnectionError):
        await asyncio.wait_for(reader, 1)


# --- the aiortc seam --------------------------------------------------------------------------------


def test_aiortc_seam_is_there() -> None:
    """Fails loudly when aiortc changes: RTCIceTransport must still send/receive through _send/_recv."""
    impair.check_aiortc()
    transport = RTCIceTransport(RTCIceGatherer())
    path = impair.attach(transport, ImpairSpec(loss_pct=5))
    assert transport._send == path.send and transport._recv == path.recv
    path.set_spec(None)
    assert not path.spec.active
