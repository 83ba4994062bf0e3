"""One cycle of the core: battery snapshots in, everything to publish out (pure).

This glues the core as h11's ``Connection`` glues its parts: :func:`run_cycle` reads each
battery (:mod:`.battery`), merges (:mod:`.merge`), advances the Coulomb counter
(:mod:`.coulomb`) and the balancing scheduler (:mod:`.balancing`), and runs the charge-limit
controller (:mod:`.limits`). Time comes in as arguments: ``now_mono`` (monotonic, for the
counter), ``now_wall`` (Unix time, for balancing dates) and ``month`` (1..12, local).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aggbatt.config import CELL_WINDOWS, MEASURED_MARGIN_V, Config
from aggbatt.core import balancing as bal
from aggbatt.core import coulomb
from aggbatt.core.battery import (
    Battery,
    Expect,
    Fault,
    Invalid,
    Offline,
    left_out,
    read_battery,
    unique_names,
)
from aggbatt.core.limits import (
    ChargeLimits,
    ControllerState,
    month_name,
    own_limits,
    passthrough_limits,
)
from aggbatt.core.merge import Aggregate, merge, time_to_go
from aggbatt.core.packs import Recognised, recognise, to_forget
from aggbatt.core.safety import Activity, enforce, frozen_reason
from aggbatt.core.selection import CurrentMeasurement
from aggbatt.core.stored import KnownPack, State


@dataclass(frozen=True, slots=True)
class PackMemory:
    """A pack's last reading with its values, and when (monotonic) it was last on the bus."""

    last: Battery
    seen: float


@dataclass(frozen=True, slots=True)
class EngineState:
    counter: coulomb.Counter | None
    balancing: bal.Balancing
    controller: ControllerState
    stored_charge_ah: float | None = None
    stored_installed_ah: float | None = None
    stored_full_charge: float | None = None
    known: Mapping[str, KnownPack] = field(default_factory=dict)
    """Every pack seen lately, with its capacity, so the limits scale when one is gone."""
    memory: Mapping[str, PackMemory] = field(default_factory=dict)
    """The last good reading of each pack: held values (rule 2), a pack unseen (rule 15)."""
    unseen_since: Mapping[str, float] = field(default_factory=dict)
    """Monotonic time since which each unseen pack has not been seen (rule 15)."""


def online_share(agg: Aggregate, known: Mapping[str, KnownPack], expected: int) -> float:
    """Share of the bank that is online: by known capacity, and by count against ``expected``."""
    share = 1.0
    total = sum(p.installed_ah for p in known.values())
    if total > 0:
        share = min(share, agg.installed_ah / total)
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
    consumed_ah: float | None = None
    """The own counter's (charge - installed), else the sum of the packs' own counters."""
    time_to_go: int | None = None
    time_since_full: int | None = None
    """Seconds since the own counter last found the bank charged; None: never, or no counter."""
    soc_sync: str | None = None
    """Why the own counter last synchronised to 100 % (the rule and the readings)."""
    recognised: tuple[Recognised, ...] = ()
    """Known packs that came back under another service name this cycle (rule 16)."""
    current_problem: str = ""
    """Why the configured current source could not be used (empty: it could, or none)."""
    current_detail: str = ""
    """Where the bank current came from."""


def initial_state(stored: State) -> EngineState:
    return EngineState(
        counter=None,
        balancing=bal.Balancing(
            stored.last_balancing,
            stored.balancing_phase,
            since=stored.balancing_since,
            started=stored.balancing_started,
        ),
        controller=ControllerState(),
        stored_charge_ah=stored.charge_ah,
        stored_installed_ah=stored.installed_ah,
        stored_full_charge=stored.last_full_charge,
        known=dict(stored.packs),
    )


def counter_settings(config: Config) -> coulomb.CounterSettings:
    soc = config.soc
    reference = soc.sync == "reference"
    return coulomb.CounterSettings(
        efficiency=soc.efficiency,
        save_precision=soc.save_precision,
        charged_voltage=config.batteries.cells_per_battery * config.full_cell_voltage,
        tail_c=None if reference else soc.tail_current,
        charged_time_s=0.0 if reference else soc.charged_time,
        max_cell_diff=None if reference or not soc.sync_cell_diff else soc.sync_cell_diff,
        empty_cell_voltage=config.empty_cell_voltage,
        zero_reset=soc.zero_reset,
        deadband_a=soc.current_deadband,
        offset_a=soc.current_offset,
    )


def balancing_settings(config: Config) -> bal.BalancingSettings:
    own = config.control.own
    return bal.BalancingSettings(
        repetition_days=own.balancing_repetition_days,
        balancing_voltage=own.balancing_voltage,
        cell_diff_goal=own.cell_diff_goal,
        cells=config.batteries.cells_per_battery,
        max_hours=own.balancing_max_hours,
    )


def expectations(config: Config) -> Expect:
    """What every pack must be (rules 5 and 6): the configured cells and the chemistry."""
    lo, hi = CELL_WINDOWS[config.batteries.chemistry]
    return Expect(
        config.batteries.cells_per_battery,
        (lo - MEASURED_MARGIN_V, hi + MEASURED_MARGIN_V),
        config.control.own.max_cell_voltage,
    )


def read_all(
    snapshots: Mapping[str, Mapping[str, Any]],
    preferred_names: Mapping[str, Any],
    config: Config,
    memory: Mapping[str, PackMemory] | None = None,
    activity: Mapping[str, Activity] | None = None,
    now: float = 0.0,
    known: Mapping[str, KnownPack] | None = None,
    unseen_since: Mapping[str, float] | None = None,
    measured_current: float | None = None,
    cell_faults: Mapping[str, Fault] | None = None,
) -> tuple[Battery | Invalid, ...]:
    """Read every pack on the bus, and every pack of the bank that is not on it.

    ``memory`` holds each pack's last good reading (rule 2); ``activity`` when its values last
    moved (rule 10); ``known`` the bank's packs (rule 15): one of them that is not on the bus is
    :attr:`Offline.GONE`, keeping its last flags and cells, until it is back or forgotten.
    ``cell_faults``: packs whose summary disagreed with their cells (rule 4, core.cellwatch).
    """
    cell_faults = cell_faults or {}
    memory = memory or {}
    activity = activity or {}
    known = known or {}
    unseen_since = unseen_since or {}
    absent = sorted((set(known) | set(memory)) - set(snapshots))
    names = unique_names(
        [(key, preferred_names.get(key)) for key in snapshots]
        + [(key, _stored_name(key, memory, known)) for key in absent]
    )
    expect = expectations(config)
    readings: list[Battery | Invalid] = []
    for key in sorted(snapshots):
        held = memory.get(key)
        reading = read_battery(key, names[key], snapshots[key], held.last if held else None, expect)
        if key in cell_faults:
            reading = replace(reading, faults=(*reading.faults, cell_faults[key]))
        readings.append(reading)
    batteries = [r for r in readings if isinstance(r, Battery)]
    flow = abs(
        measured_current if measured_current is not None else sum(b.current for b in batteries)
    ) / max(1, len(snapshots))
    for i, reading in enumerate(readings):
        seen = activity.get(reading.key)
        if isinstance(reading, Battery) and seen is not None:
            why = frozen_reason(seen, reading.current, flow, now, config)
            if why is not None:
                readings[i] = left_out(reading, Offline.FROZEN, why)
    for key in absent:
        held = memory.get(key)
        gone = (
            left_out(held.last, Offline.GONE, "left the bus")
            if held is not None
            else Invalid(key, names[key], "left the bus", Offline.GONE)
        )
        readings.append(replace(gone, name=names[key]))
    return tuple(
        replace(r, since=unseen_since.get(r.key, now))
        if isinstance(r, Invalid) and r.kind.unseen
        else r
        for r in readings
    )


def _stored_name(key: str, memory: Mapping[str, PackMemory], known: Mapping[str, KnownPack]) -> str:
    held = memory.get(key)
    if held is not None:
        return held.last.name
    pack = known.get(key)
    return (pack.name if pack else None) or key.rsplit(".", 1)[-1]


def _remember(
    memory: Mapping[str, PackMemory],
    readings: tuple[Battery | Invalid, ...],
    on_bus: Mapping[str, Any],
    now: float,
) -> dict[str, PackMemory]:
    """The last good reading of every pack, kept while it is away (rule 15)."""
    kept = {r.key: PackMemory(r, now) for r in readings if isinstance(r, Battery)}
    for k, m in memory.items():
        if k not in kept:  # unusable now or away: its last good reading stays
            kept[k] = PackMemory(m.last, now) if k in on_bus else m
    return kept


def _known(known: Mapping[str, KnownPack], agg: Aggregate, now_wall: float) -> dict[str, KnownPack]:
    """The bank's packs: every pack merged once, until it is forgotten (rule 15)."""
    result = dict(known)
    for b in agg.batteries:
        result[b.key] = KnownPack(b.installed_ah, now_wall, b.serial, b.cell_count, b.name)
    return result


def _renamed(state: EngineState, found: list[Recognised]) -> EngineState:
    """Rule 16: move what is known of each recognised pack to its new service name."""
    if not found:
        return state
    known, memory = dict(state.known), dict(state.memory)
    unseen = dict(state.unseen_since)
    for r in found:
        known[r.new] = known.pop(r.old)
        if r.old in memory:
            held = memory.pop(r.old)
            memory[r.new] = PackMemory(replace(held.last, key=r.new), held.seen)
        unseen.pop(r.old, None)
    return replace(state, known=known, memory=memory, unseen_since=unseen)


def forget(
    state: EngineState, who: str, on_bus: Collection[str] = ()
) -> tuple[EngineState, bool, str]:
    """Forget a pack of the bank that has left the bus (``aggbatt forget``): (state, done, what
    was done in words). ``who`` is its service name, the service name's last part, or its name.
    A pack still on the bus is refused: its service would bring it back at once."""
    keys, why = to_forget(state.known, who)
    if not keys:
        return state, False, why
    if any(k in on_bus for k in keys):
        return state, False, f"{who} is on the bus: only a pack that has left it can be forgotten"
    state = replace(
        state,
        known={k: p for k, p in state.known.items() if k not in keys},
        memory={k: m for k, m in state.memory.items() if k not in keys},
        unseen_since={k: t for k, t in state.unseen_since.items() if k not in keys},
    )
    gone = ", ".join(k.rsplit(".", 1)[-1] for k in keys)
    return state, True, f"forgot {gone}: the bank is the packs left"


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
    activity: Mapping[str, Activity] | None = None,
    ccl_honoured: bool = False,
    cell_faults: Mapping[str, Fault] | None = None,
    current: CurrentMeasurement | None = None,
) -> CycleResult:
    """Everything one cycle decides; ``snapshots`` holds the selected batteries' values.

    ``ccl_honoured``: DVCC honours the CCL with feed-in on (a Multi-RS; rule 1 (d));
    ``current``: the bank current from Victron devices (its value replaces
    ``measured_current``; a problem with it is an ``InternalFailure`` warning)."""
    if current is not None:
        measured_current = current.value
    found = recognise(snapshots, state.known)
    state = _renamed(state, found)
    readings = read_all(
        snapshots, preferred_names, config, state.memory, activity, now_mono, state.known,
        state.unseen_since, measured_current, cell_faults,
    )  # fmt: skip
    agg = merge(
        readings,
        expected=config.batteries.expected,
        block_policy=config.batteries.block_policy,
        measured_current=measured_current,
        current_problem=current.problem if current is not None else "",
    )
    known = _known(state.known, agg, now_wall)
    counter = state.counter
    soc, remaining = agg.soc, (agg.remaining_ah if agg.online else None)
    if config.soc.own and agg.online and agg.current is not None:
        started = ""
        if counter is None and agg.soc is not None:
            counter = coulomb.start_counter(
                agg.installed_ah,
                state.stored_charge_ah,
                state.stored_installed_ah,
                agg.soc,
                state.stored_full_charge,
            )
            started = counter.event  # how it started: logged once, whatever the step says
        if counter is not None:
            counter = coulomb.step(
                counter,
                agg.current,
                now_mono,
                agg.installed_ah,
                agg.voltage,
                agg.min_cell.value if agg.min_cell else None,
                counter_settings(config),
                now_wall,
                agg.cell_diff,
            )
            if started:  # the start is the event, whatever else the first step did
                text = f"{started}; {counter.event}".rstrip("; ")
                counter = replace(counter, event=text, kind=coulomb.Event.STARTED)
            soc, remaining = counter.soc, counter.charge_ah

    balancing = state.balancing
    if config.control.mode == "own":
        month_voltage = config.control.own.charge_voltage_per_month[month - 1]
        settings = balancing_settings(config)
        if agg.online and config.control.own.balancing:
            balancing = bal.step(
                balancing, now_wall, month_voltage, agg.voltage, agg.cell_diff, settings
            )
        target = bal.target_cell_voltage(balancing, month_voltage, month_name(month), settings)
        share = online_share(agg, known, config.batteries.expected)
        known_ah = sum(p.installed_ah for p in known.values())
        raw = own_limits(
            agg, config, target, state.controller, share, known_ah,
            balancing=bal.in_force(balancing, month_voltage, settings),
        )  # fmt: skip
    else:
        raw = passthrough_limits(agg, config, state.controller, now_mono)
    limits = enforce(raw, agg, config, now_mono, ccl_honoured)
    consumed = agg.consumed_ah if agg.online else None
    if counter is not None and agg.online:
        consumed = min(0.0, counter.charge_ah - counter.installed_ah)
    return CycleResult(
        aggregate=agg,
        readings=readings,
        limits=limits,
        soc=soc,
        remaining_ah=remaining,
        consumed_ah=consumed,
        time_to_go=time_to_go(remaining, agg.current),
        time_since_full=(
            None
            if counter is None or counter.synced_wall is None
            else max(0, int(now_wall - counter.synced_wall))
        ),
        soc_sync=(counter.sync_reason or "not since the counter started") if counter else None,
        recognised=tuple(found),
        current_problem=current.problem if current is not None else "",
        current_detail=current.detail if current is not None else "",
        state=EngineState(
            counter=counter,
            balancing=balancing,
            controller=limits.state,
            stored_charge_ah=state.stored_charge_ah,
            stored_installed_ah=state.stored_installed_ah,
            stored_full_charge=state.stored_full_charge,
            known=known,
            memory=_remember(state.memory, readings, snapshots, now_mono),
            unseen_since={
                r.key: r.since if r.since is not None else now_mono
                for r in readings
                if isinstance(r, Invalid) and r.kind.unseen
            },
        ),
    )


def to_state(result: EngineState, feed_in_original: int | None) -> State:
    """What of the engine's state is persisted."""
    counter = result.counter
    return State(
        charge_ah=counter.charge_ah if counter else result.stored_charge_ah,
        installed_ah=counter.installed_ah if counter else result.stored_installed_ah,
        last_full_charge=counter.synced_wall if counter else result.stored_full_charge,
        last_balancing=result.balancing.last_completed,
        balancing_phase=result.balancing.phase,
        balancing_since=result.balancing.since,
        balancing_started=result.balancing.started,
        feed_in_original=feed_in_original,
        packs=dict(result.known),
    )


def save_due(
    engine: EngineState, saved: State | None, feed_in_original: int | None, config: Config
) -> bool:
    """The save policy: the counter moved by its precision, or anything else stored changed.

    A pack's ``last_seen`` alone is not a reason to write the flash; its arrival or departure
    is.
    """
    counter = engine.counter
    if counter is not None and coulomb.needs_save(counter, counter_settings(config)):
        return True
    if saved is None:
        return True
    now = to_state(engine, feed_in_original)
    fields = (
        "last_balancing", "balancing_phase", "balancing_since", "balancing_started",
        "feed_in_original", "last_full_charge",
    )  # fmt: skip
    return (
        any(getattr(now, f) != getattr(saved, f) for f in fields)
        or now.packs.keys() != saved.packs.keys()
        or any(now.packs[k].installed_ah != saved.packs[k].installed_ah for k in now.packs)
    )
