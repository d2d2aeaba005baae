"""Real `softphone` subprocesses against a running local switch: every exit code, NDJSON, secrets, demo."""

from __future__ import annotations

import json
from pathlib import Path

import cliutil
import jsonschema
import pytest
from cliutil import PASSWORD, sp

from softphone.app.events_json import load_schema
from softphone.cli.exitcodes import ExitCode

pytestmark = pytest.mark.e2e
switch_port, token, env = cliutil.switch_port, cliutil.token, cliutil.env  # fixtures


@pytest.mark.parametrize(
    "args, code",
    [
        (["dial", "echo", "--duration", "1"], ExitCode.OK),
        (["dial", "busy"], ExitCode.BUSY),
        (["dial", "reject"], ExitCode.REJECTED),
        (["dial", "noanswer", "--wait-answer", "2"], ExitCode.NO_ANSWER),
        (["dial", "nobody-here-404"], ExitCode.NOT_FOUND),
        (["-p", "bad", "dial", "echo"], ExitCode.LOGIN_FAILED),
        (["-p", "closed", "dial", "echo"], ExitCode.NETWORK),
        (["-p", "bad", "check"], ExitCode.LOGIN_FAILED),
        (["-p", "closed", "check"], ExitCode.NETWORK),
        (["-p", "nosuchprofile", "dial", "echo"], ExitCode.USAGE),
    ],
)
def test_exit_codes(env: dict[str, str], args: list[str], code: ExitCode) -> None:
    r = sp(env, *args)
    assert r.returncode == code, (r.stdout, r.stderr)


def test_dial_summary_and_history(env: dict[str, str]) -> None:
    r = sp(env, "dial", "echo", "--duration", "1.5", "--dtmf", "12", "--dtmf-delay", "0.2", "-H", "X-Ticket=42")
    assert r.returncode == 0, r.stderr
    assert "summary" in r.stdout and "NORMAL_CLEARING" in r.stdout and "at $0.002/min" in r.stdout
    assert "opus" in r.stdout.lower()
    h = sp(env, "--json", "history")
    data = json.loads(h.stdout)
    assert data["totals"]["calls"] == 1 and data["calls"][0]["remote"] == "echo"
    assert data["calls"][0]["duration"] >= 1.0


def test_check_prints_gateway(env: dict[str, str]) -> None:
    r = sp(env, "check")
    assert r.returncode == 0, r.stderr
    assert "REGED" in r.stdout and "demo" in r.stdout


def test_json_stream_validates(env: dict[str, str]) -> None:
    r = sp(env, "--json", "dial", "dtmf", "--duration", "2.5", "--dtmf", "12#", "--dtmf-delay", "0.3")
    assert r.returncode == 0, r.stderr
    validator = jsonschema.Draft202012Validator(load_schema())
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert objs, r.stderr
    for obj in objs:
        validator.validate(obj)
    types = [o["type"] for o in objs]
    for want in ("socket.open", "client.ready", "call.created", "call.active", "call.stats", "call.hangup",
                 "summary"):
        assert want in types, want
    assert types[-1] == "summary" and objs[-1]["exit_code"] == 0
    assert any(o["type"] == "call.dtmf" for o in objs)
    stats = [o for o in objs if o["type"] == "call.stats"]
    assert len(stats) >= 1 and stats[0]["codec"]


def test_script_file(env: dict[str, str], tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("# call the DTMF echo service\ndial dtmf\nwait call active 10\ndtmf 42\n"
                    "expect dtmf 42 5\necho all good\nhangup\nwait call hangup 5\n")
    r = sp(env, "run", str(good))
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "all good" in r.stdout
    bad = tmp_path / "bad.txt"
    bad.write_text("dial echo\nwait call active 10\nexpect dtmf 9 1\necho not reached\n")
    r = sp(env, "run", str(bad))
    assert r.returncode == ExitCode.SCRIPT_FAILED
    assert f"{bad}:3:" in r.stderr and "not reached" not in r.stdout
    r = sp(env, "run", "--keep-going", str(bad))
    assert r.returncode == ExitCode.SCRIPT_FAILED and "not reached" in r.stdout
    busy = tmp_path / "busy.txt"
    busy.write_text("dial busy\nwait call active 5\n")
    r = sp(env, "run", str(busy))
    assert r.returncode == ExitCode.SCRIPT_FAILED and f"{busy}:2:" in r.stderr


def test_demo(env: dict[str, str]) -> None:
    r = sp(env, "demo", "--duration", "4", timeout=90)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "DTMF received back: 123#" in r.stdout
    assert "summary" in r.stdout


def test_no_secret_anywhere(env: dict[str, str], token: str, tmp_path: Path) -> None:
    outputs: list[str] = []
    for args in (["-vv", "check"], ["-vv", "--json", "dial", "echo", "--duration", "1"],
                 ["-p", "tok", "-vv", "--json", "dial", "echo", "--duration", "1"], ["-p", "tok", "-vv", "check"],
                 ["-p", "bad", "-vv", "check"], ["config", "show"], ["-p", "tok", "config", "show"],
                 ["--json", "-p", "tok", "config", "show"]):
        r = sp(env, *args)
        outputs += [r.stdout, r.stderr]
    script = tmp_path / "login.txt"
    script.write_text(f"login demo {PASSWORD}\nlogin {token}\nstatus\n")
    r = sp(env, "-vv", "--json", "run", str(script))
    assert r.returncode == 0, r.stderr
    outputs += [r.stdout, r.stderr]
    data = Path(env["SOFTPHONE_DATA_DIR"])
    outputs += [p.read_text() for p in data.rglob("*") if p.is_file()]  # the diag/ runs (softphone bundle) too
    blob = "\n".join(outputs)
    assert "REGED" in blob  # the runs did log in
    assert PASSWORD not in blob
    assert "wrong-password-123" not in blob
    assert token not in blob and token.split(".")[2] not in blob
