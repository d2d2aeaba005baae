"""`softphone dial --help` (and the other help screens) import neither pydantic nor aiortc.

Each case runs the CLI entry point in a fresh interpreter (a subprocess: the test process has long
imported both) and lists the heavy packages in ``sys.modules`` once the help is printed. typer 0.29
coerces option values through pydantic adapters; the app callback's options are processed before a
subcommand's ``--help``, so without softphone.cli.richhelp.defer_trivial_coercion ``dial --help``
imports pydantic (about half its time). bench/startup.py measures the times; nothing here is timed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("pydantic", "pydantic_core", "aiortc", "av", "numpy", "prompt_toolkit", "websockets")

PROBE = """
import json, sys
from softphone.cli.app import main
try:
    main(sys.argv[2:])
except SystemExit as exc:
    code = exc.code
else:
    code = 0
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(json.loads(sys.argv[1])))
print("\\n" + json.dumps({"code": code, "heavy": heavy}))
"""


def run_probe(args: list[str], tmp_path: Path,
              extra_env: dict[str, str] | None = None) -> tuple[str, dict[str, object]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    env.update(SOFTPHONE_DATA_DIR=str(tmp_path / "data"), COLUMNS="100", **(extra_env or {}))
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY), *args], capture_output=True, text=True,
                         env=env, cwd=tmp_path, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    text, _, last = out.stdout.rstrip().rpartition("\n")
    return text, json.loads(last)


@pytest.mark.parametrize("args", [["dial", "--help"], ["dial", "-h"], ["--help"], ["answer", "--help"],
                                  ["load", "--help"], ["-v", "-p", "x", "dial", "--help"]])
def test_help_imports_no_heavy_package(args: list[str], tmp_path: Path) -> None:
    text, result = run_probe(args, tmp_path)
    assert result == {"code": 0, "heavy": []}
    assert "Usage: softphone" in text


def test_dial_help_with_options_from_the_environment(tmp_path: Path) -> None:
    # SOFTPHONE_CONFIG is text for a Path option: it still goes through typer's own coercion.
    text, result = run_probe(["dial", "--help"], tmp_path,
                             {"SOFTPHONE_CONFIG": str(tmp_path / "c.toml"), "SOFTPHONE_PROFILE": "p"})
    assert result["code"] == 0
    assert "--wait-answer" in text
