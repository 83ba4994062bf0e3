"""Merge the checked batteries of a bank into one :class:`Aggregate` (pure, never raises).

Rules (field notes §4 names the reference bugs each one avoids):

* only valid, online batteries take part; means are over those, never over the expected count;
* voltage: mean; current and power: sums, unless a Victron-measured bank current is given
  (then power = voltage x that current);
* SoC: weighted by installed capacity; capacities and consumed Ah: sums (consumed <= 0);
* time to go: the bank's remaining Ah over its discharge current, never a mix of the packs'
  time-to-full and time-to-empty;
* min/max cell voltage and temperature keep their battery: ids are ``"<battery>:<cell>"``
  with unique battery names, so two packs' ``C5`` can never collide;
* alarms: the highest level any valid battery reports; a missing alarm path is no alarm, and
  never hides another battery's real one; fewer batteries than expected raise ``BmsCable`` to
  a warning, none at all raises ``InternalFailure`` to an alarm.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from aggbatt.core.battery import Battery, Invalid

BlockPolicy = Literal["any", "all"]
DISCHARGE_THRESHOLD_A = 0.5
"""Below this discharge current the bank is idle and has no time to go."""


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

    @property
    def online(self) -> bool:
        return bool(self.batteries)

    @property
    def cells_by_battery(self) -> dict[str, tuple[float, ...]]:
        return {b.name: b.cells for b in self.batteries if b.cells}


def _pick(batteries: Iterable[Battery], attr: str, lowest: bool) -> CellRef | None:
    best: CellRef | None = None
    for b in batteries:
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
) -> Aggregate:
    """The bank as one battery. ``measured_current`` replaces the BMS current sum when given."""
    readings = list(readings)
    batteries = tuple(r for r in readings if isinstance(r, Battery))
    invalid = tuple(r for r in readings if isinstance(r, Invalid))
    missing = max(0, expected - len(readings)) if expected else 0
    alarms = _alarms(batteries, degraded=bool(invalid or missing))
    if not batteries:
        return Aggregate(
            batteries=(), invalid=invalid, missing=missing, alarms=alarms,
            modules_offline=len(invalid) + missing,
        )  # fmt: skip

    voltage = sum(b.voltage for b in batteries) / len(batteries)
    if measured_current is not None:
        current, power = measured_current, voltage * measured_current
    else:
        current = sum(b.current for b in batteries)
        power = sum(b.power for b in batteries)
    installed = sum(b.installed_ah for b in batteries)
    remaining = sum(b.remaining_ah for b in batteries)
    soc = sum(b.soc * b.installed_ah for b in batteries) / installed
    ttg = round(remaining / -current * 3600) if current < -DISCHARGE_THRESHOLD_A else None
    min_cell = _pick(batteries, "min_cell", lowest=True)
    max_cell = _pick(batteries, "max_cell", lowest=False)
    combine = all if block_policy == "any" else any
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
        min_cell=min_cell,
        max_cell=max_cell,
        min_temp=_pick(batteries, "min_temp", lowest=True),
        max_temp=_pick(batteries, "max_temp", lowest=False),
        cell_sum=sum(b.cell_sum for b in batteries) / len(batteries),
        cell_diff=(max_cell.value - min_cell.value) if min_cell and max_cell else None,
        modules_online=sum(b.modules_online for b in batteries),
        modules_offline=sum(b.modules_offline for b in batteries) + len(invalid) + missing,
        blocking_charge=sum(b.blocking_charge for b in batteries),
        blocking_discharge=sum(b.blocking_discharge for b in batteries),
        allow_charge=combine(b.allow_charge for b in batteries),
        allow_discharge=combine(b.allow_discharge for b in batteries),
        allow_balance=all(b.allow_balance for b in batteries),
        balancing=any(b.balancing for b in batteries),
        alarms=alarms,
    )


def _alarms(batteries: tuple[Battery, ...], degraded: bool) -> dict[str, int]:
    alarms: dict[str, int] = {}
    for b in batteries:
        for name, level in b.alarms.items():
            if level > alarms.get(name, 0):
                alarms[name] = level
            else:
                alarms.setdefault(name, level)
    if degraded:
        alarms["BmsCable"] = max(alarms.get("BmsCable", 0), 1)
    if not batteries:
        alarms["InternalFailure"] = 2
    return alarms
