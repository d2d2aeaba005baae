"""Media termination for one switch leg: a :class:`~softphone.media.peer.MediaPeer` plus bridge plumbing.

Each leg sends a :class:`~softphone.media.sources.MixSource` of

* ``inbox``: a :class:`~softphone.media.sources.PushSource` fed with the other leg's
  received frames (the bridge) or with this leg's own frames (echo), and
* one-shot or looping overlays: tones, DTMF, ringback, hold tone.

Received frames go to a replaceable callback (``set_receiver``). Re-attaching a leg
(after the client reconnects) swaps the peer underneath; the sources stay, so the
bridge resumes by itself.

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
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from softphone.media.frames import Frame
    from softphone.media.impair import ImpairSpec
    from softphone.media.peer import MediaPeer
    from softphone.media.sources import AudioSource

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
        from softphone.media.sources import MixSource, PushSource

        self.label = label
        self.inbox = PushSource(max_frames=8)
        self.mix = MixSource([self.inbox])
        self._receiver: Callable[[Frame], Any] | None = None
        self.taps: list[AudioTap] = []
        """Observers of this leg's audio (:class:`AudioTap`), added and removed by their owners."""

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
        self.mix.remove(source)


class MediaLeg(LegAudio):
    """The switch's side of one WebRTC leg."""

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
        return await peer.accept_offer(await self._complete(offer))

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
        if receiver is not None:
            receiver(frame)

    async def close(self) -> None:
        """Close every peer of this leg."""
        self.closed = True
        self._receiver = None
        peers = [*self._old_peers, *([self.peer] if self.peer is not None else [])]
        self._old_peers = []
        for peer in peers:
            try:
                await peer.close()
            except Exception:
                logger.debug("%s: close failed", self.label, exc_info=True)
