"""The Coulomb counter: integration on monotonic time, efficiency, clamps, resets, saving."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggbatt.core import coulomb
from aggbatt.core.coulomb import (
    Counter,
    CounterSettings,
    mark_saved,
    needs_save,
    start_counter,
    step,
)

S = CounterSettings(
    efficiency=0.9, save_precision=0.01, full_cell_voltage=3.45, empty_cell_voltage=2.9
)


def run(
    counter: Counter, samples: list[tuple[float, float]], settings: CounterSettings = S
) -> Counter:
    for t, current in samples:
        counter = step(counter, current, t, counter.installed_ah, 3.3, 3.2, settings)
    return counter


def test_integrates_held_current_with_efficiency_on_charge() -> None:
    c = Counter(50.0, 100.0)
    c = run(c, [(0.0, 36.0), (10.0, 36.0), (20.0, -72.0), (30.0, -72.0)])
    # 20 s at +36 A x 0.9 = +0.18 Ah; then 10 s at -72 A = -0.2 Ah
    assert c.charge_ah == pytest.approx(50.0 + 0.18 - 0.2)
    assert c.soc == pytest.approx(49.98)


def test_ref_4_12_a_gap_in_time_is_not_integrated() -> None:
    """Reference integrated wall-clock differences: an NTP step became one huge Δt."""
    c = run(Counter(50.0, 100.0), [(0.0, 100.0), (1.0, 100.0), (3601.0, 100.0)])
    assert c.charge_ah == pytest.approx(50.0 + 100.0 * 0.9 / 3600.0)
    assert "gap" in c.event


def test_clamped_to_capacity_and_full_reset() -> None:
    c = run(Counter(99.99, 100.0), [(0.0, 100.0), (10.0, 100.0)])
    assert c.charge_ah == 100.0
    c = step(Counter(60.0, 100.0), 0.0, 0.0, 100.0, 3.46, 3.3, S)
    assert c.charge_ah == 100.0 and c.event == "reset to 100 %"


def test_zero_reset_only_when_enabled() -> None:
    c = step(Counter(10.0, 100.0), -5.0, 0.0, 100.0, 3.0, 2.85, S)
    assert c.charge_ah == 10.0
    zero = CounterSettings(zero_reset=True, empty_cell_voltage=2.9)
    c = step(Counter(10.0, 100.0), -5.0, 0.0, 100.0, 3.0, 2.85, zero)
    assert c.charge_ah == 0.0 and c.event == "reset to 0 %"


def test_capacity_change_keeps_the_soc() -> None:
    c = step(Counter(140.0, 280.0), 0.0, 0.0, 200.0, 3.3, 3.2, S)
    assert c.soc == pytest.approx(50.0)
    assert c.event == "capacity changed"


def test_start_from_state_or_bms() -> None:
    assert start_counter(200.0, 150.0, 300.0, 10.0).charge_ah == pytest.approx(100.0)
    assert not needs_save(start_counter(200.0, 150.0, 300.0, 10.0), S)
    assert start_counter(200.0, None, None, 40.0).charge_ah == pytest.approx(80.0)
    assert needs_save(start_counter(200.0, None, None, 40.0), S)  # saved at once
    assert start_counter(200.0, 500.0, 200.0, 40.0).charge_ah == 200.0


def test_save_precision() -> None:
    c = mark_saved(Counter(50.0, 100.0))
    assert not needs_save(c, S)
    c = Counter(50.99, 100.0, saved_ah=50.0)
    assert not needs_save(c, S)
    assert needs_save(Counter(51.0, 100.0, saved_ah=50.0), S)
    assert needs_save(Counter(50.0, 100.0), S)


@settings(max_examples=200, deadline=None)
@given(
    st.floats(0.0, 1000.0),
    st.lists(st.tuples(st.floats(0.0, 60.0), st.floats(-2000.0, 2000.0)), max_size=40),
)
def test_counter_stays_within_capacity(start: float, samples: list[tuple[float, float]]) -> None:
    installed = 300.0
    c = Counter(min(start, installed), installed)
    t = 0.0
    for dt, current in samples:
        t += dt
        c = step(c, current, t, installed, None, None, S)
        assert 0.0 <= c.charge_ah <= installed
    assert coulomb.MAX_GAP_S > 0
