"""Issue 9/10 regressions seen from the command line: real `softphone` subprocesses against a running switch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cliutil import sp

from softphone.cli.exitcodes import ExitCode
from softphone.switch.accounts import ALICE_PASSWORD

pytestmark = pytest.mark.e2e


def test_script_dtmf_hash_is_sent_and_expected(env: dict[str, str], tmp_path: Path) -> None:
    """`dtmf 123#` sends four digits and `expect dtmf 123#` waits for all four (`#` is no comment there)."""
    script = tmp_path / "ivr.txt"
    script.write_text("dial dtmf\nwait call active 10\ndtmf 123#   # the terminator\nexpect dtmf 123# 5\nhangup\n")
    r = sp(env, "--json", "run", str(script))
    assert r.returncode == 0, (r.stdout, r.stderr)
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    sent = [o for o in objs if o["type"] == "script.line" and o["command"].startswith("dtmf")]
    assert sent and sent[0]["command"] == "dtmf 123#"
    received = "".join(o["digits"] for o in objs if o["type"] == "call.dtmf")
    assert received == "123#", received


def test_script_expect_fails_when_the_hash_is_missing(env: dict[str, str], tmp_path: Path) -> None:
    script = tmp_path / "short.txt"
    script.write_text("dial dtmf\nwait call active 10\ndtmf 123\nexpect dtmf 123# 3\n")
    r = sp(env, "run", str(script))
    assert r.returncode == ExitCode.SCRIPT_FAILED, (r.stdout, r.stderr)
    assert f"{script}:4:" in r.stderr and "123#" in r.stderr


@pytest.mark.parametrize("line, message", [
    ("wait call actve 3", "call state must be one of"),
    ("dtmf 12X", "invalid digit"),
])
def test_script_bad_lines_fail_before_connecting(env: dict[str, str], tmp_path: Path, line: str,
                                                 message: str) -> None:
    # Profile `closed` points at a port nobody listens on: connecting first would give exit 8, not 2.
    script = tmp_path / "bad.txt"
    script.write_text(f"dial echo\nwait call active 5\n{line}\n")
    r = sp(env, "-p", "closed", "run", str(script))
    assert r.returncode == ExitCode.USAGE, (r.stdout, r.stderr)
    assert f"{script}:3: " in r.stderr and message in r.stderr


def test_script_login_line_is_redacted(env: dict[str, str], tmp_path: Path) -> None:
    """A password that is not in the profile never shows in the echoed line, plain or JSON."""
    script = tmp_path / "login.txt"
    script.write_text(f"login alice {ALICE_PASSWORD}\nstatus\n")
    outputs = []
    for args in (["--json", "run"], ["run"], ["-vv", "run"]):
        r = sp(env, *args, str(script))
        assert r.returncode == 0, (r.stdout, r.stderr)
        outputs += [r.stdout, r.stderr]
    blob = "\n".join(outputs)
    assert "login alice ***" in blob
    assert ALICE_PASSWORD not in blob
