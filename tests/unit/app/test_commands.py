"""The command table: parsing, help, secret lines, completion."""

from __future__ import annotations

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from softphone.app.commands import COMMANDS, find_command, format_help, is_secret_line, parse_line
from softphone.errors import CommandError
from softphone.repl.completer import CommandCompleter
from softphone.repl.history import keep_in_history


def test_required_repl_commands_exist() -> None:
    want = {"login", "logout", "dial", "answer", "reject", "hangup", "hold", "unhold", "mute", "unmute", "dtmf",
            "devices", "use", "calls", "status", "history", "wait", "help", "quit", "expect", "sleep", "echo"}
    assert want <= {c.name for c in COMMANDS}


def test_every_command_has_help_and_unique_names() -> None:
    seen: set[str] = set()
    for cmd in COMMANDS:
        assert cmd.help
        for n in (cmd.name, *cmd.aliases):
            assert n not in seen
            seen.add(n)
        assert cmd.name in format_help()
        assert format_help(cmd.name).startswith(cmd.usage)


def test_parse_line() -> None:
    assert parse_line("   ") is None
    assert parse_line("# only a comment") is None
    parsed = parse_line('dial "sip:bob@example.com" X-Ticket=42  # trailing comment')
    assert parsed is not None
    cmd, args = parsed
    assert cmd.name == "dial" and args == ["sip:bob@example.com", "X-Ticket=42"]
    assert find_command("h").name == "hangup"


@pytest.mark.parametrize("line, message", [
    ("dial", "missing argument <destination>"),
    ("hangup a b", "too many arguments"),
    ("wait phone ready", "must be one of socket, client, call"),
    ("sleep soon", "not a number"),
    ("flurb", "unknown command"),
    ('dial "unterminated', "cannot parse"),
])
def test_parse_errors(line: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_line(line)


def test_secret_lines_never_kept() -> None:
    assert is_secret_line("login bob s3cret-pass")
    assert is_secret_line("login eyJhbGciOi.eyJzdWIi.sig")
    assert not is_secret_line("login")
    assert not keep_in_history("login bob s3cret-pass")
    assert not keep_in_history("echo password=abc12345")
    assert keep_in_history("dial echo")


def _complete(text: str, sources: dict[str, list[str]] | None = None) -> list[str]:
    src = {k: (lambda v=v: v) for k, v in (sources or {}).items()}
    comp = CommandCompleter(src)  # type: ignore[arg-type]
    return [c.text for c in comp.get_completions(Document(text), CompleteEvent())]


def test_completion_from_table() -> None:
    assert "dial" in _complete("di")
    assert "dtmf" in _complete("d")
    assert _complete("use ") == ["input", "output"]
    assert _complete("use output sp", {"device": ["Speakers", "Headset Mic"]}) == ["Speakers"]
    assert _complete("use output he", {"device": ["Headset Mic"]}) == ['"Headset Mic"']
    assert "echo" in _complete("dial e", {"destination": ["echo", "+13128889999"]})
    assert "active" in _complete("wait call a")
    assert "hangup" in _complete("help ha")


# --- issue 9 item 2: `#` is a DTMF digit, not a comment, in digits arguments ----------------------
@pytest.mark.parametrize("line, args", [
    ("dtmf 123#", ["123#"]),
    ("dtmf #", ["#"]),
    ("dtmf *#0# abc123", ["*#0#", "abc123"]),
    ("dtmf 123#  # send the terminator", ["123#"]),
    ("expect dtmf 123# 5", ["dtmf", "123#", "5"]),
    ("expect dtmf #1 # a comment", ["dtmf", "#1"]),
    ("send 9#", ["9#"]),
])
def test_hash_in_dtmf_digits_is_kept(line: str, args: list[str]) -> None:
    parsed = parse_line(line)
    assert parsed is not None and parsed[1] == args


@pytest.mark.parametrize("line, args", [
    ("dial echo # a comment", ["echo"]),
    ("dial echo X-A=1#2", ["echo", "X-A=1#2"]),
    ("echo hello #world", ["hello"]),
    ("echo '#not a comment' x", ["#not a comment", "x"]),
    ('echo "a \\"q\\" b"', ['a "q" b']),
    ("echo a\\ b", ["a b"]),
])
def test_hash_starts_a_comment_at_the_start_of_other_words(line: str, args: list[str]) -> None:
    parsed = parse_line(line)
    assert parsed is not None and parsed[1] == args


def test_comment_lines() -> None:
    assert parse_line("#dtmf 123") is None
    assert parse_line("   # dtmf 123#") is None


# --- issue 9 item 8: everything checkable is checked at parse time ---------------------------------
@pytest.mark.parametrize("line, message", [
    ("wait call actve 3", "call state must be one of"),
    ("wait client redy", "client state must be one of"),
    ("wait socket up", "socket state must be one of"),
    ("dtmf 12X", "invalid digit"),
    ("expect dtmf 1Z 5", "invalid digit"),
    ("expect dtmf 12 soon", "not a number"),
])
def test_parse_time_checks(line: str, message: str) -> None:
    with pytest.raises(CommandError, match=message):
        parse_line(line)


@pytest.mark.parametrize("line", ["wait call active 3", "wait call ended", "wait call hangup 5",
                                  "wait client ready 5", "wait socket open", "wait call RINGING"])
def test_valid_wait_lines(line: str) -> None:
    assert parse_line(line) is not None


# --- issue 10 item 3: secret arguments never echoed ----------------------------------------------
def test_display_line_masks_secrets() -> None:
    from softphone.app.commands import display_line

    assert display_line("login alice alice-secret") == "login alice ***"
    assert display_line("login eyJhbGciOi.eyJzdWIi.sig") == "login ***"
    assert display_line("  dtmf 123#  # comment") == "dtmf 123#"
    assert display_line("echo 'two words'") == "echo 'two words'"
    assert "pw" not in display_line("login 'al ice' pw")
