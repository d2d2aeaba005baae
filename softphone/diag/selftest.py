"""``softphone selftest``: the one-way-audio finder. Which direction is broken, and where.

A call to an echo (:data:`~softphone.diag.precall.ECHO_NUMBER` by default) is watched for a few
seconds, stage by stage along the audio's path, and the first stage that fails is named:

============== ======================================================== ====================
stage          checked by                                               finding when broken
============== ======================================================== ====================
capture        the level of what the call's source gives the sender     ``capture_silent``
send           RTP packets / bytes sent keep growing (the call's stats) ``nothing_sent``
receive        RTP packets received keep growing                        ``nothing_received``
decode         the level of the decoded audio that comes back           ``received_silent``
playout        the output device takes the frames (its callback pulls:  ``playout_stalled``
               ``frames_consumed`` of the call's sink keeps growing)
============== ======================================================== ====================

The capture level is metered as the sender takes frames, so when nothing is sent (the media
connection never formed: its state is quoted) the capture is not judged and the finding is
``nothing_sent``. Through an echo, what comes back is what we sent: a silent capture makes the received audio silent
too, so the stages after a silent capture are checked again with a test tone (ToneSource, 1 kHz)
and reported as ``with test tone``: "your microphone is silent, the rest works" is then one line.
``nothing_received`` means the far end sends nothing, or it is lost on the way (either direction
through an echo); when RTCP reports still arrive (an RTT is known) the path back works and the far
end itself stopped sending. Playout is only checked on a PortAudio device (with ``--tone`` or the
null backend there is no device); the hub's own stall warning (``call.device_warning``) is quoted.

Thresholds: a level below :data:`SILENT_DB` (-80 dBFS, i.e. digital silence or a muted device,
well below any real microphone's noise floor at about -70..-50 dBFS) is silent; a counter that
grows by less than :data:`MIN_PACKETS` packets (or frames) in the window has stopped.

Exit codes: 0 healthy, 20 capture_silent, 21 nothing_sent, 22 nothing_received, 23 received_silent,
24 playout_stalled (:data:`EXIT_CODES`).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from softphone.client import events as ce

if TYPE_CHECKING:
    from softphone.client.call import Call
    from softphone.client.client import Client
    from softphone.config import Profile
    from softphone.media.sinks import AudioSink
    from softphone.media.sources import AudioSource

__all__ = ["EXIT_CODES", "Finding", "Observation", "PlayoutCounter", "SelftestReport", "diagnose", "measure", "run"]

SILENT_DB = -80.0
MIN_PACKETS = 5
WINDOW_S = 4.0
WARMUP_S = 1.0


class Finding(enum.StrEnum):
    """What is broken (the first failing stage along the path), or ``ok``."""

    OK = "ok"
    CAPTURE_SILENT = "capture_silent"
    NOTHING_SENT = "nothing_sent"
    NOTHING_RECEIVED = "nothing_received"
    RECEIVED_SILENT = "received_silent"
    PLAYOUT_STALLED = "playout_stalled"


EXIT_CODES: dict[Finding, int] = {Finding.OK: 0, Finding.CAPTURE_SILENT: 20, Finding.NOTHING_SENT: 21,
                                  Finding.NOTHING_RECEIVED: 22, Finding.RECEIVED_SILENT: 23,
                                  Finding.PLAYOUT_STALLED: 24}

HINTS: dict[Finding, str] = {
    Finding.OK: "audio goes out, comes back and is played",
    Finding.CAPTURE_SILENT: "the microphone gives silence: is it muted (pactl list sources), the wrong device "
                            "(softphone devices, --input) or in use by another program?",
    Finding.NOTHING_SENT: "no RTP leaves this client: the media connection never started (ICE/DTLS), "
                          "see softphone doctor and -vv",
    Finding.NOTHING_RECEIVED: "no RTP comes back: the far end sends nothing or it is lost on the way "
                              "(a firewall dropping UDP, a one-way NAT, a TURN server missing)",
    Finding.RECEIVED_SILENT: "packets arrive but decode to silence: the far end sends silence (muted, "
                             "on hold) or the codec does not match",
    Finding.PLAYOUT_STALLED: "the output device stopped taking audio (its callback does not run): a "
                             "suspended or vanished sound card; pick another with --output",
}


@runtime_checkable
class PlayoutCounter(Protocol):
    """A sink fed to a device that counts the frames the device took (media.hub's PortAudio sink)."""

    frames_consumed: int


@dataclass(frozen=True)
class Observation:
    """What one window of the call showed (a stage's figures; ``None``: not measurable here)."""

    capture_db: float
    packets_sent: int
    bytes_sent: int
    packets_received: int
    received_db: float
    frames_consumed: int | None
    rtt_ms: float | None = None
    """The RTT when a new RTCP report came in during the window (the path back carries RTCP), else None."""
    device_warnings: tuple[str, ...] = ()
    tone: bool = False
    media_state: str | None = None
    """The media connection's state at the end (``connected``, ``failed``...), None when unknown."""

    def as_dict(self) -> dict[str, Any]:
        return {"capture_dbfs": round(self.capture_db, 1), "packets_sent": self.packets_sent,
                "bytes_sent": self.bytes_sent, "packets_received": self.packets_received,
                "received_dbfs": round(self.received_db, 1), "frames_consumed": self.frames_consumed,
                "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 1),
                "device_warnings": list(self.device_warnings), "test_tone": self.tone,
                "media_state": self.media_state}


def diagnose(obs: Observation) -> list[tuple[str, bool | None, str]]:
    """Each stage as (stage, passed or None when not checked, detail), along the path."""
    stages: list[tuple[str, bool | None, str]] = []
    sending = obs.packets_sent >= MIN_PACKETS
    capture_ok = obs.capture_db >= SILENT_DB
    tone = " (test tone)" if obs.tone else ""
    if sending:
        stages.append(("capture", capture_ok, f"{obs.capture_db:.1f} dBFS{tone}"))
    else:  # the level is metered as the sender takes frames: no sending, no level
        stages.append(("capture", None, f"not judged: the sender takes no audio{tone}"))
    media = f"; media connection {obs.media_state}" if obs.media_state else ""
    stages.append(("send", sending, f"{obs.packets_sent} packets, {obs.bytes_sent} bytes{media}"))
    rtcp = f"; RTCP reports arrive (RTT {obs.rtt_ms:.1f} ms)" if obs.rtt_ms is not None else ""
    stages.append(("receive", obs.packets_received >= MIN_PACKETS, f"{obs.packets_received} packets{rtcp}"))
    if capture_ok and sending:
        stages.append(("decode", obs.received_db >= SILENT_DB, f"{obs.received_db:.1f} dBFS"))
    else:
        stages.append(("decode", None, f"{obs.received_db:.1f} dBFS (not judged: nothing to hear back)"))
    warn = f"; {'; '.join(obs.device_warnings)}" if obs.device_warnings else ""
    if obs.frames_consumed is None:
        stages.append(("playout", None, "no output device (tone/null backend)" + warn))
    else:
        stages.append(("playout", obs.frames_consumed >= MIN_PACKETS,
                       f"{obs.frames_consumed} frames taken by the device{warn}"))
    return stages


_STAGE_FINDING = {"capture": Finding.CAPTURE_SILENT, "send": Finding.NOTHING_SENT,
                  "receive": Finding.NOTHING_RECEIVED, "decode": Finding.RECEIVED_SILENT,
                  "playout": Finding.PLAYOUT_STALLED}


def finding(stages: Sequence[tuple[str, bool | None, str]]) -> Finding:
    """The first stage that failed, or OK."""
    return next((_STAGE_FINDING[name] for name, ok, _ in stages if ok is False), Finding.OK)


@dataclass
class SelftestReport:
    """The observations (with the microphone, then with a test tone if the microphone was silent)."""

    destination: str
    call_id: str = ""
    observations: list[Observation] = field(default_factory=list)
    title = "Self test (one-way audio finder)"

    @property
    def finding(self) -> Finding:
        return finding(diagnose(self.observations[0])) if self.observations else Finding.NOTHING_SENT

    @property
    def rest_finding(self) -> Finding | None:
        """With the test tone (only after a silent capture): the first failure after the capture."""
        if len(self.observations) < 2:
            return None
        return finding(diagnose(self.observations[1]))

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.finding]

    def as_dict(self) -> dict[str, Any]:
        """The ``--json`` document (README "softphone selftest")."""
        runs = []
        for obs in self.observations:
            runs.append({"stages": [{"stage": name, "ok": ok, "detail": detail} for name, ok, detail in diagnose(obs)],
                         "finding": finding(diagnose(obs)).value, **obs.as_dict()})
        rest = self.rest_finding
        return {"v": 1, "type": "selftest", "ts": time.time(), "destination": self.destination,
                "call_id": self.call_id, "finding": self.finding.value, "hint": HINTS[self.finding],
                "with_test_tone": None if rest is None else rest.value, "runs": runs, "exit_code": self.exit_code}

    def rows(self) -> list[tuple[str, str]]:
        mark = {True: "ok", False: "FAIL", None: "-"}
        out = [("finding", f"{self.finding.value}: {HINTS[self.finding]}")]
        for i, obs in enumerate(self.observations):
            suffix = " (test tone)" if i else ""
            out += [(f"{name}{suffix}", f"{mark[ok]}  {detail}") for name, ok, detail in diagnose(obs)]
        rest = self.rest_finding
        if rest is not None:
            out.append(("with test tone", "the rest of the path works" if rest == Finding.OK else
                        f"{rest.value}: {HINTS[rest]}"))
        return out


class _Window:
    """Peaks of the call's levels and deltas of its counters over a window."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.capture_db = self.received_db = -120.0
        stats = call.stats
        self.start = (stats.packets_sent, stats.bytes_sent, stats.packets_received) if stats else (0, 0, 0)
        self.start_rtt = stats.rtt_ms if stats else None
        sink = call.output
        self.sink_start = sink.frames_consumed if isinstance(sink, PlayoutCounter) else None

    def sample(self) -> None:
        self.capture_db = max(self.capture_db, self.call.input_level_db or -120.0)
        self.received_db = max(self.received_db, self.call.output_level_db or -120.0)

    def observation(self, warnings: list[str], tone: bool) -> Observation:
        stats = self.call.stats
        sent, sent_bytes, received = (stats.packets_sent, stats.bytes_sent, stats.packets_received) if stats \
            else (0, 0, 0)
        sink = self.call.output
        consumed = None
        if self.sink_start is not None and isinstance(sink, PlayoutCounter):
            consumed = sink.frames_consumed - self.sink_start
        from softphone.media.peer import MediaPeer

        peer = self.call.peer
        return Observation(
            media_state=peer.state.value if isinstance(peer, MediaPeer) else None,
            capture_db=self.capture_db, packets_sent=sent - self.start[0], bytes_sent=sent_bytes - self.start[1],
            packets_received=received - self.start[2], received_db=self.received_db, frames_consumed=consumed,
            rtt_ms=stats.rtt_ms if stats and stats.rtt_ms != self.start_rtt else None,  # fresh reports only
            device_warnings=tuple(warnings), tone=tone)


async def _watch(call: Call, seconds: float, warnings: list[str], tone: bool) -> Observation:
    # Stats come once a second from the call's own loop: wait for a fresh sample at both ends.
    window = _Window(call)
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end and not call.state.is_terminal:
        window.sample()
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.1)  # the next stats sample covers the whole window
    window.sample()
    return window.observation(warnings, tone)


async def measure(client: Client, destination: str, *, seconds: float = WINDOW_S,
                  source: AudioSource | None = None, sink: AudioSink | None = None) -> SelftestReport:
    """Call ``destination`` on a connected ``client``, watch each stage; after a silent capture, again with a tone."""
    from softphone.diag.precall import test_call
    from softphone.media.sources import ToneSource

    report = SelftestReport(destination)
    warnings: list[str] = []

    def on_event(event: ce.Event) -> None:
        if isinstance(event, ce.CallDeviceWarning) and event.call_id == report.call_id:
            warnings.append(event.message)

    unsubscribe = client.subscribe(on_event)
    try:
        async with test_call(client, destination, source=source, sink=sink) as call:
            report.call_id = call.id
            await asyncio.sleep(WARMUP_S)
            report.observations.append(await _watch(call, seconds, warnings, tone=False))
            if report.finding == Finding.CAPTURE_SILENT and not call.state.is_terminal:
                call.set_input(ToneSource(1000.0, 0.3))
                await asyncio.sleep(0.5)
                report.observations.append(await _watch(call, seconds, list(warnings), tone=True))
    finally:
        unsubscribe()
    return report


async def run(profile: Profile, destination: str | None, seconds: float = WINDOW_S) -> SelftestReport:
    """``softphone selftest``: log in with ``profile`` and :func:`measure` (softphone.cli.diagview prints it)."""
    from softphone.client.client import Client
    from softphone.diag.precall import default_destination

    client = Client.from_profile(profile, reconnect=False)
    try:
        await client.connect()
        return await measure(client, destination or default_destination(profile), seconds=seconds)
    finally:
        await client.close()
