"""calls.jsonl is private to the user (issue 9 item 17)."""

from __future__ import annotations

import stat
from pathlib import Path

from softphone.app.history import CallHistory


def test_history_file_is_created_0600(tmp_path: Path) -> None:
    h = CallHistory(tmp_path / "data" / "calls.jsonl")
    h.append({"id": "x", "remote": "echo"})
    assert stat.S_IMODE(h.path.stat().st_mode) == 0o600
    assert h.records()[0]["remote"] == "echo"


def test_an_old_world_readable_history_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "calls.jsonl"
    path.write_text("")
    path.chmod(0o644)
    CallHistory(path).append({"id": "y"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
