"""Gather (DTMF collection) state of a Call Control leg, below the engine and the commands.

The engine feeds digits and hangups in (:func:`gather_digit`, :func:`end_gather`); the ``gather``
commands start one. Only :meth:`Emitter.emit` of the engine is needed here, so this module does
not import the engine.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from softphone.switch.callcontrol.legs import CCLeg


class Emitter(Protocol):
    """What a gather needs from the engine: posting a webhook event for a leg."""

    def emit(self, leg: CCLeg, event_type: str, **extra: Any) -> None: ...


@dataclass(eq=False)
class Gather:
    maximum_digits: int
    minimum_digits: int
    terminating_digit: str
    valid_digits: str
    digits: str = ""
    timer: asyncio.TimerHandle | None = None
    inter_digit_s: float = 5.0
    prompt: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    # Subclasses (``gather_using_speak``/``gather_using_audio`` in callcontrol/voice.py: prompts,
    # retries, invalid input) override these two; :func:`gather_digit` and :func:`end_gather` call them.

    def on_digit(self, cc: Emitter, leg: CCLeg, digit: str) -> None:
        """A DTMF digit for this gather (the plain ``gather`` command's rules)."""
        if self.terminating_digit and digit == self.terminating_digit:
            end_gather(cc, leg, "valid" if len(self.digits) >= self.minimum_digits else "invalid")
            return
        if digit not in self.valid_digits:
            return
        if not self.digits:
            stop_playbacks(leg, "cancelled")  # the first digit interrupts the prompt
        self.digits += digit
        if len(self.digits) >= self.maximum_digits:
            end_gather(cc, leg, "valid")
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(self.inter_digit_s, end_gather, cc, leg, "timeout")

    def on_end(self, cc: Emitter, leg: CCLeg, status: str) -> None:
        """The gather ends (``valid``, ``invalid``, ``timeout``, ``cancelled``, ``call_hangup``)."""
        if leg.extras.get("gather") is self:
            leg.extras.pop("gather", None)
        if self.timer is not None:
            self.timer.cancel()
        # ``extra["webhook"]``: more payload fields (a conference gather's ``gather_id``).
        cc.emit(leg, "call.gather.ended", digits=self.digits, status=status, **self.extra.get("webhook", {}))


def stop_playbacks(leg: CCLeg, status: str) -> int:
    """Stop every playback on ``leg``, marking each with ``status``; returns how many."""
    pbs = list(leg.extras.get("playbacks", {}).values())
    for pb in pbs:
        pb.stopped = status
        leg.endpoint.stop_playing(pb.source)
    return len(pbs)


def gather_digit(cc: Emitter, leg: CCLeg, digit: str) -> None:
    """A DTMF digit arrived on ``leg`` (feeds a gather in progress, if any)."""
    g = leg.extras.get("gather")
    if isinstance(g, Gather):
        g.on_digit(cc, leg, digit)


def end_gather(cc: Emitter, leg: CCLeg, status: str) -> None:
    """End the gather in progress on ``leg`` (if any) with ``status``."""
    g = leg.extras.get("gather")
    if isinstance(g, Gather):
        g.on_end(cc, leg, status)
