"""One-shots parse --header and --dtmf with the command table's parsers (cli/oneshot.py)."""

from __future__ import annotations

import pytest

from softphone.app.commands import parse_line
from softphone.cli.oneshot import dial_arguments, dtmf_option
from softphone.errors import CommandError


def test_dial_arguments_match_the_shell_line() -> None:
    headers, digits = dial_arguments("echo", [" X-Ticket =42", "X-Note=a=b"], "12#")
    assert headers == [("X-Ticket", "42"), ("X-Note", "a=b")]
    assert digits == "12#"
    assert parse_line("dial echo ' X-Ticket =42' X-Note=a=b") is not None  # the shell accepts the same words


def test_lower_case_digits_are_sent_upper_case() -> None:
    # before: `dial --dtmf abc` passed the CLI's own check, then the call refused it once answered
    assert dtmf_option("abc*") == "ABC*"
    assert dial_arguments("echo", [], "1a")[1] == "1A"


def test_no_digits_means_none() -> None:
    assert dtmf_option(None) is None
    assert dtmf_option("") is None


@pytest.mark.parametrize("headers, dtmf, message", [
    (["no-equals-sign"], None, "dial: header 'no-equals-sign' must be Name=value"),
    (["=v"], None, "must be Name=value"),
    ([], "12x", "--dtmf: invalid digit(s) 'X'; use 0-9 * # A-D"),
])
def test_bad_arguments_are_command_errors(headers: list[str], dtmf: str | None, message: str) -> None:
    with pytest.raises(CommandError) as info:
        dial_arguments("echo", headers, dtmf)
    assert message in str(info.value)
