"""Balancing scheduler: due dates on elapsed time, phases, restart mid-balancing."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggbatt.core.balancing import (
    DAY_S,
    Balancing,
    BalancingSettings,
    due_at,
    step,
    target_cell_voltage,
)

S = BalancingSettings(repetition_days=10, balancing_voltage=3.55, cell_diff_goal=0.025, cells=16)
UTC = dt.UTC


def ts(year: int, month: int, day: int, hour: int = 0) -> float:
    return dt.datetime(year, month, day, hour, tzinfo=UTC).timestamp()


def test_never_balanced_is_due_at_once() -> None:
    state = step(Balancing(), ts(2026, 1, 1), 3.45, 55.0, 0.05, S)
    assert state.phase == "charging"
    assert "never balanced" in state.event


def test_ref_4_10_due_exactly_after_the_period_across_year_end_and_leap_day() -> None:
    """Reference used day-of-year differences (+365), wrong in leap years and after a year."""
    last = ts(2027, 12, 25, 12)
    idle = Balancing(last)
    due = ts(2028, 1, 4, 12)  # 10 days later, across the year end
    assert due_at(idle, S) == due
    assert step(idle, due - 1, 3.45, 54.0, 0.01, S).phase == "idle"
    assert step(idle, due, 3.45, 54.0, 0.01, S).phase == "charging"
    # across 29 Feb 2028
    leap = Balancing(ts(2028, 2, 25))
    assert due_at(leap, S) == ts(2028, 3, 6)
    # a balancing exactly a year ago is overdue, not "0 days ago"
    assert step(Balancing(ts(2027, 3, 1)), ts(2028, 3, 1), 3.45, 54.0, 0.01, S).phase == "charging"


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1)),
    st.integers(1, 365),
)
def test_due_date_is_exact_for_any_date(start: dt.datetime, days: int) -> None:
    s = BalancingSettings(days, 3.55, 0.025, 16)
    last = start.replace(tzinfo=UTC).timestamp()
    due = due_at(Balancing(last), s)
    assert due is not None
    expected = (start + dt.timedelta(days=days)).replace(tzinfo=UTC).timestamp()
    assert due == pytest.approx(expected, abs=1e-3)  # to the millisecond
    assert step(Balancing(last), due - 0.001, 3.45, 50.0, 0.0, s).phase == "idle"
    assert step(Balancing(last), due, 3.45, 50.0, 0.0, s).phase == "charging"


def test_goal_then_hold_then_finish() -> None:
    now = ts(2026, 6, 1)
    charging = Balancing(None, "charging")
    # voltage reached but cells too far apart: keep charging
    assert step(charging, now, 3.45, 56.8, 0.04, S).phase == "charging"
    # not at the voltage yet
    assert step(charging, now, 3.45, 56.0, 0.01, S).phase == "charging"
    holding = step(charging, now, 3.45, 16 * 3.545, 0.01, S)
    assert holding.phase == "holding" and holding.last_completed is None
    assert target_cell_voltage(holding, 3.45, "June", S)[0] == 3.55
    assert step(holding, now + 60, 3.45, 55.5, 0.01, S).phase == "holding"
    done = step(holding, now + 120, 3.45, 55.2, 0.01, S)
    assert (done.phase, done.last_completed, done.event) == (
        "idle",
        now + 120,
        "balancing finished",
    )
    assert target_cell_voltage(done, 3.45, "June", S) == (3.45, "June charge voltage")


def test_goal_at_the_normal_voltage_just_stamps() -> None:
    now = ts(2026, 1, 10)
    s = BalancingSettings(10, 3.45, 0.025, 16)
    done = step(Balancing(None, "charging"), now, 3.55, 16 * 3.55, 0.01, s)
    assert (done.phase, done.last_completed) == ("idle", now)


def test_no_data_no_transition() -> None:
    holding = Balancing(None, "holding")
    assert step(holding, ts(2026, 1, 1), 3.45, None, None, S) == holding


def test_period_in_days_is_elapsed_seconds() -> None:
    assert DAY_S == 86400.0
