"""Issue 9/10 regressions seen from the command line: real `softphone` subprocesses against a running switch."""

from __future__ import annotations

import json
from pathlib import Path

import cliutil
import pytest
from cliutil import sp

from softphone.cli.exitcodes import ExitCode
from softphone.switch.accounts import ALICE_PASSWORD

pytestmark = pytest.mark.e2e
switch_port, token, env = cliutil.switch_port, cliutil.token, cliutil.env  # fixtures


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


def test_run_ends_with_a_summary_of_its_calls(env: dict[str, str], tmp_path: Path) -> None:
    """`run` closes like the one-shots: a `summary` event (--json) with every call, and the outcome line."""
    script = tmp_path / "two.txt"
    script.write_text("dial echo\nwait call active 10\nsleep 1.2\nhangup\ndial dtmf\nwait call active 10\nhangup\n")
    r = sp(env, "--json", "run", str(script))
    assert r.returncode == 0, (r.stdout, r.stderr)
    last = json.loads(r.stdout.splitlines()[-1])
    assert last["type"] == "summary" and last["exit_code"] == 0 and last["outcome"] == "ok", last
    assert [c["remote"] for c in last["calls"]] == ["echo", "dtmf"], last
    assert last["calls"][0]["duration"] >= 1.0 and last["calls"][0]["cost"] > 0, last
    failing = tmp_path / "fail.txt"
    failing.write_text("dial echo\nwait call active 10\nexpect dtmf 9 1\n")
    r = sp(env, "run", str(failing))
    assert r.returncode == ExitCode.SCRIPT_FAILED, (r.stdout, r.stderr)
    assert "outcome: script failed (exit" in r.stdout + r.stderr, (r.stdout, r.stderr)


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


def _summary(stdout: str) -> dict[str, object]:
    last = json.loads(stdout.splitlines()[-1])
    assert last["type"] == "summary", last
    return dict(last)


def _profile_env(env: dict[str, str], tmp_path: Path, body: str) -> dict[str, str]:
    cfg = tmp_path / "own.toml"
    cfg.write_text(body)
    cfg.chmod(0o600)
    return {**env, "SOFTPHONE_CONFIG": str(cfg)}


def test_duration_counts_from_the_answer_not_from_the_dtmf(env: dict[str, str]) -> None:
    r = sp(env, "--json", "dial", "echo", "--duration", "2", "--dtmf", "12", "--dtmf-delay", "1.5")
    assert r.returncode == 0, r.stderr
    call = _summary(r.stdout)["calls"][0]  # type: ignore[index]
    assert 1.8 <= call["duration"] <= 2.6, call
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert any(o["type"] == "call.dtmf_sent" for o in objs)


def test_local_keeps_the_profile_except_server_and_credentials(env: dict[str, str], tmp_path: Path) -> None:
    own = _profile_env(env, tmp_path, '[profiles.default]\nserver = "wss://nowhere.invalid"\nusername = "x"\n'
                                      'password = "not-used-pw"\ncodecs = ["PCMU"]\naudio_backend = "null"\n'
                                      'caller_id_name = "Local Tester"\n')
    r = sp(own, "--json", "dial", "echo", "--local", "--duration", "1")
    assert r.returncode == 0, r.stderr
    call = _summary(r.stdout)["calls"][0]  # type: ignore[index]
    assert str(call["codec"]).upper().startswith("PCMU"), call


@pytest.mark.parametrize("args, message", [
    (["--input", "no-such-mic"], "--input 'no-such-mic': no audio input device matches"),
    (["--output", "99"], "--output '99': no audio output device with index 99"),
    (["--record", "/nonexistent-dir/r.wav"], "directory /nonexistent-dir does not exist"),
    (["--record", "/"], "is a directory"),
])
def test_devices_and_paths_are_checked_before_dialling(env: dict[str, str], tmp_path: Path, switch_port: int,
                                                       args: list[str], message: str) -> None:
    own = _profile_env(env, tmp_path, f'[profiles.default]\nserver = "ws://127.0.0.1:{switch_port}"\n'
                                      'username = "demo"\npassword = "demo-secret"\n')
    r = sp(own, "dial", "busy", *args)
    assert r.returncode == ExitCode.USAGE, (r.stdout, r.stderr)
    assert message in r.stderr
    assert "USER_BUSY" not in r.stdout + r.stderr  # nothing was dialled
    assert not (Path(own["SOFTPHONE_DATA_DIR"]) / "calls.jsonl").exists()


def test_bad_input_device_without_any_sound_system(env: dict[str, str], tmp_path: Path, switch_port: int) -> None:
    own = _profile_env(env, tmp_path, f'[profiles.default]\nserver = "ws://127.0.0.1:{switch_port}"\n'
                                      'username = "demo"\npassword = "demo-secret"\n')
    own["PULSE_SERVER"] = f"unix:{tmp_path}/no-pulse-here"
    r = sp(own, "dial", "echo", "--input", "usb-headset", "--duration", "1")
    assert r.returncode == ExitCode.USAGE, (r.stdout, r.stderr)
    assert "--input 'usb-headset'" in r.stderr and "no audio input device" in r.stderr


def test_login_failure_ends_the_json_stream_with_a_summary(env: dict[str, str]) -> None:
    r = sp(env, "-p", "bad", "--json", "dial", "echo")
    assert r.returncode == ExitCode.LOGIN_FAILED
    s = _summary(r.stdout)
    assert s["exit_code"] == ExitCode.LOGIN_FAILED and s["outcome"] == "login_failed" and s["calls"] == []


@pytest.mark.parametrize("args", [["devices", "--json"], ["history", "--json"], ["--json", "devices"],
                                  ["--json", "history"]])
def test_json_after_the_command_works_too(env: dict[str, str], args: list[str]) -> None:
    r = sp(env, *args)
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout)
