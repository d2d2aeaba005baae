"""Issue 9 item 16: every command line of the README's usage section runs as the README says.

The lines are read from README.md itself (so a new or changed line is tested, or this test fails
until it is taught how), with `[OPTIONAL]` parts run both with and without, and `a | b | c`
alternatives run one by one. They run as real subprocesses against a real switch.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import cliutil
import pytest
from cliutil import free_port, sp, wait_port

from softphone.cli.exitcodes import ExitCode

pytestmark = pytest.mark.e2e
switch_port, token, env = cliutil.switch_port, cliutil.token, cliutil.env  # fixtures

README = Path(__file__).resolve().parents[2] / "README.md"


def usage_lines() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Usage\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines: list[str] = []
    for raw in block.splitlines():
        line = re.split(r"\s{2,}#", raw, maxsplit=1)[0].strip()  # a comment is two spaces and '#'
        if line:
            lines.extend(_expand(line))
    return lines


def _expand(line: str) -> list[str]:
    optional = re.search(r"\s\[([^\]]+)\]", line)
    if optional:
        without = line[: optional.start()] + line[optional.end():]
        with_ = line[: optional.start()] + " " + optional.group(1) + line[optional.end():]
        return [*_expand(without), *_expand(with_)]
    alt = re.search(r"(\S+(?:\s\|\s\S+)+)", line)
    if alt:
        return [line[: alt.start()] + word + line[alt.end():] for word in alt.group(1).split(" | ")]
    return [line]


def test_the_usage_section_is_read_as_expected() -> None:
    lines = usage_lines()
    assert "softphone devices --json" in lines and "softphone devices" in lines
    assert ["softphone config init", "softphone config show", "softphone config path"] == [
        x for x in lines if x.startswith("softphone config")]
    assert "softphone dial echo --local --duration 5 --dtmf 123# --no-audio" in lines


def _args(line: str) -> list[str]:
    words = line.split()
    assert words[0] == "softphone", line
    return words[1:]


def _run_answer(env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess[str]:
    """`answer --count N`: N calls come in from another credential; each is answered and hung up."""
    count = int(args[args.index("--count") + 1])
    proc = subprocess.Popen([sys.executable, "-m", "softphone", "--json", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 20
        for line in proc.stdout:  # wait until it is logged in and ready to ring
            if json.loads(line).get("type") == "client.ready" or time.monotonic() > deadline:
                break
        for _ in range(count):
            r = sp(env, "-p", "tok", "dial", "demo", "--duration", "1", "--no-audio", timeout=40)
            assert r.returncode == 0, (r.stdout, r.stderr)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _run_switch(env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess[str]:
    port = int(args[args.index("--port") + 1])
    with socket.socket() as s:  # the README's port, if free here; another free one otherwise
        if s.connect_ex(("127.0.0.1", port)) == 0:
            args[args.index("--port") + 1] = str(port := free_port())
    proc = subprocess.Popen([sys.executable, "-m", "softphone", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_port(port, proc)  # type: ignore[arg-type]
        proc.terminate()
        out, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.mark.timeout(300)  # some 20 command lines, each a real process and call
def test_every_usage_line_runs(env: dict[str, str], tmp_path: Path) -> None:
    calls_txt = tmp_path / "calls.txt"  # the README's own example file
    example = README.read_text(encoding="utf-8").split("```\n# calls.txt\n", 1)[1].split("```", 1)[0]
    calls_txt.write_text(example)
    fresh = dict(env, SOFTPHONE_CONFIG=str(tmp_path / "fresh" / "config.toml"))  # for `config init`
    outcomes: dict[str, tuple[int, str]] = {}
    for line in usage_lines():
        args = _args(line)
        name = args[0] if args else "(shell)"
        expected: set[int] = {ExitCode.OK}
        if name == "(shell)":
            r = subprocess.run([sys.executable, "-m", "softphone"], input="status\nquit\n", capture_output=True,
                               text=True, env=env, timeout=60, check=False)
        elif name == "answer":
            r = _run_answer(env, args)
        elif name == "switch":
            r = _run_switch(env, args)
        elif name in ("run", "test", "load"):
            paths = {"calls.txt": str(calls_txt), "report.xml": str(tmp_path / "report.xml"),
                     "report.html": str(tmp_path / "report.html")}
            # In tmp_path: `softphone test` keeps its artifacts under ./softphone-artifacts.
            r = subprocess.run([sys.executable, "-m", "softphone", *[paths.get(a, a) for a in args]],
                               capture_output=True, text=True, env=env, timeout=120, check=False, cwd=tmp_path)
            if "--junit" in args:
                assert (tmp_path / "report.xml").read_text().startswith("<?xml"), line
        elif name == "token":
            r = sp(env, *args, timeout=60)
            assert r.stdout.strip().startswith("eyJ") and r.stdout.count("\n") == 1, (line, r.stdout)
        elif name == "config":
            r = sp(fresh, *args)
        elif name == "bundle":  # the calls above left their diagnostics behind; the zip goes to tmp_path
            zip_path = tmp_path / "bundle.zip"
            zip_path.unlink(missing_ok=True)
            r = sp(env, *[str(zip_path) if a == "bundle.zip" else a for a in args], timeout=90)
            assert zip_path.read_bytes()[:2] == b"PK", (line, r.stdout, r.stderr)
        elif name == "doctor":
            expected = {ExitCode.OK, 10}  # 10: a warning about this machine (doctor.VERDICT_EXIT)
            r = sp(env, *args, timeout=90)
        elif name in ("precall", "selftest", "latency"):  # shorter runs than the defaults
            more = {"precall": ["--seconds", "2"], "selftest": ["--seconds", "1.5"], "latency": ["--count", "3"]}
            # precall: a loaded machine may rate the echo fair/poor (10/11); selftest: the profile sends
            # silence (audio_backend null), so capture_silent (20) unless --tone
            expected = {"precall": {ExitCode.OK, 10, 11}, "selftest": {ExitCode.OK if "--tone" in args else 20},
                        "latency": {ExitCode.OK}}[name]
            r = sp(env, *args, *more[name], timeout=90)
        else:
            if name == "dial" and "+13128889999" in args:
                # A number: whatever the local switch does with it, the exit code is a documented outcome.
                expected = {ExitCode.OK, ExitCode.BUSY, ExitCode.REJECTED, ExitCode.NO_ANSWER, ExitCode.NOT_FOUND}
                args = [*args, "--no-audio", "--wait-answer", "5", "--duration", "2"]
            r = sp(env, *args, timeout=90)
        outcomes[line] = (r.returncode, r.stderr[-300:])
        assert r.returncode in expected, (line, r.returncode, r.stdout[-2000:], r.stderr[-2000:])
        assert "Traceback" not in r.stderr, (line, r.stderr)
        if "--json" in args:
            assert r.stdout.strip() and json.loads(r.stdout.splitlines()[-1]), line
    assert len(outcomes) >= 15, outcomes
