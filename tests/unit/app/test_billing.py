"""The one cost rule (softphone.app.billing): per started second, 9 decimals."""

from __future__ import annotations

import math

import pytest

from softphone.app.billing import DEFAULT_RATE_PER_MINUTE, cost


def test_a_started_second_is_billed_whole() -> None:
    # 1.5 s is billed as 2 s (it used to be 5.0e-5 in the panel and 6.7e-5 on the Call)
    assert cost(1.5) == pytest.approx(2 * 0.002 / 60, abs=1e-9)
    assert cost(1.5) == 6.6667e-05
    assert cost(0.01) == cost(1.0) == 3.3333e-05
    assert cost(61.2) == pytest.approx(62 * 0.002 / 60, abs=1e-9)


def test_whole_seconds_are_not_rounded_up_by_clock_noise() -> None:
    assert cost(60.0) == 0.002
    assert cost(60.0 + 1e-10) == 0.002
    assert cost(60.0 + 1e-6) == pytest.approx(61 * 0.002 / 60, abs=1e-9)


def test_nothing_answered_costs_nothing() -> None:
    for s in (0.0, -3.0, math.nan, math.inf, -math.inf):
        assert cost(s) == 0.0


def test_rate_and_default() -> None:
    assert DEFAULT_RATE_PER_MINUTE == 0.002
    assert cost(30, rate_per_minute=0.006) == 0.003
    assert cost(30, 0.0) == 0.0


def test_history_records_and_totals_use_the_one_rule() -> None:
    from softphone.app.history import CallHistory, record_for
    from softphone.app.snapshot import CallSnapshot

    call = CallSnapshot(id="c1", direction="outbound", created_at=99.0, answered_at=100.0, ended_at=101.5)
    rec = record_for(call, now=200.0)
    assert rec["cost"] == cost(1.5) == 6.6667e-05  # was 5.0e-05: billed per elapsed, not per started second
    slow = CallSnapshot(id="c2", direction="inbound", answered_at=0.0, ended_at=30.0, rate_per_minute=0.006)
    assert record_for(slow, now=30.0)["cost"] == 0.003
    # the total is the sum of what each record shows, kept to the same 9 decimals (6 would drop the 1e-9)
    assert CallHistory.totals([rec, rec, rec]).cost == 0.000200001


def test_switch_records_use_the_one_rule() -> None:
    from softphone.switch.records import billed_cost

    for s in (0.0, 1.5, 60.0, 61.2):
        assert billed_cost(s, 0.002) == cost(s, 0.002)
