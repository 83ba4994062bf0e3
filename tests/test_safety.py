"""The safety rules of ``core/safety.py``, one block of tests per rule, on the pure core.

Each test drives :func:`run_cycle` as the daemon does (snapshots in, decisions out), so it
checks the rule where it is enforced and also that nothing before it hides the input.
"""

from __future__ import annotations

import copy
import itertools
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggbatt.config import Config, ConfigError, validate_config
from aggbatt.core.engine import CycleResult, EngineState, initial_state, run_cycle
from aggbatt.core.limits import Cause
from aggbatt.core.safety import (
    FEED_IN_RESTORE_AFTER_S,
    HOLD_AT,
    HOLD_ON,
    HOLD_R_CELL_OHM,
    HOLD_RISE_V_PER_CELL_S,
    Activity,
    Urgency,
)
from aggbatt.core.stored import State
from tests.packs import CLASSIC_OWN, lynx, pack

WALL = 1_780_000_000.0  # a Unix time in 2026
BASE = {
    "batteries": {"expected": 0},
    "control": {"own": {**CLASSIC_OWN, "max_charge_current": 100.0}},
}


def pk(
    cells: list[float] | None = None, paths: dict[str, Any] | None = None, **kw: Any
) -> dict[str, Any]:
    """A serialbattery pack with some paths set (``paths`` keys are D-Bus paths)."""
    values = pack(cells, **kw)
    values.update(paths or {})
    return values


def config(**sections: Any) -> Config:
    data: dict[str, Any] = copy.deepcopy(BASE)
    for key, value in sections.items():
        if key == "own":
            data["control"]["own"].update(value)
        elif key == "passthrough":
            data["control"]["mode"] = "passthrough"
            data["control"]["passthrough"] = value
        else:
            data.setdefault(key, {}).update(value)
    return validate_config(data)


CONFIG = config()
RECENTLY_BALANCED = State(last_balancing=WALL - 3600.0)


def cycle(
    *snaps: dict[str, Any],
    cfg: Config = CONFIG,
    state: EngineState | None = None,
    t: float = 0.0,
    month: int = 5,
    activity: dict[str, Activity] | None = None,
    keys: list[str] | None = None,
) -> CycleResult:
    keys = keys or [f"svc{i}" for i in range(len(snaps))]
    snapshots = dict(zip(keys, snaps, strict=True))
    names = {k: f"P{int(k[3:]) + 1}" if k.startswith("svc") else k for k in keys}
    return run_cycle(
        snapshots,
        names,
        cfg,
        state or initial_state(RECENTLY_BALANCED),
        now_mono=t,
        now_wall=WALL + t,
        month=month,
        activity=activity,
    )


def run(steps: list[tuple[float, list[dict[str, Any]]]], cfg: Config = CONFIG) -> CycleResult:
    """Several cycles in a row: (time, snapshots) each; returns the last result."""
    state: EngineState | None = None
    result: CycleResult | None = None
    for t, snaps in steps:
        result = cycle(*snaps, cfg=cfg, state=state, t=t)
        state = result.state
    assert result is not None
    return result


# --- Rule 1: a limit that DVCC would not enforce is not a limit ----------------------------


@pytest.mark.parametrize(
    "why, snapshot",
    [
        ("too cold", pack(temperature=-2.0)),
        ("BMS block", pk(paths={"/Io/AllowToCharge": 0})),
        ("a cut", pack([3.30] * 15 + [3.52])),
        ("a pack that does not match", pack([3.3] * 8)),
    ],
)
def test_rule1_feed_in_off_for_a_hard_stop_and_a_cut(why: str, snapshot: dict[str, Any]) -> None:
    """With feed-in on DVCC honours only the CVL: a 0 A stop and a cut need feed-in off."""
    result = cycle(snapshot)
    assert result.limits.feed_in_off, why
    assert result.limits.ccl.value == 0.0 or result.limits.cvl.cause is Cause.CVL_CUT, why


@pytest.mark.parametrize(
    "why, snapshot",
    [
        ("warm derating", pack(temperature=3.0, current=60.0)),
        ("curve near the top", pack([3.30] * 15 + [3.44], current=60.0)),
        ("pack's own BMS limit", pack(ccl=40.0, current=60.0)),
    ],
)
def test_rule1_a_protective_limit_above_0_is_held_by_the_cvl_with_feed_in_on(
    why: str, snapshot: dict[str, Any]
) -> None:
    """The CCL would not hold with feed-in on; the CVL does: it goes to the voltage at which
    the bank takes 90 % of the CCL, and feed-in stays on (the surplus is exported)."""
    result = cycle(snapshot)
    lim = result.limits
    assert 0.0 < lim.ccl.value < 60.0 and lim.ccl.cause.protective, why
    assert not lim.feed_in_off, why
    assert lim.cvl.cause is Cause.CURRENT_HOLD, why
    volts = snapshot["/Dc/0/Voltage"]
    expected = volts - (60.0 - HOLD_AT * lim.ccl.value) * HOLD_R_CELL_OHM * 16
    assert lim.cvl.value == pytest.approx(expected, abs=0.002), why
    assert "holding the charge current" in lim.cvl.reason


def test_rule1_a_bank_held_at_its_cvl_under_a_bms_taper_keeps_feed_in_on() -> None:
    """serialbattery's taper (12.5 A a pack at 3.40 V) while the bank sits at its CVL and takes
    less than that: feed-in on protects nothing less, switching it off only loses export."""
    at_cvl = [3.40] * 15 + [3.41]
    tapering = [pack(at_cvl, ccl=12.5, current=4.0), pack(at_cvl, ccl=12.5, current=4.0)]
    result = cycle(*tapering, month=5)  # May: 3.40 V a cell
    assert result.limits.ccl.value == pytest.approx(25.0)
    assert result.limits.ccl.cause.protective
    assert not result.limits.feed_in_off
    assert result.limits.cvl.cause is not Cause.CURRENT_HOLD  # 8 A: nothing to hold


def test_rule1_feed_in_stays_on_when_only_the_configured_maximum_limits() -> None:
    result = cycle(pack(ccl=150.0))
    assert result.limits.ccl.value == pytest.approx(100.0)
    assert not result.limits.feed_in_off


def test_rule1_a_lost_pack_turns_feed_in_off() -> None:
    two = [pack(ccl=150.0), pack(ccl=150.0)]
    result = run([(0.0, two), (1.0, two[:1])])
    assert result.limits.ccl.value == 0.0
    assert result.limits.feed_in_off


def test_rule1_pass_through_holds_a_reduced_bms_limit_and_stops_for_none() -> None:
    cfg = config(passthrough={"max_charge_current": 200.0})
    normal = cycle(pack(ccl=100.0), pack(ccl=100.0), cfg=cfg)
    assert normal.limits.ccl.value == pytest.approx(200.0)
    assert not normal.limits.feed_in_off
    reduced = cycle(pack(ccl=100.0, current=30.0), pack(ccl=20.0, current=30.0), cfg=cfg)
    assert reduced.limits.ccl.value == pytest.approx(40.0)
    assert not reduced.limits.feed_in_off and reduced.limits.cvl.cause is Cause.CURRENT_HOLD
    nothing = cycle(cfg=cfg)
    assert nothing.limits.ccl.value == 0.0 and nothing.limits.feed_in_off


def test_rule1_a_hold_that_fails_turns_feed_in_off_until_the_current_falls() -> None:
    """A Multi that lets the bank above the CVL: the current stays over the CCL with feed-in on
    for 30 s: feed-in off, and back only once the current has stayed well below the CCL."""
    over = pack(ccl=40.0, current=60.0)
    state: EngineState | None = None
    for t in range(0, 34, 2):  # the hold lowers the CVL, the current does not follow
        result = cycle(over, state=state, t=float(t))
        state = result.state
    assert result.limits.feed_in_off and "did not hold the current" in result.limits.feed_in_reason
    capped = pack(ccl=40.0, current=40.0)  # DVCC now holds it at the CCL
    later = cycle(capped, state=state, t=32.0 + FEED_IN_RESTORE_AFTER_S * 3)
    assert later.limits.feed_in_off and "below 80%" in later.limits.feed_in_reason
    state = later.state
    low = pack(ccl=40.0, current=10.0)  # the sun lower: the current well below the CCL
    t0 = 40.0 + FEED_IN_RESTORE_AFTER_S * 3
    assert cycle(low, state=state, t=t0).limits.feed_in_off
    result = cycle(low, state=cycle(low, state=state, t=t0).state, t=t0 + FEED_IN_RESTORE_AFTER_S)
    assert not result.limits.feed_in_off


def test_rule1_the_wait_doubles_with_each_episode_of_the_day() -> None:
    """Each switch is a flash write: a second and third episode in a day wait 20 and 40 min."""
    cold, warm = pack(temperature=-2.0), pack(temperature=20.0)
    state: EngineState | None = None
    t, waits = 0.0, []
    for _ in range(3):
        state = cycle(cold, state=state, t=t).state
        t += 1.0
        start = t
        while True:
            result = cycle(warm, state=state, t=t)
            state = result.state
            if not result.limits.feed_in_off:
                break
            t += 60.0
        waits.append(round((t - start) / 60.0))
        t += 60.0
    assert waits == [10, 20, 40]


def test_rule1_restored_feed_in_starts_the_cvl_at_the_bank_and_lets_it_rise_slowly() -> None:
    """With feed-in off DVCC held the current; turning it on under a CVL far above the bank
    would let the maximised chargers push the whole PV current in before the hold sees it."""
    low = [3.25] * 16
    cold = pack(low, temperature=-2.0, voltage=52.0)
    quiet = pack(low, temperature=20.0, voltage=52.0, current=2.0)
    state = cycle(cold).state
    t = 1.0
    result = cycle(quiet, state=state, t=t)
    while result.limits.feed_in_off:
        t += 10.0
        result = cycle(quiet, state=result.state, t=t)
    assert result.limits.cvl.value == pytest.approx(52.0)
    assert result.limits.cvl.cause is Cause.CURRENT_HOLD and "restored" in result.limits.cvl.reason
    cvls = [result.limits.cvl.value]
    for _ in range(120):
        t += 1.0
        result = cycle(quiet, state=result.state, t=t)
        cvls.append(result.limits.cvl.value)
    rises = [b - a for a, b in itertools.pairwise(cvls)]
    assert max(rises) <= HOLD_RISE_V_PER_CELL_S * 16 + 1e-6
    # it settles where the bank would take 90 % of the CCL, and feed-in stays on
    aim = HOLD_AT * result.limits.ccl.value
    assert cvls[-1] == pytest.approx(52.0 + (aim - 2.0) * HOLD_R_CELL_OHM * 16, abs=0.002)
    assert not result.limits.feed_in_off


def test_rule1_the_hold_corrects_a_bank_that_sits_above_the_cvl() -> None:
    """With feed-in on the chargers get the CVL + 0.1 to 0.4 V: a bank 0.2 V above whatever
    CVL is published must still come down to the aim, not stop 0.2 V / R above it."""
    ccl = 40.0
    state: EngineState | None = None
    cvl, currents = None, []
    r_true = HOLD_R_CELL_OHM * 16 * 0.5  # the bank's real resistance: half the estimate
    for t in range(0, 120, 2):
        volts = 53.0 if cvl is None else min(53.0, cvl + 0.2)
        current = max(0.0, 60.0 - (53.0 - volts) / r_true)
        currents.append(current)
        result = cycle(pack(ccl=ccl, current=current, voltage=volts), state=state, t=float(t))
        state, cvl = result.state, result.limits.cvl.value
    assert currents[-1] == pytest.approx(HOLD_AT * ccl, abs=1.0)
    assert not result.limits.feed_in_off


def test_rule1_a_multi_rs_honours_the_ccl_so_nothing_is_switched() -> None:
    snaps = {"svc0": pack(temperature=-2.0, current=20.0)}
    result = run_cycle(
        snaps, {}, CONFIG, initial_state(RECENTLY_BALANCED), now_mono=0.0, now_wall=WALL,
        month=5, ccl_honoured=True,
    )  # fmt: skip
    assert result.limits.ccl.value == 0.0
    assert not result.limits.feed_in_off and "Multi-RS" in result.limits.feed_in_reason
    assert result.limits.cvl.cause is not Cause.CURRENT_HOLD


def test_rule1_restored_only_after_the_reason_is_gone_for_the_hold_time() -> None:
    from aggbatt.core.safety import FEED_IN_RESTORE_AFTER_S

    cold, warm = pack(temperature=-2.0, ccl=150.0), pack(temperature=20.0, ccl=150.0)
    steps = [(0.0, [cold]), (1.0, [warm])]
    assert run(steps).limits.feed_in_off  # the reason is gone, but not for long enough
    steps.append((2.0 + FEED_IN_RESTORE_AFTER_S, [warm]))
    assert not run(steps).limits.feed_in_off


# --- Rule 2: one bad value never hides good ones ---------------------------------------------


def test_rule2_a_pack_with_a_hot_sensor_still_contributes_its_cells_and_flags() -> None:
    bad = pack([3.30] * 15 + [3.50], temperature=200.0)
    result = cycle(pack(), bad)
    agg = result.aggregate
    assert agg.max_cell is not None and agg.max_cell.value == pytest.approx(3.50)
    assert result.limits.cvl.value < 16 * 3.40  # the cut
    faults = agg.faults["svc1"]
    assert any(f.path == "/Dc/0/Temperature" and "200" in f.value for f in faults)
    assert agg.alarms["InternalFailure"] >= 1


def test_rule2_soc_slightly_over_100_or_missing_keeps_the_pack_in_the_bank() -> None:
    for value in (100.4, None):
        result = cycle(pack(), pack(soc=value))
        assert len(result.aggregate.batteries) == 2, value
        assert any(f.path == "/Soc" for f in result.aggregate.faults["svc1"])


def test_rule2_an_unknown_cell_near_the_top_keeps_the_cut() -> None:
    high = pack([3.30] * 15 + [3.50])
    lost = dict(high)
    lost["/Voltages/Cell16"] = None
    lost["/System/MaxCellVoltage"] = 3.30
    result = run([(0.0, [high]), (1.0, [lost])])
    assert result.limits.cvl.value < 16 * 3.40
    assert result.aggregate.max_cell is not None
    assert result.aggregate.max_cell.value == pytest.approx(3.50)


def test_rule2_an_unknown_temperature_keeps_the_last_temperature_limit() -> None:
    cold = pack(temperature=-3.0)
    lost = pack(temperature=None)
    lost["/System/MinCellTemperature"] = None
    result = run([(0.0, [cold]), (1.0, [lost])])
    assert result.limits.ccl.value == 0.0
    assert "cold" in result.limits.ccl.reason


@settings(max_examples=150, deadline=None)
@given(
    path=st.sampled_from(
        ["/Soc", "/Dc/0/Temperature", "/Dc/0/Voltage", "/Info/MaxChargeCurrent", "/Voltages/Cell3"]
    ),
    bad=st.one_of(
        st.none(),
        st.just(math.nan),
        st.just(math.inf),
        st.text(max_size=3),
        st.floats(min_value=1e5, max_value=1e9),
    ),
    top=st.floats(min_value=3.51, max_value=3.65),
)
def test_rule2_property_a_bad_value_never_releases_the_cut_or_a_block(
    path: str, bad: Any, top: float
) -> None:
    """Any bad value on any one path of a pack that is over the max: the cut and block stay."""
    good = pk([3.30] * 15 + [top], {"/Io/AllowToCharge": 0})
    broken = dict(good)
    broken[path] = bad
    result = run([(0.0, [pack(), good]), (1.0, [pack(), broken])])
    assert result.limits.cvl.value < 16 * 3.40
    assert result.limits.ccl.value == 0.0
    assert result.limits.feed_in_off


# --- Rule 3: honour every block ---------------------------------------------------------------


def block_on_disconnect() -> dict[str, Any]:
    """serialbattery's BLOCK_ON_DISCONNECT: the flags at 0, every other value None."""
    values: dict[str, Any] = {p: None for p in pack()}
    values.update({"/Io/AllowToCharge": 0, "/Io/AllowToDischarge": 0, "/State": 9})
    return values


def test_rule3_a_block_counts_whatever_the_other_values() -> None:
    result = cycle(pack(), block_on_disconnect())
    assert result.limits.ccl.value == 0.0
    assert result.limits.dcl.value == 0.0
    assert result.limits.feed_in_off


def test_rule3_policy_all_a_connected_pack_at_0_a_stops_the_bank() -> None:
    cfg = config(batteries={"block_policy": "all"})
    at_zero = pack(ccl=0.0)  # allows charging, but its BMS says 0 A: it still takes current
    assert cycle(pack(), at_zero, cfg=cfg).limits.ccl.value == 0.0
    # serialbattery names "BMS" as the reason when its FET is open
    disconnected = pk(paths={"/Io/AllowToCharge": 0, "/Info/ChargeLimitation": "BMS"}, ccl=0.0)
    result = cycle(pack(), disconnected, cfg=cfg)
    assert result.limits.ccl.value == pytest.approx(100.0)


def test_rule3_alarms_of_a_pack_left_out_are_never_downgraded() -> None:
    broken = block_on_disconnect()
    broken["/Alarms/BmsCable"] = 2
    result = cycle(pack(), broken)
    assert result.aggregate.alarms["BmsCable"] == 2


# --- Rule 4: both sources of a cell extreme count ------------------------------------------


def test_rule4_the_summary_path_counts_when_it_is_higher_than_the_cells() -> None:
    values = pack([3.40] * 16)
    values["/System/MaxCellVoltage"] = 3.50
    values["/System/MaxVoltageCellId"] = "C7"
    result = cycle(values)
    assert result.aggregate.max_cell is not None
    assert result.aggregate.max_cell.value == pytest.approx(3.50)
    assert result.limits.cvl.value < 16 * 3.40


def test_rule4_the_cells_count_when_the_summary_is_lower() -> None:
    values = pack([3.30] * 15 + [3.48])
    values["/System/MinCellVoltage"] = 2.80
    result = cycle(values)
    assert result.aggregate.min_cell is not None
    assert result.aggregate.min_cell.value == pytest.approx(2.80)


def test_rule4_fewer_cell_paths_than_the_count_is_reported() -> None:
    values = pack([3.30] * 16)
    del values["/Voltages/Cell16"]
    result = cycle(values)
    faults = result.aggregate.faults["svc0"]
    assert any("cell paths" in f.problem for f in faults)


# --- Rule 5: a pack that does not match the configuration is refused safely -----------------


@pytest.mark.parametrize(
    "why, snapshot",
    [("8 cells", pack([3.30] * 8)), ("a 24 V Lynx in a 16 x LFP bank", lynx(voltage=27.0))],
)
def test_rule5_a_mismatched_pack_stops_charging_and_is_not_averaged(
    why: str, snapshot: dict[str, Any]
) -> None:
    result = cycle(pack(), snapshot)
    assert result.limits.ccl.value == 0.0, why
    assert result.limits.feed_in_off, why
    assert "P2" in result.limits.ccl.reason
    agg = result.aggregate
    assert [b.key for b in agg.batteries] == ["svc0"], why
    assert agg.voltage == pytest.approx(16 * 3.30)
    assert agg.alarms["InternalFailure"] == 2
    assert result.limits.cvl.value == pytest.approx(16 * 3.40)


# --- Rule 6: the CVL is never above what a pack's BMS allows --------------------------------


def test_rule6_own_cvl_never_above_an_online_packs_bms_cvl() -> None:
    result = cycle(pack(cvl=53.0), pack(cvl=55.2))
    assert result.limits.cvl.value == pytest.approx(53.0)
    assert "P1" in result.limits.cvl.reason


def test_rule6_opt_out_of_the_bms_cvl_cap_is_explicit() -> None:
    cfg = config(control={"respect_bms_cvl": False})
    assert cycle(pack(cvl=53.0), cfg=cfg).limits.cvl.value == pytest.approx(16 * 3.40)


def test_rule6_pass_through_never_above_cells_times_max_cell_voltage() -> None:
    cfg = config(passthrough={"max_charge_current": 200.0})
    result = cycle(pack(cvl=58.4), cfg=cfg)  # a SoC-reset voltage of 3.65 V per cell
    assert result.limits.cvl.value == pytest.approx(16 * 3.50)


def test_rule6_implausible_bms_cvl_is_not_passed_through() -> None:
    cfg = config(passthrough={"max_charge_current": 200.0})
    result = cycle(pack(cvl=540.0), pack(cvl=54.0), cfg=cfg)
    assert result.limits.cvl.value == pytest.approx(54.0)
    assert any(f.path == "/Info/MaxChargeVoltage" for f in result.aggregate.faults["svc0"])


def test_rule6_max_until_all_float_a_pack_in_over_voltage_wins() -> None:
    cfg = config(passthrough={"cvl": "max_until_all_float", "max_charge_current": 200.0})
    bulk = pk(paths={"/Info/ChargeMode": "Bulk"}, cvl=55.2)
    ovp = pk(paths={"/Info/ChargeMode": "Bulk (Cell OVP)"}, cvl=54.1)
    floating = pk(paths={"/Info/ChargeMode": "Float"}, cvl=54.0)
    assert cycle(bulk, floating, cfg=cfg).limits.cvl.value == pytest.approx(55.2)
    assert cycle(bulk, ovp, cfg=cfg).limits.cvl.value == pytest.approx(54.1)


def test_rule6_float_transition_is_not_float_and_the_drop_to_float_is_ramped() -> None:
    cfg = config(passthrough={"cvl": "max_until_all_float", "max_charge_current": 200.0})
    bulk = pk(paths={"/Info/ChargeMode": "Bulk"}, cvl=55.2)
    transition = pk(paths={"/Info/ChargeMode": "Float Transition"}, cvl=54.6)
    floating = pk(paths={"/Info/ChargeMode": "Float"}, cvl=54.0)
    assert cycle(transition, floating, cfg=cfg).limits.cvl.value == pytest.approx(54.6)
    first = cycle(bulk, floating, cfg=cfg, t=0.0)
    after = cycle(floating, floating, cfg=cfg, state=first.state, t=10.0)
    assert 54.0 < after.limits.cvl.value < 55.2  # ramped, not a step
    later = cycle(floating, floating, cfg=cfg, state=after.state, t=1000.0)
    assert later.limits.cvl.value == pytest.approx(54.0)


# --- Rule 7: validation refuses unsafe configurations ------------------------------------------


@pytest.mark.parametrize(
    "own, words",
    [
        ({"charge_voltage_per_month": [3.50] * 12}, "charge_voltage_per_month"),
        ({"balancing_voltage": 3.55}, "balancing_voltage"),
        ({"balancing_voltage": 3.49}, "can never complete"),
        ({"max_cell_voltage": 4.1}, "LFP"),
    ],
)
def test_rule7_unsafe_voltages_are_refused_with_key_value_and_fix(
    own: dict[str, Any], words: str
) -> None:
    with pytest.raises(ConfigError) as err:
        config(own=own)
    text = str(err.value)
    assert words in text
    assert "fix" in text or "lower" in text or "raise" in text


def test_rule7_the_shipped_defaults_can_complete_a_balancing_in_every_month() -> None:
    from aggbatt.config import GOAL_MARGIN_V

    own = Config().control.own
    for month_voltage in own.charge_voltage_per_month:
        target = max(month_voltage, own.balancing_voltage)
        assert target - GOAL_MARGIN_V + own.cell_diff_goal <= own.max_cell_voltage


def test_rule7_lto_voltages_pass_with_the_lto_chemistry() -> None:
    lto = {
        "chemistry": "LTO",
        "charge_voltage_per_month": [2.45] * 12,
        "balancing_voltage": 2.50,
        "max_cell_voltage": 2.60,
        "min_cell_voltage": 1.90,
    }
    with pytest.raises(ConfigError):
        validate_config({"control": {"own": {k: v for k, v in lto.items() if k != "chemistry"}}})
    cfg = validate_config(
        {
            "batteries": {"chemistry": "LTO"},
            "control": {"own": {k: v for k, v in lto.items() if k != "chemistry"}},
        }
    )
    assert cfg.batteries.chemistry == "LTO"


# --- Rule 8: latches and memory survive data loss and restarts ----------------------------------


def test_rule8_the_discharge_latch_holds_when_cell_data_disappear() -> None:
    low = pack([2.85] + [3.20] * 15)
    no_cells = {k: v for k, v in low.items() if not k.startswith("/Voltages/Cell")}
    no_cells["/System/MinCellVoltage"] = None
    no_cells["/System/MaxCellVoltage"] = None
    result = run([(0.0, [low]), (1.0, [no_cells])])
    assert result.limits.dcl.value == 0.0


def test_rule8_known_packs_survive_a_restart_and_scale_the_limits() -> None:
    from aggbatt.core.engine import to_state

    two = cycle(pack(ccl=150.0), pack(ccl=150.0))
    stored = to_state(two.state, None)
    restarted = cycle(pack(ccl=150.0), state=initial_state(stored))
    # rule 15: the missing pack is not seen, so charging stops; discharging at the share online
    assert restarted.limits.ccl.value == 0.0 and "P2" in restarted.limits.ccl.reason
    assert restarted.limits.dcl.value == pytest.approx(100.0)  # 50 % of 200 A
    assert restarted.limits.feed_in_off


# --- Rule 9: balancing ends ---------------------------------------------------------------------


def test_rule9_a_balancing_that_does_not_converge_ends_with_a_warning() -> None:
    cfg = config(own={"balancing_max_hours": 2.0})
    spread = pack([3.44] * 15 + [3.49])  # at the balancing voltage, 50 mV apart
    state: EngineState | None = initial_state(State())  # never balanced: due
    events = []
    for hour in range(4):
        result = cycle(spread, cfg=cfg, state=state, t=hour * 3600.0)
        state = result.state
        events.append(result.state.balancing.event)
    assert state is not None and state.balancing.phase == "idle"
    assert any("did not converge" in e for e in events), events


def test_rule9_a_last_balancing_in_the_future_is_reported_and_due() -> None:
    future = State(last_balancing=WALL + 30 * 86400.0)
    result = cycle(pack(), state=initial_state(future))
    assert result.state.balancing.phase == "charging"
    assert "future" in result.state.balancing.event


# --- Rule 10: frozen means frozen --------------------------------------------------------------


def test_rule10_cells_and_current_unchanged_while_current_flows_is_frozen() -> None:
    flowing = pack(current=20.0)
    fresh = {"svc0": Activity(last_change=99.0, last_vital_change=99.0)}
    assert len(cycle(flowing, t=100.0, activity=fresh).aggregate.batteries) == 1
    # something else (a temperature, a counter) keeps changing, the cells and current do not
    stuck = {"svc0": Activity(last_change=99.0, last_vital_change=0.0)}
    result = cycle(flowing, t=100.0, activity=stuck)
    assert result.aggregate.batteries == ()
    assert "frozen" in result.aggregate.invalid[0].reason
    # the reason is stable from cycle to cycle: one log line per episode
    again = cycle(flowing, t=150.0, activity=stuck)
    assert again.aggregate.invalid[0].reason == result.aggregate.invalid[0].reason
    idle = {"svc0": Activity(last_change=99.0, last_vital_change=0.0)}
    assert len(cycle(pack(current=0.0), t=100.0, activity=idle).aggregate.batteries) == 1


# --- Rule 12: a pack on the bus is not always in the bank ----------------------------------------


def test_rule12_a_bms_that_is_not_running_is_not_averaged_and_does_not_block() -> None:
    standby = lynx(voltage=50.0, soc=20.0)
    standby.update({"/State": 14, "/Io/AllowToCharge": 0, "/Io/AllowToDischarge": 0})
    running = lynx(voltage=52.42, soc=83.51)
    cfg = config(batteries={"cells_per_battery": 16})
    result = cycle(running, standby, cfg=cfg)
    agg = result.aggregate
    assert [b.key for b in agg.batteries] == ["svc0"]
    assert agg.voltage == pytest.approx(52.42)
    assert agg.soc == pytest.approx(83.51)
    assert "not running" in agg.invalid[0].reason
    assert result.limits.ccl.value > 0.0


# --- Rule 13: no limit without a basis -----------------------------------------------------------


def test_rule13_pass_through_never_publishes_a_cvl_of_0_v() -> None:
    cfg = config(passthrough={"max_charge_current": 200.0})
    for snaps in ([], [pack(cvl=None)]):
        result = cycle(*snaps, cfg=cfg)
        assert result.limits.cvl.value > 0.0
        assert result.limits.ccl.value == 0.0
        assert result.limits.feed_in_off


# --- Rule 14: per-pack current closed loop ------------------------------------------------------


def test_rule14_a_pack_carrying_more_than_its_bms_limit_lowers_the_bank_ccl() -> None:
    cfg = config(own={"max_charge_current": 300.0})
    # equal capacity, but pack 2 has half the resistance: it takes 2/3 of the current
    a = pack(current=40.0, ccl=100.0)
    b = pack(current=80.0, ccl=100.0)
    result = cycle(a, b, cfg=cfg)
    # by capacity 200 A would be allowed; at 2/3 of it pack 2 would carry 133 A > 100 A
    assert result.limits.ccl.value == pytest.approx(150.0)
    assert "P2" in result.limits.ccl.reason
    assert not result.limits.feed_in_off  # 120 A now: below 95 % of 150 A, nothing to hold


# --- properties over generated banks ------------------------------------------------------------

pack_strategy = st.fixed_dictionaries(
    {
        "cells": st.lists(st.floats(2.8, 3.7), min_size=16, max_size=16),
        "ccl": st.one_of(st.none(), st.floats(0.0, 300.0)),
        "cvl": st.one_of(st.none(), st.floats(50.0, 58.4)),
        "temperature": st.one_of(st.none(), st.floats(-10.0, 60.0)),
        "current": st.floats(-100.0, 100.0),
        "allow": st.booleans(),
        "installed": st.floats(50.0, 400.0),
    }
)


@settings(max_examples=300, deadline=None)
@given(
    packs=st.lists(pack_strategy, min_size=1, max_size=4),
    mode=st.sampled_from(["own", "passthrough"]),
)
def test_rules_hold_for_any_bank(packs: list[dict[str, Any]], mode: str) -> None:
    """Rules 1, 3, 6 and 14 on any bank in either mode: the CVL caps, a block is 0 A, a hard
    stop or a cut turns feed-in off, a current over the CCL with feed-in on meets a CVL at or
    below the bank's voltage, and no pack is asked for more than its own limit."""
    cfg = config(passthrough={"max_charge_current": 100.0}) if mode == "passthrough" else CONFIG
    snaps = [
        pk(
            p["cells"],
            {"/Io/AllowToCharge": int(p["allow"])},
            ccl=p["ccl"],
            cvl=p["cvl"],
            temperature=p["temperature"],
            current=p["current"],
            installed=p["installed"],
        )
        for p in packs
    ]
    result = cycle(*snaps, cfg=cfg)
    limits, agg = result.limits, result.aggregate
    own = cfg.control.own
    assert limits.cvl.value <= 16 * own.max_cell_voltage + 1e-9
    for b in agg.batteries:
        if b.bms_cvl is not None and mode == "own":
            assert limits.cvl.value <= b.bms_cvl + 1e-9
    if not all(p["allow"] for p in packs):
        assert limits.ccl.value == 0.0
    stop = limits.ccl.value == 0.0 and limits.ccl.cause.protective
    if stop or (agg.max_cell and agg.max_cell.value >= 3.50):
        assert limits.feed_in_off
    flow = sum(b.current for b in agg.batteries)
    floor = 16 * own.min_cell_voltage
    if not limits.feed_in_off and flow >= HOLD_ON * limits.ccl.value > 0.0:
        assert agg.voltage is not None
        assert limits.cvl.value <= max(agg.voltage, floor) + 1e-6  # the CVL holds the current
    if flow >= 5.0 and len(agg.batteries) > 1:
        for b in agg.batteries:  # at the published CCL, each pack within its own limit
            if b.bms_ccl is not None and b.current > 0:
                assert limits.ccl.value * b.current / flow <= b.bms_ccl + 1e-6


def test_rule9_a_balancing_that_never_reaches_its_target_ends_too() -> None:
    """Found by the simulator's winter month: serialbattery's own CCL taper kept the bank
    below the balancing target, and the balancing stayed in its charging phase for good."""
    below = pack([3.39] * 16)  # 54.2 V, under the target 55.2 V - 0.16 V
    state: EngineState | None = initial_state(State())
    events = []
    for day in range(12):
        result = cycle(below, state=state, t=day * 86400.0)
        state = result.state
        events.append(result.state.balancing.event)
    assert state is not None and state.balancing.phase in ("idle", "charging")
    assert any("did not reach its target" in e for e in events), events


def test_urgency_of_a_cell_change() -> None:
    """A calm bank: only a cell near a limit, or one that is not a number, runs a cycle at once.
    Before: a NaN cell was not urgent (every comparison with NaN is false)."""
    calm = Urgency(high=3.45, low=2.95, attentive=False)
    assert not calm.urgent({"/Voltages/Cell1": 3.30, "/Dc/0/Voltage": 99.0})
    assert calm.urgent({"/Voltages/Cell1": 3.46})
    assert calm.urgent({"/System/MinCellVoltage": 2.90})
    for bad in (math.nan, "3.3", True, None):
        assert calm.urgent({"/Voltages/Cell1": bad}), bad
    assert calm.urgent({"/Io/AllowToCharge": 1})
    assert Urgency(high=3.45, low=2.95, attentive=True).urgent({"/Voltages/Cell1": 3.30})
