"""One cycle of the core: battery snapshots in, everything to publish out (pure).

This glues the core as h11's ``Connection`` glues its parts: :func:`run_cycle` reads each
battery (:mod:`.battery`), merges (:mod:`.merge`), advances the Coulomb counter
(:mod:`.coulomb`) and the balancing scheduler (:mod:`.balancing`), and runs the charge-limit
controller (:mod:`.limits`). Time comes in as arguments: ``now_mono`` (monotonic, for the
counter), ``now_wall`` (Unix time, for balancing dates) and ``month`` (1..12, local).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aggbatt.config import Config
from aggbatt.core import balancing as bal
from aggbatt.core import coulomb
from aggbatt.core.battery import Battery, Invalid, read_battery, unique_names
from aggbatt.core.limits import (
    ChargeLimits,
    ControllerState,
    month_name,
    own_limits,
    passthrough_limits,
)
from aggbatt.core.merge import Aggregate, merge
from aggbatt.state import State


@dataclass(frozen=True, slots=True)
class EngineState:
    counter: coulomb.Counter | None
    balancing: bal.Balancing
    controller: ControllerState
    stored_charge_ah: float | None = None
    stored_installed_ah: float | None = None
    known_capacity: Mapping[str, float] = field(default_factory=dict)
    """Installed Ah of every battery seen since start, so the limits can scale when one is gone."""


def online_share(agg: Aggregate, known_capacity: Mapping[str, float], expected: int) -> float:
    """Share of the bank that is online: by known capacity, and by count against ``expected``."""
    share = 1.0
    known = sum(known_capacity.values())
    if known > 0:
        share = min(share, agg.installed_ah / known)
    if expected > 0:
        share = min(share, len(agg.batteries) / expected)
    return share


@dataclass(frozen=True, slots=True)
class CycleResult:
    aggregate: Aggregate
    readings: tuple[Battery | Invalid, ...]
    limits: ChargeLimits
    soc: float | None
    """The SoC to publish: the own counter's, else the capacity-weighted BMS SoC."""
    remaining_ah: float | None
    state: EngineState


def initial_state(stored: State) -> EngineState:
    phase: bal.Phase = next((p for p in bal.PHASES if p == stored.balancing_phase), "idle")
    return EngineState(
        counter=None,
        balancing=bal.Balancing(stored.last_balancing, phase),
        controller=ControllerState(),
        stored_charge_ah=stored.charge_ah,
        stored_installed_ah=stored.installed_ah,
    )


def counter_settings(config: Config) -> coulomb.CounterSettings:
    return coulomb.CounterSettings(
        efficiency=config.soc.efficiency,
        save_precision=config.soc.save_precision,
        full_cell_voltage=config.full_cell_voltage,
        empty_cell_voltage=config.empty_cell_voltage,
        zero_reset=config.soc.zero_reset,
    )


def balancing_settings(config: Config) -> bal.BalancingSettings:
    own = config.control.own
    return bal.BalancingSettings(
        repetition_days=own.balancing_repetition_days,
        balancing_voltage=own.balancing_voltage,
        cell_diff_goal=own.cell_diff_goal,
        cells=config.batteries.cells_per_battery,
    )


def read_all(
    snapshots: Mapping[str, Mapping[str, Any]],
    preferred_names: Mapping[str, Any],
    excluded: Mapping[str, str] | None = None,
) -> tuple[Battery | Invalid, ...]:
    """Read every battery; those in ``excluded`` (key -> reason, e.g. frozen) are Invalid."""
    names = unique_names((key, preferred_names.get(key)) for key in snapshots)
    excluded = excluded or {}
    return tuple(
        Invalid(key, names[key], excluded[key])
        if key in excluded
        else read_battery(key, names[key], snapshots[key])
        for key in sorted(snapshots)
    )


def run_cycle(
    snapshots: Mapping[str, Mapping[str, Any]],
    preferred_names: Mapping[str, Any],
    config: Config,
    state: EngineState,
    *,
    now_mono: float,
    now_wall: float,
    month: int,
    measured_current: float | None = None,
    excluded: Mapping[str, str] | None = None,
) -> CycleResult:
    """Everything one cycle decides; ``snapshots`` holds the selected batteries' values."""
    readings = read_all(snapshots, preferred_names, excluded)
    agg = merge(
        readings,
        expected=config.batteries.expected,
        block_policy=config.batteries.block_policy,
        measured_current=measured_current,
    )
    known = {**state.known_capacity, **{b.key: b.installed_ah for b in agg.batteries}}
    counter = state.counter
    soc, remaining = agg.soc, (agg.remaining_ah if agg.online else None)
    if config.soc.own and agg.online and agg.current is not None and agg.soc is not None:
        if counter is None:
            counter = coulomb.start_counter(
                agg.installed_ah, state.stored_charge_ah, state.stored_installed_ah, agg.soc
            )
        counter = coulomb.step(
            counter,
            agg.current,
            now_mono,
            agg.installed_ah,
            agg.max_cell.value if agg.max_cell else None,
            agg.min_cell.value if agg.min_cell else None,
            counter_settings(config),
        )
        soc, remaining = counter.soc, counter.charge_ah

    balancing = state.balancing
    if config.control.mode == "own":
        month_voltage = config.control.own.charge_voltage_per_month[month - 1]
        settings = balancing_settings(config)
        if agg.online:
            balancing = bal.step(
                balancing, now_wall, month_voltage, agg.voltage, agg.cell_diff, settings
            )
        target = bal.target_cell_voltage(balancing, month_voltage, month_name(month), settings)
        share = online_share(agg, known, config.batteries.expected)
        limits = own_limits(agg, config, target, state.controller, share)
    else:
        limits = passthrough_limits(agg, config, state.controller)
    return CycleResult(
        aggregate=agg,
        readings=readings,
        limits=limits,
        soc=soc,
        remaining_ah=remaining,
        state=EngineState(
            counter=counter,
            balancing=balancing,
            controller=limits.state,
            stored_charge_ah=state.stored_charge_ah,
            stored_installed_ah=state.stored_installed_ah,
            known_capacity=known,
        ),
    )


def to_state(result: EngineState, feed_in_original: int | None) -> State:
    """What of the engine's state is persisted."""
    counter = result.counter
    return State(
        charge_ah=counter.charge_ah if counter else result.stored_charge_ah,
        installed_ah=counter.installed_ah if counter else result.stored_installed_ah,
        last_balancing=result.balancing.last_completed,
        balancing_phase=result.balancing.phase,
        feed_in_original=feed_in_original,
    )
