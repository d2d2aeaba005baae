"""The webhook-signing public key as the CLI shows it: ``softphone switch serve`` prints it at start
and ``softphone switch accounts`` prints the same one (the key in the accounts' data directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from softphone.switch.callcontrol.webhooks import KEY_FILE, SigningKey
from softphone.switch.cli import app

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "webhook public key (ed25519, base64): "


def accounts_file(tmp_path: Path) -> tuple[Path, Path]:
    data = tmp_path / "data"
    text = (ROOT / "examples" / "accounts.toml").read_text()
    text = text.replace("[call_control]\n", f'[call_control]\ndata_dir = "{data}"\n', 1)
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return path, data


def test_accounts_prints_the_signing_public_key(tmp_path: Path) -> None:
    path, data = accounts_file(tmp_path)
    res = CliRunner().invoke(app, ["accounts", "--accounts", str(path)])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith(PREFIX))
    key = SigningKey.load_or_create(data)
    assert line.split()[5] == key.public_key_b64 and str(data / KEY_FILE) in line
    assert "PRIVATE" not in res.output
    again = CliRunner().invoke(app, ["accounts", "--accounts", str(path)])
    assert line in again.output  # generated once
    res = CliRunner().invoke(app, ["accounts", "--accounts", str(path), "--json"])
    assert PREFIX not in res.output  # --json stays one JSON document


def test_serve_prints_the_signing_public_key(tmp_path: Path) -> None:
    path, data = accounts_file(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "softphone", "switch", "serve", "--accounts", str(path), "--port", "0",
           "--api-port", "0", "--records", str(tmp_path / "r.jsonl")]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[1].startswith("call control API on"), lines
        assert lines[2].startswith(PREFIX), lines
        assert lines[2].strip().removeprefix(PREFIX) == SigningKey.load_or_create(data).public_key_b64
    finally:
        proc.terminate()
        proc.wait(10)
