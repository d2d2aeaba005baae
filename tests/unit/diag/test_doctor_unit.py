"""softphone doctor's pure parts: the clock verdicts (Date header skew, JWT iat/exp), the report's worst
verdict, exit code and JSON shape."""

from __future__ import annotations

import base64
import email.utils
import json

import pytest

from softphone.config import Profile
from softphone.diag.doctor import VERDICT_EXIT, DoctorReport
from softphone.diag.probes import Check, ServerFacts, Verdict, clock_checks

NOW = 1_800_000_000.0


def jwt(**claims: float) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(dict(claims))}.c2ln"


def facts(server_minus_local: float) -> ServerFacts:
    return ServerFacts(date=email.utils.formatdate(NOW + server_minus_local, usegmt=True), local_at_date=NOW,
                       rtt_s=0.01)


@pytest.mark.parametrize("offset, verdict", [(0.0, Verdict.OK), (2.0, Verdict.OK), (-1.5, Verdict.OK),
                                             (10.0, Verdict.WARN), (-30.0, Verdict.WARN), (600.0, Verdict.FAIL)])
def test_server_time_skew(offset: float, verdict: Verdict) -> None:
    row = clock_checks(Profile(), facts(offset), now=NOW)[0]
    assert row.verdict == verdict, row
    assert abs(row.data["skew_s"] - offset) <= 1.0
    if verdict != Verdict.OK:
        assert "sync the clock" in row.hint


def test_no_server_time_and_no_token_are_skips() -> None:
    rows = clock_checks(Profile(), ServerFacts(), now=NOW)
    assert [r.verdict for r in rows] == [Verdict.SKIP, Verdict.SKIP]


@pytest.mark.parametrize("claims, verdict, words", [
    ({"iat": NOW - 60, "exp": NOW + 3600}, Verdict.OK, "expires in 3600 s"),
    ({"iat": NOW - 3600, "exp": NOW + 60}, Verdict.WARN, "34001"),
    ({"iat": NOW - 7200, "exp": NOW - 10}, Verdict.FAIL, "expired 10 s ago"),
    ({"iat": NOW + 600, "exp": NOW + 4200}, Verdict.WARN, "in the future"),
])
def test_the_login_token_against_the_local_clock(claims: dict[str, float], verdict: Verdict, words: str) -> None:
    token = jwt(**claims)
    row = clock_checks(Profile(auth="token", token=token), ServerFacts(), now=NOW)[1]
    assert row.verdict == verdict and words in row.detail + row.hint, row
    assert token not in json.dumps(row.as_dict())


def test_the_worst_verdict_decides_the_exit_code_and_the_json_is_stable() -> None:
    ok, skip = Check("a", "x", Verdict.OK, "fine"), Check("a", "y", Verdict.SKIP, "n/a")
    warn, fail = Check("b", "z", Verdict.WARN, "hm", "do this"), Check("c", "w", Verdict.FAIL, "no", "fix it")
    assert DoctorReport("p", "ws://h", (ok, skip)).exit_code == 0
    assert DoctorReport("p", "ws://h", (ok, warn, skip)).exit_code == VERDICT_EXIT[Verdict.WARN] == 10
    report = DoctorReport("p", "ws://h", (ok, fail, warn), ts=NOW)
    assert report.verdict == Verdict.FAIL and report.exit_code == 11
    doc = report.as_dict()
    assert list(doc) == ["v", "type", "ts", "profile", "server", "verdict", "exit_code", "counts", "took_ms",
                         "checks"]
    assert doc["counts"] == {"ok": 1, "skip": 0, "warn": 1, "fail": 1}
    assert doc["checks"][1] == {"group": "c", "name": "w", "verdict": "fail", "detail": "no", "hint": "fix it",
                                "ms": None, "data": {}}
    table = dict(report.rows())
    assert table["c w"] == "FAIL  no  -> fix it" and table["a x"] == "OK    fine"
    assert table["result"].startswith("FAIL: 1 ok, 1 warn, 1 fail")


def test_texts_are_redacted() -> None:
    row = Check("server", "login", Verdict.FAIL, 'refused: {"passwd": "hunter2-secret"}')
    assert "hunter2-secret" not in json.dumps(row.as_dict())
