"""``softphone precall``: a short test call that rates the network path, as the SDKs' pre-call diagnosis.

A call to an echo (by default :data:`ECHO_NUMBER`, the local switch's echo service; on a Telnyx
server :data:`TELNYX_PRECALL_NUMBER`, the number the official JS SDK's ``runPreCall()`` dials) or to
any number given, kept up
for ``seconds`` (default 10). Every second the call's own statistics (:class:`~softphone.media.stats.
MediaStats`, the ``call.stats`` event) are sampled: RTT (RTCP), jitter and loss of what comes back,
the E-model MOS, the bitrate and the audio level both ways. The report gives min / avg / max of each
and one verdict.

The verdict (:func:`verdict`) is the MOS band of the *average* MOS, then capped by the network
figures (loss and jitter in the worse direction: what comes back, or what we send as the far end's
RTCP receiver reports tell), worst wins:

========== ============================ ===============================================
verdict    MOS (average of the samples)  caps: at best this verdict when ...
========== ============================ ===============================================
excellent  > 4.2
good       >= 4.1                        loss > 1 %
fair       >= 3.7                        RTT > 300 ms, jitter > 30 ms, loss > 3 %
poor       >= 3.1                        RTT > 800 ms, jitter > 50 ms, loss > 5 %
bad        < 3.1                         loss > 10 %, or no audio packets came back
========== ============================ ===============================================

Where they come from: the MOS is ITU-T G.107's E-model (simplified as the Telnyx mobile SDKs do,
:func:`softphone.media.stats.mos`); the bands are the ones of the SDKs' pre-call reports (Twilio's
preflight and the Telnyx iOS/Android pre-call diagnosis: excellent > 4.2, then 4.1 / 3.7 / 3.1,
:func:`softphone.media.stats.quality_label`). The RTT caps follow ITU-T G.114 (one-way delay up to
150 ms is transparent, beyond 400 ms unacceptable: 300 / 800 ms round trip); the jitter caps are the
usual VoIP planning limits (30 ms fine, 50 ms degrading, as in Cisco's and the SDKs' quality
warnings); the loss caps keep a few per cent of loss from being hidden by an otherwise short path.

Exit codes (:data:`VERDICT_EXIT`): 0 excellent or good, 10 fair, 11 poor, 12 bad; a call that cannot
be made exits as ``softphone dial`` would (7 login, 8 network, 1 not answered / other).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from softphone.client import events as ce
from softphone.errors import CallError
from softphone.media.stats import MediaStats, quality_label
from softphone.protocol.states import CallState

if TYPE_CHECKING:
    from softphone.client.call import Call
    from softphone.client.client import Client
    from softphone.config import Profile
    from softphone.media.sinks import AudioSink
    from softphone.media.sources import AudioSource

__all__ = [
    "ECHO_NUMBER",
    "TELNYX_PRECALL_NUMBER",
    "VERDICT_EXIT",
    "PrecallReport",
    "Summary",
    "Verdict",
    "default_destination",
    "measure",
    "run",
    "test_call",
    "verdict",
]

#: The local switch's echo service (softphone/switch/routing.py); the default destination.
ECHO_NUMBER = "+13128889999"
#: Telnyx's pre-call test number: the official JS SDK's ``runPreCall()`` calls it when no destination
#: is given (@telnyx/webrtc 2.27 bundle); the default destination on Telnyx hosts.
TELNYX_PRECALL_NUMBER = "+18722315806"


def default_destination(profile: Profile) -> str:
    """:data:`TELNYX_PRECALL_NUMBER` for a Telnyx server, else the local switch's :data:`ECHO_NUMBER`."""
    from urllib.parse import urlsplit

    from softphone.config import is_telnyx_host, resolve_ws_url

    return TELNYX_PRECALL_NUMBER if is_telnyx_host(urlsplit(resolve_ws_url(profile)).hostname or "") else ECHO_NUMBER
DEFAULT_SECONDS = 10.0
ANSWER_TIMEOUT = 30.0


class Verdict(enum.StrEnum):
    """How good the path is, best first."""

    EXCELLENT = "excellent"
    GOOD = "good"
    FAIR = "fair"
    POOR = "poor"
    BAD = "bad"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)


#: Process exit code for each verdict.
VERDICT_EXIT: dict[Verdict, int] = {Verdict.EXCELLENT: 0, Verdict.GOOD: 0, Verdict.FAIR: 10, Verdict.POOR: 11,
                                    Verdict.BAD: 12}

#: (figure, limit, verdict at best when the figure is above the limit, what to say).
CAPS: tuple[tuple[str, float, Verdict, str], ...] = (
    ("loss_pct", 1.0, Verdict.GOOD, "loss above 1 %"),
    ("loss_pct", 3.0, Verdict.FAIR, "loss above 3 %"),
    ("loss_pct", 5.0, Verdict.POOR, "loss above 5 %"),
    ("loss_pct", 10.0, Verdict.BAD, "loss above 10 %"),
    ("rtt_ms", 300.0, Verdict.FAIR, "round trip above 300 ms"),
    ("rtt_ms", 800.0, Verdict.POOR, "round trip above 800 ms"),
    ("jitter_ms", 30.0, Verdict.FAIR, "jitter above 30 ms"),
    ("jitter_ms", 50.0, Verdict.POOR, "jitter above 50 ms"),
)


def verdict(mos: float | None, *, rtt_ms: float | None, jitter_ms: float | None, loss_pct: float,
            received: bool = True) -> tuple[Verdict, list[str]]:
    """The verdict for average figures, and why it is not better (empty when only the MOS decided)."""
    if not received or mos is None:
        return Verdict.BAD, ["no audio packets came back"]
    band = Verdict(quality_label(mos))
    figures = {"loss_pct": loss_pct, "rtt_ms": rtt_ms, "jitter_ms": jitter_ms}
    applied = [(cap, f"{why} ({figures[name]:.1f})") for name, limit, cap, why in CAPS
               if (value := figures[name]) is not None and value > limit]
    worst = max([band, *(cap for cap, _ in applied)], key=lambda v: v.rank)
    reasons = [f"MOS {mos:.2f}"] if band == worst and worst.rank > Verdict.GOOD.rank else []
    return worst, reasons + [why for cap, why in applied if cap == worst]


@dataclass(frozen=True)
class Summary:
    """Min / average / max of one figure over the samples (``None`` when never known)."""

    min: float | None = None
    avg: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, values: list[float | None]) -> Summary:
        known = [v for v in values if v is not None]
        if not known:
            return cls()
        return cls(min(known), statistics.fmean(known), max(known))

    def as_dict(self, digits: int = 2) -> dict[str, float | None]:
        return {k: None if v is None else round(v, digits) for k, v in (("min", self.min), ("avg", self.avg),
                                                                          ("max", self.max))}


@dataclass
class PrecallReport:
    """What :func:`measure` found."""

    destination: str
    seconds: float
    call_id: str = ""
    codec: str | None = None
    samples: list[MediaStats] = field(default_factory=list)

    @property
    def last(self) -> MediaStats:
        return self.samples[-1] if self.samples else MediaStats()

    def summary(self, pick: Callable[[MediaStats], float | None]) -> Summary:
        return Summary.of([pick(s) for s in self.samples])

    @property
    def received(self) -> bool:
        return self.last.packets_received > 0

    @property
    def loss_pct(self) -> float:
        """Loss of what comes back (%)."""
        return self.last.packet_loss_pct

    @property
    def loss_sent_pct(self) -> float | None:
        """Loss of what we send, as the far end reports it (RTCP receiver reports, %)."""
        return next((s.remote_loss_pct for s in reversed(self.samples) if s.remote_loss_pct is not None), None)

    def verdict(self) -> tuple[Verdict, list[str]]:
        """Judged on the worse direction of loss and jitter (both ways), the RTT and the average MOS."""
        jitters = [j for j in (self.summary(lambda s: s.jitter_ms).avg,
                               self.summary(lambda s: s.remote_jitter_ms).avg) if j is not None]
        return verdict(self.summary(lambda s: s.mos).avg, rtt_ms=self.summary(lambda s: s.rtt_ms).avg,
                       jitter_ms=max(jitters) if jitters else None,
                       loss_pct=max(self.loss_pct, self.loss_sent_pct or 0.0), received=self.received)

    @property
    def exit_code(self) -> int:
        return VERDICT_EXIT[self.verdict()[0]]

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` document (README "softphone precall")."""
        v, reasons = self.verdict()
        last = self.last

        def level(pick: Callable[[MediaStats], float]) -> float | None:
            values = [pick(s) for s in self.samples]
            return round(statistics.median(values), 1) if values else None

        return {
            "v": 1, "type": "precall", "ts": time.time(), "destination": self.destination,
            "seconds": self.seconds, "call_id": self.call_id, "codec": self.codec, "samples": len(self.samples),
            "verdict": v.value, "reasons": reasons, "exit_code": VERDICT_EXIT[v],
            "mos": self.summary(lambda s: s.mos).as_dict(),
            "rtt_ms": self.summary(lambda s: s.rtt_ms).as_dict(1),
            "jitter_ms": self.summary(lambda s: s.jitter_ms).as_dict(1),
            "jitter_sent_ms": self.summary(lambda s: s.remote_jitter_ms).as_dict(1),
            "loss_pct": round(self.loss_pct, 2),
            "loss_sent_pct": None if self.loss_sent_pct is None else round(self.loss_sent_pct, 2),
            "packets": {"sent": last.packets_sent, "received": last.packets_received, "lost": last.packets_lost},
            "bytes": {"sent": last.bytes_sent, "received": last.bytes_received},
            "bitrate_kbps": {"sent": self.summary(lambda s: s.bitrate_out_kbps).as_dict(1),
                             "received": self.summary(lambda s: s.bitrate_in_kbps).as_dict(1)},
            "level_dbfs": {"sent": level(lambda s: s.input_level_db),
                           "received": level(lambda s: s.output_level_db)},
        }

    title = "Pre-call test"

    def rows(self) -> list[tuple[str, str]]:
        """(figure, value) lines for the table."""
        v, reasons = self.verdict()
        d = self.as_dict()

        def fmt(s: dict[str, float | None], unit: str, digits: int = 1) -> str:
            if s["avg"] is None:
                return "unknown"
            return f"{s['avg']:.{digits}f}{unit} avg (min {s['min']:.{digits}f}, max {s['max']:.{digits}f})"

        def db(x: float | None) -> str:
            return "-" if x is None else f"{x:.1f} dBFS"

        bits = d["bitrate_kbps"]
        return [
            ("verdict", v.value + (f" ({'; '.join(reasons)})" if reasons else "")),
            ("destination", self.destination),
            ("codec", self.codec or "-"),
            ("MOS", fmt(d["mos"], "", 2)),
            ("RTT", fmt(d["rtt_ms"], " ms")),
            ("jitter", fmt(d["jitter_ms"], " ms")),
            ("jitter sent", fmt(d["jitter_sent_ms"], " ms") + " (the far end's reports)"),
            ("loss", f"{d['loss_pct']:.2f} % ({d['packets']['lost']} of "
                     f"{d['packets']['received'] + d['packets']['lost']} packets)"),
            ("loss sent", ("unknown" if d["loss_sent_pct"] is None else f"{d['loss_sent_pct']:.2f} %")
             + " (the far end's reports)"),
            ("packets", f"sent {d['packets']['sent']}, received {d['packets']['received']}"),
            ("bitrate sent", fmt(bits["sent"], " kbit/s")),
            ("bitrate received", fmt(bits["received"], " kbit/s")),
            ("level sent", db(d["level_dbfs"]["sent"])),
            ("level received", db(d["level_dbfs"]["received"])),
            ("duration", f"{self.seconds:g} s, {len(self.samples)} samples"),
        ]


@contextlib.asynccontextmanager
async def test_call(client: Client, destination: str, *, source: AudioSource | None = None,
                    sink: AudioSink | None = None, timeout: float = ANSWER_TIMEOUT) -> AsyncIterator[Call]:
    """A call to ``destination`` that is up (ACTIVE), hung up on exit.

    ``source``/``sink`` replace the client's audio for this call. A call that ends or is not
    answered in ``timeout`` seconds raises :class:`~softphone.errors.CallError` naming its cause.
    """
    call = await client.new_call(destination)
    try:
        if source is not None:
            call.set_input(source)
        if sink is not None:
            call.set_output(sink)
        try:
            await call.wait_state(CallState.ACTIVE, timeout)
        except TimeoutError:
            raise CallError(f"{destination}: not answered in {timeout:g} s") from None
        except CallError:
            raise CallError(f"{destination}: call ended before it was answered "
                            f"({call.cause or call.state.value}{f' / SIP {call.sip_code}' if call.sip_code else ''})"
                            ) from None
        yield call
    finally:
        if not call.state.is_terminal:
            await call.hangup()
            with contextlib.suppress(TimeoutError):
                await call.wait_ended(5)


class StatsRecorder:
    """Collects one call's ``call.stats`` samples (the call's own once-a-second statistics)."""

    def __init__(self, client: Client, call_id: str) -> None:
        self.call_id = call_id
        self.samples: list[MediaStats] = []
        self.changed = asyncio.Event()
        self._unsubscribe = client.subscribe(self._on_event)

    def _on_event(self, event: ce.Event) -> None:
        if isinstance(event, ce.CallStats) and event.call_id == self.call_id:
            self.samples.append(event.stats)
            self.changed.set()

    def close(self) -> None:
        self._unsubscribe()

    async def wait_samples(self, n: int, timeout: float) -> bool:
        """Wait until ``n`` samples are in (False on timeout)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while len(self.samples) < n:
            self.changed.clear()
            left = end - loop.time()
            if left <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return True


async def measure(client: Client, destination: str = ECHO_NUMBER, seconds: float = DEFAULT_SECONDS, *,
                  source: AudioSource | None = None, sink: AudioSink | None = None) -> PrecallReport:
    """Call ``destination`` on a connected ``client`` and sample its statistics for ``seconds``."""
    report = PrecallReport(destination, seconds)
    async with test_call(client, destination, source=source, sink=sink) as call:
        report.call_id = call.id
        recorder = StatsRecorder(client, call.id)
        try:
            # one sample a second (the call's stats loop); a late one is waited for a little
            await recorder.wait_samples(max(1, round(seconds)), seconds + 3.0)
        finally:
            recorder.close()
        report.codec = call.codec
        if call.state.is_terminal:
            raise CallError(f"{destination}: the call ended during the test ({call.cause or call.state.value})")
        report.samples = list(recorder.samples)
    return report


async def run(profile: Profile, destination: str | None, seconds: float = DEFAULT_SECONDS) -> PrecallReport:
    """``softphone precall``: log in with ``profile`` and :func:`measure` (softphone.cli.diagview prints it)."""
    from softphone.client.client import Client

    client = Client.from_profile(profile, reconnect=False)
    try:
        await client.connect()
        return await measure(client, destination or default_destination(profile), seconds)
    finally:
        await client.close()
