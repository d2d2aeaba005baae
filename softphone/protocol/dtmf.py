"""The one DTMF validity check (RFC 4733 events 0-9 * # A-D), shared by every front-end.

Standard library and :mod:`softphone.errors` only, like the rest of :mod:`softphone.protocol`.
"""

from __future__ import annotations

from softphone.errors import CommandError

__all__ = ["DTMF_DIGITS", "check_digits"]

#: The digits a DTMF string may hold (upper case).
DTMF_DIGITS = frozenset("0123456789*#ABCD")


def check_digits(cmd: str, digits: str) -> str:
    """The one DTMF check: ``digits`` upper-cased, or :class:`CommandError` naming the bad ones.

    ``cmd`` names the command in the message (``dtmf: invalid digit(s) 'XZ'; use 0-9 * # A-D``).
    """
    if not digits:
        raise CommandError(f"{cmd}: no DTMF digits given; use 0-9 * # A-D")
    bad = sorted({d for d in digits.upper() if d not in DTMF_DIGITS})
    if bad:
        raise CommandError(f"{cmd}: invalid digit(s) {''.join(bad)!r}; use 0-9 * # A-D")
    return digits.upper()
