"""The nesting check of parse_message: a fast path for frames with few brackets, the exact scan otherwise."""

from __future__ import annotations

import json

import pytest

from softphone.errors import RemoteProtocolError
from softphone.protocol.jsonrpc import MAX_DEPTH, Request, parse_message


def test_many_brackets_side_by_side_and_in_strings_are_not_nesting() -> None:
    params = {"lists": [[i] for i in range(3 * MAX_DEPTH)], "text": 'a "[[[{{{" \\ ]]]' + "{" * MAX_DEPTH}
    msg = parse_message(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "m", "params": params}))
    assert isinstance(msg, Request) and msg.params == params


def test_nesting_past_the_limit_is_refused() -> None:
    deep = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    with pytest.raises(RemoteProtocolError, match="nested deeper"):
        parse_message('{"jsonrpc":"2.0","id":1,"method":"m","params":{"x":' + deep + "}}")
