"""Merge the checked batteries of a bank into one :class:`Aggregate` (pure, never raises).

Rules (docs/comparison.md names the reference bugs they avoid):

* only valid, online batteries take part; means are over those, never over the expected count;
* voltage: mean; current and power: sums, unless a Victron-measured bank current is given
  (then power = voltage x that current);
* SoC: weighted by installed capacity; capacities and consumed Ah: sums (consumed <= 0);
* time to go: the bank's remaining Ah over its discharge current, never a mix of the packs'
  time-to-full and time-to-empty;
* min/max cell voltage and temperature keep their battery: ids are ``"<battery>:<cell>"``
  with unique battery names, so two packs' ``C5`` can never collide;
* flags, alarms and cell extremes come from every pack on the bus, merged or not (rules 2, 3
  of :mod:`aggbatt.core.safety`): a block of a pack whose other values are None counts, a
  pack left out keeps its alarms and its cells; only a BMS that is not running (rule 12) has
  no say in the blocks;
* alarms: the highest level any pack reports, never lowered; a missing alarm path is no alarm;
  fewer batteries than expected, or one left out, raise ``BmsCable`` to a warning; a pack with
  a fault (an implausible value) raises ``InternalFailure`` to a warning; a pack that does not
  match the configuration, or none at all, raises it to an alarm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from aggbatt.core.battery import Battery, Fault, Invalid, Offline

BlockPolicy = Literal["any", "all"]
DISCHARGE_THRESHOLD_A = 0.5
"""Below this discharge current the bank is idle and has no time to go."""
TIME_TO_GO_MAX_S = 864000
"""Venus's battery services cap time-to-go at ten days."""


def time_to_go(remaining_ah: float | None, current: float | None) -> int | None:
    """Seconds until empty at this discharge current; None while idle or charging (the one
    place this is computed)."""
    if remaining_ah is None or current is None or current >= -DISCHARGE_THRESHOLD_A:
        return None
    return min(TIME_TO_GO_MAX_S, round(remaining_ah / -current * 3600))


@dataclass(frozen=True, slots=True)
class CellRef:
    """An extreme cell value and where it is."""

    value: float
    battery: str
    cell: str

    @property
    def id(self) -> str:
        return f"{self.battery}:{self.cell}"


@dataclass(frozen=True, slots=True)
class Aggregate:
    batteries: tuple[Battery, ...]
    invalid: tuple[Invalid, ...] = ()
    missing: int = 0
    """Batteries expected but not on the bus."""
    extra: int = 0
    """Batteries in the bank beyond ``expected`` (rule 5: limits as for the expected bank)."""
    voltage: float | None = None
    current: float | None = None
    power: float | None = None
    current_measured: bool = False
    """True when the current comes from Victron devices instead of the BMSes."""
    soc: float | None = None
    installed_ah: float = 0.0
    remaining_ah: float = 0.0
    consumed_ah: float = 0.0
    time_to_go: int | None = None
    temperature: float | None = None
    min_cell: CellRef | None = None
    max_cell: CellRef | None = None
    min_temp: CellRef | None = None
    max_temp: CellRef | None = None
    cell_sum: float | None = None
    cell_diff: float | None = None
    modules_online: int = 0
    modules_offline: int = 0
    blocking_charge: int = 0
    blocking_discharge: int = 0
    allow_charge: bool | None = None
    allow_discharge: bool | None = None
    allow_balance: bool | None = None
    balancing: bool = False
    alarms: dict[str, int] = field(default_factory=dict)
    faults: dict[str, tuple[Fault, ...]] = field(default_factory=dict)
    """Per pack key, the values it published that cannot be trusted (rule 2)."""
    blocking: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())
    """Names of the packs whose flag blocks (charge, discharge), merged or not (rule 3)."""

    @property
    def online(self) -> bool:
        return bool(self.batteries)

    @property
    def mismatched(self) -> tuple[Invalid, ...]:
        """Packs on the bus that do not match the configuration (rule 5)."""
        return tuple(r for r in self.invalid if r.kind is Offline.MISMATCH)

    @property
    def cells_by_battery(self) -> dict[str, tuple[float, ...]]:
        return {b.name: b.cells for b in self.batteries if b.cells}


def _pick(readings: Iterable[Battery | Invalid], attr: str, lowest: bool) -> CellRef | None:
    best: CellRef | None = None
    for b in readings:
        found: tuple[float, str] | None = getattr(b, attr)
        if found is None:
            continue
        if best is None or (found[0] < best.value if lowest else found[0] > best.value):
            best = CellRef(found[0], b.name, found[1])
    return best


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def merge(
    readings: Iterable[Battery | Invalid],
    *,
    expected: int = 0,
    block_policy: BlockPolicy = "any",
    measured_current: float | None = None,
    absent: int = 0,
    current_problem: str = "",
) -> Aggregate:
    """The bank as one battery. ``measured_current`` replaces the BMS current sum when given;
    ``absent`` packs known from before are off the bus for good (offline modules);
    ``current_problem``: the configured current source failed (an ``InternalFailure``
    warning, as a pack too many is)."""
    readings = list(readings)
    batteries = tuple(r for r in readings if isinstance(r, Battery))
    invalid = tuple(r for r in readings if isinstance(r, Invalid))
    missing = max(max(0, expected - len(readings)) if expected else 0, absent)
    extra = max(0, len(batteries) - expected) if expected else 0
    faults = {r.key: r.faults for r in readings if r.faults}
    alarms = _alarms(readings, batteries, invalid, missing, faults)
    if extra or current_problem:
        alarms["InternalFailure"] = max(alarms.get("InternalFailure", 0), 1)
    # rule 3: a flag counts from every pack on the bus, except a BMS that is not running
    voting = [r for r in readings if isinstance(r, Battery) or r.kind.blocks_count]
    blocking = (
        tuple(r.name for r in voting if not r.allow_charge),
        tuple(r.name for r in voting if not r.allow_discharge),
    )
    min_cell = _pick(readings, "min_cell", lowest=True)
    max_cell = _pick(readings, "max_cell", lowest=False)
    cell_diff = (max_cell.value - min_cell.value) if min_cell and max_cell else None
    if not batteries:
        return Aggregate(
            batteries=(), invalid=invalid, missing=missing, alarms=alarms, faults=faults,
            modules_offline=len(invalid) + missing, blocking=blocking,
            allow_charge=False if blocking[0] else None,
            allow_discharge=False if blocking[1] else None,
            min_cell=min_cell, max_cell=max_cell, cell_diff=cell_diff,
        )  # fmt: skip

    voltage = sum(b.voltage for b in batteries) / len(batteries)
    if measured_current is not None:
        current, power = measured_current, voltage * measured_current
    else:
        current = sum(b.current for b in batteries)
        power = sum(b.power for b in batteries)
    installed = sum(b.installed_ah for b in batteries)
    remaining = sum(b.remaining_ah for b in batteries)
    with_soc = [b for b in batteries if b.soc is not None]
    soc_ah = sum(b.installed_ah for b in with_soc)
    soc = (
        sum(b.soc * b.installed_ah for b in with_soc if b.soc is not None) / soc_ah
        if with_soc
        else None
    )
    ttg = time_to_go(remaining, current)
    if block_policy == "any":
        allow_charge, allow_discharge = not blocking[0], not blocking[1]
    else:  # "all": the bank is blocked only when no pack allows it
        allow_charge = any(r.allow_charge for r in voting)
        allow_discharge = any(r.allow_discharge for r in voting)
    return Aggregate(
        batteries=batteries,
        invalid=invalid,
        missing=missing,
        voltage=voltage,
        current=current,
        power=power,
        current_measured=measured_current is not None,
        soc=soc,
        installed_ah=installed,
        remaining_ah=remaining,
        consumed_ah=min(0.0, sum(b.consumed_ah for b in batteries)),
        time_to_go=ttg,
        temperature=_mean([b.temperature for b in batteries if b.temperature is not None]),
        min_temp=_pick(batteries, "min_temp", lowest=True),
        max_temp=_pick(batteries, "max_temp", lowest=False),
        cell_sum=sum(b.cell_sum for b in batteries) / len(batteries),
        modules_online=sum(b.modules_online for b in batteries),
        modules_offline=sum(b.modules_offline for b in batteries) + len(invalid) + missing,
        blocking_charge=sum(b.blocking_charge for b in batteries),
        blocking_discharge=sum(b.blocking_discharge for b in batteries),
        allow_charge=allow_charge,
        allow_discharge=allow_discharge,
        allow_balance=all(b.allow_balance for b in batteries),
        balancing=any(b.balancing for b in batteries),
        alarms=alarms,
        faults=faults,
        blocking=blocking,
        extra=extra,
        min_cell=min_cell,
        max_cell=max_cell,
        cell_diff=cell_diff,
    )


def _alarms(
    readings: list[Battery | Invalid],
    batteries: tuple[Battery, ...],
    invalid: tuple[Invalid, ...],
    missing: int,
    faults: dict[str, tuple[Fault, ...]],
) -> dict[str, int]:
    alarms: dict[str, int] = {}
    for r in readings:  # every pack's alarms, merged or not: never downgraded (rule 3)
        for name, level in r.alarms.items():
            alarms[name] = max(level, alarms.get(name, 0))
    if invalid or missing:
        alarms["BmsCable"] = max(alarms.get("BmsCable", 0), 1)
    failure = 1 if faults else 0
    if not batteries or any(r.kind is Offline.MISMATCH for r in invalid):
        failure = 2
    if failure:
        alarms["InternalFailure"] = max(alarms.get("InternalFailure", 0), failure)
    return alarms
