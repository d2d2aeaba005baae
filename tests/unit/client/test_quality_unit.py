"""softphone.client.quality: thresholds with hysteresis, per-interval loss, the warning events, the host-only check."""

from __future__ import annotations

from softphone.client import events as ce
from softphone.client.quality import (
    CLEAR_AFTER,
    CODES,
    HIGH_JITTER,
    HIGH_PACKET_LOSS,
    HIGH_RTT,
    LOW_MOS,
    ONLY_HOST_ICE_CANDIDATES,
    RAISE_AFTER,
    QualityMonitor,
    Warnings,
    only_host_candidates,
)
from softphone.media.stats import MediaStats


def _stats(seconds: int, *, rtt: float = 20.0, jitter: float = 2.0, loss_each: float = 0.0,
           start: tuple[int, int] = (0, 0)) -> list[MediaStats]:
    """One sample a second, 50 packets a second, ``loss_each`` of them lost."""
    out, (recv, lost) = [], start
    for _ in range(seconds):
        lost += round(50 * loss_each)
        recv += 50 - round(50 * loss_each)
        out.append(MediaStats(rtt_ms=rtt, jitter_ms=jitter, packets_received=recv, packets_lost=lost))
    return out


def _feed(monitor: QualityMonitor, samples: list[MediaStats]) -> list[tuple[int, bool, int]]:
    """(code, raised, sample index) for every change."""
    return [(c.code, c.raised, i) for i, s in enumerate(samples) for c in monitor.sample(s)]


def test_good_call_raises_nothing() -> None:
    assert _feed(QualityMonitor(), _stats(20)) == []


def test_high_rtt_raises_after_k_and_clears_after_k() -> None:
    m = QualityMonitor()
    bad = _stats(RAISE_AFTER + 2, rtt=600)
    assert _feed(m, bad) == [(HIGH_RTT, True, RAISE_AFTER - 1)]
    assert m.active == [HIGH_RTT]
    # one good sample between bad ones does not clear (hysteresis)
    assert _feed(m, _stats(1) + _stats(1, rtt=600) + _stats(CLEAR_AFTER - 1)) == []
    assert _feed(m, _stats(1)) == [(HIGH_RTT, False, 0)]
    assert m.active == []


def test_a_short_spike_raises_nothing() -> None:
    m = QualityMonitor()
    samples = _stats(3) + _stats(RAISE_AFTER - 1, jitter=80) + _stats(3) + _stats(RAISE_AFTER - 1, jitter=80)
    assert _feed(m, samples) == []


def test_loss_is_judged_per_interval_and_clears() -> None:
    m = QualityMonitor()
    lossy = _stats(6, loss_each=0.3)
    changes = _feed(m, lossy)
    codes = {c for c, raised, _ in changes if raised}
    assert codes == {HIGH_PACKET_LOSS, LOW_MOS}  # 30 % loss: MOS 1.x too
    assert all(i == RAISE_AFTER for _, _, i in changes)  # the first sample has no interval yet
    recv, lost = lossy[-1].packets_received, lossy[-1].packets_lost
    # cumulative loss stays ~15 % for a long time, but each new interval is clean: cleared after K
    recovered = _stats(CLEAR_AFTER, start=(recv, lost))
    last = CLEAR_AFTER - 1
    assert sorted(_feed(m, recovered)) == [(HIGH_PACKET_LOSS, False, last), (LOW_MOS, False, last)]


def test_quiet_intervals_and_missing_figures_count_for_nothing() -> None:
    m = QualityMonitor()
    idle = [MediaStats(packets_received=5 * i, packets_lost=i) for i in range(10)]  # < 10 packets a second
    assert _feed(m, idle) == []
    m2 = QualityMonitor()
    m2.metrics(MediaStats(packets_received=0))
    figures = m2.metrics(MediaStats(rtt_ms=100, jitter_ms=10, packets_received=45, packets_lost=5))
    assert figures["loss_pct"] == 10.0 and figures["rtt_ms"] == 100 and 1.0 <= figures["mos"] < 4.0


def test_messages_name_the_figure_and_the_limit() -> None:
    m = QualityMonitor()
    changes = [c for s in _stats(RAISE_AFTER, jitter=45.4) for c in m.sample(s)]
    assert [c.code for c in changes] == [HIGH_JITTER]
    assert changes[0].message == "jitter is high: 45 ms (above 30 ms for 3 s)"
    assert set(CODES) == {31001, 31002, 31003, 31004, 33005, 34001, 46001}


def test_warnings_turns_client_events_into_warning_events() -> None:
    seen: list[ce.Event] = []
    sdp = {"c1": "v=0\r\na=candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host\r\n"}
    w = Warnings(seen.append, sdp.get, ice_servers=True)
    w(ce.TokenExpiring(expires_in=42.4))
    w(ce.LoginRefused(code=-32001, message="Authentication Required"))
    for s in _stats(RAISE_AFTER, rtt=900):
        w(ce.CallStats(call_id="c1", stats=s))
    w(ce.CallActive(call_id="c1"))
    w(ce.CallHangup(call_id="c1", cause="NORMAL_CLEARING", cause_code=16))
    assert [(type(e).__name__, getattr(e, "code", None)) for e in seen] == [
        ("ClientWarning", 34001), ("ClientWarning", 46001), ("CallWarning", HIGH_RTT),
        ("CallWarning", ONLY_HOST_ICE_CANDIDATES)]
    first = seen[0]
    assert isinstance(first, ce.ClientWarning)
    assert first.data() == {"code": 34001, "warning": "TOKEN_EXPIRING_SOON",
                            "message": "the login token expires in 42 s"}
    rtt = seen[2]
    assert isinstance(rtt, ce.CallWarning) and rtt.value == 900 and rtt.name == "call.warning"
    assert ce.call_id_of(rtt) == "c1" and w.monitors == {}


def test_no_ice_warning_without_ice_servers_or_with_reflexive_candidates() -> None:
    host = "a=candidate:1 1 udp 2130706431 10.0.0.2 5000 typ host\r\n"
    srflx = host + "a=candidate:2 1 udp 1694498815 203.0.113.9 6000 typ srflx raddr 10.0.0.2 rport 5000\r\n"
    assert only_host_candidates(host) and not only_host_candidates(srflx) and not only_host_candidates("v=0")
    seen: list[ce.Event] = []
    Warnings(seen.append, {"c": host}.get, ice_servers=False)(ce.CallActive(call_id="c"))
    Warnings(seen.append, {"c": srflx}.get, ice_servers=True)(ce.CallActive(call_id="c"))
    assert seen == []
