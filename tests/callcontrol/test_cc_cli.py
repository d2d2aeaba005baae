"""``softphone switch serve`` with Call Control, and ``softphone switch pstn-call`` errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from softphone.switch.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_pstn_call_without_a_switch_is_a_network_error() -> None:
    result = CliRunner().invoke(
        app, ["pstn-call", "--from", "+15551230000", "--to", "+13125550150", "--api", "http://127.0.0.1:9"]
    )
    assert result.exit_code == 8, result.output
    assert "cannot reach the switch's commands API" in result.output


def test_serve_starts_call_control_from_the_accounts_file(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "softphone",
            "switch",
            "serve",
            "--accounts",
            str(ROOT / "examples" / "accounts.toml"),
            "--port",
            "0",
            "--api-port",
            "0",
            "--records",
            str(tmp_path / "r.jsonl"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert lines[0].startswith("switch listening on ws://127.0.0.1:"), lines
        assert lines[1].startswith("call control API on http://127.0.0.1:") and "(applications: app)" in lines[1]
        api = lines[1].split()[4].removesuffix("/v2")
        result = CliRunner().invoke(app, ["pstn-call", "--from", "+15551230000", "--to", "+19999999999", "--api", api])
        assert result.exit_code == 1 and "no connection owns" in result.output, result.output
    finally:
        proc.terminate()
        proc.wait(10)
