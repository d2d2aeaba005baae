"""softphone test / load, the parts without a call: variables, JUnit XML against the schema,
percentiles and failure causes, row files, artifacts' WAV tail, the HTML page's escaping."""

from __future__ import annotations

import wave
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pytest
from junit_schema import validate

from softphone.cli import load, report_html, testrun
from softphone.cli.testrun import CaseResult, Failure
from softphone.errors import CommandError


def result(name: str, failure: Failure | None = None, **kw: object) -> CaseResult:
    r = CaseResult(name, f"cases/{name}.sp", 1_700_000_000.0, duration=1.25, failure=failure,
                   output=["dialing ivr (call 1234abcd)"], **kw)  # type: ignore[arg-type]
    return r


def test_variables_env_and_unknown_names_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SP_ENV_DEST", "echo")
    f = tmp_path / "f.sp"
    f.write_text("dial ${DEST}\ndial ${SP_ENV_DEST}\nexpect dtmf ${D}${D}\n")
    case = testrun.load_case(str(f), {"DEST": "ivr", "D": "1"})
    assert [ln.args for ln in case.lines] == [["ivr"], ["echo"], ["dtmf", "11"]]
    assert case.variables == {"DEST": "ivr", "D": "1"}
    f.write_text("echo a\necho b\necho ${NOPE}\n")
    with pytest.raises(CommandError, match=r"f\.sp:3: .*unknown variable \$\{NOPE\}"):
        testrun.load_case(str(f))


def test_load_case_parse_error_is_file_line(tmp_path: Path) -> None:
    f = tmp_path / "bad.sp"
    f.write_text("dial echo\nwait call active 10\nfrobnicate\n")
    with pytest.raises(CommandError, match=r"bad\.sp:3: unknown command 'frobnicate'"):
        testrun.load_case(str(f))
    case = testrun.load_case(str(f), {"X": "ivr"}, text="dial ${X}\n", name="n")
    assert (case.name, case.file, [ln.args for ln in case.lines]) == ("n", str(f), [["ivr"]])


def test_junit_is_valid_against_the_schema_and_says_file_line_expected_heard() -> None:
    fail = Failure(4, 'expect speech "press nine"', "wanted 'press nine' within 5s, heard 'welcome <to> & press'")
    err = Failure(0, "(setup)", "network: connection refused", "error")
    xml = testrun.junit_xml([result("ok"), result("ivr_wrong", fail), result("down", err)], started=0.0)
    assert validate(xml) == [], validate(xml)
    root = ET.fromstring(xml)
    suite = root.find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["ok", "ivr_wrong", "down"]
    assert cases[0].find("failure") is None and cases[0].find("error") is None
    failure = cases[1].find("failure")
    assert failure is not None and failure.get("type") == "CheckFailed"
    assert failure.get("message") == ("cases/ivr_wrong.sp:4: expect speech \"press nine\": wanted 'press nine' "
                                      "within 5s, heard 'welcome <to> & press'")
    assert "dialing ivr" in (failure.text or "")  # the transcript
    error = cases[2].find("error")
    assert error is not None and "connection refused" in (error.get("message") or "")
    assert cases[1].get("classname") == "cases.ivr_wrong" and cases[1].get("time") == "1.250"


def test_the_schema_check_rejects_what_ci_would() -> None:
    good = testrun.junit_xml([result("ok")], started=0.0)
    assert validate(good) == []
    assert validate(good.replace("<testcase ", '<testcase line="3" ')) != []  # attribute not in the schema
    assert validate(good.replace('tests="1" time', 'tests="one" time')) != []  # not an int
    assert validate(good.replace('name="ok" ', "")) != []  # testcase name is required
    swapped = good.replace("<testsuites", "<testsuite").replace("</testsuites>", "</testsuite>")
    assert validate(swapped) != []


def test_percentiles_and_summary_with_failure_causes() -> None:
    assert load.percentile([], 50) == 0.0
    assert load.percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert load.percentile([float(i) for i in range(1, 101)], 95) == pytest.approx(95.05)
    assert load.percentile([float(i) for i in range(1, 101)], 99) == pytest.approx(99.01)
    rs = [result(f"c{i}", timings={"answer": 0.1 * (i + 1)}) for i in range(4)]
    rs[1].failure = Failure(4, "expect dtmf 12 5", "expect: wanted DTMF '12' within 5s, received '1'")
    rs[3].failure = Failure(4, "expect dtmf 99 5", "expect: wanted DTMF '99' within 5s, received ''")
    s = load.summarize(rs, concurrency=2, rate=5.0, wall=2.0, cpu=0.5)
    assert (s["calls"], s["passed"], s["failed"], s["pass_rate"], s["cpu_pct"]) == (4, 2, 2, 0.5, 25.0)
    assert s["timings"]["answer"]["p50"] == pytest.approx(0.25) and s["timings"]["answer"]["max"] == 0.4
    # the two failures differ only in their digits: one cause, counted twice
    assert s["failure_causes"] == {"L4 expect: expect: wanted DTMF '…' within Ns, received '…'": 2}


def test_rows_file_and_plan(tmp_path: Path) -> None:
    rows = tmp_path / "rows.csv"
    rows.write_text("DEST,DIGITS\necho,1\ndtmf,2\n")
    assert load.read_rows(rows) == [{"DEST": "echo", "DIGITS": "1"}, {"DEST": "dtmf", "DIGITS": "2"}]
    script = tmp_path / "s.sp"
    script.write_text("dial ${DEST}\ndtmf ${DIGITS}\necho call ${CALL}\n")
    cases = load.plan_calls(str(script), 3, load.read_rows(rows))
    assert [c.lines[0].args for c in cases] == [["echo"], ["dtmf"], ["echo"]]
    assert [c.lines[2].args for c in cases] == [["call", "1"], ["call", "2"], ["call", "3"]]
    assert cases[2].name == "s#3" and cases[2].variables == {"DEST": "echo", "DIGITS": "1", "CALL": "3"}
    bad = tmp_path / "bad.csv"
    bad.write_text("not a name,x\n1,2\n")
    with pytest.raises(CommandError, match="name the columns"):
        load.read_rows(bad)
    (tmp_path / "empty.csv").write_text("A\n")
    with pytest.raises(CommandError, match="no rows"):
        load.read_rows(tmp_path / "empty.csv")
    script.write_text("dial ${DEST}\ndtmf ${OTHER}\n")
    with pytest.raises(CommandError, match=r"s\.sp:2: unknown variable \$\{OTHER\}"):
        load.plan_calls(str(script), 1, [{"DEST": "echo"}])


def test_keep_tail_keeps_the_last_seconds(tmp_path: Path) -> None:
    full, tail = tmp_path / "call.wav", tmp_path / "last.wav"
    samples = np.arange(48000 * 3 * 2, dtype=np.int64).astype(np.int16)  # 3 s stereo
    with wave.open(str(full), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(samples.tobytes())
    testrun._keep_tail(full, tail, 1.0)
    assert not full.exists()
    with wave.open(str(tail), "rb") as r:
        assert (r.getnchannels(), r.getnframes()) == (2, 48000)
        got = np.frombuffer(r.readframes(48000), dtype=np.int16)
    assert np.array_equal(got, samples[-96000:])


def test_html_page_is_self_contained_and_escaped() -> None:
    evil = Failure(2, "expect speech '<script>alert(1)</script>'", "heard <b>nothing</b>")
    r = result("x<y", evil, events=[
        {"t": 0.1, "type": "call.created", "call_id": "c1", "data": {}},
        {"t": 0.2, "type": "call.state", "call_id": "c1", "data": {"new": "active"}},
        {"t": 1.0, "type": "call.stats", "call_id": "c1", "data": {"jitter_ms": 2.0, "output_level": 0.4}},
        {"t": 2.0, "type": "call.stats", "call_id": "c1", "data": {"jitter_ms": 3.0, "output_level": 0.5}},
    ])
    page = report_html.render_test_report([result("ok"), r])
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>nothing</b>" not in page
    assert page.count('<tr class="case ') == 2 and '<tr class="case fail" data-name="x&lt;y">' in page
    assert "<polyline" in page and "s active</text>" in page
    for ref in ("src=", "href=", "@import", "url("):
        assert ref not in page, ref  # nothing to fetch
    s = load.summarize([r, result("ok", timings={"answer": 0.2})], concurrency=1, rate=1, wall=1, cpu=0.1)
    lpage = report_html.render_load_report([r, result("ok", timings={"answer": 0.2})], s)
    assert 'class="histogram"' in lpage and 'id="percentiles"' in lpage and 'id="causes"' in lpage


async def test_loop_lag_counts_wakeups_more_than_a_frame_late() -> None:
    import asyncio
    import time

    lag = load.LoopLag()
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.1)
    time.sleep(0.12)  # a stall of six frames on the loop
    await asyncio.sleep(0.1)
    task.cancel()
    report = lag.report()
    assert report["ticks"] >= 5 and report["late"] >= 1, (report, lag.lags)
    assert report["lag_max_ms"] >= 80 and 0 < report["late_pct"] < 100
    assert load.LoopLag().report() == {"ticks": 0, "late": 0, "late_pct": 0.0, "lag_p99_ms": 0.0, "lag_max_ms": 0.0}


def test_phone_timings_numbers_expect_latencies_and_quality() -> None:
    from types import SimpleNamespace

    values = {"c1": {"name": "agent", "to_ringing_s": 0.05, "to_answer_s": 0.2,
                     "expects": [{"expect": "dtmf 1", "ok": True, "waited_s": 0.3},
                                 {"expect": "speech press two", "ok": True, "waited_s": 4.0, "latency_s": 0.41}],
                     "quality": {"rtt_ms": 1.5, "jitter_ms": None, "mos": 4.4}},
              "c2": {"to_answer_s": 9.0}}
    phone = SimpleNamespace(snapshot=SimpleNamespace(calls=[SimpleNamespace(id="c1"), SimpleNamespace(id="c2")]),
                            timings=lambda cid: values[cid])
    r = result("t", stats={"mos": 4.1})
    got = testrun._phone_timings(phone, r)  # type: ignore[arg-type]
    assert got == {"to_ringing_s": 0.05, "to_answer_s": 0.2, "E2 speech latency": 0.41}  # the first call's
    assert r.stats == {"mos": 4.1, "rtt_ms": 1.5}  # the call.stats figure is kept, None is no figure


def test_timeline_marks_checks_ok_and_failed() -> None:
    r = result("t", Failure(3, "expect dtmf 9", "no"), events=[
        {"t": 0.5, "type": "script.check", "call_id": None, "data": {"line": 2, "ok": True, "seconds": 0.4}},
        {"t": 2.5, "type": "script.check", "call_id": None, "data": {"line": 3, "ok": False, "seconds": None}},
    ])
    svg = report_html.timeline_svg(r)
    assert "L2 ok after 0.4s" in svg and "L3 FAILED" in svg
    assert 'fill="#176c2c"' in svg and 'fill="#b00020"' in svg


def test_timeline_names_the_call_when_a_case_has_several() -> None:
    ev = [{"t": 0.1, "type": "call.created", "call_id": "aaaaaaaa-1", "data": {}},
          {"t": 0.2, "type": "call.created", "call_id": "bbbbbbbb-2", "data": {}}]
    assert "[aaaaaaaa] call.created" in report_html.timeline_svg(result("two", events=ev))
    assert "[aaaaaaaa]" not in report_html.timeline_svg(result("one", events=ev[:1]))
