"""Reference bugs of field notes §4 not named elsewhere: each test fails on the reference's way.

Named elsewhere: §4.4-§4.6 (test_merge), §4.7-§4.9 and §4.11 feed-in (test_limits),
§4.10 due dates (test_balancing), §4.12 clock step (test_coulomb).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from aggbatt.config import ConfigError, validate_config
from aggbatt.core.battery import Invalid, read_battery
from aggbatt.core.engine import initial_state, run_cycle, to_state
from aggbatt.core.merge import merge
from aggbatt.core.stored import State
from aggbatt.state import load_state, save_state
from tests.packs import pack

NOW = dt.datetime(2026, 3, 1, 12).timestamp()


def test_ref_4_2_month_list_of_wrong_length_is_refused_at_load() -> None:
    """Reference: CHARGE_VOLTAGE_LIST[month-1] raised IndexError in the loop and froze it."""
    with pytest.raises(ConfigError, match="charge_voltage_per_month"):
        validate_config({"control": {"own": {"charge_voltage_per_month": [3.45] * 11}}})


def test_ref_4_2_zero_capacity_never_divides_by_zero() -> None:
    """Reference: Soc / InstalledCapacity raised ZeroDivisionError."""
    values = pack()
    values["/InstalledCapacity"] = 0
    result = read_battery("a", "A", values)
    assert isinstance(result, Invalid)
    agg = merge([result])
    assert agg.soc is None and not agg.online


def test_ref_4_2_can_battery_without_charge_mode_runs_in_every_mode() -> None:
    """Reference: '"Float" in item' with ChargeMode None raised TypeError (CAN batteries)."""
    values = pack()
    values["/Info/ChargeMode"] = None
    config = validate_config(
        {"control": {"mode": "passthrough", "passthrough": {"cvl": "max_until_all_float"}}}
    )
    state = initial_state(State())
    result = run_cycle({"a": values}, {}, config, state, now_mono=1.0, now_wall=NOW, month=3)
    assert result.limits.cvl.value == 55.2


def test_ref_4_13_time_to_go_is_not_a_mix_of_time_to_full_and_to_empty() -> None:
    """Reference: capacity-weighted mean of per-pack TTG mixed serialbattery's time-to-full
    (charging) with time-to-empty; any None nulled it. Ours: bank remaining / discharge."""
    charging = pack(current=10.0, soc=50.0, installed=100.0, TimeToGo=18000)
    discharging = pack(current=-30.0, soc=50.0, installed=100.0, TimeToGo=6000)
    agg = merge([read_battery("a", "A", charging), read_battery("b", "B", discharging)])
    assert agg.time_to_go == round(100.0 / 20.0 * 3600)


def test_ref_4_15_bad_curve_is_refused_at_load_not_in_the_loop() -> None:
    """Reference: _interpolate assumed ascending X and sys.exit()ed on bad lists at runtime."""
    with pytest.raises(ConfigError, match="ascending"):
        validate_config(
            {"control": {"own": {"charge_curve_voltages": [3.45, 3.40, 3.30, 3.2, 3.0]}}}
        )
    with pytest.raises(ConfigError, match="same length"):
        validate_config({"control": {"own": {"discharge_curve_voltages": [2.9, 3.0]}}})


def test_ref_4_10_balancing_phase_survives_a_restart(tmp_path: Path) -> None:
    """Reference: the _balancing flag lived in RAM, a restart mid-balancing forgot it."""
    config = validate_config(
        {"control": {"own": {"balancing_voltage": 3.55, "max_cell_voltage": 3.65}}}
    )
    snap = {"a": pack([3.40] * 16, cvl=58.4)}  # the pack's BMS allows the balancing voltage
    first = run_cycle(
        snap,
        {},
        config,
        initial_state(load_state(tmp_path, NOW).state),
        now_mono=1.0,
        now_wall=NOW,
        month=3,
    )
    assert first.state.balancing.phase == "charging"
    save_state(tmp_path, to_state(first.state, None))
    again = run_cycle(
        snap,
        {},
        config,
        initial_state(load_state(tmp_path, NOW).state),
        now_mono=1.0,
        now_wall=NOW + 10,
        month=3,
    )
    assert again.state.balancing.phase == "charging"
    assert again.limits.cvl.value == pytest.approx(16 * 3.55)


def test_ref_4_11_the_users_feed_in_setting_survives_a_restart(tmp_path: Path) -> None:
    """Reference: the original feed-in value lived in RAM; after a restart mid-episode it read
    back the value it had itself disabled and never restored the user's."""
    state = initial_state(load_state(tmp_path, NOW).state)
    save_state(tmp_path, to_state(state, feed_in_original=1))
    assert load_state(tmp_path, NOW).state.feed_in_original == 1
