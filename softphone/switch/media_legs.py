"""Media termination for one switch leg: a :class:`~softphone.media.peer.MediaPeer` plus bridge plumbing.

Each leg sends a :class:`~softphone.media.sources.MixSource` of

* ``inbox``: a :class:`~softphone.media.sources.PushSource` fed with the other leg's
  received frames (the bridge) or with this leg's own frames (echo), and
* one-shot or looping overlays: tones, DTMF, ringback, hold tone.

Received frames go to a replaceable callback (``set_receiver``). Re-attaching a leg
(after the client reconnects) swaps the peer underneath; the sources stay, so the
bridge resumes by itself.

Where nothing needs the audio as PCM, an echo or a bridge between legs with the same codec
moves the *encoded* frames instead (:meth:`MediaLeg.forward_to`, :mod:`softphone.media.forward`):
no decode, no encode, and back to the PCM path above the moment a tap, an overlay or a PCM
receiver appears (see :class:`MediaLeg`).

Adapter notes (things :mod:`softphone.media` does not do itself): trickle ICE is
handled here by folding ``telnyx_rtc.candidate`` lines into the remote SDP before it
is applied (the remote description waits for ``endOfCandidates``, at most
:data:`TRICKLE_WAIT_S`); and :mod:`softphone.media` is imported lazily, in a thread,
so importing and starting the switch stays fast.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import sys
import types
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, SupportsIndex

if TYPE_CHECKING:
    from softphone.media.forward import EncodedTap, ForwardingTrack
    from softphone.media.frames import Frame
    from softphone.media.impair import ImpairSpec
    from softphone.media.peer import MediaPeer
    from softphone.media.sources import AudioSource, MixSource

logger = logging.getLogger(__name__)

TRICKLE_WAIT_S = 3.0
"""How long a trickled SDP waits for ``telnyx_rtc.endOfCandidates``."""

LEG_JITTER_FRAMES = 1
"""20 ms frames each leg's receive buffer holds before playing out. The switch's legs are on
loopback, where packets arrive in order and on time: aiortc's default of 4 frames would add
~60 ms to every leg (~120 ms to an echo round trip) for no benefit (bench/compare_sdk.py)."""
DTMF_TONE_MS = 100
DTMF_GAP_MS = 70
HOLD_TONE_HZ = 440.0
FORWARD_ENV = "SOFTPHONE_SWITCH_FORWARD"
"""``0`` turns RTP forwarding off (every leg decodes and re-encodes, as before issue 14): a kill switch,
and the baseline of bench/forward_cpu.py. Read when a leg is created."""

_MEDIA_MODULES = ("softphone.media.peer", "softphone.media.sources", "softphone.media.sinks", "softphone.media.dsp")


def _import_media() -> None:
    for name in _MEDIA_MODULES:
        importlib.import_module(name)


async def ensure_media() -> None:
    """Import the media engine (aiortc) off the event loop, once."""
    if all(name in sys.modules for name in _MEDIA_MODULES):
        return
    await asyncio.to_thread(_import_media)


def tone_source(freq_hz: float, amplitude: float = 0.3) -> AudioSource:
    """A steady tone (the ``tone`` service)."""
    from softphone.media.sources import ToneSource

    return ToneSource(freq_hz, amplitude)


def ringback_source() -> AudioSource:
    """US ringback (440+480 Hz, 2 s on / 4 s off) for early media."""
    from softphone.media.tones import ringback_tone

    return ringback_tone(0.25)


def hold_source() -> AudioSource:
    """What a held party hears: a soft 440 Hz beep, 0.5 s on, 1.5 s off."""
    from softphone.media.sources import ToneSource

    return ToneSource(HOLD_TONE_HZ, 0.15, on_ms=500, off_ms=1500)


def dtmf_source(digits: str) -> AudioSource:
    """In-band DTMF: 100 ms per digit, 70 ms gaps."""
    from softphone.media.dsp import dtmf_source as make

    return make(digits, tone_ms=DTMF_TONE_MS, gap_ms=DTMF_GAP_MS)


def _merge_candidates(sdp: str, candidates: list[str]) -> str:
    """Append trickled ``a=candidate`` lines to the (single) audio section of ``sdp``."""
    if not candidates:
        return sdp
    lines = [ln for ln in sdp.replace("\r\n", "\n").split("\n") if ln]
    extra = [c if c.startswith("a=") else f"a={c}" for c in candidates]
    extra.append("a=end-of-candidates")
    # Insert at the end of the first m= section (the audio one for a Verto call).
    first_m = next((i for i, ln in enumerate(lines) if ln.startswith("m=")), None)
    if first_m is None:
        return sdp
    end = next((i for i in range(first_m + 1, len(lines)) if lines[i].startswith("m=")), len(lines))
    lines[end:end] = [ln for ln in extra if ln not in lines]
    return "\r\n".join(lines) + "\r\n"


def _codec_key(codec: str) -> tuple[str, int] | None:
    """``"opus/48000"`` -> ``("opus", 48000)`` (as :func:`softphone.media.forward.codec_key`)."""
    name, _, rate = codec.partition("/")
    return (name.lower(), int(rate)) if name and rate.isdigit() else None


def _can_forward(src: MediaLeg, dst: MediaLeg) -> bool:
    """True if what ``src`` receives may go to ``dst``'s sender encoded (nothing needs the PCM)."""
    if not (src.forward_allowed and dst.forward_allowed) or src.closed or dst.closed:
        return False
    if src._tap is None or dst._track is None:
        return False
    key = _codec_key(src.codec)
    if key is None or key != _codec_key(dst.codec):
        return False
    if src.taps or dst.taps:
        return False
    inputs = dst.mix.sources
    if len(inputs) != 1 or inputs[0] is not dst.inbox:  # an overlay, or the inbox muted
        return False
    return len(dst._feeders) == 1 and dst._feeders[0] is src


class AudioTap(Protocol):
    """Sees a leg's audio both ways, 20 ms frames as they pass (media streaming, transcription).

    Called on the media path, so it must only copy or queue. ``None`` is a frame time with
    nothing to say (silence).
    """

    def said(self, frame: Frame | None) -> None:
        """What the leg's party said (Telnyx's ``inbound`` track)."""

    def heard(self, frame: Frame | None) -> None:
        """What the leg's party hears (Telnyx's ``outbound`` track)."""


class LegAudio:
    """The audio plumbing every kind of switch leg shares (WebRTC legs here, outside legs in pstn.py).

    ``inbox`` takes bridged audio (what the other party says), ``mix`` adds overlays to it (hold
    tone, in-band DTMF, playback) and is what the leg's party hears, read through
    :meth:`read_heard`; the receiver gets what the leg's party says. ``taps`` see both.
    """

    def __init__(self, label: str) -> None:
        from softphone.media.sources import PushSource

        self.label = label
        self.inbox = PushSource(max_frames=8)
        self.mix = _watched_mix([self.inbox], self._audio_changed)
        """What the leg's party hears; adding or removing an input (also directly, as Call Control's
        player does, or a finished one-shot leaving by itself) calls :meth:`_audio_changed`."""
        self._receiver: Callable[[Frame], Any] | None = None
        self.taps: list[AudioTap] = _TapList(self._audio_changed)
        """Observers of this leg's audio (:class:`AudioTap`), added and removed by their owners
        (``append``/``remove``/``extend``/``insert``/``pop``/``clear`` call :meth:`_audio_changed`)."""

    def _audio_changed(self) -> None:
        """The taps or the mix's inputs changed (a MediaLeg re-decides forwarding; here: nothing)."""

    def read_heard(self) -> Frame | None:
        """The next 20 ms of what this leg's party hears (the mix), shown to the taps."""
        frame = self.mix.read_frame()
        for tap in self.taps:
            tap.heard(frame)
        return frame

    def read_frame(self) -> Frame | None:
        """:meth:`read_heard` under the AudioSource name, so the leg itself is its peer's source."""
        return self.read_heard()

    async def start(self) -> None:
        """AudioSource surface (nothing to start)."""

    async def stop(self) -> None:
        """AudioSource surface (nothing to stop)."""

    def set_receiver(self, fn: Callable[[Frame], Any] | None) -> None:
        """Where what this leg's party says goes (None: dropped)."""
        self._receiver = fn
        if fn is None:
            self.inbox.clear()

    def push(self, frame: Frame) -> None:
        """Queue a frame for this leg's party to hear (bridge/echo input)."""
        self.inbox.push(frame)

    def play(self, source: AudioSource) -> None:
        """Mix an overlay into what this leg's party hears (idempotent)."""
        if source not in self.mix.sources:
            self.mix.add(source)

    def stop_playing(self, source: AudioSource) -> None:
        """Take an overlay out of what this leg's party hears (no error if absent)."""
        self.mix.remove(source)


class _TapList(list[AudioTap]):
    """A leg's taps: a plain list that reports its changes (owners append and remove)."""

    def __init__(self, changed: Callable[[], None]) -> None:
        super().__init__()
        self._changed = changed

    def append(self, tap: AudioTap) -> None:
        super().append(tap)
        self._changed()

    def remove(self, tap: AudioTap) -> None:
        super().remove(tap)
        self._changed()

    def extend(self, taps: Iterable[AudioTap]) -> None:
        super().extend(taps)
        self._changed()

    def insert(self, index: SupportsIndex, tap: AudioTap) -> None:
        super().insert(index, tap)
        self._changed()

    def pop(self, index: SupportsIndex = -1) -> AudioTap:
        tap = super().pop(index)
        self._changed()
        return tap

    def clear(self) -> None:
        super().clear()
        self._changed()


def _watched_mix(sources: list[AudioSource], changed: Callable[[], None]) -> MixSource:
    """A :class:`~softphone.media.sources.MixSource` that reports added, removed and finished inputs."""
    from softphone.media.sources import MixSource

    class WatchedMix(MixSource):
        def add(self, source: AudioSource) -> None:
            super().add(source)
            changed()

        def remove(self, source: AudioSource) -> None:
            n = len(self.sources)
            super().remove(source)
            if len(self.sources) != n:
                changed()

        def read_frame(self) -> Frame | None:
            n = len(self.sources)
            frame = super().read_frame()
            if len(self.sources) != n:  # a finished one-shot (DTMF, a beep) left by itself
                changed()
            return frame

    return WatchedMix(sources)


class MediaLeg(LegAudio):
    """The switch's side of one WebRTC leg.

    **Forwarding** (issue 14 item 1). :meth:`forward_to` sends what this leg's party says to
    another leg (itself for the echo). When both legs negotiated the same codec and nothing needs
    the audio as PCM, the encoded frames go straight from this leg's receiver to the other leg's
    sender (:mod:`softphone.media.forward`): no decode, no encode, each leg with its own SSRC,
    sequence numbers, timestamps and RTCP. Anything that needs PCM switches that direction to
    decoding at once, and back when it is gone: a tap on either leg (recording, streaming,
    transcription, the IVR's DTMF detector), any input of the receiving leg's mix besides its
    inbox (:meth:`play` overlays: playback, speak, hold tone, in-band DTMF, ringback; also a
    muted inbox), different codecs, or a second leg forwarding into the same leg. The decision is
    made in one place, :meth:`_decide`, from the legs' state; every change of that state (taps,
    mix inputs, receivers, a new peer, an answer) calls :meth:`_refresh`.

    ``set_receiver(other_leg.push)`` means ``forward_to(other_leg)``; any other receiver is a PCM
    consumer (decoding). :meth:`stop_forwarding` is ``set_receiver(None)``. A leg whose party is
    heard by nobody (no receiver, no taps) does not decode either. Counters: :attr:`frames_in`
    (decoded frames), :attr:`packets_forwarded`, :attr:`packets_decoded`, :attr:`mode`.
    """

    def __init__(self, label: str, impair: ImpairSpec | None = None) -> None:
        from softphone.media.sinks import CallbackSink

        super().__init__(label)
        self.impair = impair
        """Network impairment of this leg's media (:mod:`softphone.media.impair`); see :meth:`set_impairment`."""
        self._sink = CallbackSink(self._on_frame)
        self.peer: MediaPeer | None = None
        self._old_peers: list[MediaPeer] = []
        self._candidates: list[str] = []
        self._eoc = asyncio.Event()
        self.frames_in = 0
        self.closed = False
        self._target: MediaLeg | None = None  # where what this leg's party says goes (forward_to)
        self._feeders: list[MediaLeg] = []  # legs whose target is this leg
        self._forwarding = False  # this leg's received frames go encoded to the target
        self._tap: EncodedTap | None = None
        self._track: ForwardingTrack | None = None
        self._old_taps: list[EncodedTap] = []
        self.forward_allowed = os.environ.get(FORWARD_ENV, "1") != "0"
        """False: this leg never forwards (``SOFTPHONE_SWITCH_FORWARD=0``)."""

    @property
    def codec(self) -> str:
        """The negotiated codec (``opus/48000``) or ""."""
        return (self.peer.negotiated_codec if self.peer is not None else None) or ""

    # --- negotiation ------------------------------------------------------------------

    def _new_peer(self, *, keep_candidates: bool = False) -> MediaPeer:
        from softphone.media.peer import MediaPeer, PeerOptions

        if self.closed:
            raise ConnectionError("leg is closed")
        if self.peer is not None:
            self._old_peers.append(self.peer)
        options = PeerOptions.loopback(jitter_prefetch=LEG_JITTER_FRAMES, impair=self.impair)
        self.peer = MediaPeer(options, source=self, sink=self._sink, name=self.label)
        self._hook(self.peer)
        if not keep_candidates:
            self._candidates = []
            self._eoc = asyncio.Event()
        return self.peer

    async def _complete(self, sdp: str) -> str:
        """Wait for trickled candidates when ``sdp`` carries none, and fold them in."""
        if "a=candidate" in sdp:
            return sdp
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._eoc.wait(), TRICKLE_WAIT_S)
        return _merge_candidates(sdp, self._candidates)

    async def answer(self, offer: str) -> str:
        """Answer a client's offer; returns the switch's complete answer SDP."""
        await ensure_media()
        # The client's trickled candidates belong to this offer: they may have come in before the
        # answer started (the switch answers only once routing wants media), so keep them.
        peer = self._new_peer(keep_candidates=True)
        answer = await peer.accept_offer(await self._complete(offer))
        self._refresh()
        return answer

    async def offer(self) -> str:
        """A fresh offer from a new peer (B legs)."""
        await ensure_media()
        return await self._new_peer().create_offer()

    async def renew(self) -> str:
        """Replace the peer (reattach) and return its offer; the old peer is closed."""
        await ensure_media()
        old = self.peer
        offer = await self._new_peer().create_offer()
        if old is not None:
            await old.close()
        return offer

    async def accept_answer(self, sdp: str) -> None:
        """Apply the client's answer to our latest offer."""
        peer = self.peer
        if peer is None:
            raise ConnectionError("no offer was made on this leg")
        await peer.set_answer(await self._complete(sdp))
        self._refresh()

    async def add_candidate(self, candidate: str, sdp_mid: str | None, sdp_mline_index: int | None) -> None:
        """A trickled remote candidate (applied with the SDP it belongs to)."""
        del sdp_mid, sdp_mline_index  # one audio section per call
        self._candidates.append(candidate.strip())

    async def end_of_candidates(self) -> None:
        self._eoc.set()

    def set_impairment(self, spec: ImpairSpec | None) -> None:
        """Impair this leg's media from now on (the live peer and any later one); None lifts it."""
        self.impair = spec
        if self.peer is not None:
            self.peer.set_impairment(spec)

    # --- audio ----------------------------------------------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        self.frames_in += 1
        for tap in self.taps:
            tap.said(frame)
        receiver = self._receiver
        if receiver is not None and not self._forwarding:  # (a frame decoded just before a switch-over)
            receiver(frame)

    # --- forwarding -------------------------------------------------------------------------

    def _hook(self, peer: MediaPeer) -> None:
        """Put the forwarding tap and track on a new peer (before any media flows)."""
        from softphone.media import forward

        if self._tap is not None:
            self._old_taps.append(self._tap)
            self._tap.target = None
        self._tap = self._track = None
        if not self.forward_allowed:
            return  # the kill switch: aiortc's own track and decoder queue, untouched (always decoding)
        try:
            self._tap, self._track = forward.install(peer.rtp_transceiver)
        except RuntimeError as exc:  # forwarding off (untested aiortc): this leg always decodes
            logger.info("%s: no RTP forwarding: %s", self.label, exc)
        self._refresh()

    def forward_to(self, other: MediaLeg | None) -> None:
        """Send what this leg's party says to ``other`` (``self``: the echo; None: nowhere).

        Encoded frames are forwarded while nothing needs them as PCM, else they are decoded and
        pushed into ``other``'s inbox (the switch-over is automatic, see the class docstring).
        """
        old = self._target
        if old is not other:
            if old is not None and self in old._feeders:
                old._feeders.remove(self)
            self._target = other
            if other is not None:
                other._feeders.append(self)
        self._receiver = other.push if other is not None else None
        if other is None:
            self.inbox.clear()
        self._refresh()
        if old is not None and old is not other:
            old._refresh()

    def stop_forwarding(self) -> None:
        """Send what this leg's party says nowhere (``set_receiver(None)``)."""
        self.forward_to(None)

    def set_receiver(self, fn: Callable[[Frame], Any] | None) -> None:
        """Where what this leg's party says goes: a PCM callback, ``other_leg.push`` (forwarding
        when it can: :meth:`forward_to`), or None (dropped)."""
        if isinstance(fn, types.MethodType) and fn.__func__ is LegAudio.push and isinstance(fn.__self__, MediaLeg):
            self.forward_to(fn.__self__)
            return
        if fn is None:
            self.forward_to(None)
            return
        self.forward_to(None)
        self._receiver = fn
        self._refresh()

    def _audio_changed(self) -> None:
        self._refresh()

    @property
    def packets_forwarded(self) -> int:
        """Encoded frames this leg received and forwarded without decoding (every peer so far)."""
        return sum(t.forwarded for t in self._taps())

    @property
    def packets_decoded(self) -> int:
        """Encoded frames this leg received and handed to the decoder (every peer so far)."""
        return sum(t.decoded for t in self._taps())

    @property
    def mode(self) -> str:
        """What this leg does with what it receives: ``forward``, ``decode`` or ``idle``."""
        tap = self._tap
        if tap is None:
            return "decode"
        return "forward" if tap.target is not None else "decode" if tap.decode else "idle"

    @property
    def sends_packets(self) -> bool:
        """True while this leg's sender sends forwarded encoded frames (no encoding)."""
        return self._track is not None and self._track.packet_mode

    def _taps(self) -> list[EncodedTap]:
        return [*self._old_taps, *([self._tap] if self._tap is not None else [])]

    def _refresh(self) -> None:
        """Re-decide forwarding for every direction this leg takes part in."""
        group: dict[int, MediaLeg] = {id(self): self}
        if self._target is not None:
            group[id(self._target)] = self._target
        for leg in self._feeders:
            group[id(leg)] = leg
        for leg in group.values():
            leg._decide()

    def _decide(self) -> None:
        """The one place the mode is chosen: this leg's receive side and its send side."""
        target = self._target
        out = target is not None and _can_forward(self, target)
        self._forwarding = out
        tap = self._tap
        if tap is not None:
            tap.target = target._track if out and target is not None else None
            tap.codec = _codec_key(self.codec)
            tap.decode = bool(self.taps) or (self._receiver is not None and not out)
        track = self._track
        if track is not None:
            feeders = self._feeders
            packets = len(feeders) == 1 and _can_forward(feeders[0], self)
            if packets != track.packet_mode:
                self.inbox.clear()  # what was decoded for the other mode is stale
                track.set_packet_mode(packets)
            key = _codec_key(self.codec)
            if key is not None:
                track.clock_rate = key[1]

    async def close(self) -> None:
        """Close every peer of this leg."""
        self.closed = True
        self.forward_to(None)
        for leg in list(self._feeders):
            leg.forward_to(None)
        self._receiver = None
        peers = [*self._old_peers, *([self.peer] if self.peer is not None else [])]
        self._old_peers = []
        for peer in peers:
            try:
                await peer.close()
            except Exception:
                logger.debug("%s: close failed", self.label, exc_info=True)
