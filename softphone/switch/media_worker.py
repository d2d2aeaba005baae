"""The media worker process's side of :mod:`softphone.switch.workers`: the channel's wire format,
:class:`WorkerCore` (the legs of one worker and the handling of the signaling process's messages)
and :func:`worker_main` (the ``spawn`` target: an asyncio loop serving the channel).

The channel is a ``socketpair``: frames of a 4-byte length and a pickled tuple. Requests carry an
id and get ``("ret", id, ok, value, codec, frames_in)``; one-way messages (``receiver``, ``push``,
``play``, ``stop_playing``, ``taps``, ``impair``) are applied in order. The worker reports
``("stats", cpu, {leg: (frames_in, forwarded, decoded, mode, sends_packets)}, finished)`` every
:data:`STATS_INTERVAL_S` and sends proxied PCM as ``("rx", leg, frame)`` (for a receiver in the
signaling process) and ``("tap", leg, "said"|"heard", frame)``. Kept free of the signaling side,
so a worker imports only this and the media engine.

The program that starts workers must have an import-safe main module (an ``if __name__ ==
"__main__":`` guard), as for any ``spawn``-context multiprocessing: the worker imports it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.media.impair import ImpairSpec
    from softphone.media.sources import AudioSource
    from softphone.switch.media_legs import AudioTap

logger = logging.getLogger(__name__)

STATS_INTERVAL_S = 1.0
"""How often a worker reports its CPU and its legs' counters (``frames_in``, forwarded/decoded packets, mode)."""
MAX_BUFFERED = 256 * 1024
"""Bytes queued on a channel beyond which proxied PCM frames are dropped (a slow reader must not
grow memory without bound; RPCs are never dropped)."""

_HEADER = struct.Struct(">I")


# --- the wire ------------------------------------------------------------------------------


def pack(msg: tuple[Any, ...]) -> bytes:
    """One channel frame: a 4-byte big-endian length and the pickled message."""
    body = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def unpack(data: bytes) -> tuple[Any, ...]:
    """The message in one whole frame made by :func:`pack`."""
    (size,) = _HEADER.unpack_from(data)
    msg = pickle.loads(data[_HEADER.size : _HEADER.size + size])
    if not isinstance(msg, tuple) or not msg:
        raise ValueError("malformed message on the media worker channel")
    return msg


async def read_message(reader: asyncio.StreamReader) -> tuple[Any, ...]:
    """The next message (raises :class:`asyncio.IncompleteReadError` at end of stream)."""
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    msg = pickle.loads(await reader.readexactly(size))
    if not isinstance(msg, tuple) or not msg:
        raise ValueError("malformed message on the media worker channel")
    return msg


@dataclass(frozen=True)
class LegRef:
    """An argument naming another leg of the same worker."""

    leg_id: str


@dataclass(frozen=True)
class PushOf:
    """A receiver that is another leg's ``push`` on the same worker (a bridge, or echo)."""

    leg_id: str


@dataclass(frozen=True)
class ToMain:
    """A receiver in the signaling process: the worker sends every received frame over."""


# --- the worker's side -------------------------------------------------------------------------


class WorkerLeg(Protocol):
    """What :class:`WorkerCore` needs of a leg (:class:`~softphone.switch.media_legs.MediaLeg`)."""

    taps: list[AudioTap]
    frames_in: int

    @property
    def packets_forwarded(self) -> int: ...

    @property
    def packets_decoded(self) -> int: ...

    @property
    def mode(self) -> str: ...

    @property
    def sends_packets(self) -> bool: ...

    @property
    def codec(self) -> str: ...

    async def answer(self, offer: str) -> str: ...

    async def offer(self) -> str: ...

    async def renew(self) -> str: ...

    async def accept_answer(self, sdp: str) -> None: ...

    async def add_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None: ...

    async def end_of_candidates(self) -> None: ...

    async def close(self) -> None: ...

    def set_receiver(self, fn: Callable[[Frame], Any] | None) -> None: ...

    def push(self, frame: Frame) -> None: ...

    def play(self, source: AudioSource) -> None: ...

    def stop_playing(self, source: AudioSource) -> None: ...

    def set_impairment(self, spec: ImpairSpec | None) -> None: ...


class _TapToMain:
    """A tap inside the worker that forwards both directions to the signaling process."""

    def __init__(self, core: WorkerCore, leg_id: str) -> None:
        self.core, self.leg_id = core, leg_id

    def said(self, frame: Frame | None) -> None:
        self.core.send_pcm(("tap", self.leg_id, "said", frame))

    def heard(self, frame: Frame | None) -> None:
        self.core.send_pcm(("tap", self.leg_id, "heard", frame))


class WorkerCore:
    """The legs of one worker and the handling of the signaling process's messages.

    ``send`` writes one message back; ``buffered`` says how many bytes wait unsent (proxied PCM
    is dropped beyond :data:`MAX_BUFFERED`). ``leg_factory(label, **options)`` builds a leg.
    """

    # Requests (they await; each runs in a task, so a slow ICE never blocks the channel).
    CALLS: ClassVar[dict[str, Callable[..., Awaitable[Any]]]] = {
        "answer": lambda leg, offer: leg.answer(offer),
        "offer": lambda leg: leg.offer(),
        "renew": lambda leg: leg.renew(),
        "accept_answer": lambda leg, sdp: leg.accept_answer(sdp),
        "add_candidate": lambda leg, c, mid, idx: leg.add_candidate(c, mid, idx),
        "end_of_candidates": lambda leg: leg.end_of_candidates(),
    }

    def __init__(
        self,
        send: Callable[[tuple[Any, ...]], None],
        leg_factory: Callable[..., WorkerLeg],
        buffered: Callable[[], int] = lambda: 0,
    ) -> None:
        self.send = send
        self.buffered = buffered
        self.leg_factory = leg_factory
        self.legs: dict[str, WorkerLeg] = {}
        self.sources: dict[tuple[str, int], AudioSource] = {}
        self._tap_proxies: dict[str, _TapToMain] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.pcm_dropped = 0

    def send_pcm(self, msg: tuple[Any, ...]) -> None:
        """Send a proxied frame unless the channel is backed up (then it is dropped)."""
        if self.buffered() > MAX_BUFFERED:
            self.pcm_dropped += 1
            return
        self.send(msg)

    def _resolve_receiver(self, leg_id: str, target: PushOf | ToMain | None) -> Callable[[Frame], Any] | None:
        if isinstance(target, PushOf):
            other = self.legs.get(target.leg_id)
            return other.push if other is not None else None
        if isinstance(target, ToMain):
            return lambda frame: self.send_pcm(("rx", leg_id, frame))
        return None

    def handle(self, msg: tuple[Any, ...]) -> None:
        """Apply one message from the signaling process (requests start a task)."""
        kind = msg[0]
        if kind == "call":
            _, rid, leg_id, method, args = msg
            task = asyncio.get_running_loop().create_task(self._call(rid, leg_id, method, args))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        leg_id = msg[1]
        if kind == "new":
            self.legs[leg_id] = self.leg_factory(msg[2], **msg[3])
            return
        leg = self.legs.get(leg_id)
        if leg is None:
            return  # closed meanwhile: one-way messages to it are moot
        if kind == "push":
            leg.push(msg[2])
        elif kind == "receiver":
            leg.set_receiver(self._resolve_receiver(leg_id, msg[2]))
        elif kind == "play":
            _, _, token, source = msg
            self.sources[(leg_id, token)] = source
            leg.play(source)
        elif kind == "stop_playing":
            source = self.sources.pop((leg_id, msg[2]), None)
            if source is not None:
                leg.stop_playing(source)
        elif kind == "impair":
            leg.set_impairment(msg[2])
        elif kind == "taps":
            proxy = self._tap_proxies.pop(leg_id, None)
            if proxy is not None and proxy in leg.taps:
                leg.taps.remove(proxy)
            if msg[2]:
                self._tap_proxies[leg_id] = proxy = _TapToMain(self, leg_id)
                leg.taps.append(proxy)
        else:
            logger.warning("media worker: unknown message %r", kind)

    async def _call(self, rid: int, leg_id: str, method: str, args: tuple[Any, ...]) -> None:
        leg = self.legs.get(leg_id)
        try:
            if leg is None:
                raise ConnectionError("leg is closed")
            if method == "close":
                await self._close(leg_id)
                value: Any = None
            else:
                value = await self.CALLS[method](leg, *args)
            self.send(("ret", rid, True, value, leg.codec, leg.frames_in))
        except Exception as exc:
            reply: BaseException = exc if _picklable(exc) else RuntimeError(f"{type(exc).__name__}: {exc}")
            self.send(("ret", rid, False, reply, "", 0))

    async def _close(self, leg_id: str) -> None:
        leg = self.legs.pop(leg_id, None)
        for key in [k for k in self.sources if k[0] == leg_id]:
            del self.sources[key]
        self._tap_proxies.pop(leg_id, None)
        if leg is not None:
            await leg.close()

    async def close_all(self) -> None:
        """Close every leg (the worker is stopping)."""
        for task in list(self._tasks):
            task.cancel()
        for leg_id in list(self.legs):
            with contextlib.suppress(Exception):
                await self._close(leg_id)

    def stats(self, cpu: float) -> tuple[Any, ...]:
        """A ``stats`` message: CPU fraction of one core over the last interval, each leg's counters,
        and the overlays that finished since the last one (forgotten here and by the proxies: a call
        playing many DTMF digits does not keep them all)."""
        from softphone.media.sources import FiniteSource

        finished = [key for key, src in self.sources.items() if isinstance(src, FiniteSource) and src.finished]
        for key in finished:
            del self.sources[key]
        return (
            "stats",
            cpu,
            {
                leg_id: (leg.frames_in, leg.packets_forwarded, leg.packets_decoded, leg.mode, leg.sends_packets)
                for leg_id, leg in self.legs.items()
            },
            finished,
        )


def _picklable(obj: object) -> bool:
    try:
        pickle.dumps(obj)
    except Exception:
        return False
    return True


def worker_main(sock: socket.socket, index: int) -> None:
    """The worker process's entry point (``spawn`` target): serve the channel until it closes."""
    # Ctrl-C reaches the whole process group: the signaling process stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=logging.WARNING, format=f"%(asctime)s %(levelname)s media-worker-{index} %(name)s: %(message)s"
    )
    asyncio.run(_serve(sock))


async def _serve(sock: socket.socket) -> None:
    from softphone.switch.media_legs import MediaLeg, ensure_media

    reader, writer = await asyncio.open_unix_connection(sock=sock)
    transport = writer.transport

    def send(msg: tuple[Any, ...]) -> None:
        if not transport.is_closing():
            writer.write(pack(msg))

    core = WorkerCore(send, MediaLeg, transport.get_write_buffer_size)
    await ensure_media()
    send(("ready", os.getpid()))

    async def report() -> None:
        last_cpu, last_t = time.process_time(), time.monotonic()
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            cpu, now = time.process_time(), time.monotonic()
            send(core.stats((cpu - last_cpu) / max(now - last_t, 1e-3)))
            last_cpu, last_t = cpu, now

    reporter = asyncio.create_task(report())
    try:
        while True:
            try:
                msg = await read_message(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # the signaling process is gone: exit, never linger as an orphan
            if msg[0] == "stop":
                break
            try:
                core.handle(msg)
            except Exception:
                logger.exception("media worker: message %r failed", msg[0])
    finally:
        reporter.cancel()
        await core.close_all()
        with contextlib.suppress(Exception):
            writer.close()
