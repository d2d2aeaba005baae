"""softphone.config's secret commands (password_cmd, token_cmd): they run real subprocesses, so they
live here and not in tests/unit (the rest of the config tests are in tests/unit/test_config.py)."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from softphone import config as cfg
from softphone.config import load_config
from softphone.errors import ConfigError
from softphone.log import clear_secrets, redact

PY = shlex.quote(sys.executable)


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    clear_secrets()
    yield
    clear_secrets()


def write(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def error(tmp_path: Path, text: str, profile: str | None = None, env: dict[str, str] | None = None) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, profile, env or {})
    assert info.value.path == str(path)
    return info.value


def cmd(code: str) -> str:
    return f"{PY} -c {shlex.quote(code)}"


def q(text: str) -> str:
    """A TOML basic string (JSON escapes are valid TOML)."""
    return json.dumps(text)


def test_password_cmd(tmp_path: Path) -> None:
    command = cmd("print('s3cret'); print('url: x')")
    path = write(tmp_path, f'[profiles.w]\nusername = "u"\npassword_cmd = {q(command)}\n')
    profile = load_config(path, "w", {})
    assert profile.password == "s3cret" and profile.auth == "sip"
    assert "s3cret" not in redact("pw s3cret")


def test_token_cmd_runs_only_when_needed(tmp_path: Path) -> None:
    good = cmd("print('  jwt-from-cmd  ')")
    text = f"[profiles.t]\ntoken_cmd = {q(good)}\n[profiles.s]\nauth = 'sip'\ntoken_cmd = 'false'\n"
    path = write(tmp_path, text)
    assert load_config(path, "t", {}).token == "jwt-from-cmd"
    assert load_config(path, "s", {}).token == ""  # sip auth: the failing command is not run


@pytest.mark.parametrize(
    ("command", "fragment"),
    [
        (cmd("import sys; print('s3cret'); sys.stderr.write('oops s3cret\\n'); sys.exit(3)"), "status 3: oops ***"),
        (cmd("import sys; print('s3cret'); sys.exit(1)"), "exited with status 1"),
        (cmd("print('   ')"), "printed nothing"),
        ("/nonexistent/secret-tool get", "cannot run '/nonexistent/secret-tool'"),
        ("pass 'unbalanced", "cannot parse command"),
        ("   ", "empty command"),
    ],
)
def test_secret_cmd_failures(tmp_path: Path, command: str, fragment: str) -> None:
    exc = error(tmp_path, f"[profiles.w]\npassword_cmd = {q(command)}\n", "w")
    assert exc.key == "profiles.w.password_cmd"
    assert fragment in str(exc)
    assert "s3cret" not in str(exc)


def test_secret_cmd_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cfg, "SECRET_CMD_TIMEOUT", 0.2)
    exc = error(tmp_path, f"[profiles.w]\ntoken_cmd = {q(cmd('import time; time.sleep(5)'))}\n", "w")
    assert exc.key == "profiles.w.token_cmd" and "timed out after 0.2 s" in str(exc)
