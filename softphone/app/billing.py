"""The one cost rule: every cost shown anywhere (panel, ``call.stats``, history,
summaries, the switch's call records) comes from :func:`cost`.

A call is billed for its answered time (answer to end) **per started second** at
``rate_per_minute`` USD: 1.5 s is billed as 2 s, 61.2 s as 62 s, i.e.
``ceil(seconds) * rate_per_minute / 60``. Unanswered calls (0 s) cost nothing.
Results are rounded to 9 decimals so that float noise never shows. Standard library only.
"""

from __future__ import annotations

import math

__all__ = ["DEFAULT_RATE_PER_MINUTE", "cost"]

DEFAULT_RATE_PER_MINUTE = 0.002
"""USD per minute per WebRTC leg (Telnyx's published WebRTC rate)."""

_EPSILON = 1e-9
"""Clock noise forgiven before a new second starts: 60.0000000001 s bills as 60 s."""


def cost(seconds: float, rate_per_minute: float = DEFAULT_RATE_PER_MINUTE) -> float:
    """The price in USD of ``seconds`` of answered time, per started second.

    Zero, negative and non-finite durations cost nothing (a call never answered,
    or a clock that went backwards), so a display never fails on odd input.
    """
    if not math.isfinite(seconds) or seconds <= 0:
        return 0.0
    return round(math.ceil(seconds - _EPSILON) * rate_per_minute / 60.0, 9)
