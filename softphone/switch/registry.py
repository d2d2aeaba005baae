"""Registration slots: who rings when a username is dialled.

A slot is a connection's SIP username, or a telephony credential together with every
JWT minted from it. Each login registers its session in its slot; dialling the slot
rings the **last** session that registered there. When that one goes away the slot
falls back to the previous registrant that is still connected (a stack, not a queue).

Plain dicts, O(1) per register, unregister and lookup whatever the number of sessions
(10,000 idle clients register in bursts): each slot is an insertion-ordered dict of
``sessid -> (order, session)`` whose last item is the latest registrant, and an index
``sessid -> slot`` finds a session's slot without a scan.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Generic, TypeVar

S = TypeVar("S")


@dataclass(frozen=True, slots=True)
class Registration:
    """A snapshot row of :meth:`Registry.snapshot`."""

    slot: str
    sessid: str
    login: str
    order: int
    gateway_state: str


class Registry(Generic[S]):
    """Slots of sessions in registration order (``S`` is the session type)."""

    __slots__ = ("_counter", "_slot_of", "_slots")

    def __init__(self) -> None:
        self._slots: dict[str, dict[str, tuple[int, S]]] = {}
        self._slot_of: dict[str, str] = {}
        self._counter = itertools.count(1)

    def __len__(self) -> int:
        """How many sessions are registered."""
        return len(self._slot_of)

    def register(self, slot: str, sessid: str, session: S) -> int:
        """Put ``session`` on top of ``slot`` (re-registering moves it to the top)."""
        self.unregister(sessid)
        order = next(self._counter)
        self._slots.setdefault(slot, {})[sessid] = (order, session)
        self._slot_of[sessid] = slot
        return order

    def unregister(self, sessid: str) -> None:
        """Remove a session from whatever slot holds it."""
        slot = self._slot_of.pop(sessid, None)
        if slot is None:
            return
        entries = self._slots[slot]
        del entries[sessid]
        if not entries:
            del self._slots[slot]

    def lookup(self, slot: str) -> S | None:
        """The session that should ring for ``slot``: the latest registrant."""
        entries = self._slots.get(slot)
        return next(reversed(entries.values()))[1] if entries else None

    def entries(self) -> list[tuple[str, int, str, S]]:
        """(slot, order, sessid, session) for every registration, oldest first."""
        rows = [(slot, order, sessid, sess) for slot, es in self._slots.items() for sessid, (order, sess) in es.items()]
        rows.sort(key=lambda r: r[1])
        return rows
