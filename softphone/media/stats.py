"""Call-quality figures: :class:`MediaStats` and the E-model MOS.

These are client-side metrics only (PROTOCOL.md §9.3: never sent on the wire).
RTT comes from RTCP receiver reports about what we send (aiortc's
``RTCRemoteInboundRtpStreamStats``); jitter and loss from what we receive
(``RTCInboundRtpStreamStats``); bitrates from byte-count deltas between two
calls of :meth:`StatsCollector.collect`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MediaStats:
    """A snapshot of one peer's media quality. ``None`` means "not known yet"."""

    codec: str | None = None
    """Negotiated codec, e.g. ``"opus/48000"`` or ``"PCMU/8000"``."""
    rtt_ms: float | None = None
    """Round-trip time from RTCP (ms)."""
    jitter_ms: float | None = None
    """Interarrival jitter of received RTP (ms)."""
    packet_loss_pct: float = 0.0
    """Received packets lost, cumulative (%)."""
    packets_sent: int = 0
    packets_received: int = 0
    packets_lost: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    bitrate_in_kbps: float | None = None
    """Bitrate received on the wire since the previous snapshot (kbit/s)."""
    bitrate_out_kbps: float | None = None
    """Bitrate sent on the wire since the previous snapshot (kbit/s)."""
    input_level_db: float = -120.0
    """Level of the audio we send (dBFS; silence while muted)."""
    output_level_db: float = -120.0
    """Level of the audio we receive (dBFS)."""
    mos: float | None = None
    """Estimated MOS (1.0 .. 4.5), see :func:`mos`."""
    remote_loss_pct: float | None = None
    """Of what we send, the share the far end reports lost (RTCP receiver reports, %); None before one."""
    remote_jitter_ms: float | None = None
    """Interarrival jitter of what we send, as the far end measures it (RTCP receiver reports, ms)."""


def r_factor(rtt_ms: float, jitter_ms: float = 0.0, loss_pct: float = 0.0) -> float:
    """E-model transmission rating R, simplified (ITU-T G.107; Cole & Rosenbluth 2001).

    ``R = 93.2 - Id - Ie`` (93.2 is G.107's default R with no impairments, the
    base the Telnyx mobile SDKs use).

    * Delay impairment ``Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)`` with the
      effective one-way delay ``d = rtt/2 + 2*jitter + 10`` ms (jitter counted
      twice for the jitter buffer it forces, 10 ms for codec/packetisation).
    * Loss impairment ``Ie = 20 ln(1 + loss%)``, as in the Telnyx Android SDK's
      ``MOSCalculator``.
    """
    rtt_ms = max(0.0, rtt_ms)
    jitter_ms = max(0.0, jitter_ms)
    loss_pct = min(100.0, max(0.0, loss_pct))
    d = rtt_ms / 2.0 + 2.0 * jitter_ms + 10.0
    i_d = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    i_e = 20.0 * math.log(1.0 + loss_pct)
    return max(0.0, min(100.0, 93.2 - i_d - i_e))


def mos(rtt_ms: float, jitter_ms: float = 0.0, loss_pct: float = 0.0) -> float:
    """Mean opinion score from network figures, 1.0 (bad) .. 4.5 (best narrowband-equivalent).

    ``MOS = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R)`` (ITU-T G.107 Annex B), with
    R from :func:`r_factor`, clamped to 1.0 .. 4.5.
    """
    r = r_factor(rtt_ms, jitter_ms, loss_pct)
    value = 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)
    return round(min(4.5, max(1.0, value)), 2)


def quality_label(value: float | None) -> str:
    """Human band for a MOS: excellent > 4.2, good ≥ 4.1, fair ≥ 3.7, poor ≥ 3.1, else bad."""
    if value is None:
        return "unknown"
    if value > 4.2:
        return "excellent"
    if value >= 4.1:
        return "good"
    if value >= 3.7:
        return "fair"
    if value >= 3.1:
        return "poor"
    return "bad"


class StatsCollector:
    """Turns successive aiortc stats reports into :class:`MediaStats`."""

    def __init__(self) -> None:
        self._prev: tuple[float, int, int] | None = None  # (time, bytes_in, bytes_out)

    def collect(
        self,
        report: dict[str, Any],
        *,
        codec: str | None,
        input_level_db: float,
        output_level_db: float,
        now: float | None = None,
    ) -> MediaStats:
        """Build a snapshot from an ``RTCStatsReport`` (a dict of stats objects)."""
        now = time.monotonic() if now is None else now
        clock = _clock_rate(codec)
        sent = recv = lost = b_sent = b_recv = t_sent = t_recv = 0
        jitter_ms: float | None = None
        rtt_ms: float | None = None
        remote_lost = remote_recv = 0
        remote_jitter_ms: float | None = None
        remote_seen = False
        for st in report.values():
            kind = getattr(st, "type", "")
            if getattr(st, "kind", "audio") != "audio":
                continue
            if kind == "inbound-rtp":
                recv += int(st.packetsReceived)
                lost += max(0, int(st.packetsLost))
                jitter_ms = 1000.0 * float(st.jitter) / clock
            elif kind == "outbound-rtp":
                sent += int(st.packetsSent)
                b_sent += int(st.bytesSent)
            elif kind == "transport":
                # aiortc's inbound-rtp has no byte count: use the wire counters
                # of the (single, bundled) transport for both directions.
                t_recv += int(st.bytesReceived)
                t_sent += int(st.bytesSent)
            elif kind == "remote-inbound-rtp":
                rtt = getattr(st, "roundTripTime", None)
                if rtt is not None:
                    rtt_ms = 1000.0 * float(rtt)
                remote_seen = True
                remote_lost += max(0, int(getattr(st, "packetsLost", 0) or 0))
                remote_recv += max(0, int(getattr(st, "packetsReceived", 0) or 0))
                remote_jitter = getattr(st, "jitter", None)
                if remote_jitter is not None:
                    remote_jitter_ms = 1000.0 * float(remote_jitter) / clock
        if t_recv or t_sent:
            b_recv, b_sent = t_recv, t_sent
        total = recv + lost
        loss_pct = 100.0 * lost / total if total else 0.0
        rate_in = rate_out = None
        if self._prev is not None and now > self._prev[0]:
            dt = now - self._prev[0]
            rate_in = max(0.0, (b_recv - self._prev[1]) * 8 / dt / 1000.0)
            rate_out = max(0.0, (b_sent - self._prev[2]) * 8 / dt / 1000.0)
        self._prev = (now, b_recv, b_sent)
        quality = None
        if recv:
            quality = mos(rtt_ms or 0.0, jitter_ms or 0.0, loss_pct)
        return MediaStats(
            codec=codec,
            rtt_ms=rtt_ms,
            jitter_ms=jitter_ms,
            packet_loss_pct=round(loss_pct, 2),
            packets_sent=sent,
            packets_received=recv,
            packets_lost=lost,
            bytes_sent=b_sent,
            bytes_received=b_recv,
            bitrate_in_kbps=rate_in,
            bitrate_out_kbps=rate_out,
            input_level_db=input_level_db,
            output_level_db=output_level_db,
            mos=quality,
            remote_loss_pct=(round(100.0 * remote_lost / (remote_lost + remote_recv), 2)
                             if remote_seen and remote_lost + remote_recv else None),
            remote_jitter_ms=remote_jitter_ms,
        )


def _clock_rate(codec: str | None) -> int:
    if codec and "/" in codec:
        try:
            return int(codec.split("/")[1])
        except ValueError:
            pass
    return 48000
