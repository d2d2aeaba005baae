"""The command table: parsing, help, secret lines, completion."""

from __future__ import annotations

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document

from softphone.commands import COMMANDS, find_command, format_help, is_secret_line, parse_line
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
