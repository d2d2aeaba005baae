"""How a call ended, as an exit code (README "Exit codes")."""

from __future__ import annotations

import pytest

from softphone.cli.exitcodes import ExitCode, exit_code_for_hangup


@pytest.mark.parametrize("cause, sip, code", [
    ("USER_NOT_REGISTERED", 480, ExitCode.NOT_FOUND),  # README: 6, although SIP 480 alone means no answer
    ("UNALLOCATED_NUMBER", 404, ExitCode.NOT_FOUND),
    ("USER_BUSY", 486, ExitCode.BUSY),
    ("CALL_REJECTED", 603, ExitCode.REJECTED),
    ("NO_ANSWER", 480, ExitCode.NO_ANSWER),
    (None, 480, ExitCode.NO_ANSWER),
    ("SOMETHING_ELSE", 486, ExitCode.BUSY),
    ("SOMETHING_ELSE", None, ExitCode.ERROR),
])
def test_exit_code_for_hangup(cause: str | None, sip: int | None, code: ExitCode) -> None:
    assert exit_code_for_hangup(cause, sip, answered=False) == code
    assert exit_code_for_hangup(cause, sip, answered=True) == ExitCode.OK
