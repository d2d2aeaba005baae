"""`softphone bundle` end to end: real calls (a password login, a JWT login, a password typed in a command
file) leave their diagnostics behind; the bundle holds the call's events, stats, SDPs, the run's debug log,
the environment, the doctor's report and (when asked) the recording; no file in it, the log and the SDPs
included, holds any password, token or API key used."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import cliutil
import pytest
from cliutil import PASSWORD, sp

from softphone.cli.exitcodes import ExitCode
from softphone.switch.accounts import ALICE_PASSWORD

pytestmark = pytest.mark.e2e
switch_port, token = cliutil.switch_port, cliutil.token  # fixtures

API_KEY = "KEYbundle0test0c4f2a9e1b7d"


@pytest.fixture
def benv(tmp_path: Path, switch_port: int, token: str) -> dict[str, str]:
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        'default_profile = "pw"\n'
        f'[profiles.pw]\nserver = "ws://127.0.0.1:{switch_port}"\nusername = "demo"\npassword = "{PASSWORD}"\n'
        f'api_key = "{API_KEY}"\naudio_backend = "null"\nice_servers = []\n'
        f'[profiles.tok]\nserver = "ws://127.0.0.1:{switch_port}"\nauth = "token"\ntoken = "{token}"\n'
        f'api_key = "{API_KEY}"\naudio_backend = "null"\nice_servers = []\n')
    cfg.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    env.update(SOFTPHONE_CONFIG=str(cfg), SOFTPHONE_DATA_DIR=str(tmp_path / "data"), COLUMNS="120")
    return env


def _zip_texts(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _no_secrets(files: dict[str, bytes], secrets: list[str]) -> None:
    for name, data in files.items():
        for secret in secrets:
            assert secret.encode() not in data, (name, secret[:6])
            assert secret[8:40].encode() not in data or len(secret) < 40, (name, "a piece of a token")


@pytest.mark.timeout(240)
def test_bundles_of_real_calls_hold_the_material_and_no_secret(benv: dict[str, str], tmp_path: Path,
                                                                token: str) -> None:
    rec = tmp_path / "call.wav"
    r = sp(benv, "dial", "echo", "--duration", "2", "--no-audio", "--record", str(rec))
    assert r.returncode == 0, (r.stdout, r.stderr)
    pw_call = json.loads((tmp_path / "data" / "calls.jsonl").read_text().splitlines()[-1])["id"]
    script = tmp_path / "login.txt"
    script.write_text(f"login alice {ALICE_PASSWORD}\ndial echo\nwait call active 10\nsleep 1.2\nhangup\n")
    r = sp(benv, "run", str(script))
    assert r.returncode == 0, (r.stdout, r.stderr)
    r = sp(benv, "-p", "tok", "dial", "echo", "--duration", "2", "--no-audio")
    assert r.returncode == 0, (r.stdout, r.stderr)
    tok_call = json.loads((tmp_path / "data" / "calls.jsonl").read_text().splitlines()[-1])["id"]
    secrets = [PASSWORD, ALICE_PASSWORD, token, API_KEY]

    last = tmp_path / "last.zip"
    r = sp(benv, "--json", "bundle", "-o", str(last), timeout=90)
    assert r.returncode == 0, (r.stdout, r.stderr)
    made = json.loads(r.stdout)
    assert made["type"] == "bundle" and made["call_id"] == tok_call and made["path"] == str(last)
    files = _zip_texts(last)
    assert set(made["files"]) == set(files)
    assert {"README.txt", "call/call.json", "call/events.jsonl", "call/stats.jsonl", "call/local.sdp",
            "call/remote.sdp", "run/run.json", "run/debug.log", "environment.json", "doctor.json"} <= set(files)
    events = [json.loads(line) for line in files["call/events.jsonl"].decode().splitlines()]
    assert {"call.active", "call.hangup"} <= {e["type"] for e in events}
    assert all(e["call_id"] == tok_call for e in events)
    stats = [json.loads(line) for line in files["call/stats.jsonl"].decode().splitlines()]
    assert stats and all(s["type"] == "call.stats" for s in stats)
    assert files["call/local.sdp"].startswith(b"v=0") and b"m=audio" in files["call/remote.sdp"]
    log = files["run/debug.log"].decode()
    assert " DEBUG " in log and "-> " in log, log[:500]  # at -vv level though the run had no -v
    assert json.loads(files["call/call.json"])["id"] == tok_call
    assert json.loads(files["doctor.json"])["type"] == "doctor"
    assert "recording/" not in " ".join(files)
    _no_secrets(files, secrets)

    # The password call by id prefix, with its recording; and the command-file call with its typed password.
    r = sp(benv, "bundle", pw_call[:8], "--with-recording", "-o", str(tmp_path / "pw.zip"), timeout=90)
    assert r.returncode == 0, (r.stdout, r.stderr)
    files = _zip_texts(tmp_path / "pw.zip")
    assert files["recording/call.wav"][:4] == b"RIFF" and len(files["recording/call.wav"]) > 10000
    assert json.loads(files["call/call.json"])["id"] == pw_call
    _no_secrets(files, secrets)
    script_call = json.loads((tmp_path / "data" / "calls.jsonl").read_text().splitlines()[-2])["id"]
    r = sp(benv, "bundle", script_call, "--no-doctor", "-o", str(tmp_path / "script.zip"), timeout=90)
    assert r.returncode == 0, (r.stdout, r.stderr)
    files = _zip_texts(tmp_path / "script.zip")
    assert "doctor.json" not in files and json.loads(files["call/call.json"])["id"] == script_call
    _no_secrets(files, secrets)

    # A profile whose password_cmd fails: the bundle is made all the same, without the doctor.
    bad = tmp_path / "bad.toml"
    bad.write_text('default_profile = "x"\n[profiles.x]\nusername = "u"\npassword_cmd = "false"\n')
    bad.chmod(0o600)
    r = sp(dict(benv, SOFTPHONE_CONFIG=str(bad)), "bundle", "-o", str(tmp_path / "nodoc.zip"), timeout=90)
    assert r.returncode == 0 and "no doctor" in r.stderr, (r.stdout, r.stderr)
    assert "doctor.json" not in _zip_texts(tmp_path / "nodoc.zip")

    # No recording asked for at the call: --with-recording says so (exit 2); an unknown call likewise.
    r = sp(benv, "bundle", tok_call[:8], "--with-recording", "-o", str(tmp_path / "x.zip"))
    assert r.returncode == ExitCode.USAGE and "no recording" in r.stderr, (r.stdout, r.stderr)
    r = sp(benv, "bundle", "ffffffffff")
    assert r.returncode == ExitCode.USAGE and "no recorded call" in r.stderr, (r.stdout, r.stderr)


def test_recording_can_be_turned_off(benv: dict[str, str], tmp_path: Path) -> None:
    r = sp(dict(benv, SOFTPHONE_DIAG="0"), "dial", "echo", "--duration", "1", "--no-audio")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert not (tmp_path / "data" / "diag").exists()
    r = sp(benv, "bundle")
    assert r.returncode == ExitCode.USAGE and "no recorded calls" in r.stderr
