"""Registration slots (softphone.switch.registry): the stack rule, moves between slots, and O(1) work."""

from __future__ import annotations

from softphone.switch.registry import Registry


def test_re_registering_moves_to_the_top_and_between_slots() -> None:
    reg: Registry[str] = Registry()
    reg.register("s", "1", "one")
    reg.register("s", "2", "two")
    reg.register("s", "1", "one again")  # re-login on the same session: on top again
    assert reg.lookup("s") == "one again"
    reg.register("t", "1", "one in t")  # the session moved to another slot: it leaves "s"
    assert reg.lookup("s") == "two" and reg.lookup("t") == "one in t"
    assert [(slot, sessid) for slot, _, sessid, _ in reg.entries()] == [("s", "2"), ("t", "1")]
    assert len(reg) == 2
    reg.unregister("2")
    reg.unregister("2")  # twice, or unknown: nothing happens
    reg.unregister("nobody")
    assert reg.lookup("s") is None and len(reg) == 1


def test_entries_are_oldest_first_across_slots() -> None:
    reg: Registry[int] = Registry()
    for i in range(6):
        reg.register(f"slot{i % 3}", f"sess{i}", i)
    orders = [order for _, order, _, _ in reg.entries()]
    assert orders == sorted(orders)
    assert [sess for *_, sess in reg.entries()] == list(range(6))
    assert reg.lookup("slot0") == 3  # the last of 0 and 3


class _CountedId(str):
    """A sessid that counts how often it is compared (a scan compares it with every registrant)."""

    compared = 0

    def __eq__(self, other: object) -> bool:
        _CountedId.compared += 1
        return str.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        _CountedId.compared += 1
        return str.__ne__(self, other)

    __hash__ = str.__hash__


def test_register_and_unregister_do_not_scan_the_other_sessions() -> None:
    """10,000 idle clients: each login unregistered the session from every slot first (O(n) each)."""
    reg: Registry[int] = Registry()
    ids = [_CountedId(f"sess{i}") for i in range(2_000)]
    for i, sessid in enumerate(ids):
        reg.register(f"user{i}", sessid, i)
    _CountedId.compared = 0
    reg.register("user7", _CountedId("sess7"), 7)  # a re-login: an equal id, another object
    reg.unregister(_CountedId("sess1999"))
    assert reg.lookup("user7") == 7 and reg.lookup("user1999") is None
    assert _CountedId.compared <= 4
