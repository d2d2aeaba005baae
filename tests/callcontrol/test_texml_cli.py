"""``softphone switch serve`` with a TeXML-only connection from an accounts file, called by ``pstn-call``."""

from __future__ import annotations

import os
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from softphone.media.dsp import dominant_frequency
from softphone.switch.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("table", "listed"),
    [
        ('texml_voice_url = "ivr.xml"\n', "ivr"),
        ('[[connection.texml_number]]\nnumber = "+13125550160"\ntexml_voice_url = "ivr.xml"\n', "ivr-13125550160"),
    ],
)
def test_serve_runs_a_texml_bin_named_in_the_accounts_file(tmp_path: Path, table: str, listed: str) -> None:
    (tmp_path / "ivr.xml").write_text("<Response><Play>tone:700:1500</Play><Hangup/></Response>")
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f"""
jwt_secret = "texml-cli-test"

[call_control]
data_dir = "{tmp_path / 'data'}"

[[connection]]
id = "ivr"
password = "ivr-secret"
numbers = ["+13125550160"]
"""
        + table
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "softphone", "switch", "serve", "--accounts", str(accounts), "--port", "0",
           "--api-port", "0", "--records", str(tmp_path / "r.jsonl")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("switch listening on ws://127.0.0.1:"), lines
        # a connection with only a TeXML application still starts Call Control
        assert lines[1].startswith("call control API on http://127.0.0.1:") and f"(applications: {listed})" in lines[1]
        api = lines[1].split()[4].removesuffix("/v2")
        heard = tmp_path / "heard.wav"
        result = CliRunner().invoke(
            app, ["pstn-call", "--from", "+15551230000", "--to", "+13125550160", "--api", api, "--record", str(heard)]
        )
        assert result.exit_code == 0, result.output
        assert "normal_clearing" in result.output
        with wave.open(str(heard)) as w:
            samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
            rate = w.getframerate()
        assert abs(dominant_frequency(samples, rate) - 700) < 15
    finally:
        proc.terminate()
        proc.wait(10)


def test_serve_refuses_a_texml_bin_that_does_not_exist(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[[connection]]\nid = "ivr"\npassword = "x"\ntexml_voice_url = "gone.xml"\n')
    result = CliRunner().invoke(app, ["serve", "--accounts", str(accounts), "--port", "0"])
    assert result.exit_code == 2
    assert "connection ivr: texml_voice_url: no such file" in result.output
