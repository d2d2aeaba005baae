"""The call-flow language end to end: `softphone run` files against the local switch with real audio
(the switch's tone and echo services; speech by flite, heard by pocketsphinx in a child process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cliutil
import pytest
from cliutil import sp

from softphone.cli.exitcodes import ExitCode

pytestmark = pytest.mark.e2e

switch_port, token, env = cliutil.switch_port, cliutil.token, cliutil.env


def run(env: dict[str, str], tmp_path: Path, text: str, *args: str, timeout: float = 90,
        ) -> tuple[int, str, str, list[dict[str, Any]]]:
    script = tmp_path / "flow.txt"
    script.write_text(text)
    r = sp(env, "--json", "run", str(script), *args, timeout=timeout)
    objs = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return r.returncode, r.stdout, " ".join(r.stderr.split()), objs  # stderr unwrapped (rich wraps at COLUMNS)


def summary(objs: list[dict[str, Any]]) -> dict[str, Any]:
    last = objs[-1]
    assert last["type"] == "summary", last
    return last


def test_tone_service_tone_audio_and_silence_both_ways(env: dict[str, str], tmp_path: Path) -> None:
    code, out, err, objs = run(env, tmp_path, (
        "dial tone as line\n"
        "wait call active 10\n"
        "expect audio 5\n"
        "expect tone 1004±15 5 on line\n"
        "hangup line\n"))
    assert code == 0, (out, err)
    timings = summary(objs)["timings"]
    (t,) = timings.values()
    assert t["name"] == "line" and t["to_answer_s"] > 0 and t["to_first_audio_s"] >= t["to_answer_s"] - 0.5, t
    assert [e["expect"] for e in t["expects"]] == ["audio", "tone 1004±15"] and all(e["ok"] for e in t["expects"])
    # the wrong frequency fails with what was heard; a steady tone is no silence
    code, out, err, _ = run(env, tmp_path, "dial tone\nwait call active 10\nexpect tone 440±10 2\n")
    assert code == ExitCode.SCRIPT_FAILED, (out, err)
    assert "flow.txt:3: expect tone: wanted 440±10 Hz within 2s; the strongest frequency heard last was 100" in err
    code, out, err, _ = run(env, tmp_path, "dial tone\nwait call active 10\nexpect silence 1 2\n")
    assert code == ExitCode.SCRIPT_FAILED, (out, err)
    assert "flow.txt:3: expect silence: wanted 1s of silence within 2s; the longest quiet stretch was 0." in err


def test_echo_muted_is_silence_unmuted_is_audio(env: dict[str, str], tmp_path: Path) -> None:
    code, out, err, _ = run(env, tmp_path, (
        "dial echo\nwait call active 10\n"
        "mute\nsleep 0.5\nexpect silence 1 4\n"
        "unmute\nplay tone 700 1.5\nexpect tone 700 3\n"))
    assert code == 0, (out, err)
    code, out, err, _ = run(env, tmp_path, "dial echo\nwait call active 10\nmute\nsleep 0.5\nexpect audio 1.5\n")
    assert code == ExitCode.SCRIPT_FAILED, (out, err)
    assert "expect audio: wanted audio from the far end within 1.5s; heard silence" in err


def test_say_then_hear_it_back_from_echo(env: dict[str, str], tmp_path: Path) -> None:
    code, out, err, objs = run(env, tmp_path, (
        "dial ${DEST} as caller\nwait call active 10\n"
        'say "${PHRASE}"\n'
        'expect speech "${PHRASE}" 15 on caller\n'
        "wait prompt-end 10\n"
        "transcript\n"), "--var", "DEST=echo", "--var", "PHRASE=press two for support")
    assert code == 0, (out, err)
    assert "heard 'press two for support'" in err, err
    (t,) = summary(objs)["timings"].values()
    speech = [e for e in t["expects"] if e["expect"].startswith("speech")]
    assert speech and speech[0]["ok"], t
    assert t["prompts_s"] and t["prompts_s"][0] > 1.0, t


def test_wrong_phrase_fails_with_the_transcript(env: dict[str, str], tmp_path: Path) -> None:
    code, out, err, _ = run(env, tmp_path, (
        "dial echo\nwait call active 10\n"
        'say "welcome to the test line"\n'
        'expect speech "thank you for calling billing" 5\n'))
    assert code == ExitCode.SCRIPT_FAILED, (out, err)
    line = err[err.index("flow.txt:4:"):]
    assert line.startswith("flow.txt:4: expect speech: wanted 'thank you for calling billing' within 5s; heard '"), err
    assert "test line" in line.split("call ")[0], line


def test_two_named_calls_caller_and_agent(env: dict[str, str], tmp_path: Path) -> None:
    """One phone dials its own user: the caller leg and the agent leg (answered by name) in one file."""
    code, out, err, objs = run(env, tmp_path, (
        "dial sip:demo@127.0.0.1 X-Queue=sales as caller\n"
        "wait call ringing 10 on caller\n"
        "sleep 0.5\n"
        "answer as agent\n"
        "expect header X-Queue sales on agent\n"
        "expect state active 10 on caller\n"
        "expect state active 10 on agent\n"
        'say "press one for sales" on caller\n'
        'expect speech "press one for sales" 15 on agent\n'
        "hangup caller\n"
        "expect hangup 10 on agent\n"))
    assert code == 0, (out, err)
    names = sorted(t.get("name", "") for t in summary(objs)["timings"].values())
    assert names == ["agent", "caller"], summary(objs)


def test_unknown_variable_or_call_name_fails_before_dialling(env: dict[str, str], tmp_path: Path) -> None:
    """Profile `closed` points at a port nobody listens on: connecting first would give exit 8, not 2."""
    script = tmp_path / "bad.txt"
    for text, message in (("dial ${WHO}\nexpect speech hello\n", "bad.txt:1: unknown variable ${WHO}"),
                          ("dial echo as a1\nexpect audio 5 on bob\n", "bad.txt:2: expect: unknown call 'bob'")):
        script.write_text(text)
        r = sp(env, "-p", "closed", "run", str(script))
        assert r.returncode == ExitCode.USAGE, (r.stdout, r.stderr)
        assert message in " ".join(r.stderr.split()), r.stderr
    script.write_text("dial ${WHO}\nhangup\n")
    r = sp(env, "-p", "closed", "run", str(script), "--var", "WHO=echo")
    assert r.returncode == ExitCode.NETWORK, (r.stdout, r.stderr)  # parsed fine, then could not connect


def test_ivr_menu_choice_and_goodbye(env: dict[str, str], tmp_path: Path) -> None:
    """The switch's ivr service: hear the menu, wait for its end, press 2, hear the choice (a choice
    among phrases), then the far end hangs up; the timings show the prompts and each expect."""
    code, out, err, objs = run(env, tmp_path, (
        "dial ivr as ivr\n"
        "wait call active 10 on ivr\n"
        'expect speech "welcome to the test line" 15\n'
        'expect speech "press two for support" 15\n'
        "wait prompt-end 10\n"
        "dtmf 2 ivr\n"
        'expect speech "you chose sales|you chose support" 15\n'
        "expect hangup NORMAL_CLEARING 15 on ivr\n"))
    assert code == 0, (out, err)
    assert "heard 'you chose support'" in err, err
    (t,) = summary(objs)["timings"].values()
    assert [e["expect"].split()[0] for e in t["expects"]] == ["speech", "speech", "prompt-end", "speech", "hangup"]
    assert len(t["prompts_s"]) >= 2 and t["prompts_s"][0] > 2.0, t  # the menu, then the choice
