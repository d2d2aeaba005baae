"""Media legs in worker processes: the switch uses every core.

One process runs the signaling (websockets, calls, Call Control); aiortc's media work for a
leg (ICE, DTLS-SRTP, Opus, the jitter buffer) is CPU-bound Python under one GIL, so it runs in
**media workers**: ``multiprocessing`` processes (``spawn`` context, one asyncio loop each),
one per core by default (``softphone switch serve --media-workers N``).

* A worker hosts real :class:`~softphone.switch.media_legs.MediaLeg` objects. The signaling
  process holds a :class:`RemoteMediaLeg` for each: a proxy with the MediaLeg surface
  (``answer/offer/renew/accept_answer/add_candidate/end_of_candidates/close``,
  ``set_receiver/push/play/stop_playing``, ``taps``, ``codec``, ``frames_in``, and the forwarding
  counters ``packets_forwarded``, ``packets_decoded``, ``mode``).
* Both legs of a call are placed on the same worker (:meth:`MediaPool.new_leg` takes the call as
  its group), and wiring between legs of one worker happens inside it: ``set_receiver(b.push)``
  (a bridge) or ``set_receiver(a.push)`` (echo) on a proxy sends a reference to the other leg, so
  media never crosses the process boundary in the common case.
* When the signaling process needs PCM of a remote leg it is proxied over the channel, only
  while the feature is on: a receiver that is not a co-located leg's ``push`` gets every frame
  the party says; ``taps`` see both directions; ``push`` sends frames to the leg. Overlays given
  to ``play`` (tones, DTMF, ringback, files) are pickled and played by the worker itself.
* Placement (:meth:`MediaPool.place`): the ready worker with the fewest legs, then the lowest CPU
  over the last second; the group keeps its worker. No ready worker: the leg stays in-process.
* A worker that dies ends its calls (the ``on_lost`` callback of each leg; the switch uses the
  cause :data:`WORKER_LOST_CAUSE`), is logged with its exit code, and is restarted. :meth:`MediaPool.stop`
  stops every worker (asks, then SIGTERM, then SIGKILL): no orphans. A worker whose parent
  disappears sees its channel close and exits.

The channel and the worker's side are in :mod:`softphone.switch.media_worker`.
:class:`~softphone.switch.media_worker.WorkerCore` (the worker's side) and :class:`WorkerLink`
(the signaling side) are plain objects over a ``send`` callable, so unit tests join them in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import pickle
import signal
import socket
import time
import types
import weakref
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, SupportsIndex

from softphone.switch.media_legs import AudioTap, LegAudio
from softphone.switch.media_worker import MAX_BUFFERED, PushOf, ToMain, pack, read_message, worker_main

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from softphone.media.frames import Frame
    from softphone.media.impair import ImpairSpec
    from softphone.media.sources import AudioSource

logger = logging.getLogger(__name__)

WORKER_LOST_CAUSE = "NORMAL_TEMPORARY_FAILURE"
"""The hangup cause of calls whose media worker died (Q.850 41, SIP 503)."""
READY_TIMEOUT_S = 60.0
"""How long a starting worker may take to import the media engine and report ready."""
STOP_TIMEOUT_S = 5.0
"""How long :meth:`MediaPool.stop` waits for a worker to exit before SIGTERM (then SIGKILL)."""
RESTART_DELAY_S = 0.5
"""First delay before a dead worker is restarted (doubles while it keeps dying, up to 30 s)."""
STABLE_S = 30.0
"""A worker that ran this long before dying is restarted after :data:`RESTART_DELAY_S` again."""


# --- the signaling process's side --------------------------------------------------------------


class _TapList(list[AudioTap]):
    """A remote leg's ``taps``: tells the worker when the first tap arrives and the last one leaves."""

    def __init__(self, changed: Callable[[bool], None]) -> None:
        super().__init__()
        self._changed = changed

    def _after(self, before: bool) -> None:
        if before != bool(self):
            self._changed(bool(self))

    def append(self, tap: AudioTap) -> None:
        before = bool(self)
        super().append(tap)
        self._after(before)

    def extend(self, taps: Iterable[AudioTap]) -> None:
        before = bool(self)
        super().extend(taps)
        self._after(before)

    def insert(self, index: SupportsIndex, tap: AudioTap) -> None:
        before = bool(self)
        super().insert(index, tap)
        self._after(before)

    def remove(self, tap: AudioTap) -> None:
        before = bool(self)
        super().remove(tap)
        self._after(before)

    def pop(self, index: SupportsIndex = -1) -> AudioTap:
        before = bool(self)
        tap = super().pop(index)
        self._after(before)
        return tap

    def clear(self) -> None:
        before = bool(self)
        super().clear()
        self._after(before)


class RemoteMediaLeg(LegAudio):
    """A media leg hosted by a worker process: the :class:`~softphone.switch.media_legs.MediaLeg` surface.

    Requests (``answer``...) are awaited over the channel; ``set_receiver``, ``push``, ``play``,
    ``stop_playing`` and ``taps`` changes are one-way messages applied in order. ``codec`` and
    ``frames_in`` are the worker's latest figures. Once the worker is gone every request raises
    :class:`ConnectionError` and the one-way calls do nothing; ``on_lost`` was called once.

    New MediaLeg methods need a line here and one in :attr:`softphone.switch.media_worker.WorkerCore.CALLS`.
    """

    def __init__(self, label: str, link: WorkerLink, leg_id: str, on_lost: Callable[[], None] | None = None) -> None:
        super().__init__(label)
        self.link = link
        self.leg_id = leg_id
        self.on_lost = on_lost
        self.taps = _TapList(self._taps_changed)
        self.closed = False
        self.lost = False
        self.frames_in = 0
        self.packets_forwarded = 0
        """Encoded frames the worker's leg forwarded without decoding (as of its last report)."""
        self.packets_decoded = 0
        """Encoded frames the worker's leg decoded (as of its last report)."""
        self.mode = ""
        """``forward``, ``decode`` or ``idle`` as of the worker's last report ("" before the first)."""
        self.sends_packets = False
        """The worker's leg sends forwarded encoded frames (no encoding), as of its last report."""
        self._codec = ""
        self._local_receiver: Callable[[Frame], Any] | None = None
        self._tokens: dict[int, int] = {}  # id(source) -> token
        self._sources: dict[int, AudioSource] = {}  # keeps played sources alive while their token is used
        self._token_ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"<RemoteMediaLeg {self.label} on media worker {self.link.index}>"

    @property
    def codec(self) -> str:
        """The negotiated codec (``opus/48000``) or "", as of the last request."""
        return self._codec

    @property
    def worker(self) -> int:
        """The index of the worker hosting this leg."""
        return self.link.index

    # --- requests ---------------------------------------------------------------------------

    async def _request(self, method: str, *args: Any) -> Any:
        if self.lost:
            raise ConnectionError(f"{self.label}: its media worker is gone")
        value, codec, frames_in = await self.link.request(self.leg_id, method, args)
        if codec:
            self._codec = codec
        self.frames_in = max(self.frames_in, frames_in)
        return value

    async def answer(self, offer: str) -> str:
        """Answer a client's offer; returns the switch's complete answer SDP."""
        sdp: str = await self._request("answer", offer)
        return sdp

    async def offer(self) -> str:
        """A fresh offer from a new peer (B legs)."""
        sdp: str = await self._request("offer")
        return sdp

    async def renew(self) -> str:
        """Replace the peer (reattach) and return its offer."""
        sdp: str = await self._request("renew")
        return sdp

    async def accept_answer(self, sdp: str) -> None:
        """Apply the client's answer to our latest offer."""
        await self._request("accept_answer", sdp)

    async def add_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        await self._request("add_candidate", candidate, sdp_mid, sdp_mline_index)

    async def end_of_candidates(self) -> None:
        await self._request("end_of_candidates")

    async def close(self) -> None:
        """Close the leg in its worker (nothing to do when the worker is gone)."""
        if self.closed:
            return
        self.closed = True
        self._local_receiver = None
        self._sources.clear()
        try:
            if not self.lost:
                await self._request("close")
        except ConnectionError:
            pass
        finally:
            self.link.forget(self)

    # --- one-way ------------------------------------------------------------------------------

    def _cast(self, *msg: Any) -> None:
        if not (self.lost or self.closed):
            self.link.cast(msg)

    def set_receiver(self, fn: Callable[[Frame], Any] | None) -> None:
        """Where what this leg's party says goes: another leg of the same worker stays inside it."""
        self._local_receiver = None
        target: PushOf | ToMain | None = None
        if fn is not None:
            other = _push_owner(fn)
            if other is not None and other.link is self.link:
                target = PushOf(other.leg_id)
            else:
                self._local_receiver = fn
                target = ToMain()
        self._cast("receiver", self.leg_id, target)

    def forward_to(self, other: RemoteMediaLeg | None) -> None:
        """:meth:`MediaLeg.forward_to <softphone.switch.media_legs.MediaLeg.forward_to>` in the worker
        (``other`` on the same worker; another worker's leg gets the frames through this process)."""
        self.set_receiver(None if other is None else other.push)

    def stop_forwarding(self) -> None:
        self.set_receiver(None)

    def push(self, frame: Frame) -> None:
        """Queue a frame for this leg's party to hear (sent to the worker)."""
        if not (self.lost or self.closed):
            self.link.cast_pcm(("push", self.leg_id, frame))

    def play(self, source: AudioSource) -> None:
        """Mix an overlay into what the party hears (idempotent): the worker plays a copy of ``source``."""
        if id(source) in self._tokens:
            return
        token = next(self._token_ids)
        self._tokens[id(source)] = token
        self._sources[token] = source
        self._cast("play", self.leg_id, token, source)

    def stop_playing(self, source: AudioSource) -> None:
        token = self._tokens.pop(id(source), None)
        if token is not None:
            self._sources.pop(token, None)
            self._cast("stop_playing", self.leg_id, token)

    def set_impairment(self, spec: ImpairSpec | None) -> None:
        """Impair this leg's media from now on (applied by the worker; see :mod:`softphone.media.impair`)."""
        self._cast("impair", self.leg_id, spec)

    def overlay_finished(self, token: int) -> None:
        """The worker's copy of a played source ended (and left its mix): forget it here too."""
        source = self._sources.pop(token, None)
        if source is not None:
            self._tokens.pop(id(source), None)

    def _taps_changed(self, active: bool) -> None:
        self._cast("taps", self.leg_id, active)

    # --- from the worker ----------------------------------------------------------------------

    def received(self, frame: Frame) -> None:
        """A frame the party said, for a receiver in this process."""
        fn = self._local_receiver
        if fn is not None:
            fn(frame)

    def tapped(self, direction: str, frame: Frame | None) -> None:
        for tap in list(self.taps):
            if direction == "said":
                tap.said(frame)
            else:
                tap.heard(frame)

    def worker_lost(self, *, notify: bool = True) -> None:
        """The worker died: requests fail from now on; tell the owner once (when ``notify``)."""
        if self.lost:
            return
        self.lost = True
        if notify and self.on_lost is not None and not self.closed:
            self.on_lost()


def _push_owner(fn: Callable[..., Any]) -> RemoteMediaLeg | None:
    """The leg whose ``push`` ``fn`` is (a bound method), else None."""
    if isinstance(fn, types.MethodType) and isinstance(fn.__self__, RemoteMediaLeg):
        if fn.__func__ is RemoteMediaLeg.push:
            return fn.__self__
    return None


class WorkerLink:
    """The signaling process's end of one worker's channel: pending requests and its legs.

    ``send`` writes one packed message; ``buffered`` reports unsent bytes.
    """

    def __init__(
        self, index: int, send: Callable[[bytes], None], buffered: Callable[[], int] = lambda: 0
    ) -> None:
        self.index = index
        self._send = send
        self._buffered = buffered
        self.legs: dict[str, RemoteMediaLeg] = {}
        self._pending: dict[int, asyncio.Future[tuple[Any, str, int]]] = {}
        self._ids = itertools.count(1)
        self._leg_ids = itertools.count(1)
        self.cpu = 0.0
        """CPU of the worker over the last stats interval (fraction of one core)."""
        self.alive = True
        self.pid: int | None = None
        self.pcm_dropped = 0

    @property
    def load(self) -> int:
        """Live legs on this worker."""
        return len(self.legs)

    def cast(self, msg: tuple[Any, ...]) -> None:
        if self.alive:
            self._send(pack(msg))

    def cast_pcm(self, msg: tuple[Any, ...]) -> None:
        if not self.alive:
            return
        if self._buffered() > MAX_BUFFERED:
            self.pcm_dropped += 1
            return
        self._send(pack(msg))

    def new_leg(self, label: str, on_lost: Callable[[], None] | None = None, **options: Any) -> RemoteMediaLeg:
        leg_id = f"{self.index}.{next(self._leg_ids)}"
        leg = RemoteMediaLeg(label, self, leg_id, on_lost)
        self.legs[leg_id] = leg
        self.cast(("new", leg_id, label, {k: v for k, v in options.items() if v is not None}))
        return leg

    def forget(self, leg: RemoteMediaLeg) -> None:
        self.legs.pop(leg.leg_id, None)

    async def request(self, leg_id: str, method: str, args: tuple[Any, ...]) -> tuple[Any, str, int]:
        """Run ``method`` on the worker's leg; returns (value, codec, frames_in) or raises its error."""
        if not self.alive:
            raise ConnectionError(f"media worker {self.index} is gone")
        rid = next(self._ids)
        fut: asyncio.Future[tuple[Any, str, int]] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            self._send(pack(("call", rid, leg_id, method, args)))
            return await fut
        finally:
            self._pending.pop(rid, None)

    def received(self, msg: tuple[Any, ...]) -> None:
        """One message from the worker."""
        kind = msg[0]
        if kind == "ret":
            _, rid, ok, value, codec, frames_in = msg
            fut = self._pending.get(rid)
            if fut is not None and not fut.done():
                if ok:
                    fut.set_result((value, codec, frames_in))
                else:
                    fut.set_exception(value)
        elif kind == "rx":
            leg = self.legs.get(msg[1])
            if leg is not None:
                leg.received(msg[2])
        elif kind == "tap":
            leg = self.legs.get(msg[1])
            if leg is not None:
                leg.tapped(msg[2], msg[3])
        elif kind == "stats":
            self.cpu = float(msg[1])
            for leg_id, (frames_in, forwarded, decoded, mode, sends_packets) in msg[2].items():
                leg = self.legs.get(leg_id)
                if leg is not None:
                    leg.frames_in = max(leg.frames_in, int(frames_in))
                    leg.packets_forwarded, leg.packets_decoded, leg.mode = int(forwarded), int(decoded), str(mode)
                    leg.sends_packets = bool(sends_packets)
            for leg_id, token in msg[3]:
                leg = self.legs.get(leg_id)
                if leg is not None:
                    leg.overlay_finished(token)
        elif kind == "ready":
            self.pid = int(msg[1])

    def lost(self, *, notify: bool = True) -> list[RemoteMediaLeg]:
        """The worker is gone: tell every leg (its owner ends the call, unless not ``notify``: the
        pool is stopping), fail pending requests."""
        self.alive = False
        legs = list(self.legs.values())
        self.legs.clear()
        for leg in legs:
            leg.worker_lost(notify=notify)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"media worker {self.index} is gone"))
        self._pending.clear()
        return legs


def describe_exit(code: int | None) -> str:
    """``exit code 1`` / ``killed by SIGKILL`` / ``still running``."""
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def choose(links: Iterable[WorkerLink]) -> WorkerLink | None:
    """The placement rule: the live worker with the fewest legs, then the lowest recent CPU."""
    live = [link for link in links if link.alive]
    return min(live, key=lambda link: (link.load, link.cpu, link.index), default=None)


class _Worker:
    """One worker process and the task reading its channel."""

    def __init__(
        self,
        index: int,
        process: BaseProcess,
        link: WorkerLink,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.index = index
        self.process = process
        self.link = link
        self.reader = reader
        self.writer = writer
        self.reader_task: asyncio.Task[None] | None = None
        self.started = time.monotonic()


class MediaPool:
    """``count`` media worker processes, their placement and their restarts (see the module docstring)."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("a media pool needs at least one worker")
        self.count = count
        # spawn: a fresh interpreter (no copy of the signaling process's loop, sockets or threads).
        self._ctx = multiprocessing.get_context("spawn")
        self._slots: dict[int, _Worker] = {}
        self._groups: weakref.WeakKeyDictionary[object, WorkerLink | None] = weakref.WeakKeyDictionary()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False
        self._restarts: dict[int, int] = {}
        self.deaths: list[tuple[int, int | None, str]] = []
        """(worker index, pid, how it ended) for each worker that died unasked."""

    # --- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker and wait until they are ready (a worker that fails is retried later)."""
        results = await asyncio.gather(*(self._start_worker(i) for i in range(self.count)), return_exceptions=True)
        for index, result in enumerate(results):
            if isinstance(result, BaseException):
                logger.error("media worker %d did not start: %s", index, result)
                self._schedule_restart(index)

    async def _start_worker(self, index: int) -> None:
        parent, child = socket.socketpair()
        process = self._ctx.Process(
            target=worker_main, args=(child, index), name=f"softphone-media-{index}", daemon=True
        )
        try:
            process.start()
        finally:
            child.close()
        try:
            reader, writer = await asyncio.open_unix_connection(sock=parent)
            msg = await asyncio.wait_for(read_message(reader), READY_TIMEOUT_S)
            if msg[0] != "ready":
                raise RuntimeError(f"unexpected first message {msg[0]!r}")
        except BaseException:
            parent.close()
            _kill(process)
            raise
        transport = writer.transport
        link = WorkerLink(index, writer.write, transport.get_write_buffer_size)
        link.received(msg)
        worker = _Worker(index, process, link, reader, writer)
        self._slots[index] = worker
        worker.reader_task = self._spawn(self._read(worker), f"media-worker-{index}-reader")
        logger.info("media worker %d ready (pid %s)", index, link.pid)

    async def _read(self, worker: _Worker) -> None:
        try:
            while True:
                try:
                    msg = await read_message(worker.reader)
                except (asyncio.IncompleteReadError, ConnectionError, ValueError, pickle.UnpicklingError):
                    break
                try:
                    worker.link.received(msg)
                except Exception:
                    logger.exception("media worker %d: message %r failed", worker.index, msg[0])
        finally:
            if not self._stopping:
                await self._died(worker)

    async def _died(self, worker: _Worker) -> None:
        if time.monotonic() - worker.started > STABLE_S:
            self._restarts[worker.index] = 0  # it had been running fine: restart at once, not backed off
        await asyncio.to_thread(worker.process.join, 5.0)
        how = describe_exit(worker.process.exitcode)
        legs = worker.link.lost()
        self.deaths.append((worker.index, worker.link.pid, how))
        logger.warning(
            "media worker %d (pid %s) died (%s): ending %d leg(s) with %s; restarting it",
            worker.index, worker.link.pid, how, len(legs), WORKER_LOST_CAUSE,
        )
        with contextlib.suppress(Exception):
            worker.writer.close()
        if self._slots.get(worker.index) is worker:
            del self._slots[worker.index]
        self._schedule_restart(worker.index)

    def _schedule_restart(self, index: int) -> None:
        if self._stopping:
            return
        n = self._restarts.get(index, 0)
        self._restarts[index] = n + 1
        self._spawn(self._restart(index, min(RESTART_DELAY_S * (2**n), 30.0)), f"media-worker-{index}-restart")

    async def _restart(self, index: int, delay: float) -> None:
        await asyncio.sleep(delay)
        if self._stopping or index in self._slots:
            return
        try:
            await self._start_worker(index)
        except Exception as exc:
            logger.error("media worker %d did not restart: %s", index, exc)
            self._schedule_restart(index)

    async def stop(self) -> None:
        """Stop every worker: ask, wait up to :data:`STOP_TIMEOUT_S`, then SIGTERM, then SIGKILL."""
        self._stopping = True
        for task in list(self._tasks):
            if task not in {w.reader_task for w in self._slots.values()}:
                task.cancel()
        workers = list(self._slots.values())
        self._slots.clear()
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.writer.write(pack(("stop",)))
        await asyncio.gather(*(self._stop_worker(w) for w in workers))
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _stop_worker(self, worker: _Worker) -> None:
        await asyncio.to_thread(worker.process.join, STOP_TIMEOUT_S)
        if worker.process.is_alive():
            logger.warning("media worker %d did not stop in %.1f s: terminating it", worker.index, STOP_TIMEOUT_S)
            await asyncio.to_thread(_kill, worker.process)
        worker.link.lost(notify=False)
        with contextlib.suppress(Exception):
            worker.writer.close()

    def _spawn(self, coro: Awaitable[Any], name: str) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- placement -----------------------------------------------------------------------------

    def place(self, group: object) -> WorkerLink | None:
        """The worker for a new leg of ``group`` (a call): its first leg's worker, else :func:`choose`."""
        if group in self._groups:
            link = self._groups[group]
            return link if link is not None and link.alive else None
        link = choose(w.link for w in self._slots.values())
        self._groups[group] = link
        return link

    def new_leg(
        self, label: str, group: object, on_lost: Callable[[], None] | None = None, **options: Any
    ) -> RemoteMediaLeg | None:
        """A leg on ``group``'s worker, or None (no worker ready: the caller keeps the leg in-process).

        ``options`` go to the worker's ``MediaLeg(label, **options)`` (e.g. ``impair``).
        """
        link = self.place(group)
        return link.new_leg(label, on_lost, **options) if link is not None else None

    def keep_local(self, group: object) -> None:
        """Pin ``group`` in-process (its later legs too)."""
        self._groups[group] = None

    def workers(self) -> list[dict[str, Any]]:
        """One row per running worker: index, pid, legs, cpu (for tests and ``active_calls``-style views)."""
        return [
            {"index": w.index, "pid": w.link.pid, "legs": w.link.load, "cpu": round(w.link.cpu, 3),
             "alive": w.process.is_alive()}
            for w in sorted(self._slots.values(), key=lambda w: w.index)
        ]

    async def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Wait until every slot has a live worker (after a restart)."""
        deadline = time.monotonic() + timeout
        while len(self._slots) < self.count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.count - len(self._slots)} media worker(s) not ready")
            await asyncio.sleep(0.05)


def _kill(process: BaseProcess) -> None:
    if process.is_alive():
        process.terminate()
        process.join(1.0)
    if process.is_alive():
        process.kill()
        process.join(1.0)
