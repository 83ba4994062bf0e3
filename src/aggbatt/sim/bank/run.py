"""The closed loop: bank, BMSes, a controller and Venus, stepped at simulated time.

Each step: scheduled events act on the world; each pack's board opens or closes its FETs and
its serialbattery driver polls (:mod:`aggbatt.sim.serialbattery`, the one double of the
driver); the controller decides from what the drivers publish; the feed-in setting follows its
decision (the user's value is on); DVCC turns the limits, the sun and the loads into a bank
current; the bank shares it between its packs; the invariants are checked. Steps are 30 s,
10 s while the bank is near its CVL or discharging hard, and 2 s while a cell is near a BMS
cut-off or a BMS is not answering, so a simulated week takes seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

from aggbatt.sim.bank.cells import Bank
from aggbatt.sim.bank.controllers import Controller, Decision, ReferenceController
from aggbatt.sim.bank.venus import SolarSite, battery_current, pv_flows
from aggbatt.sim.serialbattery import SerialBatteryPack

SAMPLE_S = 120.0
"""The trace keeps one sample every this many simulated seconds."""
OVER_LIMIT_MARGIN = (1.10, 2.0)
"""A pack may exceed its BMS limit by 10 % + 2 A ..."""
OVER_LIMIT_FOR_S = 30.0
"""... for at most this long at a time."""
SOC_TOLERANCE = 2.0
"""Points between the published and the true SoC after the first full charge."""
FEED_IN_IDLE_S = 3600.0
"""Feed-in may stay off this long after the last stop and cut are gone, not longer."""
UNSEEN_CHARGE_S = 30.0
"""A pack whose BMS does not answer may be charged this long (the driver needs 10 s to say
so, the controller a cycle), not longer."""
STOPPED_FOR_NOTHING_S = 3600.0
"""Charging may be stopped this long while nothing is wrong, not longer (the cost side)."""


@dataclass
class World:
    bank: Bank
    packs: list[SerialBatteryPack]
    """Each pack's board and serialbattery driver (``bank.packs`` are their cells)."""
    site: SolarSite
    ambient: Callable[[float], float] | None = None
    """Cell temperature over time (°C), for every pack not pinned."""
    warmer_c: tuple[float, ...] = ()
    """Added to the ambient per pack (pack 1 first): packs in colder or warmer places."""
    wall_offset_s: float = 0.0
    """Added to the wall clock (a clock set a year ahead, and back)."""
    restart: bool = False
    """Set by an event: the controller restarts (state through the state file)."""
    clock: float = 0.0
    """Simulated seconds since the start (set by :func:`run` each step, read by events)."""


@dataclass(frozen=True)
class Event:
    at_s: float
    text: str
    act: Callable[[World], None]


@dataclass
class Trace:
    t: list[float] = field(default_factory=list)
    cell_max: dict[str, list[float]] = field(default_factory=dict)
    cell_min: dict[str, list[float]] = field(default_factory=dict)
    pack_current: dict[str, list[float]] = field(default_factory=dict)
    pack_ccl: dict[str, list[float]] = field(default_factory=dict)
    bank_current: list[float] = field(default_factory=list)
    cvl: list[float] = field(default_factory=list)
    ccl: list[float] = field(default_factory=list)
    bank_voltage: list[float] = field(default_factory=list)
    true_soc: list[float] = field(default_factory=list)
    published_soc: list[float | None] = field(default_factory=list)
    feed_in: list[int] = field(default_factory=list)
    export_w: list[float] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)


@dataclass
class Check:
    ok: bool = True
    detail: str = ""
    applies: bool = True

    def fail(self, detail: str) -> None:
        if self.ok:
            self.ok, self.detail = False, detail


@dataclass
class Result:
    scenario: str
    controller: str
    days: float
    checks: dict[str, Check]
    trace: Trace
    log: list[str]
    feed_in_writes: int
    disconnects: int
    cutoffs: tuple[float, float] = (0.0, 0.0)
    exported_kwh: float = 0.0
    """PV fed into the grid (feed-in on, more than the loads and the bank take)."""
    curtailed_kwh: float = 0.0
    """PV the chargers throttled (feed-in off, or the BMS lost)."""
    switching: bool = True
    """False: the baseline, feed-in left as the user set it whatever the controller says."""
    baseline_kwh: float | None = None
    """What the same scenario exports with feed-in left on (where it was run)."""

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks.values() if c.applies)

    def per_day(self, kwh: float) -> float:
        return kwh / max(self.days, 1e-9)


EXPORT_KEPT = 0.95
"""Rule 1's measure: at least this share of what the system exports with feed-in left on."""
EXPORT_CHECK = "export kept (95 % of feed-in left on)"


def export_kept(result: Result, baseline: Result) -> Result:
    """``result`` with rule 1's export check against the same scenario with feed-in left on."""
    check = Check()
    kept = result.exported_kwh / baseline.exported_kwh if baseline.exported_kwh > 0 else 1.0
    if kept < EXPORT_KEPT:
        check.fail(
            f"{result.per_day(result.exported_kwh):.1f} kWh a day exported against "
            f"{baseline.per_day(baseline.exported_kwh):.1f} with feed-in left on ({kept:.0%})"
        )
    result.checks[EXPORT_CHECK] = check
    result.baseline_kwh = baseline.exported_kwh
    return result


def _month(wall: float) -> int:
    return dt.datetime.fromtimestamp(wall, tz=dt.UTC).month


def run(
    world: World,
    controller: Controller,
    *,
    days: float,
    start: dt.datetime,
    events: tuple[Event, ...] = (),
    healthy: bool = True,
    scenario: str = "",
    feed_in_user: bool = True,
    switching: bool = True,
) -> Result:
    """Run the loop for ``days`` simulated days from local midnight of ``start``.

    ``switching`` False is the baseline: feed-in stays as the user set it, whatever the
    controller decides (what the system would export without aggbatt's switching)."""
    bank, site = world.bank, world.site
    wall0 = start.replace(tzinfo=dt.UTC).timestamp()
    end = days * 86400.0
    pending = sorted(events, key=lambda e: e.at_s)
    checks = {
        "cells within the BMS cut-offs": Check(applies=healthy),
        "pack currents within their BMS limits": Check(),
        "no charge below 0 °C": Check(),
        "SoC within 2 points of the truth": Check(),
        "a due balancing completes": Check(applies=controller.name == "aggbatt"),
        "feed-in restored after every episode": Check(),
        "no pack charged unseen": Check(),
        "charging never stopped for nothing": Check(),
    }
    trace, log = Trace(), []
    over_s = {b.pack.name: 0.0 for b in world.packs}
    unseen_since: dict[str, float | None] = {b.pack.name: None for b in world.packs}
    stopped_s = 0.0
    feed_in_on, writes, full_once = feed_in_user, 0, False
    exported_j = curtailed_j = 0.0
    step_s = 30.0
    idle_off_s = 0.0
    max_cell_v, diff_goal = _configured(controller)
    next_sample, t = 0.0, 0.0
    decision: Decision | None = None
    s0 = world.packs[0].board.settings
    while t < end:
        world.clock = t
        while pending and pending[0].at_s <= t:
            event = pending.pop(0)
            event.act(world)
            log.append(f"{t / 3600:7.2f} h  {event.text}")
        if world.restart:
            controller.restart()
            world.restart = False
        if world.ambient is not None:
            for i, p in enumerate(bank.packs):
                extra = world.warmer_c[i] if i < len(world.warmer_c) else 0.0
                p.temperature_c = world.ambient(t) + extra
        snaps: dict[str, dict[str, object]] = {}
        for sbp in world.packs:
            sbp.step(t)
            values = sbp.values(t)
            if values is not None:
                snaps[sbp.service] = values
        wall = wall0 + t + world.wall_offset_s
        decision = controller.decide(snaps, t, wall, _month(wall))
        if decision.event:
            log.append(f"{t / 3600:7.2f} h  {decision.event}")
        wanted = feed_in_user and (not decision.feed_in_off or not switching)
        if wanted != feed_in_on:
            writes += 1
            feed_in_on = wanted
        current = battery_current(bank, decision.limits, feed_in_on, site, t)
        volts = bank.share(current)
        export_w, curtail_w = pv_flows(decision.limits, feed_in_on, site, t, current, volts)
        hot = _check_step(world, checks, over_s, t, step_s)
        hot = _check_unseen(world, checks, unseen_since, t) or hot
        stopped_s = _check_stopped(world, decision, checks, stopped_s, t, step_s)
        true_soc, fullest = bank.true_soc(), bank.fullest_soc()
        full_once = full_once or true_soc >= 99.0
        soc = decision.soc
        if (
            full_once
            and soc is not None
            and not (true_soc - SOC_TOLERANCE <= soc <= fullest + SOC_TOLERANCE)
        ):
            checks["SoC within 2 points of the truth"].fail(
                f"published {soc:.1f} % against a true {true_soc:.1f} % (fullest cells "
                f"{fullest:.1f} %) at {t / 3600:.1f} h"
            )
        _check_balancing(controller, checks, wall, t)
        cells = [v for p in bank.packs for v in p.cell_voltages()]
        settled = max(cells) < max_cell_v and max(cells) - min(cells) < diff_goal
        lim = decision.limits  # no hard stop, and the current well below the CCL
        free = lim.present and lim.allow_charge and current <= 0.8 * lim.ccl
        if feed_in_user and not feed_in_on and free and settled:
            idle_off_s += step_s
            if idle_off_s > FEED_IN_IDLE_S:
                checks["feed-in restored after every episode"].fail(
                    f"feed-in off for over an hour with no stop in force and the cells "
                    f"settled at {t / 3600:.1f} h"
                )
        else:
            idle_off_s = 0.0
        if t >= next_sample:
            _sample(trace, world, t, decision, volts, current, true_soc, feed_in_on)
            trace.export_w.append(export_w)
            next_sample += SAMPLE_S
        near = decision.limits.cvl - volts < 0.15 or current < -50.0
        step_s = 2.0 if hot else 10.0 if near else 30.0
        exported_j += export_w * step_s  # these flows hold for the step ahead
        curtailed_j += curtail_w * step_s
        bank.step(step_s)
        t += step_s
    return Result(
        scenario, controller.name, days, checks, trace, log, writes,
        sum(b.board.disconnects for b in world.packs), (s0.cell_under_v, s0.cell_over_v),
        exported_j / 3.6e6, curtailed_j / 3.6e6, switching,
    )  # fmt: skip


def _configured(controller: Controller) -> tuple[float, float]:
    """(max cell voltage, cell difference goal) the controller works to."""
    config = getattr(controller, "config", None)
    if config is not None:
        own = config.control.own
        return own.max_cell_voltage, own.cell_diff_goal
    ref = cast(ReferenceController, controller)
    return ref.max_v, ref.cell_diff_max


def _check_balancing(
    controller: Controller, checks: dict[str, Check], wall: float, t: float
) -> None:
    """aggbatt's rule 9: once at the target, a balancing ends within balancing_max_hours."""
    state = getattr(controller, "state", None)
    config = getattr(controller, "config", None)
    if state is None or config is None:
        return
    balancing, own = state.balancing, config.control.own
    at_target = own.balancing_max_hours * 3600.0 + 600.0
    overall = own.balancing_repetition_days * 86400.0 + 600.0
    if balancing.phase == "idle":
        return
    if balancing.since is not None and wall - balancing.since > at_target:
        checks["a due balancing completes"].fail(
            f"{balancing.phase} at the target for over balancing_max_hours at {t / 3600:.1f} h"
        )
    if balancing.started is not None and wall - balancing.started > overall:
        checks["a due balancing completes"].fail(
            f"still {balancing.phase} {own.balancing_repetition_days:g} days after it started "
            f"at {t / 3600:.1f} h"
        )


def _check_step(
    world: World, checks: dict[str, Check], over_s: dict[str, float], t: float, dt_s: float
) -> bool:
    """The per-step invariants; returns whether the next step must be short."""
    hot = False
    for sbp in world.packs:
        p, s = sbp.pack, sbp.board.settings
        cells = p.cell_voltages()
        hi, lo = max(cells), min(cells)
        if hi >= s.cell_over_v or lo <= s.cell_under_v:
            checks["cells within the BMS cut-offs"].fail(
                f"{p.name} cell at {hi if hi >= s.cell_over_v else lo:.3f} V at {t / 3600:.1f} h"
            )
        if (hi > s.cell_over_v - 0.05 and p.current_a > 0.5) or (
            lo < s.cell_under_v + 0.3 and p.current_a < -0.5
        ):
            hot = True  # moving towards a cut-off: short steps
        limit = sbp.ccl() if p.current_a > 0 else sbp.dcl()
        factor, extra = OVER_LIMIT_MARGIN
        if abs(p.current_a) > limit * factor + extra:
            over_s[p.name] += dt_s
            if over_s[p.name] > OVER_LIMIT_FOR_S:
                checks["pack currents within their BMS limits"].fail(
                    f"{p.name} at {p.current_a:.0f} A against its {limit:.0f} A for over "
                    f"{OVER_LIMIT_FOR_S:.0f} s at {t / 3600:.1f} h"
                )
        else:
            over_s[p.name] = 0.0
        if p.chemistry == "LFP" and p.temperature_c <= 0.0 and p.current_a > 0.5:
            checks["no charge below 0 °C"].fail(
                f"{p.name} charged at {p.current_a:.0f} A at {p.temperature_c:.1f} °C at "
                f"{t / 3600:.1f} h"
            )
    return hot


def _unseen(sbp: SerialBatteryPack) -> bool:
    """Its BMS does not answer, or no driver publishes it: the controller cannot see it."""
    return not sbp.board.link_up or sbp.driver is None


def _check_unseen(
    world: World, checks: dict[str, Check], since: dict[str, float | None], t: float
) -> bool:
    """Rule 15's invariant: no pack charged for long while it is not seen (by the chargers: a
    current between the packs at rest is theirs to settle); returns whether a pack is unseen
    (the next steps are short then)."""
    any_unseen = False
    charging = sum(p.current_a for p in world.bank.packs) > 0.5
    for sbp in world.packs:
        p = sbp.pack
        unseen = _unseen(sbp)
        any_unseen = any_unseen or unseen
        if not (unseen and charging and p.current_a > 0.5):
            since[p.name] = None
            continue
        start = since[p.name]
        if start is None:
            since[p.name] = t
        elif t - start > UNSEEN_CHARGE_S:
            checks["no pack charged unseen"].fail(
                f"{p.name} charged at {p.current_a:.0f} A while its BMS was not seen, at "
                f"{t / 3600:.1f} h"
            )
    return any_unseen


def _check_stopped(
    world: World, d: Decision, checks: dict[str, Check], stopped_s: float, t: float, dt_s: float
) -> float:
    """The cost side: charging stopped (CCL 0 or not allowed) for over an hour although every
    pack is seen, none is near a limit, cold, or blocked, and the bank is not full."""
    stopped = not d.limits.present or not d.limits.allow_charge or d.limits.ccl <= 0.0
    nothing_wrong = all(
        not _unseen(sbp)
        and not sbp.forced
        and not sbp.board.dead_sensors
        and sbp.pack.charge_fet
        and sbp.ccl() > 0.0
        and sbp.pack.temperature_c > 5.0
        and max(sbp.pack.cell_voltages()) < sbp.config.max_cell_v
        for sbp in world.packs
    )
    full = world.bank.true_soc() >= 95.0
    if not (stopped and nothing_wrong and not full):
        return 0.0
    stopped_s += dt_s
    if stopped_s > STOPPED_FOR_NOTHING_S:
        checks["charging never stopped for nothing"].fail(
            f"charging stopped for over an hour with every pack seen and well, at "
            f"{t / 3600:.1f} h ({d.reason})"
        )
    return stopped_s


def _sample(
    trace: Trace, world: World, t: float, d: Decision, volts: float, current: float,
    true_soc: float, feed_in: bool,
) -> None:  # fmt: skip
    trace.t.append(t)
    for sbp in world.packs:
        p = sbp.pack
        cells = p.cell_voltages()
        trace.cell_max.setdefault(p.name, []).append(max(cells))
        trace.cell_min.setdefault(p.name, []).append(min(cells))
        trace.pack_current.setdefault(p.name, []).append(p.current_a)
        trace.pack_ccl.setdefault(p.name, []).append(sbp.ccl())
    trace.bank_current.append(current)
    trace.bank_voltage.append(volts)
    trace.cvl.append(d.limits.cvl)
    trace.ccl.append(d.limits.ccl if d.limits.present else 0.0)
    trace.true_soc.append(true_soc)
    trace.published_soc.append(d.soc)
    trace.feed_in.append(int(feed_in))
    trace.temperature.append(min(p.temperature_c for p in world.bank.packs))


__all__ = ["EXPORT_CHECK", "Event", "Result", "Trace", "World", "export_kept", "run"]
