"""The verdict thresholds of softphone precall and the stage logic of softphone selftest (pure functions)."""

from __future__ import annotations

import dataclasses

import pytest

from softphone.diag.precall import VERDICT_EXIT, PrecallReport, Summary, Verdict, verdict
from softphone.diag.selftest import EXIT_CODES, Finding, Observation, SelftestReport, diagnose, finding
from softphone.media.stats import MediaStats, mos


@pytest.mark.parametrize(("m", "expected"), [
    (4.41, Verdict.EXCELLENT), (4.21, Verdict.EXCELLENT), (4.2, Verdict.GOOD), (4.1, Verdict.GOOD),
    (4.09, Verdict.FAIR), (3.7, Verdict.FAIR), (3.69, Verdict.POOR), (3.1, Verdict.POOR), (3.09, Verdict.BAD),
    (1.0, Verdict.BAD),
])
def test_mos_bands(m: float, expected: Verdict) -> None:
    assert verdict(m, rtt_ms=10, jitter_ms=1, loss_pct=0)[0] == expected


@pytest.mark.parametrize(("figures", "expected", "reason"), [
    ({"loss_pct": 1.5}, Verdict.GOOD, "loss above 1 %"),
    ({"loss_pct": 4.0}, Verdict.FAIR, "loss above 3 %"),
    ({"loss_pct": 6.0}, Verdict.POOR, "loss above 5 %"),
    ({"loss_pct": 12.0}, Verdict.BAD, "loss above 10 %"),
    ({"rtt_ms": 301.0}, Verdict.FAIR, "round trip above 300 ms"),
    ({"rtt_ms": 900.0}, Verdict.POOR, "round trip above 800 ms"),
    ({"jitter_ms": 31.0}, Verdict.FAIR, "jitter above 30 ms"),
    ({"jitter_ms": 55.0}, Verdict.POOR, "jitter above 50 ms"),
])
def test_caps_make_an_excellent_mos_worse(figures: dict[str, float], expected: Verdict, reason: str) -> None:
    args = {"rtt_ms": 10.0, "jitter_ms": 1.0, "loss_pct": 0.0, **figures}
    v, reasons = verdict(4.4, **args)  # type: ignore[arg-type]
    assert v == expected
    assert any(r.startswith(reason) for r in reasons), reasons
    assert len(reasons) == 1, reasons  # only the binding cap is named, not the milder ones below it


def test_caps_never_make_a_verdict_better_and_the_worst_wins() -> None:
    assert verdict(3.0, rtt_ms=350, jitter_ms=1, loss_pct=0)[0] == Verdict.BAD  # MOS already bad
    v, reasons = verdict(4.4, rtt_ms=900, jitter_ms=35, loss_pct=0)
    assert v == Verdict.POOR and reasons == ["round trip above 800 ms (900.0)"]
    v, reasons = verdict(3.5, rtt_ms=350, jitter_ms=1, loss_pct=0)  # MOS poor, RTT only fair
    assert v == Verdict.POOR and reasons == ["MOS 3.50"]


def test_unknown_figures_and_no_audio() -> None:
    assert verdict(4.4, rtt_ms=None, jitter_ms=None, loss_pct=0) == (Verdict.EXCELLENT, [])
    assert verdict(None, rtt_ms=None, jitter_ms=None, loss_pct=0)[0] == Verdict.BAD
    assert verdict(4.4, rtt_ms=1, jitter_ms=1, loss_pct=0, received=False) == (
        Verdict.BAD, ["no audio packets came back"])


def test_the_e_model_and_the_bands_agree_on_typical_paths() -> None:
    assert verdict(mos(2, 1, 0), rtt_ms=2, jitter_ms=1, loss_pct=0)[0] == Verdict.EXCELLENT  # LAN
    assert verdict(mos(100, 5, 0.5), rtt_ms=100, jitter_ms=5, loss_pct=0.5)[0] in (Verdict.FAIR, Verdict.GOOD)
    assert verdict(mos(600, 40, 5), rtt_ms=600, jitter_ms=40, loss_pct=5)[0] == Verdict.BAD


def test_exit_codes() -> None:
    assert [VERDICT_EXIT[v] for v in Verdict] == [0, 0, 10, 11, 12]


def _stats(i: int, **kw: float | None) -> MediaStats:
    base = dict(codec="opus/48000", rtt_ms=2.0 + i, jitter_ms=1.0, packets_sent=50 * i, packets_received=50 * i,
                bytes_sent=4000 * i, bytes_received=4000 * i, bitrate_in_kbps=32.0, bitrate_out_kbps=33.0,
                input_level_db=-20.0, output_level_db=-21.0, mos=4.4)
    base.update(kw)
    return MediaStats(**base)  # type: ignore[arg-type]


def test_precall_report_json_shape_and_rows() -> None:
    r = PrecallReport("+13128889999", 3, call_id="c1", codec="opus/48000",
                      samples=[_stats(1, bitrate_in_kbps=None, bitrate_out_kbps=None), _stats(2), _stats(3)])
    d = r.as_dict()
    assert set(d) == {"v", "type", "ts", "destination", "seconds", "call_id", "codec", "samples", "verdict", "reasons",
                      "exit_code", "mos", "rtt_ms", "jitter_ms", "jitter_sent_ms", "loss_pct", "loss_sent_pct",
                      "packets", "bytes", "bitrate_kbps", "level_dbfs"}
    assert d["type"] == "precall" and d["verdict"] == "excellent" and d["exit_code"] == 0 and d["samples"] == 3
    assert d["rtt_ms"] == {"min": 3.0, "avg": 4.0, "max": 5.0}
    assert d["bitrate_kbps"]["received"] == {"min": 32.0, "avg": 32.0, "max": 32.0}  # the first (None) is skipped
    assert d["level_dbfs"] == {"sent": -20.0, "received": -21.0}
    assert d["packets"] == {"sent": 150, "received": 150, "lost": 0}
    rows = dict(r.rows())
    assert rows["verdict"] == "excellent" and rows["RTT"].startswith("4.0 ms avg")


def test_precall_report_without_samples_is_bad() -> None:
    r = PrecallReport("x", 1)
    assert r.verdict()[0] == Verdict.BAD and r.exit_code == 12
    assert r.as_dict()["mos"] == {"min": None, "avg": None, "max": None}
    assert Summary.of([None, None]) == Summary()


HEALTHY = Observation(capture_db=-13.0, packets_sent=200, bytes_sent=30000, packets_received=199, received_db=-13.5,
                      frames_consumed=199, rtt_ms=1.0)


@pytest.mark.parametrize(("changes", "expected"), [
    ({}, Finding.OK),
    ({"capture_db": -120.0, "received_db": -120.0}, Finding.CAPTURE_SILENT),
    ({"packets_sent": 0, "bytes_sent": 0, "packets_received": 0, "received_db": -120.0}, Finding.NOTHING_SENT),
    ({"packets_received": 0, "received_db": -120.0, "frames_consumed": 0}, Finding.NOTHING_RECEIVED),
    ({"received_db": -120.0}, Finding.RECEIVED_SILENT),
    ({"frames_consumed": 0}, Finding.PLAYOUT_STALLED),
    ({"frames_consumed": None}, Finding.OK),  # no device: playout not checked
])
def test_the_first_broken_stage_is_named(changes: dict[str, object], expected: Finding) -> None:
    obs = dataclasses.replace(HEALTHY, **changes)  # type: ignore[arg-type]
    assert finding(diagnose(obs)) == expected
    report = SelftestReport("echo", observations=[obs])
    assert report.finding == expected and report.exit_code == EXIT_CODES[expected]
    assert report.as_dict()["finding"] == expected.value


def test_a_silent_capture_leaves_the_decode_stage_unjudged_and_the_tone_run_is_reported() -> None:
    silent = dataclasses.replace(HEALTHY, capture_db=-120.0, received_db=-120.0)
    stages = {name: ok for name, ok, _ in diagnose(silent)}
    assert stages == {"capture": False, "send": True, "receive": True, "decode": None, "playout": True}
    tone = dataclasses.replace(HEALTHY, tone=True)
    report = SelftestReport("echo", observations=[silent, tone])
    assert report.finding == Finding.CAPTURE_SILENT and report.rest_finding == Finding.OK
    d = report.as_dict()
    assert d["with_test_tone"] == "ok" and len(d["runs"]) == 2 and d["exit_code"] == 20
    assert dict(report.rows())["with test tone"] == "the rest of the path works"


def test_exit_codes_of_the_findings() -> None:
    assert [EXIT_CODES[f] for f in Finding] == [0, 20, 21, 22, 23, 24]


def test_the_default_destination_is_the_echo_locally_and_telnyx_precall_number_on_telnyx() -> None:
    from softphone.config import Profile
    from softphone.diag.precall import ECHO_NUMBER, TELNYX_PRECALL_NUMBER, default_destination

    assert default_destination(Profile(server="ws://127.0.0.1:8765")) == ECHO_NUMBER
    assert default_destination(Profile(server="wss://rtc.telnyx.com")) == TELNYX_PRECALL_NUMBER
    assert default_destination(Profile(server="wss://rtc.telnyx.com", region="eu")) == TELNYX_PRECALL_NUMBER
    assert TELNYX_PRECALL_NUMBER == "+18722315806"  # @telnyx/webrtc's runPreCall() default


def test_the_far_ends_reports_give_loss_and_jitter_of_what_we_send() -> None:
    from types import SimpleNamespace

    from softphone.media.stats import StatsCollector

    report = {
        "in": SimpleNamespace(type="inbound-rtp", kind="audio", packetsReceived=1000, packetsLost=0, jitter=48),
        "out": SimpleNamespace(type="outbound-rtp", kind="audio", packetsSent=1000, bytesSent=100_000),
        "rin": SimpleNamespace(type="remote-inbound-rtp", kind="audio", roundTripTime=0.02, packetsReceived=880,
                               packetsLost=120, jitter=1920),
    }
    s = StatsCollector().collect(report, codec="opus/48000", input_level_db=-20, output_level_db=-20, now=1.0)
    assert s.packet_loss_pct == 0.0 and s.remote_loss_pct == 12.0
    assert s.jitter_ms == 1.0 and s.remote_jitter_ms == 40.0
    r = PrecallReport("echo", 1, samples=[s])
    v, reasons = r.verdict()  # the MOS (received side) is excellent; the uplink is not
    assert v == Verdict.BAD and reasons == ["loss above 10 % (12.0)"]
    d = r.as_dict()
    assert d["loss_sent_pct"] == 12.0 and d["jitter_sent_ms"]["avg"] == 40.0 and d["loss_pct"] == 0.0
    assert dict(r.rows())["loss sent"] == "12.00 % (the far end's reports)"
    no_reports = StatsCollector().collect({"in": report["in"]}, codec="opus/48000", input_level_db=-20,
                                          output_level_db=-20)
    assert no_reports.remote_loss_pct is None and no_reports.remote_jitter_ms is None


def test_nothing_sent_leaves_the_capture_unjudged() -> None:
    """The level is metered as the sender takes frames: with nothing sent it says nothing about the mic."""
    obs = dataclasses.replace(HEALTHY, capture_db=-120.0, packets_sent=0, bytes_sent=0, packets_received=0,
                              received_db=-120.0, media_state="failed")
    stages = diagnose(obs)
    assert [(name, ok) for name, ok, _ in stages][:2] == [("capture", None), ("send", False)]
    assert "media connection failed" in stages[1][2]
    assert finding(stages) == Finding.NOTHING_SENT
