"""Registration slots: who rings when a username is dialled.

A slot is a connection's SIP username, or a telephony credential together with every
JWT minted from it. Each login registers its session in its slot; dialling the slot
rings the **last** session that registered there. When that one goes away the slot
falls back to the previous registrant that is still connected (a stack, not a queue).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Generic, TypeVar

S = TypeVar("S")


@dataclass(frozen=True)
class Registration:
    """A snapshot row of :meth:`Registry.snapshot`."""

    slot: str
    sessid: str
    login: str
    order: int
    gateway_state: str


class Registry(Generic[S]):
    """Slots of sessions in registration order (``S`` is the session type)."""

    def __init__(self) -> None:
        self._slots: dict[str, list[tuple[int, str, S]]] = {}
        self._counter = itertools.count(1)

    def register(self, slot: str, sessid: str, session: S) -> int:
        """Put ``session`` on top of ``slot`` (re-registering moves it to the top)."""
        self.unregister(sessid)
        order = next(self._counter)
        self._slots.setdefault(slot, []).append((order, sessid, session))
        return order

    def unregister(self, sessid: str) -> None:
        """Remove a session from whatever slot holds it."""
        for slot, entries in list(self._slots.items()):
            kept = [e for e in entries if e[1] != sessid]
            if kept:
                self._slots[slot] = kept
            else:
                del self._slots[slot]

    def lookup(self, slot: str) -> S | None:
        """The session that should ring for ``slot``: the latest registrant."""
        entries = self._slots.get(slot)
        return entries[-1][2] if entries else None

    def entries(self) -> list[tuple[str, int, str, S]]:
        """(slot, order, sessid, session) for every registration, oldest first."""
        rows = [(slot, order, sessid, sess) for slot, es in self._slots.items() for order, sessid, sess in es]
        rows.sort(key=lambda r: r[1])
        return rows
