"""Warning codes as the Telnyx SDKs have them, and the call-quality monitor that raises them.

The codes are the JS SDK's (``TELNYX_WARNING_CODES`` / ``TELNYX_ERROR_CODES`` in @telnyx/webrtc):
docs/events.md "Warning codes" is the table users read; :data:`CODES` is the one in the code.

* Client warnings (``client.warning``): 34001 ``TOKEN_EXPIRING_SOON`` (with every
  ``client.token_expiring``), 46001 ``LOGIN_FAILED`` (with every ``client.login_failed``; an error
  code in the SDK, reported here as a warning so it is counted like the rest).
* Call warnings (``call.warning``, and ``call.warning_cleared`` when the condition is gone):
  31001 ``HIGH_RTT``, 31002 ``HIGH_JITTER``, 31003 ``HIGH_PACKET_LOSS``, 31004 ``LOW_MOS`` from
  the call's stats, sampled each second (``call.stats``), with hysteresis: raised after
  :data:`RAISE_AFTER` bad samples in a row, cleared after :data:`CLEAR_AFTER` good ones. Loss and
  MOS are judged per sample interval (the packets lost since the previous sample), not the
  call's cumulative figure, so a warning clears once the network recovers. 33005
  ``ONLY_HOST_ICE_CANDIDATES``: the call's local SDP has only host candidates although ICE
  servers are configured (STUN/TURN unreachable), checked once when the call is active.

Every :class:`~softphone.client.client.Client` subscribes a :class:`Warnings` to itself
(``Client.warnings``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from softphone.client import events as ce
from softphone.media.stats import MediaStats, mos

__all__ = ["CLEAR_AFTER", "CODES", "RAISE_AFTER", "THRESHOLDS", "QualityMonitor", "Threshold", "Warnings",
           "only_host_candidates", "warning"]

HIGH_RTT = 31001
HIGH_JITTER = 31002
HIGH_PACKET_LOSS = 31003
LOW_MOS = 31004
ONLY_HOST_ICE_CANDIDATES = 33005
TOKEN_EXPIRING_SOON = 34001
LOGIN_FAILED = 46001

CODES: dict[int, tuple[str, str]] = {
    HIGH_RTT: ("HIGH_RTT", "round-trip time is high"),
    HIGH_JITTER: ("HIGH_JITTER", "jitter is high"),
    HIGH_PACKET_LOSS: ("HIGH_PACKET_LOSS", "packet loss is high"),
    LOW_MOS: ("LOW_MOS", "call quality (MOS) is low"),
    ONLY_HOST_ICE_CANDIDATES: ("ONLY_HOST_ICE_CANDIDATES",
                               "only host ICE candidates: the STUN/TURN servers did not answer"),
    TOKEN_EXPIRING_SOON: ("TOKEN_EXPIRING_SOON", "the login token expires soon"),
    LOGIN_FAILED: ("LOGIN_FAILED", "login failed"),
}
"""code -> (the SDK's constant name, what it means)."""

RAISE_AFTER = 3
"""Bad samples in a row (one a second) before a quality warning is raised."""
CLEAR_AFTER = 3
"""Good samples in a row before it is cleared."""
MIN_INTERVAL_PACKETS = 10
"""A sample interval with fewer packets (received + lost) says nothing about loss."""


@dataclass(frozen=True, slots=True)
class Threshold:
    """One quality rule: ``metric`` of a sample compared with ``limit`` (bad above it, or below it)."""

    code: int
    metric: str  #: rtt_ms | jitter_ms | loss_pct | mos
    limit: float
    unit: str
    bad_below: bool = False

    def bad(self, value: float) -> bool:
        return value < self.limit if self.bad_below else value > self.limit


THRESHOLDS: tuple[Threshold, ...] = (
    Threshold(HIGH_RTT, "rtt_ms", 400.0, "ms"),
    Threshold(HIGH_JITTER, "jitter_ms", 30.0, "ms"),
    Threshold(HIGH_PACKET_LOSS, "loss_pct", 3.0, "%"),
    Threshold(LOW_MOS, "mos", 3.5, "", bad_below=True),
)
"""The quality thresholds (docs/events.md)."""


@dataclass(frozen=True, slots=True)
class Change:
    """A warning raised (``raised``) or cleared by :meth:`QualityMonitor.sample`."""

    code: int
    raised: bool
    value: float
    message: str


@dataclass
class _Rule:
    threshold: Threshold
    active: bool = False
    bad_run: int = 0
    good_run: int = 0


@dataclass
class QualityMonitor:
    """Hysteresis over one call's stats samples (pure: stats in, changes out)."""

    thresholds: tuple[Threshold, ...] = THRESHOLDS
    raise_after: int = RAISE_AFTER
    clear_after: int = CLEAR_AFTER
    _rules: list[_Rule] = field(default_factory=list)
    _prev: tuple[int, int] | None = None  # (received, lost) at the previous sample

    def __post_init__(self) -> None:
        self._rules = [_Rule(t) for t in self.thresholds]

    @property
    def active(self) -> list[int]:
        """The codes raised and not cleared."""
        return [r.threshold.code for r in self._rules if r.active]

    def metrics(self, stats: MediaStats) -> dict[str, float]:
        """This sample's figures: RTT and jitter as measured, loss and MOS over the interval."""
        out: dict[str, float] = {}
        if stats.rtt_ms is not None:
            out["rtt_ms"] = stats.rtt_ms
        if stats.jitter_ms is not None:
            out["jitter_ms"] = stats.jitter_ms
        received, lost = stats.packets_received, stats.packets_lost
        if self._prev is not None:
            d_recv, d_lost = received - self._prev[0], lost - self._prev[1]
            if d_recv >= 0 and d_lost >= 0 and d_recv + d_lost >= MIN_INTERVAL_PACKETS:
                out["loss_pct"] = 100.0 * d_lost / (d_recv + d_lost)
                out["mos"] = mos(out.get("rtt_ms", 0.0), out.get("jitter_ms", 0.0), out["loss_pct"])
        self._prev = (received, lost)
        return out

    def sample(self, stats: MediaStats) -> list[Change]:
        """Feed one stats sample; returns the warnings raised or cleared by it."""
        figures = self.metrics(stats)
        changes: list[Change] = []
        for rule in self._rules:
            t = rule.threshold
            value = figures.get(t.metric)
            if value is None:
                continue  # not known this second: neither bad nor good
            if t.bad(value):
                rule.bad_run, rule.good_run = rule.bad_run + 1, 0
                if not rule.active and rule.bad_run >= self.raise_after:
                    rule.active = True
                    changes.append(Change(t.code, True, value, _message(t, value, raised=True)))
            else:
                rule.good_run, rule.bad_run = rule.good_run + 1, 0
                if rule.active and rule.good_run >= self.clear_after:
                    rule.active = False
                    changes.append(Change(t.code, False, value, _message(t, value, raised=False)))
        return changes


def _message(t: Threshold, value: float, *, raised: bool) -> str:
    what = CODES[t.code][1]
    shown = f"{value:.2f}" if t.metric == "mos" else f"{value:.0f} {t.unit}".rstrip()
    limit = f"{t.limit:g} {t.unit}".rstrip()
    side = "below" if t.bad_below else "above"
    if raised:
        return f"{what}: {shown} ({side} {limit} for {RAISE_AFTER} s)"
    return f"{CODES[t.code][0].lower().replace('_', ' ')} cleared: {shown}"


_HOST_ONLY = re.compile(r"^a=candidate:.+ typ (srflx|prflx|relay)", re.MULTILINE)


def only_host_candidates(sdp: str) -> bool:
    """True when ``sdp`` has candidates and none of them is server reflexive, peer reflexive or relay."""
    return "a=candidate:" in sdp and _HOST_ONLY.search(sdp) is None


def warning(code: int, message: str = "") -> ce.ClientWarning:
    """A ``client.warning`` for ``code`` (message: the table's, or the one given)."""
    name, text = CODES[code]
    return ce.ClientWarning(code=code, warning=name, message=message or text)


class Warnings:
    """Turns a client's events into warning events (see the module docstring); one per client."""

    def __init__(self, emit: Callable[[ce.Event], None], local_sdp: Callable[[str], str | None],
                 ice_servers: bool) -> None:
        self._emit = emit
        self._local_sdp = local_sdp
        self._ice_servers = ice_servers
        self.monitors: dict[str, QualityMonitor] = {}

    def __call__(self, event: ce.Event) -> None:
        match event:
            case ce.TokenExpiring(expires_in=left):
                self._emit(warning(TOKEN_EXPIRING_SOON, f"the login token expires in {left:.0f} s"))
            case ce.LoginRefused(code=code, message=message):
                self._emit(warning(LOGIN_FAILED, f"login failed: {message} ({code})"))
            case ce.CallStats(call_id=call_id, stats=stats):
                monitor = self.monitors.setdefault(call_id, QualityMonitor())
                for change in monitor.sample(stats):
                    name = CODES[change.code][0]
                    if change.raised:
                        self._emit(ce.CallWarning(call_id=call_id, code=change.code, warning=name,
                                                  message=change.message, value=round(change.value, 2)))
                    else:
                        self._emit(ce.CallWarningCleared(call_id=call_id, code=change.code, warning=name,
                                                         message=change.message, value=round(change.value, 2)))
            case ce.CallActive(call_id=call_id):
                sdp = self._local_sdp(call_id) if self._ice_servers else None
                if sdp and only_host_candidates(sdp):
                    name, text = CODES[ONLY_HOST_ICE_CANDIDATES]
                    self._emit(ce.CallWarning(call_id=call_id, code=ONLY_HOST_ICE_CANDIDATES, warning=name,
                                              message=text))
            case ce.CallHangup(call_id=call_id):
                self.monitors.pop(call_id, None)
