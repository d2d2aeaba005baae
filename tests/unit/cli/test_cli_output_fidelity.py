"""Issue 9 item 17: what the CLI prints is whole (no cut codec, no raw floats, no value placeholder on flags)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from softphone.switch.records import CallRecord, render_records


def test_switch_calls_shows_the_whole_codec() -> None:
    rec = CallRecord("c1", "a", "inbound", "s1", "demo", "demo", "echo", start=1000.0, answer=1001.0, end=1003.0)
    rec.cause, rec.codec = "NORMAL_CLEARING", "opus/48000/2"
    table = render_records([rec])
    assert "opus/48000/2" in table
    header, _, row = table.splitlines()[:3]
    # the columns still line up: the cost column ends where its header ends
    assert len(row) == len(header)


def test_flags_show_no_bool_or_int_placeholder(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from softphone.cli.app import main

    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("NO_COLOR", "1")
    for args in (["--help"], ["dial", "--help"], ["switch", "-h"], ["switch", "calls", "-h"]):
        with pytest.raises(SystemExit) as done:
            main(args)
        out = capsys.readouterr().out
        assert done.value.code == 0, (args, out)
        assert "Usage:" in out
        assert "<bool>" not in out and not re.search(r"--verbose\s+-v\s+<int>", out), (args, out)
        if args[0] == "dial":
            assert "<float range>" in out  # options that take a value keep their type


def test_verbose_lines_show_rounded_numbers() -> None:
    from softphone.app.snapshot import PhoneEvent
    from softphone.cli.display import _plain

    stats = PhoneEvent("call.stats", 0.0, "c" * 12, {
        "codec": "opus", "rtt_ms": 1.25, "jitter_ms": 2.6666666666666665, "loss_pct": 0.0, "mos": 4.41234,
        "input_level": 0.123456, "output_level": None, "cost": 2.6e-05,
    })
    line = _plain(stats) or ""
    assert "jitter=2.7ms" in line and "cost=$0.000026" in line and "mos=4.41" in line and "out=-" in line, line
    assert "2.666" not in line and "e-05" not in line, line
    other = _plain(PhoneEvent("socket.close", 0.0, None, {"code": 1000, "after": 0.30000000000000004})) or ""
    assert "after=0.3" in other and "code=1000" in other, other


def test_history_piped_keeps_every_column_whole(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from typer.testing import CliRunner

    from softphone.cli.app import app

    monkeypatch.setenv("SOFTPHONE_DATA_DIR", str(tmp_path))
    remote = "sip:a-rather-long-user-name@sip.example.invalid"
    (tmp_path / "calls.jsonl").write_text(json.dumps({
        "v": 1, "id": "a", "direction": "outbound", "remote": remote, "started": "2026-01-01T00:00:00",
        "answered": "x", "duration": 61.0, "cause": "NORMAL_CLEARING", "codec": "opus/48000/2", "mos": 4.4,
        "cost": 0.002033,
    }) + "\n")
    result = CliRunner().invoke(app, ["history"], env={"COLUMNS": "80"})  # CliRunner's stdout is not a TTY
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split("\t") == ["started", "dir", "remote", "duration", "cause", "codec", "MOS", "cost"]
    assert lines[1].split("\t") == ["2026-01-01 00:00:00", "outbound", remote, "61.0s", "NORMAL_CLEARING",
                                    "opus/48000/2", "4.40", "$0.0020"]
    assert lines[2].split("\t")[0] == "total" and "…" not in result.output
