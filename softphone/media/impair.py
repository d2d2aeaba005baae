"""Network impairments for one media peer, in-process: loss, bursts, delay and jitter on its RTP path.

``--impair loss=5%,jitter=40ms,delay=100ms,burst=3`` or a preset (``good``, ``wifi``, ``congested``,
``satellite``), optionally followed by overrides (``wifi,loss=3%``). :func:`parse` turns the text
into an :class:`ImpairSpec`; :func:`attach` applies it to one aiortc ``RTCIceTransport``.

Where it acts. aiortc 1.16's ``RTCDtlsTransport`` protects each RTP/RTCP packet with SRTP and
hands the datagram to ``RTCIceTransport._send``; it reads datagrams with ``RTCIceTransport._recv``.
Both are plain instance attributes (aiortc sets them to the aioice ``Connection``'s ``send`` and
``recv`` in ``RTCIceTransport.__init__``) and are looked up at every packet, so :func:`attach`
replaces them on that one transport object: no module-level patch, nothing else in the process
changes. Only SRTP/SRTCP datagrams (first byte 128..191, RFC 7983) are impaired; DTLS passes
untouched (the handshake must not be lost), and STUN consent checks never go through these two
attributes. The tested aiortc versions are pinned in :data:`TESTED_AIORTC`; :func:`check_aiortc`
says clearly when the seam is not there (tests/unit/media/test_impair_unit.py fails loudly then).

Semantics, per direction (``dir=both``, the default, impairs what the peer sends and what it
receives, each with its own random state, so ``delay=100ms`` adds ~200 ms to the RTCP round trip):

* ``loss=P%``: each packet is dropped with probability P (independent, Bernoulli).
* ``burst=N`` (with ``loss``): losses come in bursts of N packets on average, Gilbert-Elliott
  style: a two-state Markov chain (good: nothing lost, bad: everything lost) with P(bad->good) =
  1/N and P(good->bad) = P/(100-P) / N, so the long-run loss is still P %.
* ``delay=D``: every packet is held D (``ms`` or ``s``; a bare number is ms).
* ``jitter=J``: each packet gets an extra delay drawn uniformly from 0..2J (mean J, on top of D).
  Packets are jittered independently, so they may be reordered, as netem does; ``reorder=no``
  keeps their order (a packet never leaves before the previous one: a queue, like a busy link).
  The RFC 3550 interarrival jitter a receiver then measures is about 2J/3 with reordering, less
  without it (bench and tests/e2e/test_impair.py give the measured band).
* ``dir=out|in|both``, ``seed=N`` (a reproducible random sequence).

Presets (one-way values, both directions):

=========== ====== ====== ====== =====
preset      loss   burst  delay  jitter
=========== ====== ====== ====== =====
good        0 %    -      10 ms  2 ms
wifi        1 %    2      20 ms  15 ms
congested   5 %    3      80 ms  40 ms
satellite   1 %    -      270 ms 20 ms
=========== ====== ====== ====== =====
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from softphone.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["PRESETS", "TESTED_AIORTC", "ImpairSpec", "Impairer", "PathImpairment", "attach", "check_aiortc",
           "describe", "parse"]

TESTED_AIORTC = ("1.16",)
"""aiortc minor versions whose ``RTCIceTransport._send``/``_recv`` seam this module was tested on."""

Direction = Literal["out", "in", "both"]


@dataclass(frozen=True, slots=True)
class ImpairSpec:
    """What to do to a peer's packets (see the module docstring for the exact semantics)."""

    loss_pct: float = 0.0
    burst: float = 0.0
    """Mean loss-burst length in packets (0: independent losses)."""
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder: bool = True
    direction: Direction = "both"
    seed: int | None = None
    preset: str = ""
    """The preset it started from ("" for none)."""

    @property
    def active(self) -> bool:
        """False when it changes nothing."""
        return bool(self.loss_pct or self.delay_ms or self.jitter_ms)

    def applies(self, direction: Literal["out", "in"]) -> bool:
        return self.direction in ("both", direction)

    def as_dict(self) -> dict[str, Any]:
        """Stable keys for ``--json`` and reports."""
        return {"preset": self.preset or None, "loss_pct": self.loss_pct, "burst": self.burst,
                "delay_ms": self.delay_ms, "jitter_ms": self.jitter_ms, "reorder": self.reorder,
                "dir": self.direction}


PRESETS: dict[str, ImpairSpec] = {
    "good": ImpairSpec(delay_ms=10, jitter_ms=2, preset="good"),
    "wifi": ImpairSpec(loss_pct=1, burst=2, delay_ms=20, jitter_ms=15, preset="wifi"),
    "congested": ImpairSpec(loss_pct=5, burst=3, delay_ms=80, jitter_ms=40, preset="congested"),
    "satellite": ImpairSpec(loss_pct=1, delay_ms=270, jitter_ms=20, preset="satellite"),
}
"""The named presets; their values are in the module docstring and the README."""

_KEYS = ("loss", "burst", "delay", "jitter", "reorder", "dir", "seed")
_NUMBER = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z%]*)\s*$")
_YES = {"yes": True, "on": True, "true": True, "1": True, "no": False, "off": False, "false": False, "0": False}


def _bad(text: str, why: str) -> ConfigError:
    presets = ", ".join(PRESETS)
    return ConfigError(
        f"bad --impair {text!r}: {why} (expected a preset ({presets}) and/or "
        "key=value pairs: loss=5%, burst=3, delay=100ms, jitter=40ms, reorder=yes|no, dir=both|out|in, seed=N)"
    )


def _number(text: str, key: str, value: str, units: dict[str, float]) -> float:
    m = _NUMBER.match(value.lower())
    if m is None:
        raise _bad(text, f"{key}={value!r} is not a number")
    unit = m.group(2)
    if unit not in units:
        raise _bad(text, f"{key}={value!r}: unit {unit!r} not one of {', '.join(u or 'none' for u in units)}")
    return float(m.group(1)) * units[unit]


def parse(text: str) -> ImpairSpec | None:
    """Parse an ``--impair`` value; ``None`` for ``none``/``off``/"". Raises :class:`ConfigError` (exit 2)."""
    parts = [p.strip() for p in text.split(",")]
    if text.strip().lower() in ("", "none", "off"):
        return None
    spec = ImpairSpec()
    seen: set[str] = set()
    for i, part in enumerate(parts):
        if not part:
            raise _bad(text, "empty item")
        if "=" not in part:
            name = part.lower()
            if name not in PRESETS:
                raise _bad(text, f"unknown preset {part!r}")
            if i != 0:
                raise _bad(text, f"the preset {part!r} must come first")
            spec = PRESETS[name]
            continue
        key, _, value = (s.strip() for s in part.partition("="))
        key = key.lower()
        if key not in _KEYS:
            raise _bad(text, f"unknown key {key!r}")
        if key in seen:
            raise _bad(text, f"{key} given twice")
        seen.add(key)
        ms = {"": 1.0, "ms": 1.0, "s": 1000.0}
        if key == "loss":
            loss = _number(text, key, value, {"": 1.0, "%": 1.0})
            if loss >= 100:
                raise _bad(text, "loss must be below 100%")
            spec = replace(spec, loss_pct=loss)
        elif key == "burst":
            burst = _number(text, key, value, {"": 1.0})
            if burst < 1:
                raise _bad(text, "burst is a mean burst length in packets, at least 1")
            spec = replace(spec, burst=burst)
        elif key == "delay":
            spec = replace(spec, delay_ms=_number(text, key, value, ms))
        elif key == "jitter":
            spec = replace(spec, jitter_ms=_number(text, key, value, ms))
        elif key == "reorder":
            if value.lower() not in _YES:
                raise _bad(text, f"reorder={value!r} is not yes or no")
            spec = replace(spec, reorder=_YES[value.lower()])
        elif key == "dir":
            if value.lower() not in ("both", "in", "out"):
                raise _bad(text, f"dir={value!r} is not both, in or out")
            direction: Direction = "both" if value.lower() == "both" else ("in" if value.lower() == "in" else "out")
            spec = replace(spec, direction=direction)
        else:  # seed
            if not value.isdigit():
                raise _bad(text, f"seed={value!r} is not a whole number")
            spec = replace(spec, seed=int(value))
    if spec.burst and not spec.loss_pct:
        raise _bad(text, "burst needs loss")
    if spec.delay_ms > 10_000 or spec.jitter_ms > 10_000:
        raise _bad(text, "delay and jitter are limited to 10 s")
    return spec


def describe(spec: ImpairSpec | None) -> str:
    """``loss=5%,burst=3,delay=80ms,jitter=40ms`` (what :func:`parse` reads back), or ``none``."""
    if spec is None or not spec.active:
        return "none"
    items = []
    if spec.loss_pct:
        items.append(f"loss={spec.loss_pct:g}%")
    if spec.burst:
        items.append(f"burst={spec.burst:g}")
    if spec.delay_ms:
        items.append(f"delay={spec.delay_ms:g}ms")
    if spec.jitter_ms:
        items.append(f"jitter={spec.jitter_ms:g}ms")
    if not spec.reorder:
        items.append("reorder=no")
    if spec.direction != "both":
        items.append(f"dir={spec.direction}")
    return ",".join(items)


# --- scheduling (pure: a clock value in, a send time or a drop out) ---------------------------------


@dataclass
class Counters:
    """Packets seen, dropped and held back in one direction."""

    packets: int = 0
    dropped: int = 0
    delayed: int = 0


@dataclass
class Impairer:
    """The decisions for one direction of one peer: :meth:`plan` per packet."""

    spec: ImpairSpec
    rng: random.Random = field(default_factory=random.Random)
    counters: Counters = field(default_factory=Counters)
    _bad_state: bool = False
    _last_at: float = float("-inf")

    def set_spec(self, spec: ImpairSpec) -> None:
        """Change the impairment from the next packet on (the loss state restarts good)."""
        self.spec = spec
        self._bad_state = False
        if spec.seed is not None:
            self.rng.seed(spec.seed)

    def lost(self) -> bool:
        """Draw the loss decision for the next packet."""
        p = self.spec.loss_pct / 100.0
        if p <= 0:
            return False
        if self.spec.burst <= 0:
            return self.rng.random() < p
        to_good = 1.0 / self.spec.burst
        to_bad = p / (1.0 - p) * to_good
        if self._bad_state:
            self._bad_state = self.rng.random() >= to_good
        else:
            self._bad_state = self.rng.random() < to_bad
        return self._bad_state

    def plan(self, now: float) -> float | None:
        """When the packet seen at ``now`` (seconds) goes on, or ``None`` when it is lost."""
        self.counters.packets += 1
        if self.lost():
            self.counters.dropped += 1
            return None
        extra = self.spec.delay_ms
        if self.spec.jitter_ms:
            extra += self.rng.uniform(0.0, 2.0 * self.spec.jitter_ms)
        at = now + extra / 1000.0
        if not self.spec.reorder:
            at = max(at, self._last_at + 1e-6)  # equal timer times would not keep their order
        self._last_at = max(self._last_at, at)
        if at > now:
            self.counters.delayed += 1
        return at


def _is_srtp(data: bytes) -> bool:
    return bool(data) and 127 < data[0] < 192


NOOP = ImpairSpec()


class PathImpairment:
    """The impairment attached to one ICE transport, both directions; :meth:`set_spec` changes it live."""

    def __init__(
        self,
        spec: ImpairSpec,
        send: Callable[[bytes], Awaitable[None]],
        recv: Callable[[], Awaitable[bytes]],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        rng = random.Random(spec.seed)
        self.out = Impairer(NOOP, random.Random(rng.random()))
        self.inbound = Impairer(NOOP, random.Random(rng.random()))
        self.spec = NOOP
        self.set_spec(spec)
        self._wire_send = send
        self._wire_recv = recv
        self._loop = loop
        self._inbox: asyncio.Queue[bytes | Exception] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Future[None]] = set()
        self.closed = False

    def set_spec(self, spec: ImpairSpec | None) -> None:
        """Impair with ``spec`` from the next packet on; ``None`` lifts it (packets held keep their time)."""
        spec = spec if spec is not None else NOOP
        self.spec = spec
        self.out.set_spec(spec if spec.applies("out") else NOOP)
        self.inbound.set_spec(spec if spec.applies("in") else NOOP)

    def _loop_now(self) -> tuple[asyncio.AbstractEventLoop, float]:
        loop = self._loop or asyncio.get_running_loop()
        return loop, loop.time()

    # -- sending ------------------------------------------------------------------------------

    async def send(self, data: bytes) -> None:
        """What the DTLS transport calls for every datagram it sends."""
        if self.closed or not _is_srtp(data) or not self.out.spec.active:
            await self._wire_send(data)
            return
        loop, now = self._loop_now()
        at = self.out.plan(now)
        if at is None:
            return
        if at <= now:
            await self._wire_send(data)
            return
        loop.call_at(at, self._send_later, data)

    def _send_later(self, data: bytes) -> None:
        if self.closed:
            return
        fut = asyncio.ensure_future(self._wire_send(data))
        self._sending.add(fut)
        fut.add_done_callback(self._sent)

    def _sent(self, fut: asyncio.Future[None]) -> None:
        self._sending.discard(fut)
        if not fut.cancelled() and fut.exception() is not None:
            logger.debug("impaired send failed: %s", fut.exception())

    # -- receiving ----------------------------------------------------------------------------

    async def recv(self) -> bytes:
        """What the DTLS transport awaits for every datagram it reads."""
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._pump_loop())
        item = await self._inbox.get()
        if isinstance(item, Exception):
            self._inbox.put_nowait(item)  # every later read fails the same way
            raise item
        return item

    async def _pump_loop(self) -> None:
        while True:
            try:
                data = await self._wire_recv()
            except asyncio.CancelledError:
                self._inbox.put_nowait(ConnectionError("impaired transport closed"))
                raise
            except Exception as exc:
                self._inbox.put_nowait(exc)
                return
            if self.closed or not _is_srtp(data) or not self.inbound.spec.active:
                self._inbox.put_nowait(data)
                continue
            loop, now = self._loop_now()
            at = self.inbound.plan(now)
            if at is None:
                continue
            if at <= now:
                self._inbox.put_nowait(data)
            else:
                loop.call_at(at, self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        if not self.closed:
            self._inbox.put_nowait(data)

    # -- teardown -----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop: held packets are dropped (their timers find the path closed), the reader ends (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._pump is not None:
            self._pump.cancel()

    def stats(self) -> dict[str, Any]:
        """Counters per direction (packets seen, dropped, delayed) and the spec in force."""
        return {
            "spec": self.spec.as_dict(),
            "out": vars(self.out.counters).copy(),
            "in": vars(self.inbound.counters).copy(),
        }


@functools.cache
def check_aiortc() -> None:
    """Raise :class:`RuntimeError` when the installed aiortc lacks the seam :func:`attach` uses."""
    import aiortc
    from aiortc.rtcicetransport import RTCIceTransport

    version = str(aiortc.__version__)
    if ".".join(version.split(".")[:2]) not in TESTED_AIORTC:
        raise RuntimeError(
            f"softphone.media.impair was tested with aiortc {', '.join(TESTED_AIORTC)}, not {version}: "
            "check that RTCIceTransport still sends and receives through its _send/_recv attributes"
        )
    import inspect

    try:
        source = inspect.getsource(RTCIceTransport.__init__)
    except (OSError, TypeError):  # installed without sources: the version pin has to do
        return
    if "self._send = self._connection.send" not in source or "self._recv = self._connection.recv" not in source:
        raise RuntimeError(f"aiortc {version}: RTCIceTransport no longer exposes _send/_recv")


def attach(ice_transport: Any, spec: ImpairSpec | None) -> PathImpairment:
    """Impair one aiortc ``RTCIceTransport`` (see the module docstring); returns the live control.

    Safe before and after the connection is up; the impairment ends when the transport closes.
    """
    check_aiortc()
    path = PathImpairment(spec or NOOP, ice_transport._send, ice_transport._recv)
    ice_transport._send = path.send
    ice_transport._recv = path.recv

    def on_state() -> None:
        if ice_transport.state in ("closed", "failed"):
            path.close()

    ice_transport.on("statechange", on_state)
    return path
