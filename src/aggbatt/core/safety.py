"""The safety rules: what keeps the bank protected whatever one pack, one sensor or DVCC do.

aggbatt is the BMS that Venus's DVCC obeys. A limit protects a cell only if DVCC enforces it,
and a fault of one pack, sensor or setting must never release protection: when in doubt, the
last safe decision holds. The rules, each enforced in one place (named after it) and each with
its tests in ``tests/test_safety.py``:

Rule 1. A limit that DVCC would not enforce is not a limit, and a protection that costs more
    than it must is a defect. With ESS DC-coupled PV feed-in on, DVCC maximises every solar
    charger: only the CVL holds the bank (the Multi exports the surplus above it); the CCL,
    0 A included, and ``AllowToCharge`` do not (systemcalc's dvcc.py, docs/dvcc.md). So:
    (a) feed-in stays on wherever the CVL alone keeps every current within its limit: a charge
        current limit is then enforced through the CVL (:func:`current_hold`: when the bank's
        current reaches the CCL, the CVL goes to the voltage at which it carries
        :data:`HOLD_AT` of it, and eases back up at :data:`HOLD_RISE_V_PER_CELL_S`);
    (b) feed-in is off for a hard stop (a protective CCL of 0 A: cold, hot, a block, no
        battery, a pack not seen, a mismatch, no basis), while the CVL is cut for a cell at or
        above ``max_cell_voltage``, and when the hold fails (the current over its CCL by
        10 % + 2 A for :data:`HOLD_FAILS_AFTER_S`: a Multi that does not hold the voltage);
    (c) it comes back once none of these has been in force for
        :data:`FEED_IN_RESTORE_AFTER_S` (after a cut, with every cell below the max and the
        cells within ``cell_diff_goal``; after a failed hold, with the current well below the
        CCL all that time); the wait doubles with each episode begun in the last 24 h, up to
        :data:`FEED_IN_BACKOFF_MAX` times: each switch is a flash write. The CVL then starts
        from the bank's voltage and rises as the hold lets it;
    (d) where DVCC honours the CCL with feed-in on (a Multi-RS: systemcalc exports what the
        battery does not take), nothing is switched and no current is held.
    Enforced in :func:`feed_in_decision`, :func:`current_hold` and :func:`_restore_ramp`.
Rule 2. One bad value never hides good ones. A missing or implausible value is a fault of its
    path only: reported (``InternalFailure`` warning; one log line per episode), and taken at
    the last good value the pack published, so a cell near the top keeps the cut and a dead
    sensor keeps the temperature limit it had. Enforced in
    :func:`aggbatt.core.battery.read_battery`.
Rule 3. Honour every block. ``/Io/AllowToCharge 0`` (or discharge) of any pack still on the bus
    counts, whatever its other values; with ``block_policy = "all"`` only a pack known to carry
    nothing (its FET open: another BMS's flag 0, serialbattery's flag 0 with "BMS" in its
    reason) leaves the others to carry on, and a pack at 0 A that is still connected holds the
    bank at 0 A. A pack's alarms are never lowered. Enforced in
    :func:`aggbatt.core.merge.merge` (who blocks) and :func:`enforce` (the 0 A).
Rule 4. Both sources of a cell extreme count: a pack's summary path and its cells, the worse
    wins; fewer cell paths than cells is a fault. The summary is received always; the cells
    live only where they can matter (the summary within a band of the balancing target and
    the cut, or of the empty end; a cut, block, stop or latch; no summary published), and
    otherwise read once every ``CROSS_CHECK_S`` and compared with the summary of the same
    poll: a disagreement is a fault, and that pack's cells are then read live until a check
    agrees. A summary entering the band brings its cells at once.
    Enforced in ``read_battery`` (the worse wins) and :mod:`aggbatt.core.cellwatch` (where).
Rule 5. A pack that does not match the configuration (cell count, or a voltage implausible for
    the chemistry at that count) is left out of the means, raises ``InternalFailure`` to an
    alarm and holds the bank's CCL at 0 while it is on the bus; no CVL is computed from its
    count. A pack without cell paths is judged by its voltage: a count that divides the
    configured one is modules in series. More packs than ``batteries.expected`` raise a
    warning and the limits stay those of the expected bank. Enforced in ``read_battery`` (the
    check) and :func:`enforce` (the stop).
Rule 6. The CVL is never above cells x ``max_cell_voltage``, nor above any online pack's own
    BMS CVL (``control.respect_bms_cvl = false`` opts out of the second), in both modes. With
    pass-through ``max_until_all_float`` only a pack that is in float for no cell problem may
    be exceeded; "Float Transition" is not float; the drop to float is ramped. In own mode a
    pack's float (and the ramp to it) is its driver's charge stage, not a protection: its cap
    is then its bulk voltage (``/Info/MaxChargeCellVoltage`` x cells), unless it lowered its
    CVL for a cell. A BMS CVL that is implausible for the chemistry is a fault (rule 2), not a
    limit. Enforced in :func:`enforce` (the caps) and ``limits.passthrough_limits`` (float and
    ramp).
Rule 7. The configuration refuses voltages that do not fit the chemistry, month and balancing
    voltages above ``max_cell_voltage``, and a balancing that the cut makes unreachable.
    Enforced in :class:`aggbatt.config.Config`.
Rule 8. Latches and memory survive data loss and restarts: the discharge latch holds while no
    cell data are known; the bank's packs and their capacities are stored, so a restart with a
    pack missing still stops charging (rule 15) and scales the discharge. Enforced in
    ``limits.own_limits`` (latch) and ``engine`` (memory).
Rule 9. Balancing ends: after ``balancing_max_hours`` at the target without converging, or as
    long in the holding phase, with a warning; a last balancing in the future is reported and
    treated as due. Enforced in :func:`aggbatt.core.balancing.step`.
Rule 10. Frozen means frozen. While current flows (through the pack, or through the bank at
    :data:`FROZEN_CURRENT_A` a pack), a pack whose cells (or their summary, rule 4) and
    current have not changed for
    ``frozen_after``, or none of whose measurements (cells, voltage, current, SoC,
    temperatures: :func:`is_measurement`) changed for ``stale_after``, is frozen: unseen
    (rule 15). Paths that tick by themselves (serialbattery's ``/History/*`` and
    ``/ConnectionInformation``) are no sign of life. At rest nothing is frozen: a quiet pack
    may not change for minutes, and holding the bank for that would hold it at rest for good.
    The reason text is stable, so the shell logs one line per episode. Enforced in
    :func:`frozen_reason`.
Rule 11. Stopping is safe: the user's feed-in value is written back before the service leaves
    the bus, and a user who re-enables feed-in during an episode is overruled and told so.
    Enforced in the shell (``aggbatt.feedin``), which only acts on rule 1's decision.
Rule 12. A pack that carries nothing is not in the bank: not averaged, and its flags do not
    block the running packs. That is another product's BMS reporting itself not running
    (``/State`` other than 9) with both directions off (a Lynx BMS in standby), or a
    serialbattery pack whose reasons name "BMS" in both directions (both FETs open).
    serialbattery's ``/State 14`` is not this: it is standby, both of its *soft* limits at 0
    (cold, hot, a cell at a limit) while its FETs are usually still closed; that pack stays in
    the bank, its flags vote and its cells and temperatures count. Enforced in
    ``read_battery``.
Rule 13. No limit without a basis: with no valid pack, or no BMS charge voltage in
    pass-through, the CVL is the last one (else cells x the lowest month voltage) and never
    0 V, the CCL and DCL are 0; the daemon does not register before the first valid pack.
    Enforced in :func:`enforce` and the daemon's start.
Rule 14. The per-pack current loop: each pack's measured current against its own BMS limit
    (or its capacity share of the bank limit, by a margin); when the most loaded pack would
    exceed it, the bank limit comes down so that it does not, naming that pack. Enforced in
    :func:`pack_current_limits`.
Rule 15. No pack is charged through unseen. A pack of the bank (merged once, known until
    ``aggbatt forget``) whose BMS link is lost (voltage or current None after being valid,
    ``/System/NrOfModulesOnline 0``, a ``BmsCable`` alarm), whose driver left the bus, or whose
    data froze (rule 10) is unseen: out of the means, its last flags, cells and alarms kept,
    and charging stops for the bank until it is back or forgotten; discharging goes on within
    the online packs' share. serialbattery's own model is the same ("driver gone, so Venus
    stops"); its driver exits 60 s or 20 min after losing its BMS while the pack stays wired
    in. ``batteries.lost_pack_charge_after`` lets the online packs charge at their share after
    that long, for banks whose every pack has its own hardware protection. Enforced in
    ``read_battery`` (the link), ``engine.read_all`` (the bus, the memory) and :func:`enforce`
    (the stop).
Rule 16. A pack is known by who it is, not by its port: a new service with the serial,
    capacity and cell count of an absent known pack (or the only absent pack of that capacity
    and cells) is that pack, logged once, and keeps what was known of it. Enforced in
    :func:`aggbatt.core.packs.recognise`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from aggbatt.config import Config
from aggbatt.core.limits import (
    Cause,
    ChargeLimits,
    ChargeMode,
    ControllerState,
    Direction,
    FeedInStop,
    Limit,
    allows,
    bms_limit,
    cell_problem,
    charge_stage,
    lowest,
)
from aggbatt.core.merge import Aggregate

FEED_IN_RESTORE_AFTER_S = 600.0
"""Rule 1: feed-in comes back only after this long without a reason for it to be off ..."""
FEED_IN_BACKOFF_MAX = 4
"""... times at most 2, 4 for the second, third episode begun within a day."""
DAY_S = 86400.0
HOLD_ON = 0.95
"""Rule 1: the current hold starts when the bank current reaches this fraction of its CCL ..."""
HOLD_AT = 0.90
"""... and aims at this fraction of it."""
HOLD_RISE_V_PER_CELL_S = 0.001
"""Rule 1: the hold's CVL rises at most this fast (it falls at once)."""
HOLD_R_CELL_OHM = 0.0005
"""Rule 1: a cell's resistance (cell and its share of the wiring) the hold estimates with; a
high estimate moves the CVL further than needed, and the next cycle corrects it ..."""
HOLD_GAIN = 0.5
"""... by this share of the error a second (stable for an estimate up to 4x the truth)."""
HOLD_FAILS_AFTER_S = 30.0
"""Rule 1: the current over its CCL by 10 % + 2 A this long with feed-in on: the CVL does not
hold it, feed-in goes off ..."""
HOLD_RETRY_BELOW = 0.8
"""... and comes back only after the current has stayed below this fraction of the CCL for
the wait (the sun lower or the bank full), so a hold that cannot work costs one episode."""
OVER_MARGIN = (1.10, 2.0)
"""Rule 1 (b): over the CCL means over it by 10 % + 2 A (the simulator's tolerance too)."""
FROZEN_CURRENT_A = 1.0
"""Rule 10: above this current (a pack's own, or the bank's per pack) the values must move."""
PACK_CURRENT_MIN_A = 5.0
"""Rule 14: below this bank current the packs' measured shares are noise."""
PACK_SHARE_MARGIN = 0.10
"""Rule 14: a pack without its own limit may carry 10 % more than its capacity share."""
URGENT_MARGIN_V = 0.05
"""A cell within this of the max (or of the min + hysteresis) runs a cycle at once."""
_URGENT_PREFIXES = (
    "/Info/Max", "/Io/Allow", "/System/NrOfModulesBlocking", "/State",
    "/System/NrOfModulesOnline", "/Alarms/BmsCable",
)  # fmt: skip
_CELL_PREFIXES = (
    "/Voltages/Cell", "/Cell/", "/System/MaxCellVoltage", "/System/MinCellVoltage",
)  # fmt: skip
_LINK_PATHS = ("/Dc/0/Voltage", "/Dc/0/Current")
_VITAL_PREFIXES = ("/Voltages/Cell", "/Cell/", "/System/MaxCellVoltage", "/System/MinCellVoltage")
_MEASUREMENTS = (
    "/Voltages/Cell", "/Cell/", "/Dc/0/Voltage", "/Dc/0/Current", "/Soc", "/Dc/0/Temperature",
    "/System/MinCellTemperature", "/System/MaxCellTemperature", "/System/MinCellVoltage",
    "/System/MaxCellVoltage", "/System/Temperature",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Activity:
    """When a pack's values last moved (monotonic), as the shell observed them."""

    last_change: float
    """A measurement (:func:`is_measurement`): ticking counters are no sign of life."""
    last_vital_change: float
    """A cell voltage or the current (:func:`is_vital`)."""


def is_vital(path: str) -> bool:
    """The paths that must move while current flows through the pack (rule 10): the current,
    the cells, and the cells' summary (which is all of them that is received outside the band,
    rule 4)."""
    return path == "/Dc/0/Current" or path.startswith(_VITAL_PREFIXES)


def is_measurement(path: str) -> bool:
    """What the BMS measured (rule 10), as opposed to a counter that ticks by itself."""
    return path.startswith(_MEASUREMENTS)


def frozen_reason(
    activity: Activity, current: float, bank_flow: float, now: float, config: Config
) -> str | None:
    """Rule 10: why a pack is frozen, in words that stay the same for the whole episode.

    ``bank_flow`` is the bank's current per pack on the bus (A, any sign): a pack stuck at
    0 A while the others carry is caught by it.
    """
    b = config.batteries
    if max(abs(current), bank_flow) < FROZEN_CURRENT_A:
        return None  # at rest a quiet pack is no frozen one
    if now - activity.last_vital_change > b.frozen_after:
        return (
            f"frozen: cells and current unchanged for over {b.frozen_after:g} s while current flows"
        )
    if now - activity.last_change > b.stale_after:
        return f"frozen: no measurement changed for over {b.stale_after:g} s while current flows"
    return None


@dataclass(frozen=True, slots=True)
class Urgency:
    """Which changes of a pack may alter a decision now; the rest waits for the periodic cycle.

    Decided once a cycle (:func:`urgency`) and asked of every signal (:meth:`urgent`), so the
    hot path compares numbers only. Urgent: a BMS limit, flag or state; a cell near or over the
    max, or near the min; anything that is not a number; and every cell change while a cut,
    block, stop or latch is in force (``attentive``).
    """

    high: float
    """A cell at or above this is urgent."""
    low: float
    """A cell at or below this is urgent."""
    attentive: bool

    def urgent(self, changes: Mapping[str, Any]) -> bool:
        for path, value in changes.items():
            if path.startswith(_URGENT_PREFIXES):
                return True
            if value is None and path in _LINK_PATHS:  # rule 15: a lost link
                return True
            if path.startswith(_CELL_PREFIXES):
                kind = type(value)
                if self.attentive or (kind is not float and kind is not int):
                    return True
                if not self.low < value < self.high:  # NaN fails every comparison: urgent
                    return True
        return False


def urgency(limits: ChargeLimits | None, config: Config) -> Urgency:
    """The urgency of pack changes after a cycle that decided ``limits`` (None: none yet)."""
    own = config.control.own
    return Urgency(
        high=own.max_cell_voltage - URGENT_MARGIN_V,
        low=own.min_cell_voltage + own.min_cell_hysteresis + URGENT_MARGIN_V,
        attentive=limits is None or not limits.mode.calm or limits.state.discharge_latched,
    )


def enforce(
    raw: ChargeLimits,
    agg: Aggregate,
    config: Config,
    now: float,
    ccl_honoured: bool = False,
) -> ChargeLimits:
    """Rules 1, 3, 5, 6, 13, 14 and 15 on the limits of either mode; the final decision.

    ``raw.state`` is what the controller remembers (the mode's own step already applied);
    ``ccl_honoured``: DVCC honours the CCL with feed-in on (a Multi-RS, rule 1 (d))."""
    state = raw.state
    no_basis = (
        [Limit(0.0, "no battery publishes a charge voltage: charging stopped", Cause.NO_BASIS)]
        if agg.online and raw.cvl.cause is Cause.NO_BASIS
        else []
    )
    ccl = lowest(
        [
            *_stops(agg, "charge"),
            *_unseen(agg, config, now),
            *no_basis,
            raw.ccl,
            *_expected_bank(agg, raw.ccl, "charge"),
            *pack_current_limits(agg, raw.ccl, "charge", config),
        ]
    )
    dcl = lowest(
        [
            *_stops(agg, "discharge"),
            raw.dcl,
            *_expected_bank(agg, raw.dcl, "discharge"),
            *pack_current_limits(agg, raw.dcl, "discharge", config),
        ]
    )
    cvl = _cvl(raw.cvl, agg, config, state)
    hold_cvl = None
    if not ccl_honoured and not state.feed_in_off:
        cvl, hold_cvl = current_hold(cvl, ccl, agg, config, state, now)
    if not agg.online:
        mode = ChargeMode.NO_BATTERY
    elif cvl.cause is Cause.CVL_CUT or over_voltage(agg, config):
        mode = ChargeMode.CVL_CUT
    elif ccl.cause is Cause.MISMATCH and ccl.value == 0.0:
        mode = ChargeMode.MISMATCH
    elif ccl.cause is Cause.BMS_BLOCK:
        mode = ChargeMode.CHARGE_BLOCKED
    elif ccl.cause is Cause.PACK_LOST and ccl.value == 0.0:
        mode = ChargeMode.PACK_LOST
    else:
        mode = raw.mode
    limits = replace(raw, cvl=cvl, ccl=ccl, dcl=dcl, mode=mode)
    held = replace(state, hold_cvl=hold_cvl, over_since=_over_since(agg, ccl, state, now))
    decided = feed_in_decision(limits, agg, config, held, now, ccl_honoured)
    after = decided.state
    if state.feed_in_off and not decided.feed_in_off and not ccl_honoured:
        cvl = _restore_ramp(cvl, agg)
        if cvl.cause is Cause.CURRENT_HOLD:
            after = replace(after, hold_cvl=cvl.value)
        limits = replace(limits, cvl=cvl)
    return replace(
        limits,
        feed_in_off=decided.feed_in_off,
        feed_in_reason=decided.reason,
        state=replace(after, last_cvl=cvl.value, last_time=now),
    )


def _restore_ramp(cvl: Limit, agg: Aggregate) -> Limit:
    """Rule 1 (c): when feed-in comes back, the CVL starts from the bank's voltage, and the
    hold lets it rise at :data:`HOLD_RISE_V_PER_CELL_S`. With feed-in off DVCC held the
    current at the CCL; a CVL far above the bank would let the maximised chargers push the
    whole PV current in before the hold can see it."""
    volts = agg.voltage
    if volts is None or volts >= cvl.value:
        return cvl
    reason = f"feed-in restored: the CVL rises from the bank's {volts:.2f} V"
    return Limit(round(volts, 3), reason, Cause.CURRENT_HOLD)


def over_voltage(agg: Aggregate, config: Config) -> bool:
    """A cell (of any pack on the bus) at or above ``max_cell_voltage``."""
    return agg.max_cell is not None and agg.max_cell.value >= config.control.own.max_cell_voltage


def _expected_bank(agg: Aggregate, limit: Limit, kind: Direction) -> list[Limit]:
    """Rule 5: more packs than expected never raise the limits above the expected bank's."""
    if not agg.extra:
        return []
    n = len(agg.batteries)
    expected = n - agg.extra
    reason = f"{n} packs on the bus, {expected} expected: {kind} limit as for {expected}"
    return [Limit(limit.value * expected / n, reason, Cause.MISMATCH)]


def _stops(agg: Aggregate, kind: Direction) -> list[Limit]:
    """The hard stops at 0 A, listed first so that a tie names them (rules 3, 5, 13)."""
    if not agg.online:
        return [Limit(0.0, "no valid battery online", Cause.NO_BATTERY)]
    stops: list[Limit] = []
    if kind == "charge" and agg.mismatched:
        names = "; ".join(f"{p.name}: {p.reason}" for p in agg.mismatched)
        stops.append(Limit(0.0, f"pack does not match the configuration ({names})", Cause.MISMATCH))
    allowed = agg.allow_charge if kind == "charge" else agg.allow_discharge
    if allowed is False:
        names = ", ".join(agg.blocking[0 if kind == "charge" else 1])
        stops.append(Limit(0.0, f"{kind} blocked by the BMS of {names}", Cause.BMS_BLOCK))
    elif _no_carrier(agg, kind):
        stops.append(Limit(0.0, f"no pack can carry {kind} current", Cause.BMS_BLOCK))
    return stops


def _unseen(agg: Aggregate, config: Config, now: float) -> list[Limit]:
    """Rule 15: a pack of the bank that is not seen stops charging until it is back or
    forgotten (or, by choice, for ``lost_pack_charge_after``)."""
    unseen = [r for r in agg.invalid if r.kind.unseen]
    after = config.batteries.lost_pack_charge_after
    if after is not None:
        unseen = [r for r in unseen if r.since is None or now - r.since < after]
    if not unseen:
        return []
    names = ", ".join(f"{r.name} ({r.reason})" for r in unseen)
    first = unseen[0].name
    reason = (
        f"charging stopped: {names} not seen; it resumes when the pack is back, or after "
        f"`aggbatt forget {first}` if it was removed"
    )
    return [Limit(0.0, reason, Cause.PACK_LOST)]


def _no_carrier(agg: Aggregate, kind: Direction) -> bool:
    """Rule 3: a pack carries current only if it allows it and its limit is above 0."""
    return not any(
        allows(b, kind) and ((limit := bms_limit(b, kind)) is None or limit > 0.0)
        for b in agg.batteries
    )


def _cvl(raw: Limit, agg: Aggregate, config: Config, state: ControllerState) -> Limit:
    """Rules 6 and 13: the caps on the CVL, and a CVL with a basis."""
    own = config.control.own
    cells = config.batteries.cells_per_battery
    if not agg.online or raw.cause is Cause.NO_BASIS:
        if state.last_cvl is not None and state.last_cvl > 0:
            return Limit(state.last_cvl, "no valid battery data: last CVL kept", Cause.NO_BASIS)
        fallback = cells * min(own.charge_voltage_per_month)
        return Limit(fallback, "no valid battery data yet: lowest month voltage", Cause.NO_BASIS)
    cap = f"{cells} cells x max cell voltage {own.max_cell_voltage:.3f} V"
    candidates = [raw, Limit(cells * own.max_cell_voltage, cap, Cause.CELL_MAX)]
    if config.control.respect_bms_cvl:
        pt = config.control.passthrough
        own_mode = config.control.mode == "own"
        exempt_float = not own_mode and pt.cvl == "max_until_all_float"
        for b in agg.batteries:
            if b.bms_cvl is None:
                continue
            problem = cell_problem(b, own.max_cell_voltage)
            if exempt_float and raw.cause is Cause.TARGET and not problem:
                continue  # in bulk or float: max_until_all_float may go above a floating pack
            if own_mode and charge_stage(b) and not problem:
                # its float is its driver's charge stage: its bulk voltage is the cap
                if b.bms_cell_cvl is not None:
                    why = f"bulk charge voltage of {b.name} (it floats; its float is no cap)"
                    candidates.append(Limit(b.bms_cell_cvl * cells, why, Cause.BMS_CVL))
                continue
            candidates.append(Limit(b.bms_cvl, f"BMS charge voltage of {b.name}", Cause.BMS_CVL))
    return lowest(candidates)


def pack_current_limits(
    agg: Aggregate, bank: Limit, kind: Direction, config: Config
) -> list[Limit]:
    """Rule 14: the bank limit at which the most loaded pack stays within its own limit.

    A pack that carries the fraction ``f`` of the bank current reaches its BMS limit ``L`` at
    a bank current of ``L / f``; that is a candidate whenever ``f`` is above its capacity
    share (at or below it, the capacity-share limit already holds). A pack without a BMS limit
    may carry its capacity share of the bank limit plus a margin.
    """
    sign = 1.0 if kind == "charge" else -1.0
    flow = sign * sum(b.current for b in agg.batteries)
    if flow < PACK_CURRENT_MIN_A or len(agg.batteries) < 2:
        return []
    capacity = sum(b.installed_ah for b in agg.batteries)
    respect = config.control.mode == "passthrough" or config.control.own.respect_bms_limits
    limits: list[Limit] = []
    for b in agg.batteries:
        fraction = sign * b.current / flow
        share = b.installed_ah / capacity
        own_limit = bms_limit(b, kind) if respect else None
        why = f"{b.name} carries {fraction:.0%} of the {kind} current (capacity share {share:.0%})"
        if own_limit is not None and fraction > share:
            reason = f"{why}: held at its {own_limit:g} A"
            limits.append(Limit(own_limit / fraction, reason, Cause.PACK_CURRENT))
        elif own_limit is None and fraction > share * (1.0 + PACK_SHARE_MARGIN):
            fair = bank.value * share
            limits.append(
                Limit(fair / fraction, f"{why}: held at {fair:.0f} A", Cause.PACK_CURRENT)
            )
    return limits


def current_hold(
    cvl: Limit, ccl: Limit, agg: Aggregate, config: Config, state: ControllerState, now: float
) -> tuple[Limit, float | None]:
    """Rule 1 (a): the CVL at which the bank takes :data:`HOLD_AT` of its CCL, and that CVL
    (None when nothing is held). With feed-in on DVCC honours the CVL only; the Multi exports
    what the bank does not take at it. The lower of two estimates: from the bank's voltage and
    the estimated resistance, and from the last hold corrected by :data:`HOLD_GAIN` of the
    error a second (rising at most at the ramp), which also brings down a bank that sits
    above its CVL."""
    current, volts = agg.current, agg.voltage
    n = max(1, len(agg.batteries))
    if current is None or volts is None or ccl.value <= 0.0:
        return cvl, None
    if state.hold_cvl is None and current < HOLD_ON * ccl.value:
        return cvl, None
    cells = config.batteries.cells_per_battery
    r_bank = HOLD_R_CELL_OHM * cells / n
    aim = HOLD_AT * ccl.value
    wanted = volts - (current - aim) * r_bank  # from the bank's voltage
    if state.hold_cvl is not None:
        # and from the last hold, the lower: a bank that sits above the CVL (the chargers get
        # it + 0.1 to 0.4 V with feed-in on) is corrected too; up at most at the ramp
        elapsed = max(0.0, now - state.last_time) if state.last_time is not None else 0.0
        step = HOLD_GAIN * min(1.0, elapsed) * (current - aim) * r_bank
        step = max(step, -HOLD_RISE_V_PER_CELL_S * cells * elapsed)
        wanted = min(wanted, state.hold_cvl - step)
    wanted = max(wanted, cells * config.control.own.min_cell_voltage)
    if wanted >= cvl.value:
        return cvl, None  # the CVL alone keeps the current below the CCL
    reason = (
        f"holding the charge current at {aim:.0f} A with feed-in on ({ccl.reason}): "
        f"{current:.0f} A at {volts:.2f} V"
    )
    return Limit(round(wanted, 3), reason, Cause.CURRENT_HOLD), wanted


def _over_since(agg: Aggregate, ccl: Limit, state: ControllerState, now: float) -> float | None:
    """Since when the bank current has been over its CCL by the margin (rule 1 (b))."""
    factor, extra = OVER_MARGIN
    if agg.current is None or agg.current <= ccl.value * factor + extra:
        return None
    return state.over_since if state.over_since is not None else now


@dataclass(frozen=True, slots=True)
class FeedIn:
    """Rule 1's decision: feed-in off or not, why, and what it remembers."""

    feed_in_off: bool
    reason: str
    state: ControllerState


def feed_in_decision(
    limits: ChargeLimits,
    agg: Aggregate,
    config: Config,
    state: ControllerState,
    now: float,
    ccl_honoured: bool = False,
) -> FeedIn:
    """Rule 1 (b)-(d): feed-in off for a hard stop, a cut or a failed hold; back after the
    (backed-off) wait once none is in force."""
    if ccl_honoured:
        reason = "DVCC honours the CCL with feed-in on (Multi-RS): feed-in kept"
        return FeedIn(False, reason, replace(state, feed_in_off=False, feed_in_clear_since=None))
    stop, why = _off_reason(limits, agg, config, state, now)
    offs = tuple(t for t in state.feed_in_offs if now - t < DAY_S)
    if stop is not None:
        if not state.feed_in_off:
            offs = (*offs, now)
        off_state = replace(
            state, feed_in_off=True, feed_in_clear_since=None, feed_in_offs=offs,
            feed_in_stops=state.feed_in_stops | {stop},
        )  # fmt: skip
        return FeedIn(True, why, off_state)
    if not state.feed_in_off:
        kept = "no hard stop, no cut, the CVL holds the current: feed-in kept"
        return FeedIn(False, kept, replace(state, feed_in_offs=offs))
    waiting = _still_waiting(limits, agg, config, state.feed_in_stops)
    if waiting:
        return FeedIn(True, waiting, replace(state, feed_in_clear_since=None, feed_in_offs=offs))
    since = state.feed_in_clear_since if state.feed_in_clear_since is not None else now
    backoff = min(FEED_IN_BACKOFF_MAX, 2 ** max(0, len(offs) - 1))
    wait = FEED_IN_RESTORE_AFTER_S * backoff
    if now - since < wait:
        left = wait - (now - since)
        why = f"feed-in restored in {left:.0f} s unless a stop returns"
        if backoff > 1:
            why += f" (episode {len(offs)} today: the wait is {backoff}x)"
        return FeedIn(True, why, replace(state, feed_in_clear_since=since, feed_in_offs=offs))
    restored = replace(
        state, feed_in_off=False, feed_in_clear_since=None, feed_in_offs=offs,
        feed_in_stops=frozenset(),
    )  # fmt: skip
    return FeedIn(False, f"no stop for {wait / 60:.0f} min: feed-in restored", restored)


def _off_reason(
    limits: ChargeLimits, agg: Aggregate, config: Config, state: ControllerState, now: float
) -> tuple[FeedInStop | None, str]:
    """Why feed-in must be off now (rule 1 (b)); None: it need not."""
    ccl = limits.ccl
    if limits.cvl.cause is Cause.CVL_CUT or over_voltage(agg, config):
        cell = agg.max_cell.id if agg.max_cell else "?"
        return FeedInStop.CUT, f"cell {cell} at or above the max cell voltage: CVL cut"
    if ccl.value <= 0.0 and ccl.cause.protective:
        return FeedInStop.HARD_STOP, f"hard stop: {ccl.reason}"
    if state.over_since is not None and now - state.over_since > HOLD_FAILS_AFTER_S:
        current = agg.current if agg.current is not None else 0.0
        return FeedInStop.HOLD_FAILED, (
            f"the CVL did not hold the current: {current:.0f} A over the CCL "
            f"{ccl.value:.0f} A for over {HOLD_FAILS_AFTER_S:.0f} s"
        )
    return None, ""


def _still_waiting(
    limits: ChargeLimits, agg: Aggregate, config: Config, stops: frozenset[FeedInStop]
) -> str:
    """What the episode's end still waits for beyond the time (rule 1 (c)); "" for nothing."""
    own = config.control.own
    settled = agg.cell_diff is None or agg.cell_diff < own.cell_diff_goal
    if FeedInStop.CUT in stops and not settled:
        return "waiting for every cell below max and the cell difference below the goal"
    current = agg.current if agg.current is not None else 0.0
    if FeedInStop.HOLD_FAILED in stops and current > HOLD_RETRY_BELOW * limits.ccl.value:
        return (
            f"waiting for the current below {HOLD_RETRY_BELOW:.0%} of the CCL "
            f"({current:.0f} A of {limits.ccl.value:.0f} A): the CVL did not hold it"
        )
    return ""
