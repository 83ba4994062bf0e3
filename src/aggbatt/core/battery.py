"""One battery's D-Bus values turned into a checked :class:`Battery`, or a reason it is invalid.

Which paths a battery must publish is one explicit table, :data:`PATHS`. Only the required
ones can make a battery unusable by their absence; an optional path that is missing is
derived or left out (CAN batteries and Victron's Lynx BMS have no per-cell paths, often no
``/InstalledCapacity``, ``/Dc/0/Power`` or min/max cell values). A value that is present but NaN,
infinite, of the wrong type or physically absurd marks the whole battery invalid, with the path
and value in the reason: a BMS that sends garbage in one place cannot be trusted in the others.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

ALARMS = (
    "LowVoltage", "HighVoltage", "LowCellVoltage", "HighCellVoltage", "LowSoc",
    "HighChargeCurrent", "HighDischargeCurrent", "HighCurrent", "CellImbalance",
    "HighChargeTemperature", "LowChargeTemperature", "HighTemperature", "LowTemperature",
    "HighInternalTemperature", "InternalFailure", "BmsCable", "FuseBlown", "StateOfHealth",
    "MidVoltage", "Contactor",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PathRule:
    path: str
    required: bool
    low: float
    high: float
    note: str


# The table: (path, required, plausible range, what happens when it is missing).
PATHS: tuple[PathRule, ...] = (
    PathRule("/Dc/0/Voltage", True, 0.5, 1000.0, "required"),
    PathRule("/Dc/0/Current", True, -10000.0, 10000.0, "required"),
    PathRule("/Soc", True, 0.0, 100.0, "required"),
    PathRule(
        "/InstalledCapacity", False, 0.1, 100000.0, "else /Capacity is the installed capacity"
    ),
    PathRule("/Capacity", False, 0.0, 100000.0, "remaining Ah; else SoC x installed"),
    PathRule("/ConsumedAmphours", False, -100000.0, 100000.0, "else remaining - installed"),
    PathRule("/Dc/0/Power", False, -1e7, 1e7, "else voltage x current"),
    PathRule("/Dc/0/Temperature", False, -60.0, 150.0, "left out of the mean"),
    PathRule("/TimeToGo", False, 0.0, 1e9, "not used: the bank's is computed"),
    PathRule("/Voltages/Sum", False, 0.5, 1000.0, "else sum of cells, else voltage"),
    PathRule("/System/MinCellVoltage", False, 0.0, 6.0, "else from cells"),
    PathRule("/System/MaxCellVoltage", False, 0.0, 6.0, "else from cells"),
    PathRule("/System/MinCellTemperature", False, -60.0, 150.0, "else /Dc/0/Temperature"),
    PathRule("/System/MaxCellTemperature", False, -60.0, 150.0, "else /Dc/0/Temperature"),
    PathRule("/System/NrOfCellsPerBattery", False, 1.0, 64.0, "else number of cell paths"),
    PathRule("/System/NrOfModulesOnline", False, 0.0, 1000.0, "else 1"),
    PathRule("/System/NrOfModulesOffline", False, 0.0, 1000.0, "else 0"),
    PathRule("/System/NrOfModulesBlockingCharge", False, 0.0, 1000.0, "else from /Io"),
    PathRule("/System/NrOfModulesBlockingDischarge", False, 0.0, 1000.0, "else from /Io"),
    PathRule("/Info/MaxChargeVoltage", False, 0.0, 1000.0, "no BMS CVL"),
    PathRule("/Info/MaxChargeCurrent", False, 0.0, 10000.0, "no BMS CCL"),
    PathRule("/Info/MaxDischargeCurrent", False, 0.0, 10000.0, "no BMS DCL"),
    PathRule("/Io/AllowToCharge", False, 0.0, 1.0, "allowed"),
    PathRule("/Io/AllowToDischarge", False, 0.0, 1.0, "allowed"),
    PathRule("/Io/AllowToBalance", False, 0.0, 1.0, "allowed"),
    PathRule("/Balancing", False, 0.0, 1.0, "not balancing"),
)
RULES = {rule.path: rule for rule in PATHS}
_ALARM_PATHS = tuple((alarm, f"/Alarms/{alarm}") for alarm in ALARMS)
CELL_VOLTAGE_RANGE = (0.5, 5.5)
ALARM_RANGE = (0, 2)
MAX_CELLS = 64
_CELL_PATHS = tuple(f"/Voltages/Cell{i}" for i in range(1, MAX_CELLS + 1))


@dataclass(frozen=True, slots=True)
class Battery:
    """A battery whose values passed every check; ready to be merged."""

    key: str
    """Stable identity (the D-Bus service name)."""
    name: str
    """Display name, unique in the bank; used in cell ids such as ``Pack 1:C5``."""
    voltage: float
    current: float
    soc: float
    installed_ah: float
    remaining_ah: float
    consumed_ah: float
    power: float
    cell_sum: float
    temperature: float | None = None
    min_cell: tuple[float, str] | None = None
    """(voltage, cell id) of the lowest cell."""
    max_cell: tuple[float, str] | None = None
    min_temp: tuple[float, str] | None = None
    max_temp: tuple[float, str] | None = None
    cells: tuple[float, ...] = ()
    """Every cell voltage, C1 first; empty for batteries without per-cell data."""
    cell_count: int | None = None
    bms_cvl: float | None = None
    bms_ccl: float | None = None
    bms_dcl: float | None = None
    allow_charge: bool = True
    allow_discharge: bool = True
    allow_balance: bool = True
    modules_online: int = 1
    modules_offline: int = 0
    blocking_charge: int = 0
    blocking_discharge: int = 0
    balancing: bool = False
    charge_mode: str | None = None
    alarms: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A battery left out of the merge, and why (the path and value at fault)."""

    key: str
    name: str
    reason: str


class _BadValueError(Exception):
    """A value that makes the battery invalid; its message is the reason."""


def _number(values: Mapping[str, Any], path: str, low: float, high: float) -> float | None:
    value = values.get(path)
    if value is None:
        return None
    kind = type(value)
    # fast path: NaN and infinities fail the range comparison, bools are not of type int
    if (kind is float or kind is int) and low <= value <= high:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadValueError(f"{path} = {value!r} is not a number")
    if not math.isfinite(value):
        raise _BadValueError(f"{path} = {value!r} is not finite")
    raise _BadValueError(f"{path} = {value!r} is outside {low:g}..{high:g}")


def _rule_number(values: Mapping[str, Any], path: str) -> float | None:
    rule = RULES[path]
    number = _number(values, path, rule.low, rule.high)
    if number is None and rule.required:
        raise _BadValueError(f"{path} is missing")
    return number


def _ident(value: Any, fallback: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return f"C{value}"
    return fallback


def _cells(values: Mapping[str, Any]) -> tuple[float, ...]:
    """``/Voltages/Cell1`` .. as numbered (drivers number from 1 without gaps); a cell whose
    value is None is unknown and left out."""
    cells: list[float] = []
    for path in _CELL_PATHS:
        if path not in values:
            break
        v = _number(values, path, *CELL_VOLTAGE_RANGE)
        if v is not None:
            cells.append(v)
    return tuple(cells)


def _extreme(
    values: Mapping[str, Any], path: str, id_path: str, low: float, high: float
) -> tuple[float, str] | None:
    v = _number(values, path, low, high)
    if v is None:
        return None
    return v, _ident(values.get(id_path), "?")


def read_battery(key: str, name: str, values: Mapping[str, Any]) -> Battery | Invalid:
    """Check one battery's snapshot; never raises."""
    try:
        return _read(key, name, values)
    except _BadValueError as bad:
        return Invalid(key, name, str(bad))


def _read(key: str, name: str, values: Mapping[str, Any]) -> Battery:
    voltage = _rule_number(values, "/Dc/0/Voltage")
    current = _rule_number(values, "/Dc/0/Current")
    soc = _rule_number(values, "/Soc")
    assert voltage is not None and current is not None and soc is not None
    installed = _rule_number(values, "/InstalledCapacity")
    capacity = _rule_number(values, "/Capacity")
    if installed is None:
        installed, capacity = capacity, None  # Victron BMSes: /Capacity is the installed one
    if installed is None or installed <= 0:
        raise _BadValueError("neither /InstalledCapacity nor /Capacity gives the capacity")
    remaining = capacity if capacity is not None else soc / 100.0 * installed
    consumed = _rule_number(values, "/ConsumedAmphours")
    consumed = -abs(consumed) if consumed is not None else remaining - installed
    power = _rule_number(values, "/Dc/0/Power")
    cells = _cells(values)
    cell_sum = _rule_number(values, "/Voltages/Sum")
    if cell_sum is None:
        cell_sum = round(sum(cells), 4) if cells else voltage
    temperature = _rule_number(values, "/Dc/0/Temperature")

    min_cell = _extreme(values, "/System/MinCellVoltage", "/System/MinVoltageCellId", 0.0, 6.0)
    max_cell = _extreme(values, "/System/MaxCellVoltage", "/System/MaxVoltageCellId", 0.0, 6.0)
    if cells:
        lo, hi = min(cells), max(cells)
        # the cells are the truth; the summary paths may lag them by one BMS poll
        if min_cell is None or min_cell[0] != lo:
            min_cell = (lo, f"C{cells.index(lo) + 1}")
        if max_cell is None or max_cell[0] != hi:
            max_cell = (hi, f"C{cells.index(hi) + 1}")
    t_range = (-60.0, 150.0)
    min_temp = _extreme(
        values, "/System/MinCellTemperature", "/System/MinTemperatureCellId", *t_range
    )
    max_temp = _extreme(
        values, "/System/MaxCellTemperature", "/System/MaxTemperatureCellId", *t_range
    )
    if temperature is not None:
        min_temp = min_temp or (temperature, "battery")
        max_temp = max_temp or (temperature, "battery")

    count = _rule_number(values, "/System/NrOfCellsPerBattery")
    flags = {p: _rule_number(values, p) for p in ("/Io/AllowToCharge", "/Io/AllowToDischarge")}
    allow_charge = flags["/Io/AllowToCharge"] != 0
    allow_discharge = flags["/Io/AllowToDischarge"] != 0
    blocking_charge = _rule_number(values, "/System/NrOfModulesBlockingCharge")
    blocking_discharge = _rule_number(values, "/System/NrOfModulesBlockingDischarge")
    online = _rule_number(values, "/System/NrOfModulesOnline")
    offline = _rule_number(values, "/System/NrOfModulesOffline")
    alarms: dict[str, int] = {}
    for alarm, path in _ALARM_PATHS:
        level = _number(values, path, *ALARM_RANGE)
        if level is not None:
            alarms[alarm] = int(level)
    mode = values.get("/Info/ChargeMode")
    return Battery(
        key=key,
        name=name,
        voltage=voltage,
        current=current,
        soc=soc,
        installed_ah=installed,
        remaining_ah=min(max(remaining, 0.0), installed),
        consumed_ah=consumed,
        power=power if power is not None else voltage * current,
        cell_sum=cell_sum,
        temperature=temperature,
        min_cell=min_cell,
        max_cell=max_cell,
        min_temp=min_temp,
        max_temp=max_temp,
        cells=cells,
        cell_count=int(count) if count is not None else (len(cells) or None),
        bms_cvl=_rule_number(values, "/Info/MaxChargeVoltage"),
        bms_ccl=_rule_number(values, "/Info/MaxChargeCurrent"),
        bms_dcl=_rule_number(values, "/Info/MaxDischargeCurrent"),
        allow_charge=allow_charge,
        allow_discharge=allow_discharge,
        allow_balance=_rule_number(values, "/Io/AllowToBalance") != 0,
        modules_online=int(online) if online is not None else 1,
        modules_offline=int(offline) if offline is not None else 0,
        blocking_charge=int(blocking_charge)
        if blocking_charge is not None
        else int(not allow_charge),
        blocking_discharge=(
            int(blocking_discharge) if blocking_discharge is not None else int(not allow_discharge)
        ),
        balancing=_rule_number(values, "/Balancing") == 1,
        charge_mode=mode if isinstance(mode, str) else None,
        alarms=alarms,
    )


def unique_names(candidates: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Display names by key: the preferred name, else the service suffix; duplicates numbered.

    ``candidates`` are (service name, value of the configured name path). Names must be unique
    because cell ids (``name:C5``) are built from them; the reference keyed cells by a possibly
    empty CustomName, so two packs' ``C5`` overwrote each other (field notes §4.4).
    """
    names: dict[str, str] = {}
    used: set[str] = set()
    for key, preferred in sorted(candidates, key=lambda c: c[0]):
        base = preferred.strip() if isinstance(preferred, str) and preferred.strip() else ""
        if not base and isinstance(preferred, int | float) and not isinstance(preferred, bool):
            base = str(preferred)
        base = base or key.rsplit(".", 1)[-1]
        name, n = base, 2
        while name in used:
            name, n = f"{base}#{n}", n + 1
        used.add(name)
        names[key] = name
    return names
