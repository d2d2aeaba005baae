"""The switch's idle-session GC policy (softphone.switch.gc_freeze): freeze every N logins, unfreeze once as
many sessions have gone as were alive, and a cycle that died while frozen is reclaimed after that."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from softphone.switch.gc_freeze import IdleFreezer


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture(autouse=True)
def _thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freezes_every_n_logins_and_thaws_when_the_sessions_are_gone() -> None:
    fr = IdleFreezer(every=3)
    fr.session_gone()  # nothing frozen: nothing to count
    assert fr.gone == 0
    for n in range(1, 3):
        fr.logged_in(n)
    assert fr.freezes == 0 and gc.get_freeze_count() == 0
    fr.logged_in(3)
    assert fr.freezes == 1 and fr.frozen_sessions == 3 and gc.get_freeze_count() > 0
    for n in range(4, 7):
        fr.logged_in(n)
    assert fr.freezes == 2 and fr.frozen_sessions == 6
    for _ in range(5):
        fr.session_gone()
    assert fr.unfreezes == 0  # 6 were alive at the last freeze
    fr.session_gone()
    assert fr.unfreezes == 1 and gc.get_freeze_count() == 0 and fr.frozen_sessions == 0
    fr.release()  # nothing frozen: a no-op
    assert fr.unfreezes == 1


def test_a_cycle_that_dies_while_frozen_is_collected_after_the_thaw() -> None:
    fr = IdleFreezer(every=1)
    node = _Node()
    alive = weakref.ref(node)
    fr.logged_in(1)  # node is frozen now
    del node
    gc.collect()
    assert alive() is not None  # frozen: the collector does not look at it
    fr.session_gone()  # every=1 and one session was alive: thaw
    gc.collect()
    assert alive() is None
