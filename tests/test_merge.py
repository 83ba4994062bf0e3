"""Merge: hand-computed aggregates, the reference's merge bugs, and properties under bad input."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggbatt.core.battery import Battery, read_battery
from aggbatt.core.merge import merge
from tests.packs import lynx, pack


def two_packs() -> list[Any]:
    a = read_battery("a", "A", pack([3.30] * 15 + [3.42], current=20.0, soc=80.0, installed=280.0))
    b = read_battery("b", "B", pack([3.28] + [3.31] * 15, current=10.0, soc=40.0, installed=100.0))
    return [a, b]


def test_hand_computed_aggregate() -> None:
    agg = merge(two_packs())
    va, vb = 15 * 3.30 + 3.42, 3.28 + 15 * 3.31
    assert agg.voltage == pytest.approx((va + vb) / 2)
    assert agg.current == pytest.approx(30.0)
    assert agg.power == pytest.approx(va * 20.0 + vb * 10.0)
    assert agg.soc == pytest.approx((80.0 * 280 + 40.0 * 100) / 380)
    assert agg.installed_ah == 380.0
    assert agg.remaining_ah == pytest.approx(224.0 + 40.0)
    assert agg.consumed_ah == pytest.approx(-(56.0 + 60.0))
    assert agg.max_cell is not None and agg.max_cell.id == "A:C16"
    assert agg.min_cell is not None and agg.min_cell.id == "B:C1"
    assert agg.cell_diff == pytest.approx(3.42 - 3.28)
    assert agg.cell_sum == pytest.approx((va + vb) / 2)
    assert agg.modules_online == 2 and agg.modules_offline == 0
    assert agg.time_to_go is None  # charging
    assert agg.cells_by_battery["A"][-1] == 3.42


def test_time_to_go_is_the_banks_remaining_over_discharge_current() -> None:
    a = read_battery("a", "A", pack(current=-30.0, soc=50.0, installed=200.0))
    b = read_battery("b", "B", pack(current=-20.0, soc=50.0, installed=100.0))
    agg = merge([a, b])
    assert agg.time_to_go == round(150.0 / 50.0 * 3600)


def test_measured_current_replaces_the_bms_sum() -> None:
    agg = merge(two_packs(), measured_current=-42.0)
    assert agg.current == -42.0
    assert agg.current_measured
    assert agg.power == pytest.approx(agg.voltage * -42.0)  # type: ignore[operator]


def test_block_policy() -> None:
    values = pack()
    values["/Io/AllowToCharge"] = 0
    blocked = read_battery("b", "B", values)
    ok = read_battery("a", "A", pack())
    assert merge([ok, blocked], block_policy="any").allow_charge is False
    assert merge([ok, blocked], block_policy="all").allow_charge is True
    assert merge([ok, blocked]).blocking_charge == 1


def test_no_valid_battery_is_an_alarm_not_a_crash() -> None:
    bad = read_battery("a", "A", {"/Soc": math.nan})
    agg = merge([bad], expected=2)
    assert not agg.online
    assert agg.voltage is None and agg.soc is None
    assert agg.alarms["InternalFailure"] == 2
    assert agg.modules_offline == 2


def test_missing_batteries_raise_a_warning_and_count_offline() -> None:
    agg = merge(two_packs(), expected=3)
    assert agg.missing == 1
    assert agg.modules_offline == 1
    assert agg.alarms["BmsCable"] == 1


def test_lynx_bank_merges_without_cell_data() -> None:
    a = read_battery("a", "L1", lynx(soc=80.0))
    b = read_battery("b", "L2", lynx(soc=60.0, current=-10.0))
    agg = merge([a, b])
    assert agg.soc == pytest.approx(70.0)
    assert agg.installed_ah == 400.0
    assert agg.min_cell is None and agg.cell_diff is None
    assert agg.cell_sum == pytest.approx(52.42)


# --- the reference's bugs (field notes §4) -----------------------------------------------


def test_ref_4_4_cell_ids_never_collide_with_empty_custom_names() -> None:
    """Reference keyed cells by '<CustomName>: <cellId>'; two empty names overwrote C5."""
    from aggbatt.core.battery import unique_names

    names = unique_names([("svc.ttyUSB0", ""), ("svc.ttyUSB1", "")])
    high = [3.30] * 4 + [3.55] + [3.30] * 11
    low = [3.30] * 4 + [3.31] + [3.30] * 11
    a = read_battery("svc.ttyUSB0", names["svc.ttyUSB0"], pack(high))
    b = read_battery("svc.ttyUSB1", names["svc.ttyUSB1"], pack(low))
    for order in ([a, b], [b, a]):
        agg = merge(order)
        assert agg.max_cell is not None
        assert agg.max_cell.value == 3.55
        assert agg.max_cell.id == "ttyUSB0:C5"


def test_ref_4_5_missing_alarm_path_never_hides_a_real_alarm() -> None:
    """Reference: max([2, None]) raised, so the bank alarm went invalid and hid a real one."""
    alarming = pack()
    alarming["/Alarms/HighCellVoltage"] = 2
    silent = pack()
    silent["/Alarms/HighCellVoltage"] = None
    agg = merge([read_battery("a", "A", alarming), read_battery("b", "B", silent)])
    assert agg.alarms["HighCellVoltage"] == 2
    assert agg.allow_charge is True


def test_ref_4_6_means_are_over_valid_batteries_and_missing_sum_is_not_zero() -> None:
    """Reference averaged over NR_OF_BATTERIES and set a missing /Voltages/Sum to 0."""
    no_sum = pack()
    no_sum["/Voltages/Sum"] = None
    for i in range(1, 17):
        no_sum[f"/Voltages/Cell{i}"] = None
    a = read_battery("a", "A", pack())
    b = read_battery("b", "B", no_sum)
    agg = merge([a, b], expected=3)
    assert agg.voltage == pytest.approx(16 * 3.30)
    assert agg.cell_sum == pytest.approx(16 * 3.30)


# --- properties ------------------------------------------------------------------------------

junk = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**40), max_value=2**40),
    st.text(max_size=5),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
)
PATHS = list(pack().keys())


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(PATHS), junk, max_size=12))
def test_merge_never_raises_and_a_bad_battery_never_changes_another(
    corruption: dict[str, Any],
) -> None:
    good = read_battery("good", "Good", pack([3.30] * 15 + [3.40], current=12.0, soc=70.0))
    values = pack(current=5.0)
    values.update(corruption)
    other = read_battery("other", "Other", values)  # never raises
    alone = merge([good])
    together = merge([good, other])
    if isinstance(other, Battery):
        return  # a valid battery takes part: nothing to isolate
    assert together.voltage == alone.voltage
    assert together.current == alone.current
    assert together.soc == alone.soc
    # a pack left out still counts with its cells (rule 2): the extremes can only get worse
    assert together.max_cell is not None and alone.max_cell is not None
    assert together.max_cell.value >= alone.max_cell.value
    assert together.min_cell is not None and alone.min_cell is not None
    assert together.min_cell.value <= alone.min_cell.value
    assert together.modules_online == alone.modules_online
    assert together.modules_offline == alone.modules_offline + 1
    for name, level in alone.alarms.items():
        assert together.alarms[name] >= level
    published = [together.voltage, together.current, together.soc, together.power]
    assert all(v is None or math.isfinite(v) for v in published)
