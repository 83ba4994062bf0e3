"""The charge-limit controller: CVL, CCL and DCL for the bank, each with the reason for it.

Theory of operation
-------------------
Every limit is the minimum of a few candidates, and each candidate carries a sentence saying
why. The winning sentence is published (``/Info/ChargeLimitation`` ...), so a user and a test
can both see why the bank is limited.

Own mode (``control.mode = "own"``):

* CVL = cells x per-cell target (the month's voltage, or the balancing voltage while balancing).
  When any cell reaches ``max_cell_voltage`` the CVL is cut, per battery, to the sum of its
  cells minus the sum of their over-voltages, and the bank takes the lowest; the cut ends when
  every cell is below the maximum again. CVL never drops below cells x ``min_cell_voltage``.
* CCL = max charge current x the charge curve at the highest cell; 0 while a BMS blocks
  charging (``batteries.block_policy``); limited by cell temperature (0 at or below
  ``temperature.charge_min``, derated by the charge curve at both the coldest and the hottest
  sensor); never above what the online batteries' own BMSes allow, each limit divided by its
  capacity share (a 100 A limit on a pack holding a third of the capacity allows 300 A).
* DCL likewise on the lowest cell; 0 while a BMS blocks discharging, and latched at 0 once
  the lowest cell reaches ``min_cell_voltage`` until it recovers by ``min_cell_hysteresis``.
* Feed-in: DC-coupled PV feed-in must be off while the CVL is cut or charging is blocked
  (Victron's CCL is not honoured with feed-in on); it may be restored only once every cell is
  below the maximum and the cell difference is below the goal. The decision is latched here;
  the shell only acts on it.

Pass-through mode aggregates the BMSes' own limits (CVL lowest, or highest until all
batteries are in float; CCL/DCL by share, min x N or sum) with optional caps.

With no valid battery at all: the last CVL is kept and CCL = DCL = 0, so DVCC stops safely.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass

from aggbatt.config import Config
from aggbatt.core.battery import Battery
from aggbatt.core.curve import interpolate
from aggbatt.core.merge import Aggregate, BlockPolicy


@dataclass(frozen=True, slots=True)
class Limit:
    value: float
    reason: str


@dataclass(frozen=True, slots=True)
class ControllerState:
    """What the controller remembers between cycles."""

    discharge_latched: bool = False
    feed_in_off: bool = False
    last_cvl: float | None = None


@dataclass(frozen=True, slots=True)
class ChargeLimits:
    cvl: Limit
    ccl: Limit
    dcl: Limit
    mode: str
    """For ``/Info/ChargeMode``."""
    battery_low_voltage: float | None
    feed_in_off: bool
    """True: DC-coupled PV feed-in must be off now."""
    feed_in_reason: str
    state: ControllerState


def _lowest(candidates: Iterable[Limit]) -> Limit:
    best: Limit | None = None
    for c in candidates:
        if best is None or c.value < best.value:
            best = c
    assert best is not None
    return best


def bms_bank_limit(
    batteries: tuple[Battery, ...],
    attr: str,
    policy: str = "share",
    block_policy: BlockPolicy = "any",
) -> Limit | None:
    """The bank limit the batteries' own BMS limits (``bms_ccl``/``bms_dcl``) allow.

    ``share``: each battery's limit divided by its share of the installed capacity, the lowest
    wins (the bank current divides roughly by capacity). ``min_times_n`` and ``sum`` are the
    reference's policies. With ``block_policy = "all"`` a battery at 0 A is taken to have
    disconnected itself and the others share the current.
    """
    with_limit = [(b, getattr(b, attr)) for b in batteries if getattr(b, attr) is not None]
    if not with_limit:
        return None
    if block_policy == "all":
        carrying = [(b, lim) for b, lim in with_limit if lim > 0]
        with_limit = carrying or with_limit
    kind = "charge" if attr == "bms_ccl" else "discharge"
    if policy == "sum":
        return Limit(sum(lim for _, lim in with_limit), f"sum of the BMS {kind} limits")
    if policy == "min_times_n":
        b, lim = min(with_limit, key=lambda x: x[1])
        n = len(with_limit)
        return Limit(lim * n, f"BMS {kind} limit of {b.name} ({lim:g} A) x {n}")
    total = sum(b.installed_ah for b, _ in with_limit)
    best: Limit | None = None
    for b, lim in with_limit:
        share = b.installed_ah / total
        bank = lim / share
        if best is None or bank < best.value:
            best = Limit(bank, f"BMS {kind} limit of {b.name}: {lim:g} A at {share:.0%} share")
    return best


def _cvl_cut(agg: Aggregate, vmax: float) -> Limit | None:
    """The dynamic cut when any cell is at or above ``vmax``: lowest over batteries."""
    if agg.max_cell is None or agg.max_cell.value < vmax:
        return None
    best: Limit | None = None
    for b in agg.batteries:
        if b.cells:
            over = sum(v - vmax for v in b.cells if v > vmax)
            value = sum(b.cells) - over
        elif b.max_cell is not None:
            value = b.cell_sum - max(0.0, b.max_cell[0] - vmax)
        else:
            continue
        if best is None or value < best.value:
            best = Limit(value, "")
    if best is None:
        return None
    cell = agg.max_cell
    reason = f"cell {cell.id} at {cell.value:.3f} V >= {vmax:.3f} V: cut to the cells' sum"
    return Limit(best.value, reason)


def _names(batteries: Iterable[Battery], flag: str) -> str:
    return ", ".join(b.name for b in batteries if not getattr(b, flag))


def own_limits(
    agg: Aggregate,
    config: Config,
    target: tuple[float, str],
    state: ControllerState,
    online_share: float = 1.0,
) -> ChargeLimits:
    """Own mode. ``target`` is (per-cell charge voltage, its reason) from the balancing step.

    ``online_share`` (0..1) scales the configured bank currents when batteries are missing.
    """
    own = config.control.own
    max_charge = own.max_charge_current * online_share
    max_discharge = own.max_discharge_current * online_share
    cells = config.batteries.cells_per_battery
    low_voltage = cells * own.min_cell_voltage
    if not agg.online:
        return _no_battery(state, cells * target[0], low_voltage)

    # CVL: the target, cut while any cell is at or above the maximum
    cvl = Limit(cells * target[0], f"{target[1]} {target[0]:.3f} V x {cells} cells")
    over_voltage = agg.max_cell is not None and agg.max_cell.value >= own.max_cell_voltage
    cut = _cvl_cut(agg, own.max_cell_voltage)
    if cut is not None and cut.value < cvl.value:
        cvl = Limit(max(cut.value, low_voltage), cut.reason)

    # CCL: hard stops first, so that a tie at 0 A names the stop, not the curve
    block = config.batteries.block_policy
    charge_blocked = agg.allow_charge is False
    ccl_candidates: list[Limit] = []
    if charge_blocked:
        names = _names(agg.batteries, "allow_charge")
        ccl_candidates.append(Limit(0.0, f"charging blocked by the BMS of {names}"))
    ccl_candidates += _temperature_limits(agg, config, "charge", max_charge)
    ccl_candidates.append(_curve_limit(agg, max_charge, own.charge_curve, "charge"))
    if own.respect_bms_limits:
        ccl_candidates += _bms_limits(agg, "bms_ccl", block)
    ccl = _lowest(ccl_candidates)

    # DCL
    dcl_candidates: list[Limit] = []
    latched = state.discharge_latched
    vmin = agg.min_cell.value if agg.min_cell else None
    if vmin is not None:
        if vmin <= own.min_cell_voltage:
            latched = True
        elif vmin > own.min_cell_voltage + own.min_cell_hysteresis:
            latched = False
    if latched and agg.min_cell is not None:
        release = own.min_cell_voltage + own.min_cell_hysteresis
        dcl_candidates.append(
            Limit(
                0.0,
                f"cell {agg.min_cell.id} reached {own.min_cell_voltage:.3f} V; discharge resumes "
                f"above {release:.3f} V",
            )
        )
    if agg.allow_discharge is False:
        names = _names(agg.batteries, "allow_discharge")
        dcl_candidates.append(Limit(0.0, f"discharging blocked by the BMS of {names}"))
    dcl_candidates += _temperature_limits(agg, config, "discharge", max_discharge)
    dcl_candidates.append(_curve_limit(agg, max_discharge, own.discharge_curve, "discharge"))
    if own.respect_bms_limits:
        dcl_candidates += _bms_limits(agg, "bms_dcl", block)
    dcl = _lowest(dcl_candidates)

    # feed-in
    feed_in_off, feed_in_reason = _feed_in(
        agg, config, state.feed_in_off, over_voltage, charge_blocked
    )
    mode = (
        "Cell over-voltage: CVL cut" if over_voltage
        else "Charging blocked" if charge_blocked
        else "Balancing" if target[1].startswith("balancing")
        else "Bulk"
    )  # fmt: skip
    return ChargeLimits(
        cvl=cvl,
        ccl=ccl,
        dcl=dcl,
        mode=mode,
        battery_low_voltage=low_voltage,
        feed_in_off=feed_in_off,
        feed_in_reason=feed_in_reason,
        state=ControllerState(latched, feed_in_off, cvl.value),
    )


def _bms_limits(agg: Aggregate, attr: str, block: BlockPolicy) -> list[Limit]:
    """The packs' own BMS limit for the bank (capacity share), as a candidate if any."""
    bms = bms_bank_limit(agg.batteries, attr, "share", block)
    return [] if bms is None else [bms]


def _curve_limit(
    agg: Aggregate, maximum: float, curve: tuple[list[float], list[float]], kind: str
) -> Limit:
    cell = agg.max_cell if kind == "charge" else agg.min_cell
    if cell is None:
        return Limit(maximum, f"max {kind} current (no cell voltages reported)")
    factor = interpolate(cell.value, *curve)
    which = "highest" if kind == "charge" else "lowest"
    return Limit(
        maximum * factor,
        f"{which} cell {cell.id} {cell.value:.3f} V: {factor:.0%} of {maximum:g} A",
    )


def _temperature_limits(agg: Aggregate, config: Config, kind: str, maximum: float) -> list[Limit]:
    t = config.temperature
    if not t.enabled or agg.min_temp is None or agg.max_temp is None:
        return []
    limits: list[Limit] = []
    coldest, hottest = agg.min_temp, agg.max_temp
    if kind == "charge" and coldest.value <= t.charge_min:
        limits.append(
            Limit(
                0.0,
                f"too cold to charge: {coldest.id} {coldest.value:.1f} °C <= {t.charge_min:g} °C",
            )
        )
    temps, factors = (
        (t.charge_temperatures, t.charge_factors)
        if kind == "charge"
        else (t.discharge_temperatures, t.discharge_factors)
    )
    for sensor in (coldest, hottest):
        factor = interpolate(sensor.value, temps, factors)
        if factor < 1.0:
            limits.append(
                Limit(
                    maximum * factor,
                    f"temperature {sensor.id} {sensor.value:.1f} °C: {factor:.0%} of {maximum:g} A",
                )
            )
    return limits


def _feed_in(
    agg: Aggregate, config: Config, was_off: bool, over_voltage: bool, charge_blocked: bool
) -> tuple[bool, str]:
    own = config.control.own
    if over_voltage:
        return True, "a cell is at or above the max cell voltage: CVL cut"
    if charge_blocked:
        return True, "charging blocked by a BMS"
    if not was_off:
        return False, "normal"
    high = agg.max_cell is not None and agg.max_cell.value >= own.max_cell_voltage
    spread = agg.cell_diff is not None and agg.cell_diff >= own.cell_diff_goal
    if high or spread:
        return True, "waiting for every cell below max and the cell difference below the goal"
    return False, "cells settled: feed-in restored"


def _no_battery(state: ControllerState, default_cvl: float, low_voltage: float) -> ChargeLimits:
    cvl = state.last_cvl if state.last_cvl is not None else default_cvl
    reason = "no valid battery: last CVL kept"
    return ChargeLimits(
        cvl=Limit(cvl, reason),
        ccl=Limit(0.0, "no valid battery online"),
        dcl=Limit(0.0, "no valid battery online"),
        mode="No battery",
        battery_low_voltage=low_voltage,
        feed_in_off=state.feed_in_off,
        feed_in_reason="unchanged: no battery data",
        state=state,
    )


def passthrough_limits(agg: Aggregate, config: Config, state: ControllerState) -> ChargeLimits:
    """Aggregate the BMSes' own limits; no own curves, no feed-in control."""
    pt = config.control.passthrough
    block = config.batteries.block_policy
    cvls = [(b.bms_cvl, b) for b in agg.batteries if b.bms_cvl is not None]
    if not agg.online or not cvls:
        fallback = state.last_cvl if state.last_cvl is not None else 0.0
        no = _no_battery(state, fallback, 0.0)
        if agg.online:
            reason = "no battery publishes a charge voltage: last CVL kept"
            no = ChargeLimits(
                Limit(fallback, reason), no.ccl, no.dcl, "Pass-through", None, False, "", state
            )
        return no
    floating = all(b.charge_mode is not None and "float" in b.charge_mode.lower() for _, b in cvls)
    if pt.cvl == "max_until_all_float" and not floating:
        value, b = max(cvls, key=lambda x: x[0])
        cvl = Limit(value, f"highest BMS CVL ({b.name}) until all batteries are in float")
    else:
        value, b = min(cvls, key=lambda x: x[0])
        why = "all batteries in float" if pt.cvl == "max_until_all_float" else "lowest BMS CVL"
        cvl = Limit(value, f"{why} ({b.name})")
    results: list[Limit] = []
    for attr, cap, flag, kind in (
        ("bms_ccl", pt.max_charge_current, agg.allow_charge, "charge"),
        ("bms_dcl", pt.max_discharge_current, agg.allow_discharge, "discharge"),
    ):
        candidates: list[Limit] = []
        bms = bms_bank_limit(agg.batteries, attr, pt.current_policy, block)
        candidates.append(bms or Limit(0.0, f"no battery publishes a {kind} current limit"))
        if cap is not None:
            candidates.append(Limit(cap, f"configured max {kind} current"))
        if flag is False:
            candidates.append(Limit(0.0, f"{kind} blocked by a BMS"))
        results.append(_lowest(candidates))
    return ChargeLimits(
        cvl=cvl,
        ccl=results[0],
        dcl=results[1],
        mode="Pass-through (float)" if floating else "Pass-through",
        battery_low_voltage=None,
        feed_in_off=False,
        feed_in_reason="pass-through mode: feed-in not managed",
        state=ControllerState(False, False, cvl.value),
    )


def month_name(month: int) -> str:
    return calendar.month_name[month]
