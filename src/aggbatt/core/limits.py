"""The charge-limit controller: CVL, CCL and DCL for the bank, each with the reason for it.

Theory of operation
-------------------
Every limit is the minimum of a few candidates, and each candidate carries a sentence saying
why and a :class:`Cause`. The winning sentence is published (``/Info/ChargeLimitation`` ...),
so a user and a test can both see why the bank is limited; the cause decides, in
:mod:`aggbatt.core.safety`, whether the limit is protective (feed-in must be off for DVCC to
enforce it) and which :class:`ChargeMode` the bank is in.

This module builds the candidates of the two modes; the rules that hold in both modes
(blocks, mismatched packs, CVL caps, the per-pack current loop, feed-in, no battery) are
enforced once, after it, by :func:`aggbatt.core.safety.enforce`.

Own mode (``control.mode = "own"``):

* CVL = cells x per-cell target (the month's voltage, or the balancing voltage while balancing).
  When any cell reaches ``max_cell_voltage`` the CVL is cut, per battery, to the sum of its
  cells minus the sum of their over-voltages, and the bank takes the lowest; the cut ends when
  every cell is below the maximum again. CVL never drops below cells x ``min_cell_voltage``.
* CCL = max charge current (x the share of the bank online) x the charge curve at the highest
  cell; limited by cell temperature (0 at or below ``temperature.charge_min``, derated by the
  charge curve at both the coldest and the hottest sensor); never above what the online
  batteries' own BMSes allow, each limit divided by its capacity share (a 100 A limit on a
  pack holding a third of the capacity allows 300 A).
* DCL likewise on the lowest cell, and latched at 0 once the lowest cell reaches
  ``min_cell_voltage`` until it recovers by ``min_cell_hysteresis`` (the latch holds while no
  cell data are known: rule 8).

Pass-through mode aggregates the BMSes' own limits (CVL lowest, or highest until all
batteries are in float; CCL/DCL by share, min x N or sum) with optional caps.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from aggbatt.config import Config
from aggbatt.core.battery import Battery
from aggbatt.core.curve import interpolate
from aggbatt.core.merge import Aggregate, BlockPolicy


class Cause(enum.Enum):
    """What produced a limit. Every cause but the configuration's own is protective: with it
    in force, DC-coupled PV feed-in must be off, or DVCC ignores the CCL (rule 1)."""

    CONFIGURED = "configured maximum"
    TARGET = "charge voltage target"
    CURVE = "cell voltage curve"
    TEMPERATURE = "temperature"
    BMS_LIMIT = "a pack's BMS limit"
    BMS_BLOCK = "a pack's BMS blocks"
    PACK_MISSING = "packs missing"
    PACK_CURRENT = "a pack's measured current"
    MISMATCH = "a pack does not match the configuration"
    NO_BATTERY = "no battery"
    PACK_LOST = "a pack not seen"
    NO_BASIS = "no battery publishes the value"
    LOW_CELL = "low cell latch"
    CVL_CUT = "cell over-voltage cut"
    BMS_CVL = "a pack's BMS charge voltage"
    CELL_MAX = "cells x max cell voltage"
    CURRENT_HOLD = "the charge current held by the CVL (feed-in on)"

    @property
    def protective(self) -> bool:
        return self not in (Cause.CONFIGURED, Cause.TARGET)


class ChargeMode(enum.Enum):
    """The bank's charge state, for ``/Info/ChargeMode`` (its value is the display text)."""

    BULK = "Bulk"
    BALANCING = "Balancing"
    PASSTHROUGH = "Pass-through"
    PASSTHROUGH_FLOAT = "Pass-through (float)"
    CVL_CUT = "Cell over-voltage: CVL cut"
    CHARGE_BLOCKED = "Charging blocked"
    PACK_LOST = "Pack not seen: charging stopped"
    MISMATCH = "Pack mismatch: charging stopped"
    NO_BATTERY = "No battery"

    @property
    def text(self) -> str:
        return self.value

    @property
    def calm(self) -> bool:
        """No cut, block or stop is in force: ordinary cell changes can wait for a cycle."""
        return self in (
            ChargeMode.BULK, ChargeMode.BALANCING, ChargeMode.PASSTHROUGH,
            ChargeMode.PASSTHROUGH_FLOAT,
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Limit:
    value: float
    reason: str
    cause: Cause = Cause.CONFIGURED


class FeedInStop(enum.Enum):
    """Why an episode of feed-in off began (rule 1 (b)): each ends its own way."""

    HARD_STOP = "a hard stop"
    """Ends when no stop has been in force for the (backed-off) wait."""
    CUT = "a CVL cut"
    """... and every cell is below the max, the cells within the goal."""
    HOLD_FAILED = "the CVL did not hold the current"
    """... and the current has stayed well below the CCL (the sun lower, the bank full)."""


@dataclass(frozen=True, slots=True)
class ControllerState:
    """What the controller remembers between cycles."""

    discharge_latched: bool = False
    feed_in_off: bool = False
    last_cvl: float | None = None
    feed_in_clear_since: float | None = None
    """Monotonic time since which no reason for feed-in off has been in force (rule 1)."""
    feed_in_offs: tuple[float, ...] = ()
    """Monotonic times at which feed-in went off in the last 24 h (rule 1's back-off)."""
    feed_in_stops: frozenset[FeedInStop] = frozenset()
    """What the feed-in episode in force has seen: each adds its own condition to the end."""
    hold_cvl: float | None = None
    """The CVL the current hold set last cycle (rule 1); None: no hold."""
    over_since: float | None = None
    """Monotonic time since which the bank current is over its CCL with feed-in on."""
    last_time: float | None = None
    """Monotonic time of the last cycle (for the ramp to float)."""


@dataclass(frozen=True, slots=True)
class ChargeLimits:
    cvl: Limit
    ccl: Limit
    dcl: Limit
    mode: ChargeMode
    battery_low_voltage: float | None
    feed_in_off: bool
    """True: DC-coupled PV feed-in must be off now."""
    feed_in_reason: str
    state: ControllerState
    maximum: float = float("inf")
    """The charge current the configuration allows (inf where it sets none: pass-through
    without a cap, own mode with the packs' rating): rule 1's yardstick."""


def lowest(candidates: Iterable[Limit]) -> Limit:
    """The lowest candidate; on a tie the first, so list hard stops before curves."""
    best: Limit | None = None
    for c in candidates:
        if best is None or c.value < best.value:
            best = c
    assert best is not None
    return best


Direction = Literal["charge", "discharge"]
CurrentPolicy = Literal["share", "min_times_n", "sum"]


def bms_limit(b: Battery, kind: Direction) -> float | None:
    return b.bms_ccl if kind == "charge" else b.bms_dcl


def allows(b: Battery, kind: Direction) -> bool:
    return b.allow_charge if kind == "charge" else b.allow_discharge


def carries(b: Battery, kind: Direction) -> bool:
    """False only where its BMS reports the FET of this direction open (rule 3)."""
    return b.carries_charge if kind == "charge" else b.carries_discharge


def rated_maximum(agg: Aggregate, known_ah: float, kind: Direction) -> float | None:
    """The bank current the packs' BMSes are rated for together: each pack's highest published
    limit over its share of the known bank's capacity, the lowest wins (two 50 A packs of equal
    size: 100 A). None when no pack publishes a limit."""
    total = max(known_ah, agg.installed_ah)
    best: float | None = None
    for b in agg.batteries:
        rated = b.rated_ccl if kind == "charge" else b.rated_dcl
        if rated is None or b.installed_ah <= 0:
            continue
        bank = rated * total / b.installed_ah
        best = bank if best is None else min(best, bank)
    return best


def bms_bank_limit(
    batteries: tuple[Battery, ...],
    kind: Direction,
    policy: CurrentPolicy = "share",
    block_policy: BlockPolicy = "any",
) -> Limit | None:
    """The bank limit the batteries' own BMS limits allow.

    ``share``: each battery's limit divided by its share of the installed capacity, the lowest
    wins (the bank current divides roughly by capacity). ``min_times_n`` and ``sum`` are the
    reference's policies. With ``block_policy = "all"`` a pack whose flag forbids the
    direction has opened its FET and carries nothing: the others share the current. A pack
    whose flag allows it but whose limit is 0 A is still connected and takes its share, so it
    holds the bank at 0 A (rule 3); so does serialbattery's flag 0 for a soft limit (its FET
    closed, :func:`carries`).
    """
    with_limit = [(b, lim) for b in batteries if (lim := bms_limit(b, kind)) is not None]
    if block_policy == "all":
        with_limit = [(b, lim) for b, lim in with_limit if carries(b, kind)]
    if not with_limit:
        return None
    if policy == "sum":
        return Limit(
            sum(lim for _, lim in with_limit), f"sum of the BMS {kind} limits", Cause.BMS_LIMIT
        )
    if policy == "min_times_n":
        b, lim = min(with_limit, key=lambda x: x[1])
        n = len(with_limit)
        return Limit(lim * n, f"BMS {kind} limit of {b.name} ({lim:g} A) x {n}", Cause.BMS_LIMIT)
    total = sum(b.installed_ah for b, _ in with_limit)
    best: Limit | None = None
    for b, lim in with_limit:
        share = b.installed_ah / total
        bank = lim / share
        if best is None or bank < best.value:
            reason = f"BMS {kind} limit of {b.name}: {lim:g} A at {share:.0%} share"
            best = Limit(bank, reason, Cause.BMS_LIMIT)
    return best


def cvl_cut(agg: Aggregate, vmax: float, cells: int) -> Limit | None:
    """The dynamic cut when any cell is at or above ``vmax``: lowest over batteries.

    A pack's cut is the sum of its cells minus their over-voltage, scaled to the configured
    ``cells`` when it has another count, so no CVL is computed from the wrong count (rule 5).
    """
    if agg.max_cell is None or agg.max_cell.value < vmax:
        return None
    best: float | None = None
    for b in agg.batteries:
        if b.cells:  # the sum of the cells minus their over-voltage
            value = sum(min(v, vmax) for v in b.cells) * cells / len(b.cells)
        elif b.max_cell is not None:
            value = b.cell_sum - max(0.0, b.max_cell[0] - vmax)
        else:
            continue
        best = value if best is None else min(best, value)
    if best is None:  # the cell over the max belongs to a pack left out: hold the bank
        best = cells * vmax - (agg.max_cell.value - vmax)
    cell = agg.max_cell
    reason = f"cell {cell.id} at {cell.value:.3f} V >= {vmax:.3f} V: cut to the cells' sum"
    return Limit(best, reason, Cause.CVL_CUT)


def configured_maximum(agg: Aggregate, config: Config, known_ah: float, kind: Direction) -> Limit:
    """Own mode's configured maximum, or the packs' rating where it is unset; without either,
    0 A and the fix. The rating is the packs' own BMS limit, so it is protective (rule 1)."""
    own = config.control.own
    configured = own.max_charge_current if kind == "charge" else own.max_discharge_current
    if configured is not None:
        return Limit(configured, f"max {kind} current {configured:g} A")
    rated = rated_maximum(agg, known_ah, kind)
    if rated is None:
        why = f"no pack publishes a {kind} limit: set control.own.max_{kind}_current"
        return Limit(0.0, why, Cause.NO_BASIS)
    return Limit(rated, f"the packs' rated {kind} current {rated:.0f} A", Cause.BMS_LIMIT)


def own_limits(
    agg: Aggregate,
    config: Config,
    target: tuple[float, str],
    state: ControllerState,
    online_share: float = 1.0,
    known_ah: float = 0.0,
    balancing: bool = False,
) -> ChargeLimits:
    """Own mode. ``target`` is (per-cell charge voltage, its reason) from the balancing step;
    ``balancing``: that target is the balancing voltage (:func:`balancing.in_force`).

    ``online_share`` (0..1) scales the configured bank currents when batteries are missing;
    ``known_ah`` is the known bank's capacity (the rating's yardstick).
    """
    own = config.control.own
    cells = config.batteries.cells_per_battery
    low_voltage = cells * own.min_cell_voltage
    top_c = configured_maximum(agg, config, known_ah, "charge")
    top_d = configured_maximum(agg, config, known_ah, "discharge")

    cvl = Limit(cells * target[0], f"{target[1]} {target[0]:.3f} V x {cells} cells", Cause.TARGET)
    cut = cvl_cut(agg, own.max_cell_voltage, cells)
    if cut is not None and cut.value < cvl.value:
        cvl = replace(cut, value=max(cut.value, low_voltage))

    ccl = lowest(
        [
            *_maximum(top_c, online_share),
            *_temperature_limits(agg, config, "charge", top_c.value * online_share),
            _curve_limit(agg, top_c.value * online_share, own.charge_curve, "charge"),
            *(_bms_limits(agg, "charge", config) if own.respect_bms_limits else []),
        ]
    )

    latched = state.discharge_latched
    vmin = agg.min_cell.value if agg.min_cell else None
    if vmin is not None:
        if vmin <= own.min_cell_voltage:
            latched = True
        elif vmin > own.min_cell_voltage + own.min_cell_hysteresis:
            latched = False
    online_d = top_d.value * online_share
    dcl_candidates = [
        *_maximum(top_d, online_share),
        *_temperature_limits(agg, config, "discharge", online_d),
        _curve_limit(agg, online_d, own.discharge_curve, "discharge"),
        *(_bms_limits(agg, "discharge", config) if own.respect_bms_limits else []),
    ]
    if latched:  # rule 8: the latch holds while no cell data are known
        release = own.min_cell_voltage + own.min_cell_hysteresis
        which = f"cell {agg.min_cell.id}" if agg.min_cell else "a cell (no cell data now)"
        reason = (
            f"{which} reached {own.min_cell_voltage:.3f} V; discharge resumes above {release:.3f} V"
        )
        dcl_candidates.insert(0, Limit(0.0, reason, Cause.LOW_CELL))
    mode = ChargeMode.BALANCING if balancing else ChargeMode.BULK
    return ChargeLimits(
        cvl=cvl,
        ccl=ccl,
        dcl=lowest(dcl_candidates),
        mode=mode,
        battery_low_voltage=low_voltage,
        feed_in_off=state.feed_in_off,
        feed_in_reason="",
        state=replace(state, discharge_latched=latched),
        maximum=own.max_charge_current if own.max_charge_current is not None else float("inf"),
    )


def _maximum(top: Limit, share: float) -> list[Limit]:
    """The configured maximum, first; scaled to the share of the bank online (protective)."""
    limits = [top]
    if share < 1.0:
        reason = f"{share:.0%} of the bank online: {share:.0%} of {top.value:.0f} A"
        limits.insert(0, Limit(top.value * share, reason, Cause.PACK_MISSING))
    return limits


def _bms_limits(agg: Aggregate, kind: Direction, config: Config) -> list[Limit]:
    """The packs' own BMS limit for the bank (capacity share), as a candidate if any."""
    bms = bms_bank_limit(agg.batteries, kind, "share", config.batteries.block_policy)
    return [] if bms is None else [bms]


def _curve_limit(
    agg: Aggregate, maximum: float, curve: tuple[list[float], list[float]], kind: Direction
) -> Limit:
    cell = agg.max_cell if kind == "charge" else agg.min_cell
    if cell is None:
        return Limit(maximum, f"max {kind} current (no cell voltages reported)")
    factor = interpolate(cell.value, *curve)
    which = "highest" if kind == "charge" else "lowest"
    return Limit(
        maximum * factor,
        f"{which} cell {cell.id} {cell.value:.3f} V: {factor:.0%} of {maximum:g} A",
        Cause.CURVE if factor < 1.0 else Cause.CONFIGURED,
    )


def _temperature_limits(
    agg: Aggregate, config: Config, kind: Direction, maximum: float
) -> list[Limit]:
    t = config.temperature
    if not t.enabled or agg.min_temp is None or agg.max_temp is None:
        return []
    limits: list[Limit] = []
    coldest, hottest = agg.min_temp, agg.max_temp
    if kind == "charge" and coldest.value <= t.charge_min:
        reason = f"too cold to charge: {coldest.id} {coldest.value:.1f} °C <= {t.charge_min:g} °C"
        limits.append(Limit(0.0, reason, Cause.TEMPERATURE))
    temps, factors = (
        (t.charge_temperatures, t.charge_factors)
        if kind == "charge"
        else (t.discharge_temperatures, t.discharge_factors)
    )
    for sensor in (coldest, hottest):
        factor = interpolate(sensor.value, temps, factors)
        if factor < 1.0:
            reason = f"temperature {sensor.id} {sensor.value:.1f} °C: {factor:.0%} of {maximum:g} A"
            limits.append(Limit(maximum * factor, reason, Cause.TEMPERATURE))
    return limits


FLOAT_RAMP_V_PER_CELL_S = 0.001
"""Pass-through: the drop to the float voltage is ramped at 1 mV per cell and second."""


def _floating(b: Battery) -> bool:
    """In float, not in the transition to it (serialbattery's "Float Transition")."""
    mode = (b.charge_mode or "").lower()
    return "float" in mode and "transition" not in mode


def charge_stage(b: Battery) -> bool:
    """In float or on the way to it: the driver's own charge stage, not a protection."""
    return "float" in (b.charge_mode or "").lower()


def cell_problem(b: Battery, max_cell_voltage: float) -> bool:
    """A pack whose BMS lowers its CVL for a cell, not for float (rule 6)."""
    mode = (b.charge_mode or "").lower()
    high = b.max_cell is not None and b.max_cell[0] >= max_cell_voltage
    return high or "ovp" in mode or b.alarms.get("HighCellVoltage", 0) > 0


def passthrough_limits(
    agg: Aggregate, config: Config, state: ControllerState, now: float
) -> ChargeLimits:
    """Aggregate the BMSes' own limits; the caps and stops come after, in core.safety."""
    pt = config.control.passthrough
    block = config.batteries.block_policy
    cvls = [(b.bms_cvl, b) for b in agg.batteries if b.bms_cvl is not None]
    floating = bool(cvls) and all(_floating(b) for _, b in cvls)
    mode = ChargeMode.PASSTHROUGH_FLOAT if floating else ChargeMode.PASSTHROUGH
    if not cvls:
        cvl = Limit(0.0, "no battery publishes a charge voltage", Cause.NO_BASIS)
    elif pt.cvl == "max_until_all_float" and not floating:
        value, b = max(cvls, key=lambda x: x[0])
        cvl = Limit(
            value, f"highest BMS CVL ({b.name}) until all batteries are in float", Cause.TARGET
        )
    else:
        value, b = min(cvls, key=lambda x: x[0])
        why = "all batteries in float" if pt.cvl == "max_until_all_float" else "lowest BMS CVL"
        cvl = Limit(value, f"{why} ({b.name})", Cause.TARGET)
        last, then = state.last_cvl, state.last_time
        if floating and last is not None and then is not None and last > value:
            step = FLOAT_RAMP_V_PER_CELL_S * config.batteries.cells_per_battery * (now - then)
            if last - step > value:
                cvl = Limit(
                    last - step, f"ramping down to float ({b.name}: {value:.2f} V)", Cause.TARGET
                )
    results: list[Limit] = []
    directions: tuple[tuple[Direction, float | None], ...] = (
        ("charge", pt.max_charge_current),
        ("discharge", pt.max_discharge_current),
    )
    for kind, cap in directions:
        candidates: list[Limit] = []
        if cap is not None:
            candidates.append(Limit(cap, f"configured max {kind} current {cap:g} A"))
        bms = bms_bank_limit(agg.batteries, kind, pt.current_policy, block)
        reason = f"no battery publishes a {kind} current limit"
        candidates.append(bms or Limit(0.0, reason, Cause.NO_BASIS))
        results.append(lowest(candidates))
    return ChargeLimits(
        cvl=cvl,
        ccl=results[0],
        dcl=results[1],
        mode=mode,
        battery_low_voltage=None,
        feed_in_off=state.feed_in_off,
        feed_in_reason="",
        state=state,
        maximum=float("inf") if pt.max_charge_current is None else pt.max_charge_current,
    )


MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
"""English, whatever the locale: calendar.month_name ran strftime on every cycle."""


def month_name(month: int) -> str:
    return MONTHS[month - 1]
