"""The charge-limit controller: every limit hand-computed, with its reason; reference bugs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggbatt.config import Config
from aggbatt.core.battery import Battery, read_battery
from aggbatt.core.limits import (
    ChargeLimits,
    ChargeMode,
    ControllerState,
    bms_bank_limit,
    own_limits,
    passthrough_limits,
)
from aggbatt.core.merge import Aggregate, merge
from aggbatt.core.safety import FEED_IN_RESTORE_AFTER_S, enforce
from tests.packs import classic_config, lynx, pack

CONFIG = classic_config()  # 16 cells: max 3.50, min 2.90, 200 A
TARGET = (3.40, "May charge voltage")


def agg_of(*snapshots: dict[str, Any], **kw: Any) -> Aggregate:
    return merge([read_battery(f"svc{i}", f"P{i + 1}", s) for i, s in enumerate(snapshots)], **kw)


def own(
    agg: Aggregate,
    config: Config = CONFIG,
    state: ControllerState | None = None,
    target: tuple[float, str] = TARGET,
    now: float = 0.0,
) -> ChargeLimits:
    """Own mode's limits after the safety rules, as the engine publishes them."""
    raw = own_limits(agg, config, target, state or ControllerState())
    return enforce(raw, agg, config, now)


def passthrough(
    agg: Aggregate, config: Config, state: ControllerState | None = None, now: float = 0.0
) -> ChargeLimits:
    raw = passthrough_limits(agg, config, state or ControllerState(), now)
    return enforce(raw, agg, config, now)


def test_cvl_is_cells_times_the_target_with_its_reason() -> None:
    limits = own(agg_of(pack()))
    assert limits.cvl.value == pytest.approx(16 * 3.40)
    assert limits.cvl.reason == "May charge voltage 3.400 V x 16 cells"
    assert limits.mode is ChargeMode.BULK and limits.mode.text == "Bulk"
    assert limits.battery_low_voltage == pytest.approx(16 * 2.90)


def test_cvl_cut_is_sum_of_cells_minus_over_voltage_lowest_battery_wins() -> None:
    a = [3.40] * 14 + [3.52, 3.55]  # over by 0.02 + 0.05
    b = [3.41] * 15 + [3.51]  # over by 0.01
    limits = own(agg_of(pack(a), pack(b)), target=(3.45, "April charge voltage"))
    cut_a = sum(a) - 0.07
    cut_b = sum(b) - 0.01
    assert limits.cvl.value == pytest.approx(min(cut_a, cut_b))
    assert "P1:C16 at 3.550 V" in limits.cvl.reason
    assert limits.mode is ChargeMode.CVL_CUT
    assert limits.feed_in_off


def test_cvl_cut_for_a_battery_without_cells_uses_its_max_cell() -> None:
    values = lynx()
    values["/System/MaxCellVoltage"] = 3.55
    values["/System/MaxVoltageCellId"] = "3"
    limits = own(agg_of(values))
    assert limits.cvl.value == pytest.approx(52.42 - 0.05)


def test_ccl_follows_the_curve_at_the_highest_cell() -> None:
    # default curve: 2.9 0.2 | 2.95 1 | 3.35 1 | 3.45 0.1 | 3.50 0
    limits = own(agg_of(pack([3.30] * 15 + [3.40], ccl=None)))
    assert limits.ccl.value == pytest.approx(200 * 0.55)  # halfway 1 -> 0.1
    assert limits.ccl.reason == "highest cell P1:C16 3.400 V: 55% of 200 A"
    assert own(agg_of(pack([3.30] * 16))).ccl.value == pytest.approx(
        100 / (280 / 280)
    )  # BMS limit 100 A wins over 200 A


def test_ref_4_7_ccl_scales_by_capacity_share_not_min_times_n() -> None:
    """Reference: min x N; a small pack's low limit either throttled or overloaded the bank."""
    big = pack(installed=300.0, ccl=150.0)
    small = pack(installed=100.0, ccl=30.0)
    agg = agg_of(big, small)
    limit = bms_bank_limit(agg.batteries, "charge")
    assert limit is not None
    # small pack holds 25 %: 30 A / 0.25 = 120 A; big: 150 / 0.75 = 200 A
    assert limit.value == pytest.approx(120.0)
    assert "P2" in limit.reason and "25%" in limit.reason
    assert bms_bank_limit(agg.batteries, "charge", "min_times_n").value == 60.0  # type: ignore[union-attr]
    assert bms_bank_limit(agg.batteries, "charge", "sum").value == 180.0  # type: ignore[union-attr]
    assert own(agg).ccl.value == pytest.approx(120.0)


def test_blocking_bms_stops_charging_with_policy_any_not_all() -> None:
    blocked = pack(ccl=0.0)
    blocked["/Io/AllowToCharge"] = 0
    limits = own(agg_of(pack(), blocked))
    assert limits.ccl.value == 0.0
    assert limits.feed_in_off
    assert limits.mode is ChargeMode.CHARGE_BLOCKED
    cfg = classic_config({"batteries": {"block_policy": "all"}})
    blocked["/Info/ChargeLimitation"] = "BMS"  # serialbattery: its charge FET is open
    limits = own(agg_of(pack(), blocked, block_policy="all"), cfg)
    assert limits.ccl.value == pytest.approx(100.0)  # the other pack alone, within its BMS limit


def test_policy_all_a_serialbattery_flag_0_for_a_soft_limit_still_holds_the_bank() -> None:
    """serialbattery's AllowToCharge is "FET on and its CCL above 0": a 0 for a hot MOSFET, a
    cell at its curve's end or the cold leaves the FET closed, so the pack still takes its
    share."""
    soft = pack(ccl=0.0)  # its MOSFET at 90 °C: serialbattery's curve is at 0
    soft.update({"/Io/AllowToCharge": 0, "/Info/ChargeLimitation": "MOSFET"})
    cfg = classic_config({"batteries": {"block_policy": "all"}})
    limits = own(agg_of(pack(), soft, block_policy="all"), cfg)
    assert limits.ccl.value == 0.0


def test_ref_4_9_own_mode_honours_temperature_and_bms_limits() -> None:
    """Reference own mode looked only at cell voltages: no cold-charge inhibit, no BMS CCL."""
    cold = own(agg_of(pack(temperature=-1.0)))
    assert cold.ccl.value == 0.0
    assert "too cold" in cold.ccl.reason
    warm = own(agg_of(pack(temperature=3.5, ccl=None)))
    # charge curve 2 °C 0.1 -> 5 °C 0.3: at 3.5 °C 0.2
    assert warm.ccl.value == pytest.approx(200 * 0.2)
    assert "temperature" in warm.ccl.reason
    hot = own(agg_of(pack(temperature=52.5, dcl=None)))
    assert hot.dcl.value == pytest.approx(200 * 0.35)  # 50 °C 0.5 -> 55 °C 0.2


def test_dcl_latches_at_min_cell_until_hysteresis() -> None:
    state = ControllerState()
    steps = [(2.89, 0.0), (2.95, 0.0), (3.00, 0.0), (3.01, None)]
    for vmin, expected in steps:
        limits = own(agg_of(pack([vmin] + [3.2] * 15, dcl=None)), state=state)
        state = limits.state
        if expected is not None:
            assert limits.dcl.value == expected, vmin
            assert "discharge resumes above 3.000 V" in limits.dcl.reason
        else:
            assert limits.dcl.value > 0
    # the curve alone at 3.01: between 3.0 (0.05) and 3.1 (1.0)
    assert limits.dcl.value == pytest.approx(200 * (0.05 + 0.95 * 0.1))


def test_ref_4_11_feed_in_is_restored_only_once_cells_settle() -> None:
    """Reference re-enabled feed-in only at the instant the episode ended, else never."""
    flat = classic_config(  # no charge curve, to see the latch alone
        {"control": {"own": {"charge_curve_voltages": [3.0, 3.5], "charge_curve_factors": [1, 1]}}}
    )
    over = own(agg_of(pack([3.40] * 15 + [3.51], ccl=300.0)), flat)
    assert over.feed_in_off
    # below max but cells still spread 0.04 > 0.025: stays off (latched)
    spread = own(agg_of(pack([3.40] * 15 + [3.44], ccl=300.0)), flat, over.state, now=1.0)
    assert spread.feed_in_off
    assert "waiting" in spread.feed_in_reason
    # later the cells settle: restored after the hold time, not missed
    settled = own(agg_of(pack([3.40] * 15 + [3.41], ccl=300.0)), flat, spread.state, now=2.0)
    assert settled.feed_in_off and "restored in" in settled.feed_in_reason
    later = 3.0 + FEED_IN_RESTORE_AFTER_S
    restored = own(agg_of(pack([3.40] * 15 + [3.41], ccl=300.0)), flat, settled.state, now=later)
    assert not restored.feed_in_off


def test_no_battery_keeps_the_last_cvl_and_stops_currents() -> None:
    first = own(agg_of(pack([3.40] * 15 + [3.51])))
    limits = own(agg_of(), state=first.state)
    assert limits.cvl.value == first.cvl.value
    assert limits.ccl.value == 0.0 and limits.dcl.value == 0.0
    assert limits.mode is ChargeMode.NO_BATTERY


def test_ref_4_8_max_until_all_float_is_not_inverted() -> None:
    """Reference KEEP_MAX_CVL took the max when ANY battery was in float, min otherwise."""
    cfg = classic_config(
        {"control": {"mode": "passthrough", "passthrough": {"cvl": "max_until_all_float"}}}
    )
    bulk = pack(cvl=56.0)
    bulk["/Info/ChargeMode"] = "Bulk"
    floating = pack(cvl=54.0)
    floating["/Info/ChargeMode"] = "Float"
    one_in_float = passthrough(agg_of(bulk, floating), cfg)
    assert one_in_float.cvl.value == 56.0
    bulk["/Info/ChargeMode"] = "Float Transition"  # not float yet (rule 6)
    assert passthrough(agg_of(bulk, floating), cfg).cvl.value == 56.0
    bulk["/Info/ChargeMode"] = "Float"
    all_float = passthrough(agg_of(bulk, floating), cfg)
    assert all_float.cvl.value == 54.0
    assert all_float.mode is ChargeMode.PASSTHROUGH_FLOAT


def test_passthrough_policies_and_caps() -> None:
    cfg = classic_config(
        {
            "control": {
                "mode": "passthrough",
                "passthrough": {"current_policy": "sum", "max_charge_current": 150},
            }
        }
    )
    limits = passthrough(agg_of(pack(ccl=100.0), pack(ccl=80.0)), cfg)
    assert limits.cvl.value == 55.2
    assert limits.ccl.value == 150.0
    assert limits.ccl.reason == "configured max charge current 150 A"
    assert limits.dcl.value == 300.0
    assert not limits.feed_in_off


# --- properties ------------------------------------------------------------------------------

MONOTONE = classic_config(
    {
        "control": {
            "own": {"charge_curve_voltages": [3.0, 3.35, 3.45], "charge_curve_factors": [1, 1, 0]}
        }
    }
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(2.5, 3.8), min_size=16, max_size=16),
    st.floats(0.0, 0.2),
    st.sampled_from([3.40, 3.42, 3.45]),
    st.sampled_from([3.40, 3.45]),
)
def test_cvl_never_above_cells_times_max_target_and_limits_monotonic(
    cells: list[float], bump: float, month: float, balancing: float
) -> None:
    cfg = classic_config(
        {
            "control": {
                "own": {
                    "balancing_voltage": balancing,
                    "charge_curve_voltages": [3.0, 3.35, 3.45],
                    "charge_curve_factors": [1, 1, 0],
                }
            }
        }
    )
    target = (max(month, balancing), "t")
    base = own(agg_of(pack(cells, ccl=None, dcl=None)), cfg, target=target)
    assert base.cvl.value <= 16 * max(month, balancing) + 1e-9
    higher = [v + bump for v in cells]
    raised = own(agg_of(pack(higher, ccl=None, dcl=None)), cfg, target=target)
    assert raised.ccl.value <= base.ccl.value + 1e-9  # charge limit never rises with the cells
    assert raised.dcl.value >= base.dcl.value - 1e-9  # discharge limit never falls
    assert all(isinstance(b, Battery) for b in agg_of(pack(cells)).batteries)
    assert MONOTONE.control.own.charge_curve[0] == [3.0, 3.35, 3.45]
