"""`softphone load` end to end (a subprocess with its in-process local switch): 10 calls with a ramp and a
concurrency cap, CSV rows as per-call variables, the p50/p95/p99 report as JSON, table and CSV, failure
causes counted, --duration."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SCRIPT = """# every call sends the digits of its row to the dtmf service and expects them back
dial dtmf
wait call active 10
dtmf ${DIGITS}
expect dtmf ${WANT} 5
hangup
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    e.update(SOFTPHONE_CONFIG=str(tmp_path / "none.toml"), SOFTPHONE_DATA_DIR=str(tmp_path / "data"),
             COLUMNS="160")
    return e


def load(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "softphone", "load", *args, "--local"], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=100, check=False)


def test_ten_calls_ramped_with_rows_report_json_and_csv(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "call.sp").write_text(SCRIPT)
    rows = [("1", "1"), ("23", "23"), ("#", "#"), ("4*", "4*"), ("9", "9")]
    (tmp_path / "rows.csv").write_text("DIGITS,WANT\n" + "".join(f"{d},{w}\n" for d, w in rows))
    r = load(env, tmp_path, "call.sp", "--calls", "10", "--concurrency", "4", "--rate", "20/s", "--csv", "rows.csv",
             "--json", "--report-csv", "calls.csv")
    assert r.returncode == 0, (r.stdout, r.stderr)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["type"] == "load.summary" and summary["v"] == 1
    assert set(summary["frames_late"]) == {"ticks", "late", "late_pct", "lag_p99_ms", "lag_max_ms"}
    assert (summary["calls"], summary["passed"], summary["failed"], summary["failure_causes"]) == (10, 10, 0, {})
    for name in ("answer", "L3 wait", "L5 expect", "case"):
        t = summary["timings"][name]
        assert t["n"] == 10 and 0 <= t["p50"] <= t["p95"] <= t["p99"] <= t["max"], (name, t)
    assert summary["timings"]["answer"]["p99"] < 5
    with (tmp_path / "calls.csv").open() as fh:
        table = list(csv.DictReader(fh))
    assert [row["call"] for row in table] == [str(i) for i in range(1, 11)]
    assert [row["DIGITS"] for row in table] == [rows[i % 5][0] for i in range(10)]
    assert all(row["passed"] == "1" and row["failure"] == "" for row in table)
    # the ramp: call i starts no sooner than i / rate; the cap: never more than 4 under way
    spans = [(float(row["start"]), float(row["start"]) + float(row["duration"])) for row in table]
    # (offsets are from the first call's start, which may itself run a little late: 0.1 s of slack)
    assert all(start >= i / 20 - 0.1 for i, (start, _end) in enumerate(spans)), spans
    assert spans[-1][0] >= 9 / 20 - 0.05, spans
    for start, _end in spans:
        assert sum(1 for s, e in spans if s <= start + 1e-3 < e) <= 4, spans


def test_failing_rows_are_counted_by_cause_in_the_table(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "call.sp").write_text(SCRIPT)
    (tmp_path / "rows.csv").write_text("DIGITS,WANT\n1,1\n2,7\n")
    r = load(env, tmp_path, "call.sp", "--calls", "4", "--concurrency", "4", "--rate", "50", "--csv", "rows.csv")
    assert r.returncode == 9, (r.stdout, r.stderr)
    out = r.stdout
    assert "4 calls: 2 passed, 2 failed" in out, out
    assert "failed 2x: L5 expect: expect: wanted DTMF '…' within Ns, received '…'" in out, out
    assert "p50" in out and "p99" in out and "answer" in out


def test_duration_keeps_starting_calls_for_that_long(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "call.sp").write_text(SCRIPT.replace("${DIGITS}", "5").replace("${WANT}", "5"))
    r = load(env, tmp_path, "call.sp", "--duration", "1", "--rate", "5/s", "--concurrency", "3", "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert 3 <= summary["calls"] <= 7 and summary["failed"] == 0, summary


def test_bad_input_is_exit_2_before_dialing(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / "call.sp").write_text(SCRIPT)
    (tmp_path / "rows.csv").write_text("DIGITS\n1\n")
    r = load(env, tmp_path, "call.sp", "--calls", "2", "--csv", "rows.csv")
    assert r.returncode == 2 and "call.sp:5: unknown variable ${WANT}" in r.stderr, r.stderr
    r = load(env, tmp_path, "call.sp", "--rate", "fast")
    assert r.returncode == 2 and "--rate" in r.stderr


def test_on_a_terminal_a_live_view_then_the_tables(tmp_path: Path, env: dict[str, str]) -> None:
    import pty
    import re

    (tmp_path / "call.sp").write_text(SCRIPT.replace("${DIGITS}", "5").replace("${WANT}", "5"))
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "softphone", "load", "call.sp", "--calls", "4", "--concurrency",
                             "2", "--rate", "10", "--local"], stdin=subprocess.DEVNULL, stdout=slave,
                            stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(60) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    assert "softphone load" in text and "setup p50" in text and "4/4" in text, text  # the live view
    assert "timings (s)" in text and "p99" in text and "4 calls: 4 passed, 0 failed" in text, text
