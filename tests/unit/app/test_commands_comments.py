"""A comment may hold anything, an unbalanced quote included: the words after a comment's `#`
are never parsed (`# it's` failed with "No closing quotation")."""

from __future__ import annotations

import pytest

from softphone.app.commands import split
from softphone.cli.script import parse_script
from softphone.errors import CommandError


def test_a_comment_with_an_apostrophe_is_a_comment() -> None:
    assert split("# it's the echo service") == []
    assert split("dial echo   # it's the echo service") == ["dial", "echo"]
    assert split('dtmf 12#   # don\'t forget the "pound') == ["dtmf", "12#"]
    assert split("expect dtmf 123# 5 # isn't it") == ["expect", "dtmf", "123#", "5"]
    lines = parse_script("# it's a test\ndial echo # it's the echo\nwait call active 10\nhangup\n", "t.txt")
    assert [line.command.name for line in lines] == ["dial", "wait", "hangup"]


def test_an_unbalanced_quote_outside_a_comment_is_still_an_error() -> None:
    with pytest.raises(CommandError, match="No closing quotation"):
        split("say 'it")
    with pytest.raises(CommandError):
        parse_script("dial echo\nsay \"hello\n", "t.txt")
