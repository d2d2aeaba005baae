"""`softphone test` end to end: real subprocesses, each with its in-process local switch (--local).

Cases pass and fail with FILE:LINE, what was expected and what was heard; the exit code is 0 only
when all pass; JUnit XML is valid against tests/fixtures/junit.xsd (as pytest's own is); each case
keeps a transcript and the last seconds of its call as a stereo WAV; --json is NDJSON; a parse error
in any file is exit 2 before anything dials; on a terminal a summary table is drawn.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pty
import re
import subprocess
import sys
import wave
from pathlib import Path
from types import ModuleType
from xml.etree import ElementTree as ET

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

HERE = Path(__file__).resolve().parent

PASS = """# the dtmf service sends each digit back
dial dtmf
wait call active 10
dtmf 12
expect dtmf 12 5
hangup
"""
FAIL = """dial dtmf
wait call active 10
dtmf 1
expect dtmf 9 2
"""
IVR = """# the ivr service of the switch: menu, digit, choice, bye
dial ivr
wait call active 10
expect speech "press two for support" 15
dtmf 2
expect speech "you chose support|support" 10
expect hangup 10
"""
IVR_WRONG = """dial ivr
wait call active 10
expect speech "press nine for billing" 8
"""


def schema() -> ModuleType:
    spec = importlib.util.spec_from_file_location("junit_schema", HERE.parent / "unit" / "cli" / "junit_schema.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("junit_schema", mod)  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("TELNYX_", "SOFTPHONE_"))}
    e.update(SOFTPHONE_CONFIG=str(tmp_path / "none.toml"), SOFTPHONE_DATA_DIR=str(tmp_path / "data"),
             COLUMNS="160")
    return e


def write(tmp_path: Path, **files: str) -> list[str]:
    for name, text in files.items():
        (tmp_path / f"{name}.sp").write_text(text)
    return [f"{name}.sp" for name in files]


def softphone(env: dict[str, str], cwd: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "softphone", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout, check=False)


def test_pass_and_fail_with_junit_json_and_artifacts(tmp_path: Path, env: dict[str, str]) -> None:
    files = write(tmp_path, ok=PASS, bad=FAIL)
    r = softphone(env, tmp_path, "test", *files, "--local", "--jobs", "2", "--junit", "report.xml")
    assert r.returncode == 9, (r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert any(ln.startswith("PASS ok.sp (") for ln in lines), r.stdout
    assert any(ln.startswith("FAIL bad.sp:4: expect dtmf 9 2: expect: wanted DTMF '9' within 2s, received '1'")
               for ln in lines), r.stdout
    assert lines[-1] == "1 passed, 1 failed"
    xml = (tmp_path / "report.xml").read_text()
    assert schema().validate(xml) == []
    cases = {c.get("name"): c for c in ET.fromstring(xml).iter("testcase")}
    assert set(cases) == {"ok", "bad"} and cases["ok"].find("failure") is None
    failure = cases["bad"].find("failure")
    assert failure is not None and failure.get("message", "").startswith("bad.sp:4: expect dtmf 9 2:")
    for name in ("ok", "bad"):
        folder = tmp_path / "softphone-artifacts" / name
        transcript = (folder / "transcript.txt").read_text()
        assert "call.state" in transcript and "script.line" in transcript
        with wave.open(str(folder / "last.wav"), "rb") as w:  # the last seconds, your side left, far end right
            assert w.getnchannels() == 2 and w.getframerate() == 48000
            assert 0 < w.getnframes() <= 10 * 48000
        assert not (folder / "call.wav").exists()
    assert "bad.sp:4: expect dtmf 9 2" in (tmp_path / "softphone-artifacts" / "bad" / "transcript.txt").read_text()
    # all passing: exit 0; --json is NDJSON, one object per case then the summary
    r = softphone(env, tmp_path, "test", "ok.sp", "ok.sp", "--local", "--json", "--artifacts", "arts")
    assert r.returncode == 0, (r.stdout, r.stderr)
    objs = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [o["type"] for o in objs] == ["test.case", "test.case", "test.summary"]
    assert all(o["v"] == 1 and o["ts"] > 1.7e9 for o in objs)  # like the --json events (docs/events.md)
    assert objs[-1]["passed"] == 2 and objs[-1]["failed"] == 0
    assert objs[0]["passed"] and "answer" in objs[0]["timings"]
    assert sorted(p.name for p in (tmp_path / "arts").iterdir()) == ["ok-1", "ok-2"]


def test_ivr_case_passes_and_a_wrong_phrase_fails_with_what_was_heard(tmp_path: Path, env: dict[str, str]) -> None:
    files = write(tmp_path, ivr=IVR, ivr_wrong=IVR_WRONG)
    r = softphone(env, tmp_path, "test", *files, "--local", "--jobs", "2", "--junit", "ivr.xml")
    assert r.returncode == 9, (r.stdout, r.stderr)
    assert any(ln.startswith("PASS ivr.sp") for ln in r.stdout.splitlines()), r.stdout
    wrong = next(ln for ln in r.stdout.splitlines() if ln.startswith("FAIL ivr_wrong.sp:3: expect speech"))
    assert "press nine for billing" in wrong and "support" in wrong, wrong  # expected, and what was heard
    heard = (tmp_path / "softphone-artifacts" / "ivr_wrong" / "transcript.txt").read_text()
    assert "## heard" in heard and "welcome" in heard.split("## heard", 1)[1], heard
    assert schema().validate((tmp_path / "ivr.xml").read_text()) == []


def test_a_parse_error_in_any_file_is_exit_2_before_anything_dials(tmp_path: Path, env: dict[str, str]) -> None:
    files = write(tmp_path, ok=PASS, typo="dial echo\nwait call active 10\nexpekt dtmf 1\n")
    r = softphone(env, tmp_path, "test", *files, "--local")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "typo.sp:3: unknown command 'expekt'" in r.stderr
    assert r.stdout == "" and not (tmp_path / "softphone-artifacts").exists()
    r = softphone(env, tmp_path, "test", "ok.sp", "missing.sp", "--local")
    assert r.returncode == 2 and "missing.sp" in r.stderr


def test_on_a_terminal_a_summary_table(tmp_path: Path, env: dict[str, str]) -> None:
    files = write(tmp_path, ok=PASS, bad=FAIL)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "softphone", "test", *files, "--local", "--jobs", "2"],
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path)
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(60) == 9
    styled = b"".join(chunks).decode("utf-8", "replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", styled)
    assert "softphone test" in text and "┃ result" in text, text  # rich's table header
    assert "PASS" in text and "FAIL" in text and "1 passed, 1 failed" in text
    assert "━━" in text and "2/2" in text  # the progress bar went by
    assert "\x1b[" in styled


def test_pytest_junit_xml_is_valid_against_the_same_schema(tmp_path: Path) -> None:
    """The schema is the one pytest's own reports fit (pytest is the reference for the JUnit shape)."""
    (tmp_path / "test_sample.py").write_text("def test_ok():\n    pass\n\ndef test_bad():\n    assert 1 == 2\n")
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                    "--junitxml", str(tmp_path / "py.xml"), "-o", "junit_family=xunit2", str(tmp_path)],
                   capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False)
    xml = (tmp_path / "py.xml").read_text()
    assert "<failure" in xml
    assert schema().validate(xml) == []


TWO_CALLS = """# one phone, two named calls: it calls its own login (caller) and answers (agent)
dial demo as caller
wait call ringing 10
answer as agent
wait call active 10 on caller
wait call active 10 on agent
dtmf 5 caller
expect dtmf 5 5 on agent
hangup caller
expect hangup 10 on agent
"""


def test_a_two_call_case_caller_and_agent(tmp_path: Path, env: dict[str, str]) -> None:
    files = write(tmp_path, two=TWO_CALLS, wrong=TWO_CALLS.replace("expect dtmf 5 5 on agent",
                                                                   "expect dtmf 6 2 on agent"))
    r = softphone(env, tmp_path, "test", *files, "--local", "--json")
    assert r.returncode == 9, (r.stdout, r.stderr)
    cases = {o["name"]: o for o in map(json.loads, r.stdout.splitlines()) if o["type"] == "test.case"}
    assert cases["two"]["passed"], cases["two"]
    failure = cases["wrong"]["failure"]
    assert (failure["line"], failure["command"]) == (8, "expect dtmf 6 2 on agent"), failure
    assert "received '5'" in failure["message"], failure
    transcript = (tmp_path / "softphone-artifacts" / "two" / "transcript.txt").read_text()
    assert transcript.count("call.created") == 2  # both calls' events are in the case's transcript


def test_ctrl_c_stops_at_the_current_line_and_still_writes_the_reports(tmp_path: Path, env: dict[str, str]) -> None:
    import signal
    import time

    files = write(tmp_path, long="dial echo\nwait call active 10\nsleep 60\n", later=PASS)
    proc = subprocess.Popen([sys.executable, "-m", "softphone", "test", *files, "--local", "--junit", "r.xml"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while not (tmp_path / "softphone-artifacts" / "long").exists():  # the first case has started
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.1)
    time.sleep(1.5)  # it is in its sleep
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, (out, err)
    assert time.monotonic() - started < 10
    assert "FAIL long.sp:3: sleep 60: interrupted" in out, out
    cases = list(ET.fromstring((tmp_path / "r.xml").read_text()).iter("testcase"))
    assert [c.get("name") for c in cases] == ["long"]  # the case not started is not reported
    assert cases[0].find("error") is not None
    assert (tmp_path / "softphone-artifacts" / "long" / "transcript.txt").exists()
