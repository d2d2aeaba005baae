"""Keep idle sessions out of Python's full garbage collections (a policy for the switch's own process).

CPython's cyclic GC walks every tracked object in a full (generation 2) collection. With 10,000
idle clients the switch holds ~800,000 of them (about 80 per websocket session, most in
websockets' connection objects), and a full collection stops the event loop for 0.2-1 s
(measured with ``gc.callbacks`` while bench/signaling.py logs clients in): that was the p99 of
login in bursts. Long-lived objects need no cycle detection while they live, so
:class:`IdleFreezer` moves everything alive to the permanent generation (``gc.freeze()``, a list
splice, no walk) every :data:`FREEZE_EVERY` logins; full collections then walk only what came later.

Objects that die while frozen are still freed by reference counting; only their reference
cycles wait. So when as many sessions have gone as there were when it froze (or
:data:`FREEZE_EVERY`, whichever is more), it unfreezes (``gc.unfreeze()``): the next full
collection reclaims them, and freezing starts over. What waits is bounded by what was alive at
the last freeze.

Process-wide, so only ``softphone switch serve`` and the benchmark turn it on
(:attr:`softphone.switch.server.SwitchServer.gc_freezer`); a switch embedded in another
program (tests, the demo) leaves the collector alone.
"""

from __future__ import annotations

import gc
import logging

logger = logging.getLogger(__name__)

FREEZE_EVERY = 500
"""Logins between two ``gc.freeze()`` calls."""


class IdleFreezer:
    """Counts logins and departures, and freezes / unfreezes the collector (see the module docstring)."""

    __slots__ = ("every", "freezes", "frozen_sessions", "gone", "logins", "unfreezes")

    def __init__(self, every: int = FREEZE_EVERY) -> None:
        self.every = every
        self.logins = 0
        """Logins since the last freeze."""
        self.gone = 0
        """Sessions gone since the first freeze that is still in force."""
        self.frozen_sessions = 0
        """Sessions alive at the last freeze (0: nothing frozen)."""
        self.freezes = 0
        self.unfreezes = 0

    def logged_in(self, sessions: int) -> None:
        """A new session logged in; ``sessions`` are alive now."""
        self.logins += 1
        if self.logins >= self.every:
            self.logins = 0
            gc.freeze()
            self.freezes += 1
            self.frozen_sessions = sessions

    def session_gone(self) -> None:
        """A session ended (its frozen cycles, if any, wait for the next unfreeze)."""
        if not self.frozen_sessions:
            return
        self.gone += 1
        if self.gone >= max(self.every, self.frozen_sessions):
            self.release()

    def release(self) -> None:
        """Unfreeze: the next full collection sees everything again."""
        if self.frozen_sessions:
            gc.unfreeze()
            self.unfreezes += 1
            logger.debug("gc: unfrozen after %d sessions left (%d were alive at the freeze)", self.gone,
                         self.frozen_sessions)
        self.frozen_sessions = 0
        self.gone = 0
        self.logins = 0
