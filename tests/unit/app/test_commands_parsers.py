"""The command table's parsers are the only ones: one header parser, one DTMF check (issue 11 item 4)."""

from __future__ import annotations

import pytest

from softphone.app import commands
from softphone.app.commands import parse_header, parse_line, parse_words
from softphone.errors import CommandError
from softphone.protocol import dtmf


def test_the_dtmf_check_is_the_protocol_one() -> None:
    assert commands.check_digits is dtmf.check_digits
    assert not hasattr(commands, "DTMF_DIGITS")  # no second alphabet in the command table


@pytest.mark.parametrize("text, want", [
    ("X-Ticket=42", ("X-Ticket", "42")),
    (" X-Ticket =a=b ", ("X-Ticket", "a=b ")),
    ("X-Empty=", ("X-Empty", "")),
])
def test_parse_header(text: str, want: tuple[str, str]) -> None:
    assert parse_header("dial", text) == want


@pytest.mark.parametrize("text", ["no-equals-sign", "=value", "  =v", ""])
def test_parse_header_refuses(text: str) -> None:
    with pytest.raises(CommandError, match=r"^dial: header .* must be Name=value$"):
        parse_header("dial", text)


def test_a_bad_header_fails_when_the_line_is_parsed() -> None:
    # before: only when the dial ran (a command file connected first, then failed)
    with pytest.raises(CommandError, match="header 'X-Bad' must be Name=value"):
        parse_line("dial echo X-Ok=1 X-Bad")
    parsed = parse_line("dial echo X-Ok=1 'X-Spaced=a b'")
    assert parsed is not None and parsed[1] == ["echo", "X-Ok=1", "X-Spaced=a b"]


def test_parse_words_checks_like_parse_line() -> None:
    cmd, args = parse_words(["call", "+13128889999", "X-A=1"])
    assert cmd.name == "dial" and args == ["+13128889999", "X-A=1"]
    with pytest.raises(CommandError, match="invalid digit"):
        parse_words(["dtmf", "12x"])
    with pytest.raises(CommandError, match="missing argument <destination>"):
        parse_words(["dial"])
    with pytest.raises(CommandError, match="no command"):
        parse_words([])
