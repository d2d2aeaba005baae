"""Parse-time checks of the call-flow language: variables, call names, the new commands' arguments
(a bad file fails at FILE:LINE before anything dials)."""

from __future__ import annotations

import pytest

from softphone.app.commands import expand_vars, format_help, parse_line
from softphone.cli.script import listen_mode, parse_script, parse_vars, preflight
from softphone.errors import CommandError

FLOW = """\
dial ${IVR} X-Run=${RUN} as caller
expect speech "welcome to the test line|hello" 15
wait prompt-end
dtmf 1 caller
expect tone 1004±20 5 on caller
expect dtmf 12# 5 on caller
say "${GREETING}" on caller
hangup caller
"""


def test_variables_fill_any_argument_and_keep_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUN", "from-env")
    monkeypatch.setenv("IVR", "overridden")
    lines = parse_script(FLOW, "flow.txt", parse_vars(["IVR=ivr", "GREETING=I want sales"]))
    assert lines[0].args == ["ivr", "X-Run=from-env", "as", "caller"]  # --var first, then the environment
    assert lines[6].args == ["I want sales", "on", "caller"]  # one word, spaces and all
    assert lines[5].args == ["dtmf", "12#", "5", "on", "caller"]  # '#' in expect dtmf digits is no comment
    assert listen_mode(lines) == "speech"
    assert listen_mode(parse_script("dial tone\nexpect tone 1004\n", "f")) == "levels"
    assert listen_mode(parse_script("dial echo\nexpect dtmf 1\n", "f")) == "off"
    assert expand_vars("a $${literal} ${X}", {"X": "1"}) == "a ${literal} 1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dial echo\nexpect speech hi\nhangup ${NOPE}\n", r"f:3: unknown variable \$\{NOPE\}"),
        ("dial echo as a\nhangup bob\n", r"f:2: hangup: unknown call 'bob'.*\(named so far: a\)"),
        ("expect speech 'hi' 5 on agent\ndial sip:agent@x as agent\n", r"f:1: expect: unknown call 'agent'"),
        ("dial echo\nfrobnicate\n", r"f:2: unknown command 'frobnicate'"),
        ("dial echo\nexpect tone loud\n", r"f:2: expect tone: 'loud' is not FREQ"),
        ("dial echo\nexpect silence\n", r"f:2: expect silence: usage: expect silence SECONDS"),
        ("dial echo\nexpect speech ''\n", r"f:2: expect speech: the phrase is empty"),
        ("dial echo\nexpect state flying\n", r"f:2: expect state: STATE must be one of"),
        ("dial echo\nexpect hangup 'not a cause'\n", r"f:2: expect hangup: .* is neither a cause"),
        ("dial echo\nwait prompt-end soon\n", r"f:2: wait: 'soon' is not a number"),
        ("dial echo\nwait call\n", r"f:2: wait: missing argument <state>"),
        ("dial echo\nplay tone 440\n", r"f:2: play: usage: play tone FREQ SECONDS"),
        ("dial echo as 'two words'\n", r"f:1: dial: call name 'two words' must be a word"),
        ("dial echo Bad\n", r"f:1: dial: header 'Bad' must be Name=value"),
    ],
)
def test_bad_lines_fail_at_parse_time(text: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_script(text, "f")


def test_a_hex_id_prefix_is_still_a_call() -> None:
    assert parse_script("hangup 3f2a9c1d\n", "f")[0].args == ["3f2a9c1d"]
    with pytest.raises(CommandError, match="unknown call 'b1'"):  # short hex words are names, not ids
        parse_script("hangup b1\n", "f")


def test_bad_var_option() -> None:
    with pytest.raises(CommandError, match="--var 'X' must be NAME=VALUE"):
        parse_vars(["X"])


def test_help_lists_the_new_commands() -> None:
    text = format_help()
    for name in ("say", "play", "transcript"):
        assert f"\n{name} " in text
    assert "expect speech" not in format_help("dial")
    assert ">= 75 %" in format_help("expect")
    parsed = parse_line("answer as agent")
    assert parsed is not None and parsed[1] == ["as", "agent"]


def test_a_missing_recogniser_or_tts_engine_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util
    import shutil

    lines = parse_script('dial echo\nsay "hi"\nexpect speech "hi"\n', "f")
    preflight(lines, "f")  # both installed here
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "pocketsphinx" else real(n, *a))
    with pytest.raises(CommandError, match=r"f:3: expect needs speech recognition: the pocketsphinx package"):
        preflight(lines, "f")
    preflight(parse_script("dial tone\nexpect tone 1004\n", "f"))  # levels only: no recogniser needed
    monkeypatch.undo()
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(CommandError, match=r"f:2: say needs text to speech: flite is not installed \(apt install"):
        preflight(lines, "f")
