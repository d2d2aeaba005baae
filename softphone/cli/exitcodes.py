"""Process exit codes of ``softphone`` (stable, documented in README "Exit codes").

One-shots (``dial``, ``answer``, ``check``, ``demo``) and command files (``run``) end
with one of these. Scripts and CI can branch on them.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitCode", "exit_code_for_hangup"]


class ExitCode(IntEnum):
    """What happened, as a process exit status."""

    OK = 0  #: the call was answered and ended normally (or the command succeeded)
    ERROR = 1  #: any other failure (media, unexpected error, call failed for another cause)
    USAGE = 2  #: bad command line, bad command file, bad configuration
    BUSY = 3  #: the far end was busy (USER_BUSY / SIP 486)
    REJECTED = 4  #: the far end refused the call (CALL_REJECTED / SIP 403, 603)
    NO_ANSWER = 5  #: not answered in time (--wait-answer, NO_ANSWER / SIP 408, 480)
    NOT_FOUND = 6  #: destination unknown or not registered (UNALLOCATED_NUMBER / SIP 404)
    LOGIN_FAILED = 7  #: credentials or token refused
    NETWORK = 8  #: could not reach the server, or the connection was lost
    SCRIPT_FAILED = 9  #: a command file's ``wait`` timed out or ``expect`` did not match
    INTERRUPTED = 130  #: stopped by Ctrl-C before the call was answered


_BUSY_CAUSES = frozenset({"USER_BUSY", "NORMAL_CIRCUIT_CONGESTION", "SWITCH_CONGESTION"})
_REJECT_CAUSES = frozenset({"CALL_REJECTED", "OUTGOING_CALL_BARRED", "INCOMING_CALL_BARRED", "DECLINED"})
_NO_ANSWER_CAUSES = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT", "RECOVERY_ON_TIMER_EXPIRE"})
_NOT_FOUND_CAUSES = frozenset(
    {
        "UNALLOCATED_NUMBER",
        "NO_ROUTE_DESTINATION",
        "NO_ROUTE_TRANSIT_NET",
        "USER_NOT_REGISTERED",
        "SUBSCRIBER_ABSENT",
        "INVALID_NUMBER_FORMAT",
        "NUMBER_CHANGED",
    }
)
_SIP_CODES: dict[int, ExitCode] = {
    486: ExitCode.BUSY,
    600: ExitCode.BUSY,
    403: ExitCode.REJECTED,
    603: ExitCode.REJECTED,
    408: ExitCode.NO_ANSWER,
    480: ExitCode.NO_ANSWER,
    404: ExitCode.NOT_FOUND,
    484: ExitCode.NOT_FOUND,
    604: ExitCode.NOT_FOUND,
}


def exit_code_for_hangup(cause: str | None, sip_code: int | None, answered: bool) -> ExitCode:
    """Map how a call ended to an exit code.

    A call that was answered and then hung up (by anyone, for any cause) is a
    success; otherwise a known Q.850 cause name decides (USER_NOT_REGISTERED is "not found"
    although its SIP code is 480), then the SIP code.
    """
    if answered:
        return ExitCode.OK
    name = (cause or "").upper()
    if name in _BUSY_CAUSES:
        return ExitCode.BUSY
    if name in _REJECT_CAUSES:
        return ExitCode.REJECTED
    if name in _NO_ANSWER_CAUSES:
        return ExitCode.NO_ANSWER
    if name in _NOT_FOUND_CAUSES:
        return ExitCode.NOT_FOUND
    return _SIP_CODES.get(int(sip_code or 0), ExitCode.ERROR)
