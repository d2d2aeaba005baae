"""A leg's player: what ``playback_start``, ``speak`` and the gathers' prompts play through.

Telnyx's model: each leg has one **main queue**. Items without ``overlay`` join it and play one
after another (:func:`stop_main`: ``current`` skips the item playing, ``all`` clears the queue);
while a main item plays it **replaces the call audio** the leg's party hears (the bridged party,
the conference, hold or ring tones are muted, and come back when the queue is empty). Overlays
play at once, mixed on top of whatever the party hears. :func:`looped` repeats a source 1-100
times or forever.

Each item is a :class:`Playback` in ``leg.extras["playbacks"]`` while it plays (the engine marks
them ``call_hangup`` on a hangup; a gather's first digit marks them ``cancelled``), and posts
``call.playback.*`` or ``call.speak.*`` webhooks as its ``kind`` says.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from softphone.switch.callcontrol.params import bad
from softphone.switch.media_legs import LegAudio

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.media.sources import AudioSource
    from softphone.switch.callcontrol.engine import CallControl
    from softphone.switch.callcontrol.legs import CCLeg


# --- sources: counted loops ---------------------------------------------------------------------


class _Limit:
    """Play a looping source for exactly ``total`` samples (``loop: N`` of an array source)."""

    def __init__(self, inner: AudioSource, total: int) -> None:
        self.inner = inner
        self.total = total
        self.pos = 0

    @property
    def finished(self) -> bool:
        return self.pos >= self.total

    def read_frame(self) -> Frame | None:
        import numpy as np

        if self.finished:
            return None
        frame = self.inner.read_frame()
        if frame is None:
            frame = np.zeros(960, np.int16)
        left = self.total - self.pos
        self.pos += frame.shape[0]
        if left < frame.shape[0]:
            frame = frame.copy()
            frame[left:] = 0
        return frame

    async def start(self) -> None:
        """Nothing to acquire."""

    async def stop(self) -> None:
        """Nothing to release."""


class _Repeat:
    """Replay a resettable finite source (``tone:HZ:MS``) ``times`` times (None: forever)."""

    def __init__(self, inner: Any, times: int | None) -> None:
        self.inner = inner
        self.left = times
        self.finished = False

    def read_frame(self) -> Frame | None:
        if self.finished:
            return None
        frame: Frame | None = self.inner.read_frame()
        if frame is None and getattr(self.inner, "finished", False):
            if self.left is not None:
                self.left -= 1
                if self.left <= 0:
                    self.finished = True
                    return None
            self.inner.reset()
            frame = self.inner.read_frame()
        return frame

    async def start(self) -> None:
        """Nothing to acquire."""

    async def stop(self) -> None:
        """Nothing to release."""


def looped(source: AudioSource, times: int | None) -> AudioSource:
    """``source`` played ``times`` times (None: forever). An array source must come loaded with
    ``loop=True`` when ``times != 1``."""
    from softphone.media.frames import SAMPLE_RATE
    from softphone.media.sources import ArraySource, ToneSource

    if times == 1:
        return source
    if isinstance(source, ArraySource):
        return source if times is None else _Limit(source, round(source.duration_s * SAMPLE_RATE) * times)
    if isinstance(source, ToneSource):
        return _Repeat(source, times)
    return source


def is_finished(source: AudioSource) -> bool:
    """True once a source with an end has played it (``finished``)."""
    return bool(getattr(source, "finished", False))


# --- the per-leg player -------------------------------------------------------------------------


@dataclass(eq=False)
class Playback:
    """One item played on a leg (what ``leg.extras["playbacks"]`` holds while it plays: a hangup
    or a gather's first digit sets :attr:`stopped`)."""

    source: AudioSource
    audio_url: str = ""
    media_name: str = ""
    kind: str = "playback"
    """``playback`` (call.playback.* webhooks), ``speak`` (call.speak.*) or ``silent`` (none)."""
    overlay: bool = False
    stopped: str = ""
    on_end: Callable[[str], None] | None = None
    """Called with the final status once it stopped (gathers start their timeout here)."""
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class Player:
    """A leg's main queue (``leg.extras["player"]``)."""

    queue: collections.deque[Playback] = field(default_factory=collections.deque)
    current: Playback | None = None
    task: asyncio.Task[None] | None = None
    overlays: list[Playback] = field(default_factory=list)


def player(leg: CCLeg) -> Player:
    p = leg.extras.get("player")
    if not isinstance(p, Player):
        p = leg.extras["player"] = Player()
    return p


def enqueue(cc: CallControl, leg: CCLeg, pb: Playback) -> None:
    """Play ``pb`` on ``leg``: at once when it is an overlay, else after the main queue."""
    p = player(leg)
    if pb.overlay:
        p.overlays.append(pb)
        cc.spawn(_play(cc, leg, pb), "overlay")
        return
    p.queue.append(pb)
    if p.task is None:
        p.task = cc.spawn(_run(cc, leg, p), "player")


def _drop(pb: Playback, status: str) -> None:
    """An item leaves the queue without playing (no webhooks; a gather still hears of it)."""
    pb.stopped = pb.stopped or status
    pb.done.set()
    if pb.on_end is not None:
        pb.on_end(pb.stopped)


def stop_main(leg: CCLeg, how: str, status: str = "cancelled") -> None:
    """``current``: skip the item playing; ``all``: that and everything queued."""
    p = player(leg)
    if how == "all":
        waiting = list(p.queue)
        p.queue.clear()
        for pb in waiting:
            _drop(pb, status)
    if p.current is not None and not p.current.stopped:
        p.current.stopped = status


def stop_overlays(leg: CCLeg, status: str = "cancelled") -> None:
    for pb in player(leg).overlays:
        pb.stopped = pb.stopped or status


async def _run(cc: CallControl, leg: CCLeg, p: Player) -> None:
    try:
        while p.queue and leg.alive:
            pb = p.queue.popleft()
            if pb.stopped:  # stopped while it waited (a gather's prompt after the first digit)
                _drop(pb, pb.stopped)
                continue
            p.current = pb
            await _play(cc, leg, pb)
            p.current = None
    finally:
        p.current = None
        p.task = None
        waiting = list(p.queue)  # the leg hung up with items waiting
        p.queue.clear()
        for pb in waiting:
            _drop(pb, "call_hangup")


class _Muted:
    """Stands in the leg's mix for a source a main playback silences (the bridge, the conference,
    hold and ring tones): still read, so queues drain and tones keep their cadence, but not heard.

    It compares equal to the source it mutes, so the owner of that source can still
    ``stop_playing``/``play`` it while it is muted (``MixSource`` finds sources by ``==``), and the
    gate puts back only what is still there.
    """

    def __init__(self, inner: AudioSource) -> None:
        self.inner = inner

    def __eq__(self, other: object) -> bool:
        return other is self or other is self.inner

    def __hash__(self) -> int:
        return hash(id(self.inner))

    @property
    def finished(self) -> bool:
        return is_finished(self.inner)

    def read_frame(self) -> Frame | None:
        self.inner.read_frame()
        return None

    async def start(self) -> None:
        """Nothing to acquire."""

    async def stop(self) -> None:
        """Nothing to release."""


def _gate(leg: CCLeg, on: bool) -> None:
    """While a main playback plays, the party hears it instead of the call audio (every other input
    of the leg's mix but the playbacks); the last one ending puts that audio back."""
    ep = leg.endpoint
    if not isinstance(ep, LegAudio):
        return
    n = int(leg.extras.get("audio_gated", 0)) + (1 if on else -1)
    leg.extras["audio_gated"] = max(0, n)
    if on and n == 1:
        playing = [pb.source for pb in leg.extras.get("playbacks", {}).values()]
        for src in ep.mix.sources:
            if isinstance(src, _Muted) or any(src is p for p in playing):
                continue
            ep.mix.remove(src)
            ep.mix.add(_Muted(src))
    elif not on and n <= 0:
        ep.inbox.clear()  # what piled up in the bridge while muted is stale
        for src in ep.mix.sources:
            if isinstance(src, _Muted):
                ep.mix.remove(src)
                ep.mix.add(src.inner)


async def _play(cc: CallControl, leg: CCLeg, pb: Playback) -> None:
    key = id(pb)
    gate = not pb.overlay
    leg.extras.setdefault("playbacks", {})[key] = pb
    if gate:
        _gate(leg, True)
    leg.endpoint.play(pb.source)
    _emit_started(cc, leg, pb)
    try:
        while not pb.stopped and not is_finished(pb.source) and leg.alive:
            await asyncio.sleep(0.02)
    finally:
        leg.endpoint.stop_playing(pb.source)
        leg.extras.get("playbacks", {}).pop(key, None)
        if gate:
            _gate(leg, False)
        if pb in player(leg).overlays:
            player(leg).overlays.remove(pb)
    status = pb.stopped or ("completed" if leg.alive else "call_hangup")
    pb.stopped = status
    _emit_ended(cc, leg, pb, status)
    pb.done.set()
    if pb.on_end is not None:
        pb.on_end(status)


def _media_fields(pb: Playback) -> dict[str, Any]:
    out: dict[str, Any] = {"overlay": pb.overlay}
    if pb.media_name:
        out["media_name"] = pb.media_name
    else:
        out["media_url"] = pb.audio_url
    return out


def _emit_started(cc: CallControl, leg: CCLeg, pb: Playback) -> None:
    if pb.kind == "playback":
        cc.emit(leg, "call.playback.started", **_media_fields(pb))
    elif pb.kind == "speak":
        cc.emit(leg, "call.speak.started")


def _emit_ended(cc: CallControl, leg: CCLeg, pb: Playback, status: str) -> None:
    if pb.kind == "playback":
        cc.emit(leg, "call.playback.ended", **_media_fields(pb), status=status)
    elif pb.kind == "speak":
        cc.emit(leg, "call.speak.ended", status="call_hangup" if status == "call_hangup" else "completed")


def _copy_tone(tone: Any) -> Any:
    import copy

    c = copy.copy(tone)
    c.reset()
    return c


def fresh_source(decoded: Any, times: int | None) -> AudioSource:
    """A new source over audio from :func:`samples_of` (samples or a ToneSource), played ``times``."""
    from softphone.media.sources import ArraySource, ToneSource

    if isinstance(decoded, ToneSource):
        return looped(_copy_tone(decoded), times)
    return looped(ArraySource(decoded, loop=times != 1), times)


async def samples_of(cc: CallControl, spec: str, param: str) -> Any:
    """Decoded samples of ``spec`` (an ArraySource's audio), or the ToneSource for ``tone:``."""
    from softphone.media.sources import ArraySource, ToneSource

    src = await cc.media(spec, param=param)
    if isinstance(src, ToneSource):
        return src
    if isinstance(src, ArraySource):
        import numpy as np

        frames = []
        while not src.finished:
            f = src.read_frame()
            if f is None:
                break
            frames.append(f)
        return np.concatenate(frames) if frames else np.zeros(0, np.int16)
    raise bad(param, f"{param} must name audio with an end (not silence)")
