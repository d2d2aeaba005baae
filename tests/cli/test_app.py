"""The typer app: help, version, usage errors, lazy imports, offline commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from softphone.cli.app import app
from softphone.cli.exitcodes import ExitCode

runner = CliRunner()
HEAVY = ("aiortc", "av", "numpy", "pyaudio", "prompt_toolkit", "websockets")


def test_help_lists_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in ("dial", "answer", "run", "devices", "check", "config", "history", "switch", "demo", "shell"):
        assert name in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("softphone ")


def test_cli_import_stays_light() -> None:
    # `softphone --help` must stay fast: the app module may import typer (and rich) but none of the media,
    # network or terminal-UI stacks. Checked in a fresh interpreter, not timed.
    code = (
        "import sys, softphone.cli.app\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_subprocess_does_not_load_heavy_modules() -> None:
    code = (
        "import sys\nfrom softphone.cli.app import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        f"print('LOADED', [m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED []" in out


@pytest.mark.parametrize(
    "args",
    [
        ["dial"],
        ["dial", "echo", "--header", "no-equals-sign"],
        ["dial", "echo", "--dtmf", "12x"],
        ["dial", "echo", "--wait-answer", "-1"],
        ["answer", "--count", "0"],
        ["nosuchcommand"],
        ["dial", "echo", "--bogus"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == ExitCode.USAGE == 2


def test_exit_code_values_are_stable() -> None:
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0, "ERROR": 1, "USAGE": 2, "BUSY": 3, "REJECTED": 4, "NO_ANSWER": 5, "NOT_FOUND": 6,
        "LOGIN_FAILED": 7, "NETWORK": 8, "SCRIPT_FAILED": 9, "INTERRUPTED": 130,
    }


def test_exit_codes_documented_in_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in ExitCode:
        assert f"| {int(code)} |" in section, code


def test_run_reports_file_and_line(tmp_path: Path) -> None:
    script = tmp_path / "calls.txt"
    script.write_text("# a comment\n\necho hello\nwait call\n")
    result = runner.invoke(app, ["run", str(script)])
    assert result.exit_code == ExitCode.USAGE
    assert f"{script}:4:" in result.output
    script.write_text("echo ok\nfrobnicate now\n")
    result = runner.invoke(app, ["run", str(script)])
    assert result.exit_code == ExitCode.USAGE
    assert f"{script}:2: unknown command 'frobnicate'" in result.output


def test_history_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTPHONE_DATA_DIR", str(tmp_path))
    (tmp_path / "calls.jsonl").write_text(
        json.dumps({"v": 1, "id": "a", "direction": "outbound", "remote": "echo", "started": "2026-01-01T00:00:00",
                    "answered": "x", "duration": 60.0, "cause": "NORMAL_CLEARING", "cost": 0.002}) + "\n"
        + "not json\n"
        + json.dumps({"v": 1, "id": "b", "direction": "inbound", "remote": "alice", "duration": 30.0,
                      "answered": "x", "cost": 0.001}) + "\n"
    )
    result = runner.invoke(app, ["--json", "history"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["totals"] == {"calls": 2, "answered": 2, "duration": 90.0, "cost": 0.003}
    result = runner.invoke(app, ["history"])
    assert result.exit_code == 0
    assert "$0.0030" in result.output


def test_config_path_and_show_redacts(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('default_profile = "me"\n[profiles.me]\nserver = "ws://127.0.0.1:9"\n'
                   'username = "me"\npassword = "hunter2-very-secret"\n')
    cfg.chmod(0o600)
    result = runner.invoke(app, ["--config", str(cfg), "config", "path"])
    assert result.output.strip() == str(cfg)
    result = runner.invoke(app, ["--config", str(cfg), "config", "show"])
    assert result.exit_code == 0, result.output
    assert "hunter2-very-secret" not in result.output
    assert "me" in result.output


def test_help_is_rich_without_markdown_it() -> None:
    # typer.rich_utils imports rich.markdown (markdown-it, pygments) and rich.traceback at module level;
    # softphone.cli.richhelp keeps them out of `--help` (about 75 ms) while the help stays rich-formatted.
    code = (
        "import sys\nfrom softphone.cli.app import main\n"
        "for argv in (['--help'], ['dial', '--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
        "print('LOADED', [m for m in ('markdown_it', 'rich.markdown', 'rich.traceback', 'pygments')"
        " if m in sys.modules], 'typer.rich_utils' in sys.modules)\n"
        "import typer.rich_utils as r, rich.markdown\n"
        "assert type(r.Markdown('# x')) is rich.markdown.Markdown\n"
        "print('REAL', rich.markdown.__file__ is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "COLUMNS": "100"}).stdout
    assert "LOADED [] True" in out
    assert "REAL True" in out
    assert "╭─ Commands" in out and "dial" in out  # rich panels
    assert "--caller-name" in out  # `dial --help` lists its options
