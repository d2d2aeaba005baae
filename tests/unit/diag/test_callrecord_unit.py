"""The per-call diagnostics recorder and the bundle's call lookup, without sockets: events and stats per
call, SDPs taken from logged frames, the debug log whatever the console level, retention, 'last'/prefix."""

from __future__ import annotations

import io
import json
import logging
import os
import time
from pathlib import Path

import pytest

from softphone.app.callrecord import CallRecorder, prune
from softphone.app.phone import Phone
from softphone.config import Profile
from softphone.diag.bundle import find_call
from softphone.errors import CommandError
from softphone.log import RedactingFilter, register_secret

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"


def test_a_run_leaves_its_material_behind(tmp_path: Path) -> None:
    register_secret("pass-unit-7c1d")
    console = io.StringIO()
    handler = logging.StreamHandler(console)
    handler.addFilter(RedactingFilter())
    root, log = logging.getLogger(), logging.getLogger("softphone")
    root.addHandler(handler)
    old_level = log.level
    log.setLevel(logging.WARNING)
    phone = Phone(Profile(name="t", record_file=str(tmp_path / "r.wav")))
    try:
        with CallRecorder(phone, tmp_path / "diag", argv=["dial", "x", "--password", "pass-unit-7c1d"], env={}) as rec:
            phone.emit("client.ready")
            phone.emit("call.stats", "c1", mos=4.4)
            phone.emit("call.stats", "c1", mos=4.3)
            frame = {"jsonrpc": "2.0", "id": 1, "method": "verto.invite",
                     "params": {"sdp": SDP, "dialogParams": {"callID": "c1"}}}
            logging.getLogger("softphone.client.client").debug("-> %s", json.dumps(frame))
            logging.getLogger("softphone.client.client").debug("<- %s", json.dumps(
                {"method": "verto.answer", "params": {"callID": "c1", "sdp": SDP.replace("1 1", "2 2")}}))
            logging.getLogger("softphone.x").debug("a debug line with passwd=pass-unit-7c1d")
            phone.emit("call.hangup", "c1", cause="NORMAL_CLEARING")
            run = rec.dir
        assert log.level == logging.WARNING and handler.level == logging.NOTSET  # restored
    finally:
        root.removeHandler(handler)
        log.setLevel(old_level)
    assert "a debug line" not in console.getvalue()  # the console kept its level
    call = run / "calls" / "c1"
    events = [json.loads(x) for x in (call / "events.jsonl").read_text().splitlines()]
    assert [e["type"] for e in events] == ["call.stats", "call.stats", "call.hangup"]
    assert len((call / "stats.jsonl").read_text().splitlines()) == 2
    assert (call / "local.sdp").read_bytes().decode() == SDP and "2 2" in (call / "remote.sdp").read_text()
    assert json.loads((call / "call.json").read_text())["recording"] == str(tmp_path / "r.wav")
    assert json.loads((run / "events.jsonl").read_text())["type"] == "client.ready"
    text = (run / "debug.log").read_text()
    assert "a debug line with passwd=***" in text
    for path in run.rglob("*"):
        if path.is_file():
            assert "pass-unit-7c1d" not in path.read_text(), path
            assert (path.stat().st_mode & 0o077) == 0, path


def _fake_run(root: Path, name: str, calls: int) -> Path:
    run = root / name
    (run / "calls").mkdir(parents=True)
    for i in range(calls):
        call = run / "calls" / f"{name}-{i:02d}"
        call.mkdir()
        (call / "events.jsonl").write_text("{}\n")
    return run


def test_retention_keeps_the_runs_of_the_last_calls(tmp_path: Path) -> None:
    for i in range(30):
        _fake_run(tmp_path, f"2026{i:04d}", calls=1 if i % 3 else 0)  # 20 runs with a call, 10 without
    gone = prune(tmp_path, keep_calls=5, keep_runs=3)
    left = sorted(p.name for p in tmp_path.iterdir())
    with_calls = [n for n in left if any((tmp_path / n / "calls").iterdir())]
    assert len(with_calls) == 5 and with_calls == sorted(with_calls)[-5:]
    assert len(left) - len(with_calls) == 3 and len(gone) == 22
    assert max(left) == "20260029"
    # A run whose process still runs (here: the parent of this test) is kept however old.
    alive = _fake_run(tmp_path, f"2000-{os.getppid()}", calls=1)
    prune(tmp_path, keep_calls=5, keep_runs=3)
    assert alive.is_dir()


def test_find_call_by_last_id_and_prefix(tmp_path: Path) -> None:
    a = _fake_run(tmp_path, "run-a", 0)
    for cid in ("abc123", "abd456", "ffff01"):
        (a / "calls" / cid).mkdir()
        (a / "calls" / cid / "events.jsonl").write_text("{}\n")
        time.sleep(0.01)
    newest = a / "calls" / "abd456" / "events.jsonl"
    os.utime(newest, (time.time() + 5, time.time() + 5))
    assert find_call("last", tmp_path).id == "abd456"
    assert find_call("abc", tmp_path).id == "abc123" and find_call("FFFF", tmp_path).id == "ffff01"
    with pytest.raises(CommandError, match="matches 2 calls"):
        find_call("ab", tmp_path)
    with pytest.raises(CommandError, match="no recorded call 'zz'"):
        find_call("zz", tmp_path)
    with pytest.raises(CommandError, match="no recorded calls"):
        find_call("last", tmp_path / "empty")
