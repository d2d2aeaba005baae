"""One WebRTC audio leg: :class:`MediaPeer` around an aiortc ``RTCPeerConnection``.

SDP crosses this module as plain strings; nothing here knows the signaling
protocol. Every peer has exactly one ``sendrecv`` audio transceiver. Offers and
answers are complete (half-trickle: gathering finishes before the SDP is
returned), which is what Verto's invite/answer carry (PROTOCOL.md §6.5).

Loopback operation. aioice never offers ``127.0.0.1`` (its host discovery skips
it) and aiortc falls back to a public STUN server when given no ICE servers.
``PeerOptions(loopback_only=True, ice_servers=[])`` handles both: the
configuration always carries an explicit (possibly empty) server list, and each
peer's own aioice ``Connection`` gets an instance-level wrapper around
``get_component_candidates`` that replaces the discovered host addresses with
``host_address``. The wrapper is scoped to that one connection object (no
module-level patch), and it also passes ``gather_timeout`` as aioice's
STUN/TURN gathering timeout (aioice's default is 5 s).
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiortc import (
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCRtpSender,
    RTCSessionDescription,
)

from softphone.errors import MediaError
from softphone.media import aiortc_shim, dtls_cert
from softphone.media import sdp as sdputil
from softphone.media.sinks import AudioSink
from softphone.media.sources import AudioSource
from softphone.media.stats import MediaStats, StatsCollector
from softphone.media.tracks import ReceiverPump, SourceTrack

if TYPE_CHECKING:
    from softphone.media.impair import ImpairSpec, PathImpairment

logger = logging.getLogger(__name__)

DEFAULT_CODECS = ("opus", "PCMU", "PCMA")


class PeerState(enum.Enum):
    """Connection state of a :class:`MediaPeer` (ICE + DTLS together)."""

    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    FAILED = "failed"
    CLOSED = "closed"


# The one place where aiortc's ``connectionState`` strings become our enum.
# aiortc does not emit "disconnected" today; browsers treat it as transient.
_AIORTC_STATES = {
    "new": PeerState.NEW,
    "connecting": PeerState.CONNECTING,
    "connected": PeerState.CONNECTED,
    "disconnected": PeerState.CONNECTING,
    "failed": PeerState.FAILED,
    "closed": PeerState.CLOSED,
}


@dataclass
class PeerOptions:
    """How a :class:`MediaPeer` gathers candidates and which codecs it prefers.

    ``ice_servers`` entries are dicts ``{"urls": str | list[str], "username"?,
    "credential"?}`` as in the WebRTC API; the empty list (the default) means
    host candidates only, never a STUN/TURN server. ``loopback_only`` makes the
    only local candidate ``host_address`` and drops remote candidates that are
    not loopback UDP (including mDNS ``.local`` names). ``codecs`` is the
    preference order (names as in SDP: ``opus``, ``PCMU``, ``PCMA``, ``G722``).
    ``gather_timeout`` bounds STUN/TURN gathering in seconds; host candidates
    are immediate. ``relay_only`` mirrors the SDKs' ``forceRelayCandidate``.
    ``jitter_prefetch`` replaces aiortc's receive jitter buffer (which holds 4
    frames, about 80 ms of mouth-to-ear delay) with one that releases packets
    that arrive in order at once and, after a gap, holds at most this many later
    packets waiting for the missing one (reordering tolerance; 1 suits loopback
    and LAN, 0 never waits). ``None`` keeps aiortc's. ``opus_bitrate`` is what our
    Opus encoder sends (mono; Chromium's default for voice).
    """

    ice_servers: list[dict[str, Any]] = field(default_factory=list)
    loopback_only: bool = False
    host_address: str = "127.0.0.1"
    codecs: list[str] = field(default_factory=lambda: list(DEFAULT_CODECS))
    gather_timeout: float = 1.0
    relay_only: bool = False
    jitter_prefetch: int | None = None
    opus_bitrate: int = aiortc_shim.OPUS_BITRATE
    impair: ImpairSpec | None = None
    """Network impairment of this peer's RTP path (:mod:`softphone.media.impair`); None: none."""

    @classmethod
    def loopback(cls, **kwargs: Any) -> PeerOptions:
        """Options for tests and the local switch: 127.0.0.1 only, no ICE servers."""
        kwargs.setdefault("loopback_only", True)
        kwargs.setdefault("ice_servers", [])
        return cls(**kwargs)


def _ice_servers(options: PeerOptions) -> list[RTCIceServer]:
    servers = []
    for entry in options.ice_servers:
        urls = entry.get("urls")
        if not urls:
            raise MediaError(f"ICE server entry without urls: {entry!r}")
        servers.append(
            RTCIceServer(urls=urls, username=entry.get("username"), credential=entry.get("credential"))
        )
    return servers


def _codec_preferences(names: list[str]) -> list[Any]:
    caps = RTCRtpSender.getCapabilities("audio").codecs
    prefs: list[Any] = []
    for name in names:
        matches = [c for c in caps if c.mimeType.lower() == f"audio/{name.lower()}"]
        if not matches:
            known = ", ".join(c.mimeType.split("/", 1)[1] for c in caps)
            raise MediaError(f"unsupported codec {name!r} (supported: {known})")
        prefs.extend(m for m in matches if m not in prefs)
    return prefs


def _with_opus_fmtp(sdp: str, params: dict[str, str]) -> str:
    """Add ``params`` to the fmtp of every Opus payload type (mono both ways, as we encode it).

    aiortc writes no fmtp for Opus; its codec parameters come from a module-level table
    we do not patch, and it ignores them for Opus anyway, so the SDP text carries them.
    Existing parameters (a remote's, echoed) are kept unless ``params`` names them.
    """
    lines = sdp.replace("\r\n", "\n").rstrip("\n").split("\n")
    opus_pts = set()
    for line in lines:
        if line.startswith("a=rtpmap:") and " opus/" in line.lower():
            opus_pts.add(line[len("a=rtpmap:"):].split(" ", 1)[0])
    if not opus_pts:
        return sdp
    out: list[str] = []
    done: set[str] = set()
    for line in lines:
        if line.startswith("a=fmtp:"):
            pt, _, rest = line[len("a=fmtp:"):].partition(" ")
            if pt in opus_pts:
                merged: dict[str, str] = {}
                for item in rest.split(";"):
                    key, _, value = item.partition("=")
                    if key.strip():
                        merged[key.strip()] = value.strip()
                merged.update(params)
                line = f"a=fmtp:{pt} " + ";".join(f"{k}={v}" for k, v in merged.items())
                done.add(pt)
        out.append(line)
        if line.startswith("a=rtpmap:"):
            pt = line[len("a=rtpmap:"):].split(" ", 1)[0]
            if pt in opus_pts and pt not in done and not any(x.startswith(f"a=fmtp:{pt} ") for x in lines):
                out.append(f"a=fmtp:{pt} " + ";".join(f"{k}={v}" for k, v in params.items()))
                done.add(pt)
    return "\r\n".join(out) + "\r\n"


class MediaPeer:
    """One audio-only WebRTC connection with a swappable source and sink.

    Typical use, caller side::

        peer = MediaPeer(PeerOptions(), source=mic, sink=speaker)
        offer = await peer.create_offer()        # send in the invite
        ...
        await peer.set_answer(answer_sdp)         # from the answer/media message

    callee side::

        answer = await peer.accept_offer(offer_sdp)

    Neither the source nor the sink is started or stopped by the peer; the owner
    does that. ``set_answer``/``accept_offer`` return once the description is
    applied and ICE/DTLS has been *started* (aiortc 1.16 connects in a
    background task), but older aiortc versions await the whole handshake
    there: never await them inside a websocket read loop, run them in their own
    task. Connection progress arrives through ``on_state_change`` and
    :meth:`wait_connected`.
    """

    def __init__(
        self,
        options: PeerOptions | None = None,
        *,
        source: AudioSource | None = None,
        sink: AudioSink | None = None,
        on_state_change: Callable[[PeerState], object] | None = None,
        name: str = "peer",
    ) -> None:
        self.options = options or PeerOptions()
        self.name = name
        self.on_state_change: Callable[[PeerState], object] | None = on_state_change
        """Called on the loop with each new :class:`PeerState`; exceptions are logged."""
        self._codec_prefs = _codec_preferences(self.options.codecs)
        config = RTCConfiguration(
            # Always explicit: ``None`` would make aiortc use a public STUN server.
            iceServers=_ice_servers(self.options),
            iceTransportPolicy=(
                RTCIceTransportPolicy.RELAY if self.options.relay_only else RTCIceTransportPolicy.ALL
            ),
        )
        self._pc = dtls_cert.new_peer_connection(config)  # one DTLS certificate per process
        self._track = SourceTrack(source)
        self._pump = ReceiverPump(sink)
        self._transceiver = self._pc.addTransceiver(self._track, direction="sendrecv")
        self._transceiver.setCodecPreferences(self._codec_prefs)
        # Inline Opus mono, inline decode, the low-delay jitter buffer: aiortc_shim, applied here only.
        self.lean = aiortc_shim.apply(self._transceiver, jitter_hold=self.options.jitter_prefetch,
                                      opus_bitrate=self.options.opus_bitrate)
        """What the lean aiortc path installed (``lean.active`` is False with an untested aiortc)."""
        self._state = PeerState.NEW
        self._state_changed = asyncio.Event()
        self._codec: str | None = None
        self._stats = StatsCollector()
        self._remote_answer: str | None = None
        self.sent_sdp: str | None = None
        """The last local SDP this peer handed out (offer or answer, as sent)."""
        self.received_sdp: str | None = None
        """The last remote SDP applied (offer or answer, as received)."""
        self._patched: set[int] = set()
        self.impairment: PathImpairment | None = None
        """The live impairment control once one was set (:meth:`set_impairment`)."""
        if self.options.impair is not None:
            self.set_impairment(self.options.impair)
        self.created_at = time.monotonic()
        """``time.monotonic()`` at construction."""
        self.connected_at: float | None = None
        """``time.monotonic()`` when the state first became CONNECTED."""
        self._pc.on("connectionstatechange", self._on_pc_state)
        self._pc.on("track", self._on_track)

    def set_impairment(self, spec: ImpairSpec | None) -> None:
        """Impair this peer's RTP/RTCP from the next packet on (:mod:`softphone.media.impair`); None lifts it."""
        if self.impairment is None:
            if spec is None:
                return
            from softphone.media.impair import attach

            self.impairment = attach(self._transceiver.receiver.transport.transport, spec)
        else:
            self.impairment.set_spec(spec)

    # -- state -----------------------------------------------------------------

    @property
    def state(self) -> PeerState:
        """The current connection state."""
        return self._state

    def _on_pc_state(self) -> None:
        new = _AIORTC_STATES.get(self._pc.connectionState, PeerState.FAILED)
        self._set_state(new)

    def _set_state(self, new: PeerState) -> None:
        if new == self._state or self._state == PeerState.CLOSED:
            return
        logger.debug("%s: %s -> %s", self.name, self._state.value, new.value)
        self._state = new
        if new == PeerState.CONNECTED and self.connected_at is None:
            self.connected_at = time.monotonic()
        self._state_changed.set()
        self._state_changed = asyncio.Event()
        if self.on_state_change is not None:
            try:
                self.on_state_change(new)
            except Exception:
                logger.exception("%s: on_state_change handler failed", self.name)

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until CONNECTED; raise :class:`MediaError` on FAILED/CLOSED or timeout."""

        async def _wait() -> None:
            while self._state != PeerState.CONNECTED:
                if self._state in (PeerState.FAILED, PeerState.CLOSED):
                    raise MediaError(f"media connection {self._state.value}")
                await self._state_changed.wait()

        try:
            await asyncio.wait_for(_wait(), timeout)
        except TimeoutError as exc:
            raise MediaError(f"media not connected after {timeout:.1f} s") from exc

    def _on_track(self, track: Any) -> None:
        if track.kind == "audio":
            self._pump.start(track)

    # -- SDP -------------------------------------------------------------------

    def _prepare_gatherers(self) -> None:
        """Scope host addresses and the gathering timeout to this peer's ICE connections."""
        for transceiver in self._pc.getTransceivers():
            gatherer = transceiver.receiver.transport.transport.iceGatherer
            conn = gatherer._connection  # aioice.Connection (aiortc private attribute)
            if id(conn) in self._patched:
                continue
            self._patched.add(id(conn))
            original = conn.get_component_candidates
            # With relay_only aioice passes no host addresses on purpose; otherwise an empty list just
            # means the host has no non-loopback interface (e.g. a namespace with only `lo`).
            only = [self.options.host_address] if self.options.loopback_only and not self.options.relay_only else None

            @functools.wraps(original)
            async def scoped(
                component: int,
                addresses: list[str],
                timeout: float = 5,
                *,
                _original: Any = original,
                _only: list[str] | None = only,
            ) -> Any:
                if _only is not None:
                    addresses = list(_only)  # aioice skips 127.0.0.1 by itself
                return await _original(
                    component=component, addresses=addresses, timeout=self.options.gather_timeout
                )

            conn.get_component_candidates = scoped  # type: ignore[method-assign]

    async def _set_local(self, description: RTCSessionDescription) -> str:
        self._prepare_gatherers()
        await self._pc.setLocalDescription(description)
        local = self._pc.localDescription.sdp
        if self.lean.active:
            local = _with_opus_fmtp(local, aiortc_shim.OPUS_FMTP)
        self.sent_sdp = str(local)
        if self.options.loopback_only:
            local = sdputil.filter_candidates(
                local, loopback_only=True, host_address=self.options.host_address
            )
        return str(local)

    def _filter_remote(self, remote: str) -> str:
        return sdputil.filter_candidates(
            remote, loopback_only=self.options.loopback_only, host_address=self.options.host_address
        )

    async def create_offer(self) -> str:
        """Create the local offer and return the complete SDP (candidates included)."""
        self._check_open()
        self._set_state(PeerState.CONNECTING)
        try:
            offer = await self._pc.createOffer()
            return await self._set_local(offer)
        except MediaError:
            raise
        except Exception as exc:
            raise MediaError(f"cannot create offer: {exc}") from exc

    async def accept_offer(self, sdp: str) -> str:
        """Apply a remote offer and return the complete answer SDP.

        Accepts browser offers (``UDP/TLS/RTP/SAVPF``) and FreeSWITCH-style
        ``RTP/SAVPF`` ones; the answer echoes the offer's profile.
        """
        self._check_open()
        self._set_state(PeerState.CONNECTING)
        profile = sdputil.audio_profile(sdp)
        try:
            await self._pc.setRemoteDescription(
                RTCSessionDescription(sdp=self._filter_remote(sdp), type="offer")
            )
            answer = await self._pc.createAnswer()
            local = await self._set_local(answer)
        except Exception as exc:
            raise MediaError(f"cannot accept offer: {exc}") from exc
        if profile is not None and profile != sdputil.audio_profile(local):
            local = sdputil.set_audio_profile(local, profile)
        self.sent_sdp, self.received_sdp = local, sdp
        self._note_codec(local)
        return local

    async def set_answer(self, sdp: str) -> None:
        """Apply the remote answer to our offer.

        May be called for early media and again on answer: a repeat with the same
        SDP is ignored; a different SDP after the first is ignored with a warning
        (aiortc cannot renegotiate mid-dialog).
        """
        self._check_open()
        if self._remote_answer is not None:
            if sdp != self._remote_answer:
                logger.warning("%s: ignoring a second, different remote answer", self.name)
            return
        self._remote_answer = sdp
        try:
            await self._pc.setRemoteDescription(
                RTCSessionDescription(sdp=self._filter_remote(sdp), type="answer")
            )
        except Exception as exc:
            self._remote_answer = None
            raise MediaError(f"cannot apply answer: {exc}") from exc
        self.received_sdp = sdp
        self._note_codec(sdp)

    def _note_codec(self, answer_sdp: str) -> None:
        codec = sdputil.first_audio_codec(answer_sdp)
        self._codec = f"{codec[0]}/{codec[1]}" if codec else None
        if codec is not None and codec[0].upper() in ("PCMU", "PCMA"):
            self._track.set_send_rate(8000)
        # The lean path encodes Opus mono itself. aiortc's stock encoder (an untested aiortc) wants stereo
        # frames at full level, or it upmixes them 3 dB down (issue 9 item 5).
        opus = codec is not None and codec[0].lower() == "opus"
        self._track.set_send_stereo(opus and not self.lean.active)

    @property
    def local_sdp(self) -> str | None:
        """The local description as applied (before loopback filtering), if any."""
        desc = self._pc.localDescription
        return None if desc is None else str(desc.sdp)

    @property
    def negotiated_codec(self) -> str | None:
        """``"opus/48000"``, ``"PCMU/8000"``... once an answer exists, else ``None``."""
        return self._codec

    # -- hook for softphone.media.forward (the switch forwards encoded RTP; issue 14 item 1) --

    @property
    def rtp_transceiver(self) -> Any:
        """The aiortc ``RTCRtpTransceiver`` of the audio section (its ``sender``/``receiver``).

        Only :mod:`softphone.media.forward` uses it, before media flows: it swaps the sender's
        track (``replaceTrack``) and hooks the receiver for encoded packets.
        """
        return self._transceiver

    # -- audio -----------------------------------------------------------------

    @property
    def source(self) -> AudioSource:
        """The current source."""
        return self._track.source

    def set_source(self, source: AudioSource) -> None:
        """Send from ``source`` from the next 20 ms frame on (no renegotiation)."""
        self._track.source = source

    @property
    def sink(self) -> AudioSink:
        """The current sink."""
        return self._pump.sink

    def set_sink(self, sink: AudioSink) -> None:
        """Deliver received audio to ``sink`` from the next frame on."""
        self._pump.sink = sink

    def set_send_tap(self, sink: AudioSink | None) -> None:
        """Also hand every frame we send to ``sink`` (e.g. ``WavRecorder.write_local``)."""
        self._track.tap = sink

    @property
    def muted(self) -> bool:
        """True while silence is sent instead of the source."""
        return self._track.muted

    def mute(self) -> None:
        """Send silence (the source keeps being read, so it does not pile up)."""
        self._track.muted = True

    def unmute(self) -> None:
        """Send the source again."""
        self._track.muted = False

    @property
    def input_level_db(self) -> float:
        """Smoothed level of what we send (dBFS)."""
        return self._track.meter.db

    @property
    def output_level_db(self) -> float:
        """Smoothed level of what we receive (dBFS)."""
        return self._pump.meter.db

    @property
    def first_audio_at(self) -> float | None:
        """``time.monotonic()`` of the first received audio frame, or ``None``."""
        return self._pump.first_frame_at

    @property
    def first_packet_at(self) -> float | None:
        """``time.monotonic()`` of the first received RTP audio packet (complete encoded frame), or ``None``.

        Known on the lean path (:mod:`~softphone.media.aiortc_shim`); otherwise the first decoded frame's time.
        """
        decoder = self.lean.decoder
        if decoder is not None:
            return decoder.first_frame_at
        return self._pump.first_frame_at

    async def stats(self) -> MediaStats:
        """Collect a :class:`MediaStats` snapshot (bitrates relative to the previous call)."""
        report: dict[str, Any] = {}
        if self._state not in (PeerState.CLOSED, PeerState.NEW):
            try:
                report = dict(await self._pc.getStats())
            except Exception:
                logger.debug("%s: getStats failed", self.name, exc_info=True)
        return self._stats.collect(
            report,
            codec=self._codec,
            input_level_db=self.input_level_db,
            output_level_db=self.output_level_db,
        )

    # -- teardown --------------------------------------------------------------

    def _check_open(self) -> None:
        if self._state == PeerState.CLOSED:
            raise MediaError("media peer is closed")

    async def close(self) -> None:
        """Close the connection and stop the receiver (idempotent; sources/sinks untouched)."""
        if self._state == PeerState.CLOSED:
            return
        await self._pump.stop()
        try:
            await self._pc.close()
        except Exception:
            logger.debug("%s: error while closing", self.name, exc_info=True)
        self._track.stop()
        self._set_state(PeerState.CLOSED)
