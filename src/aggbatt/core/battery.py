"""One battery's D-Bus values turned into a checked :class:`Battery`, or why it is left out.

Which paths a battery publishes is one explicit table, :data:`PATHS`, with the plausible range
of each. Rule 2 of :mod:`aggbatt.core.safety` is enforced here: a value that is missing,
NaN, infinite, of the wrong type or outside its range is a :class:`Fault` of that path only.
The pack's other values still count, and the bad one is taken at the last good value the pack
published for it (``previous``): a cell that goes unknown near the top keeps the cut, a sensor
that dies keeps the temperature it last had. Only a pack with no usable voltage or capacity at
all is left out (:class:`Invalid`), and even then its flags, alarms and cells count (rule 3).
Rule 4 (both sources of a cell extreme), rule 5 (a pack that does not match the configured
cell count or chemistry), rule 12 (a BMS that is not running or has switched itself out) and
the first half of rule 15 (a pack whose BMS link is lost) are decided here too.

dbus-serialbattery (:data:`SERIALBATTERY_ID`) is read as the released driver publishes
(docs/serialbattery.md): its ``/State 14`` is standby (both of its *soft* limits at 0 while
the FETs may still be closed), never "switched out"; its ``/Io/AllowTo* 0`` means "FET open"
only where its ``/Info/ChargeLimitation`` (``DischargeLimitation``) names "BMS".
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

ALARMS = (
    "LowVoltage", "HighVoltage", "LowCellVoltage", "HighCellVoltage", "LowSoc",
    "HighChargeCurrent", "HighDischargeCurrent", "HighCurrent", "CellImbalance",
    "HighChargeTemperature", "LowChargeTemperature", "HighTemperature", "LowTemperature",
    "HighInternalTemperature", "InternalFailure", "BmsCable", "FuseBlown", "StateOfHealth",
    "MidVoltage", "Contactor",
)  # fmt: skip


SERIALBATTERY_ID = 0xBA77
"""``/ProductId`` of every dbus-serialbattery service (Victron reserved it for the driver)."""


class Product(enum.Enum):
    """Whose semantics a pack's paths have."""

    SERIALBATTERY = "dbus-serialbattery"
    OTHER = "another BMS"


def product_of(values: Mapping[str, Any]) -> Product:
    """serialbattery by its ``/ProductId`` (every driver publishes 0xBA77), else by a product
    name it gives most drivers ("SerialBattery(...)"; the JBD driver publishes the BMS's own)."""
    pid = values.get("/ProductId")
    if type(pid) is int and pid == SERIALBATTERY_ID:
        return Product.SERIALBATTERY
    name = values.get("/ProductName")
    if isinstance(name, str) and name.startswith("SerialBattery"):
        return Product.SERIALBATTERY
    return Product.OTHER


@dataclass(frozen=True, slots=True)
class Expect:
    """What the configuration expects of every pack (rules 5 and 6, the SoC-reset check)."""

    cells: int = 0
    """Cells in series; 0 switches rule 5 off."""
    window: tuple[float, float] = (0.0, math.inf)
    """Plausible measured per-cell voltages of the chemistry."""
    max_cell_voltage: float = math.inf


@dataclass(frozen=True, slots=True)
class PathRule:
    path: str
    required: bool
    low: float
    high: float
    note: str


CELL_VOLTAGE_RANGE = (0.5, 5.5)
"""Plausible for a cell of any chemistry: the cells, and the summary's extremes."""
TEMPERATURE_RANGE = (-60.0, 150.0)

# The table: (path, required, plausible range, what happens when it is missing). It is the
# one owner of each path's range: the reading takes it from here.
PATHS: tuple[PathRule, ...] = (
    PathRule("/Dc/0/Voltage", True, 0.5, 1000.0, "required"),
    PathRule("/Dc/0/Current", True, -10000.0, 10000.0, "required"),
    PathRule("/Soc", True, 0.0, 100.0, "else the last good SoC, else left out of the mean"),
    PathRule(
        "/InstalledCapacity", False, 0.1, 100000.0, "else /Capacity is the installed capacity"
    ),
    PathRule("/Capacity", False, 0.0, 100000.0, "remaining Ah; else SoC x installed"),
    PathRule("/ConsumedAmphours", False, -100000.0, 100000.0, "else remaining - installed"),
    PathRule("/Dc/0/Power", False, -1e7, 1e7, "else voltage x current"),
    PathRule("/Dc/0/Temperature", False, *TEMPERATURE_RANGE, "left out of the mean"),
    PathRule("/TimeToGo", False, 0.0, 1e9, "not used: the bank's is computed"),
    PathRule("/Voltages/Sum", False, 0.5, 1000.0, "else sum of cells, else voltage"),
    PathRule("/System/MinCellVoltage", False, *CELL_VOLTAGE_RANGE, "else from cells"),
    PathRule("/System/MaxCellVoltage", False, *CELL_VOLTAGE_RANGE, "else from cells"),
    PathRule("/System/MinCellTemperature", False, *TEMPERATURE_RANGE, "else /Dc/0/Temperature"),
    PathRule("/System/MaxCellTemperature", False, *TEMPERATURE_RANGE, "else /Dc/0/Temperature"),
    PathRule("/System/NrOfCellsPerBattery", False, 1.0, 64.0, "else number of cell paths"),
    PathRule("/System/NrOfModulesOnline", False, 0.0, 1000.0, "else 1"),
    PathRule("/System/NrOfModulesOffline", False, 0.0, 1000.0, "else 0"),
    PathRule("/System/NrOfModulesBlockingCharge", False, 0.0, 1000.0, "else from /Io"),
    PathRule("/System/NrOfModulesBlockingDischarge", False, 0.0, 1000.0, "else from /Io"),
    PathRule("/Info/MaxChargeVoltage", False, 0.0, 1000.0, "no BMS CVL"),
    PathRule("/Info/MaxChargeCellVoltage", False, 0.5, 5.5, "no bulk voltage a cell"),
    PathRule("/Info/MaxChargeCurrent", False, 0.0, 10000.0, "no BMS CCL"),
    PathRule("/Info/MaxDischargeCurrent", False, 0.0, 10000.0, "no BMS DCL"),
    PathRule("/Io/AllowToCharge", False, 0.0, 1.0, "allowed"),
    PathRule("/Io/AllowToDischarge", False, 0.0, 1.0, "allowed"),
    PathRule("/Io/AllowToBalance", False, 0.0, 1.0, "allowed"),
    PathRule("/Balancing", False, 0.0, 1.0, "not balancing"),
    PathRule("/State", False, 0.0, 255.0, "running"),
)
RULES = {rule.path: rule for rule in PATHS}
_READ_APART = (
    "/State", "/TimeToGo", "/Info/MaxChargeVoltage", "/System/MinCellVoltage",
    "/System/MaxCellVoltage", "/System/MinCellTemperature", "/System/MaxCellTemperature",
)  # fmt: skip
"""Read on their own: /State as published, /TimeToGo never, the BMS CVL by chemistry (rule 6),
the summary extremes with their cell ids and the cells' range (rule 4)."""
_TABLE = tuple((rule.path, rule.low, rule.high) for rule in PATHS if rule.path not in _READ_APART)
_ALARM_PATHS = tuple((alarm, f"/Alarms/{alarm}") for alarm in ALARMS)
RUNNING = 9
"""``/State`` of a running BMS (Victron's and serialbattery's; 14 is standby, 10 error)."""
MAX_CELLS = 64
_CELL_PATHS = tuple(f"/Voltages/Cell{i}" for i in range(1, MAX_CELLS + 1))
_CELL_PATHS_2 = tuple(f"/Cell/{i}/Volts" for i in range(1, MAX_CELLS + 1))
"""serialbattery's BATTERY_CELL_DATA_FORMAT 2 and 3 publish the cells here instead."""


def has_cells(values: Mapping[str, Any]) -> bool:
    """Whether a pack publishes its cells (in either shape)."""
    return _CELL_PATHS[0] in values or _CELL_PATHS_2[0] in values


def cell_subtree(values: Mapping[str, Any]) -> str:
    """Where a pack's cells are: ``/Voltages`` or (serialbattery's other shape) ``/Cell``."""
    return "/Voltages" if _CELL_PATHS[0] in values or _CELL_PATHS_2[0] not in values else "/Cell"


def is_cell(path: str) -> bool:
    """``/Voltages/Cell5`` or ``/Cell/5/Volts`` (not ``/Voltages/Sum``)."""
    return path.startswith("/Voltages/Cell") or (
        path.startswith("/Cell/") and path.endswith("/Volts")
    )


_LINK_PATHS = ("/Dc/0/Voltage", "/Dc/0/Current")
"""serialbattery sets these to None after 10 s without its BMS (and keeps the rest)."""


@dataclass(frozen=True, slots=True)
class Fault:
    """One value a pack published that cannot be trusted, and what was done instead."""

    path: str
    value: str
    """The value as received (repr), for the log line."""
    problem: str

    @property
    def text(self) -> str:
        return f"{self.path} = {self.value}: {self.problem}"


@dataclass(frozen=True, slots=True)
class Battery:
    """A battery whose values passed every check (or are held at their last good value)."""

    key: str
    """Stable identity (the D-Bus service name)."""
    name: str
    """Display name, unique in the bank; used in cell ids such as ``Pack 1:C5``."""
    voltage: float
    current: float
    soc: float | None
    """None: the pack never published a plausible SoC (left out of the bank's mean)."""
    installed_ah: float
    remaining_ah: float
    consumed_ah: float
    power: float
    cell_sum: float
    temperature: float | None = None
    min_cell: tuple[float, str] | None = None
    """(voltage, cell id) of the lowest cell: the lower of the cells and the summary path."""
    max_cell: tuple[float, str] | None = None
    min_temp: tuple[float, str] | None = None
    max_temp: tuple[float, str] | None = None
    cells: tuple[float, ...] = ()
    """Every cell voltage, C1 first (an unknown cell at its last good value); empty for
    batteries without per-cell data."""
    cell_count: int | None = None
    bms_cvl: float | None = None
    bms_cell_cvl: float | None = None
    """``/Info/MaxChargeCellVoltage``: serialbattery's bulk (or SoC-reset) voltage a cell."""
    bms_ccl: float | None = None
    bms_dcl: float | None = None
    rated_ccl: float | None = None
    """The highest charge limit the BMS has published since it was first read: its rating
    (the bank's automatic maximum, ``max_charge_current`` unset)."""
    rated_dcl: float | None = None
    allow_charge: bool = True
    allow_discharge: bool = True
    carries_charge: bool = True
    """False only where the pack is known to carry nothing in this direction (its FET open):
    any BMS's flag 0, but for serialbattery only a flag 0 whose reason names "BMS"."""
    carries_discharge: bool = True
    product: Product = Product.OTHER
    serial: str | None = None
    allow_balance: bool = True
    modules_online: int = 1
    modules_offline: int = 0
    blocking_charge: int = 0
    blocking_discharge: int = 0
    balancing: bool = False
    charge_mode: str | None = None
    alarms: Mapping[str, int] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    notes: tuple[str, ...] = ()
    """What is worth a log line but no alarm (a module count read as modules in series)."""
    good: Mapping[str, float] = field(default_factory=dict, repr=False)
    """The last plausible value of every numeric path the pack published (held ones
    included): what the next reading falls back to (rule 2)."""


class Offline(enum.Enum):
    """Why a pack on (or off) the bus is not merged."""

    INVALID = "no usable values"
    NOT_RUNNING = "switched out"
    MISMATCH = "does not match the configuration"
    FROZEN = "frozen"
    LOST = "BMS link lost"
    GONE = "left the bus"

    @property
    def blocks_count(self) -> bool:
        """Whether its /Io/AllowTo* flags still hold the bank (rule 3; not rule 12)."""
        return self is not Offline.NOT_RUNNING

    @property
    def unseen(self) -> bool:
        """Wired in, but what it carries is not seen: charging stops (rule 15)."""
        return self in (Offline.FROZEN, Offline.LOST, Offline.GONE)


@dataclass(frozen=True, slots=True)
class Invalid:
    """A pack left out of the merge, why, and what of it still keeps the bank safe."""

    key: str
    name: str
    reason: str
    kind: Offline = Offline.INVALID
    allow_charge: bool = True
    allow_discharge: bool = True
    max_cell: tuple[float, str] | None = None
    min_cell: tuple[float, str] | None = None
    alarms: Mapping[str, int] = field(default_factory=dict)
    faults: tuple[Fault, ...] = ()
    since: float | None = None
    """Unseen packs (rule 15): since when (monotonic) it has not been seen."""


def left_out(battery: Battery, kind: Offline, reason: str) -> Invalid:
    """A pack read in full but not merged (frozen, gone, mismatched): it keeps its flags,
    cell extremes and alarms, so the last safe decision holds (rules 2, 3, 10)."""
    return Invalid(
        battery.key, battery.name, reason, kind, battery.allow_charge, battery.allow_discharge,
        battery.max_cell, battery.min_cell, battery.alarms, battery.faults,
    )  # fmt: skip


def plain(value: Any, low: float, high: float) -> bool:
    """The fast check of every value read: a plain int or float (a bool is neither) within
    ``low``..``high``. NaN and infinities fail the range comparison."""
    kind = type(value)
    return (kind is float or kind is int) and low <= value <= high


class _Reader:
    """Reads one snapshot path by path, collecting faults and the good values, and falling
    back to the last good value of a path (``held``) when its value is missing or bad."""

    def __init__(self, values: Mapping[str, Any], previous: Battery | None) -> None:
        self.values = values
        self.held: Mapping[str, float] = previous.good if previous is not None else {}
        self.good: dict[str, float] = {}
        self.faults: list[Fault] = []

    def number(self, path: str, low: float, high: float) -> float | None:
        """The value if plausible; else the held one, with a fault when the value is bad, or
        is missing although the path is required or was published before."""
        value: Any = self.values.get(path)
        if plain(value, low, high):
            number = self.good[path] = float(value)
            return number
        held = self.held.get(path)
        if held is not None:
            self.good[path] = held
        if value is None:
            if held is not None or (path in RULES and RULES[path].required):
                self.fault(path, value, "missing", held)
            return held
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fault(path, value, "not a number", held)
        elif not math.isfinite(value):
            self.fault(path, value, "not finite", held)
        else:
            self.fault(path, value, f"outside {low:g}..{high:g}", held)
        return held

    def table(self) -> dict[str, float | None]:
        """Every numeric path of :data:`PATHS` in one pass (the hot path of a cycle)."""
        values, good, number = self.values, self.good, self.number
        out: dict[str, float | None] = {}
        for path, low, high in _TABLE:
            v: Any = values.get(path)
            if plain(v, low, high):
                out[path] = good[path] = float(v)
            else:
                out[path] = number(path, low, high)
        return out

    def fault(self, path: str, value: Any, problem: str, held: float | None = None) -> None:
        shown = repr(value)
        if len(shown) > 40:
            shown = shown[:37] + "..."
        action = "" if held is None else f"; last good value {held:g} kept"
        self.faults.append(Fault(path, shown, problem + action))


_ABSENT = object()


def _ident(value: Any, fallback: str) -> str:
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return f"C{value}"
    return fallback


def _cells(r: _Reader) -> tuple[float, ...]:
    """``/Voltages/Cell1`` .. (or serialbattery's ``/Cell/1/Volts`` ..) as numbered: drivers
    number from 1 without gaps. A cell whose value is bad is held at its last good value, else
    left out (its pack's summary path still bounds it, rule 4)."""
    cells: list[float] = []
    values, good = r.values, r.good
    low, high = CELL_VOLTAGE_RANGE
    paths = _CELL_PATHS if _CELL_PATHS[0] in values else _CELL_PATHS_2
    for path in paths:
        v: Any = values.get(path, _ABSENT)
        if plain(v, low, high):
            number = good[path] = float(v)
            cells.append(number)
            continue
        if v is _ABSENT:
            break
        held = r.number(path, low, high)
        if held is not None:
            cells.append(held)
    return tuple(cells)


def _fet_open(values: Mapping[str, Any], path: str) -> bool:
    """serialbattery names "BMS" in its limitation reason when the FET is off (or it blocks
    for a lost link): battery.py ``manage_charge_and_discharge_current``."""
    text = values.get(path)
    if not isinstance(text, str):
        return False
    return any(part.strip(" *") == "BMS" for part in text.split(","))


def _link_lost(
    values: Mapping[str, Any], alarms: Mapping[str, int], previous: Battery | None
) -> bool:
    """Rule 15: the BMS behind a driver is not answering. serialbattery (dbushelper.py
    ``publish_battery``) then sets only voltage, current and power to None, publishes no module
    online and raises BmsCable, and keeps every other value as it last was."""
    online = values.get("/System/NrOfModulesOnline")
    if (type(online) is int or type(online) is float) and online == 0:
        return True
    if alarms.get("BmsCable", 0) >= 1:
        return True
    return previous is not None and any(
        values.get(path) is None and path in previous.good for path in _LINK_PATHS
    )


_ERROR_CODES = {119: "its config.ini is invalid", 8: "180 internal errors in 3 hours"}


def _state_fault(r: _Reader, state: Any) -> None:
    """``/State 10`` is an error: the pack still counts, but the warning names it."""
    if type(state) is int and state == 10:
        code = r.values.get("/ErrorCode")
        known = _ERROR_CODES.get(code) if type(code) is int else None
        what = f"ErrorCode {code}" + (f": {known}" if known else "")
        r.faults.append(Fault("/State", "10", f"the BMS driver reports an error ({what})"))


def _extreme(r: _Reader, path: str, id_path: str) -> tuple[float, str] | None:
    """(value, id) of a summary path; a held value has lost its id."""
    v = r.number(path, RULES[path].low, RULES[path].high)
    if v is None:
        return None
    return v, _ident(r.values.get(id_path), "?")


def _worst(
    a: tuple[float, str] | None, b: tuple[float, str] | None, lowest: bool
) -> tuple[float, str] | None:
    if a is None or b is None:
        return a or b
    return min(a, b, key=lambda x: x[0]) if lowest else max(a, b, key=lambda x: x[0])


def read_battery(
    key: str,
    name: str,
    values: Mapping[str, Any],
    previous: Battery | None = None,
    expect: Expect = Expect(),
) -> Battery | Invalid:
    """Check one battery's snapshot; never raises. ``previous`` is its last reading.

    ``expect`` decides rule 5 (cells and the chemistry's window; 0 cells switches it off).
    """
    product = product_of(values)
    r = _Reader(values, previous)
    n = r.table()
    state = values.get("/State")
    flags = (values.get("/Io/AllowToCharge"), values.get("/Io/AllowToDischarge"))
    allow_charge = n["/Io/AllowToCharge"] != 0
    allow_discharge = n["/Io/AllowToDischarge"] != 0
    alarms = _alarms(r)
    serialbattery = product is Product.SERIALBATTERY
    lost = _link_lost(values, alarms, previous)
    if lost:  # the None of a lost link is no fault of the path: the link is (one line)
        r.faults = [f for f in r.faults if f.path not in (*_LINK_PATHS, "/Dc/0/Power")]
    carries_charge = allow_charge or (serialbattery and not _fet_open(values, _CHARGE_WHY))
    carries_discharge = allow_discharge or (serialbattery and not _fet_open(values, _DISCHARGE_WHY))
    if (
        not serialbattery and isinstance(state, int) and not isinstance(state, bool)
        and state != RUNNING and flags == (0, 0)
    ):  # fmt: skip
        # rule 12: a BMS that says it is not running and has opened both directions is
        # switched out of the bank; its flags do not hold the running packs
        return Invalid(
            key, name, f"not running (/State {state}), charge and discharge off",
            Offline.NOT_RUNNING, alarms=alarms,
        )  # fmt: skip
    if serialbattery and not lost and not (carries_charge or carries_discharge):
        # rule 12 for serialbattery: its standby (14) is no switch-out, both FETs open are
        return Invalid(
            key, name, "both FETs open (its BMS reports it): it carries nothing",
            Offline.NOT_RUNNING, alarms=alarms,
        )  # fmt: skip
    _state_fault(r, state)

    cells = _cells(r)
    max_cell, min_cell = _cell_extremes(r, cells)
    voltage = n["/Dc/0/Voltage"]
    if voltage is None and cells:
        voltage = round(sum(cells), 4)
    installed, capacity = _capacities(n, values, previous)
    current = n["/Dc/0/Current"]
    if voltage is None or installed is None or installed <= 0 or current is None:
        missing = [
            what
            for what, v in (("voltage", voltage), ("capacity", installed), ("current", current))
            if v is None or (v <= 0 and what == "capacity")
        ]
        kind, why = (
            (Offline.LOST, Offline.LOST.value)
            if lost
            else (Offline.INVALID, f"no usable {' or '.join(missing)} yet")
        )
        return Invalid(
            key, name, why, kind, allow_charge, allow_discharge, max_cell, min_cell, alarms,
            tuple(r.faults),
        )  # fmt: skip

    soc = n["/Soc"]
    remaining = capacity if capacity is not None else (soc or 0.0) / 100.0 * installed
    consumed = n["/ConsumedAmphours"]
    consumed = -abs(consumed) if consumed is not None else remaining - installed
    power = n["/Dc/0/Power"]
    cell_sum = n["/Voltages/Sum"]
    if cell_sum is None:
        cell_sum = round(sum(cells), 4) if cells else voltage
    temperature = n["/Dc/0/Temperature"]
    min_temp, max_temp = _temperatures(r, temperature)
    cell_count = _cell_count(r, n["/System/NrOfCellsPerBattery"], cells, serialbattery)
    blocking_charge = n["/System/NrOfModulesBlockingCharge"]
    blocking_discharge = n["/System/NrOfModulesBlockingDischarge"]
    online = n["/System/NrOfModulesOnline"]
    offline = n["/System/NrOfModulesOffline"]
    mode = values.get("/Info/ChargeMode")
    charge_mode = mode if isinstance(mode, str) else None
    bms_cvl = _bms_cvl(r, expect.cells, expect.window)
    bms_cell_cvl = n["/Info/MaxChargeCellVoltage"]
    if serialbattery and charge_mode and "SoC Reset" in charge_mode:
        _soc_reset_fault(r, charge_mode, bms_cell_cvl, expect.max_cell_voltage)
    bms_ccl = n["/Info/MaxChargeCurrent"]
    bms_dcl = n["/Info/MaxDischargeCurrent"]
    allow_balance = n["/Io/AllowToBalance"] != 0
    balancing = n["/Balancing"] == 1
    serial = values.get("/Serial")
    battery = Battery(
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
        cell_count=cell_count,
        bms_cvl=bms_cvl,
        bms_cell_cvl=bms_cell_cvl,
        bms_ccl=bms_ccl,
        bms_dcl=bms_dcl,
        rated_ccl=_rated(bms_ccl, previous.rated_ccl if previous else None),
        rated_dcl=_rated(bms_dcl, previous.rated_dcl if previous else None),
        allow_charge=allow_charge,
        allow_discharge=allow_discharge,
        carries_charge=carries_charge,
        carries_discharge=carries_discharge,
        product=product,
        serial=serial.strip() if isinstance(serial, str) and serial.strip() else None,
        allow_balance=allow_balance,
        modules_online=int(online) if online is not None else 1,
        modules_offline=int(offline) if offline is not None else 0,
        blocking_charge=(
            int(blocking_charge) if blocking_charge is not None else int(not allow_charge)
        ),
        blocking_discharge=(
            int(blocking_discharge) if blocking_discharge is not None else int(not allow_discharge)
        ),
        balancing=balancing,
        charge_mode=charge_mode,
        alarms=alarms,
        faults=tuple(r.faults),
        good=r.good,
    )
    if lost:  # rule 15: out of the means, its last flags, cells and alarms kept
        return left_out(battery, Offline.LOST, Offline.LOST.value)
    return _check_match(battery, expect.cells, expect.window)


def _temperatures(
    r: _Reader, temperature: float | None
) -> tuple[tuple[float, str] | None, tuple[float, str] | None]:
    """(lowest, highest) of the cell sensors and the pack's own sensor, with their ids."""
    low = _extreme(r, "/System/MinCellTemperature", "/System/MinTemperatureCellId")
    high = _extreme(r, "/System/MaxCellTemperature", "/System/MaxTemperatureCellId")
    if temperature is not None:
        low = _worst(low, (temperature, "battery"), lowest=True)
        high = _worst(high, (temperature, "battery"), lowest=False)
    return low, high


def _cell_count(
    r: _Reader, count: float | None, cells: tuple[float, ...], serialbattery: bool
) -> int | None:
    """The cells in series; fewer cell paths than that is a fault (rule 4), and so is a
    serialbattery pack that publishes none."""
    cell_count = int(count) if count is not None else (len(cells) or None)
    if cell_count is not None and 0 < len(cells) < cell_count:
        r.fault(
            "/Voltages/Cell", f"{len(cells)} paths", f"fewer cell paths than {cell_count} cells"
        )
    elif serialbattery and not cells and cell_count:
        r.fault(
            "/Voltages/Cell", "none", "no cell voltages published (serialbattery's "
            "BATTERY_CELL_DATA_FORMAT 0?): only the summary paths bound the cells",
        )  # fmt: skip
    return cell_count


def _alarms(r: _Reader) -> dict[str, int]:
    """Every alarm path published; garbage is taken at its worst, an alarm (rule 2)."""
    alarms: dict[str, int] = {}
    for alarm, path in _ALARM_PATHS:
        level: Any = r.values.get(path)
        if level is None:
            continue
        if plain(level, 0, 2):
            alarms[alarm] = int(level)
        else:
            r.fault(path, level, "not an alarm level; taken as 2 (alarm)")
            alarms[alarm] = 2
    return alarms


def _cell_extremes(
    r: _Reader, cells: tuple[float, ...]
) -> tuple[tuple[float, str] | None, tuple[float, str] | None]:
    """Rule 4: the cells and the BMS's summary both count; the worse of the two wins."""
    max_cell = _extreme(r, "/System/MaxCellVoltage", "/System/MaxVoltageCellId")
    min_cell = _extreme(r, "/System/MinCellVoltage", "/System/MinVoltageCellId")
    if cells:
        hi, lo = max(cells), min(cells)
        max_cell = _worst(max_cell, (hi, f"C{cells.index(hi) + 1}"), lowest=False)
        min_cell = _worst(min_cell, (lo, f"C{cells.index(lo) + 1}"), lowest=True)
    return max_cell, min_cell


def _capacities(
    n: Mapping[str, float | None], values: Mapping[str, Any], previous: Battery | None
) -> tuple[float | None, float | None]:
    """(installed Ah, remaining Ah): Victron's BMSes publish the installed capacity as
    ``/Capacity`` and no ``/InstalledCapacity``; a pack that lost it keeps its last one."""
    installed, capacity = n["/InstalledCapacity"], n["/Capacity"]
    if installed is None and "/InstalledCapacity" not in values:
        installed, capacity = capacity, None
    if installed is None and previous is not None:
        installed = previous.installed_ah
    return installed, capacity


_CHARGE_WHY = "/Info/ChargeLimitation"
_DISCHARGE_WHY = "/Info/DischargeLimitation"


def _rated(limit: float | None, before: float | None) -> float | None:
    if limit is None:
        return before
    return limit if before is None else max(limit, before)


def _soc_reset_fault(r: _Reader, mode: str, cell_cvl: float | None, max_cell: float) -> None:
    """serialbattery's SoC reset charges to 3.65 V a cell and silences its high-voltage alarms
    until it completes (and 30 min after): under a lower ``max_cell_voltage`` it never does."""
    if cell_cvl is not None and cell_cvl > max_cell:
        r.faults.append(
            Fault(
                "/Info/ChargeMode", repr(mode)[:40],
                f"a SoC reset to {cell_cvl:.2f} V a cell never completes under max_cell_voltage "
                f"{max_cell:.2f} V, and its driver silences its high-voltage alarms meanwhile: "
                "unset SOC_RESET_AFTER_DAYS in its config.ini",
            )
        )  # fmt: skip


def _bms_cvl(r: _Reader, cells: int, window: tuple[float, float]) -> float | None:
    """A BMS charge voltage implausible per cell for the chemistry is a fault (rule 6)."""
    if not cells:
        rule = RULES["/Info/MaxChargeVoltage"]
        return r.number(rule.path, rule.low, rule.high)
    return r.number("/Info/MaxChargeVoltage", window[0] * cells, window[1] * cells)


def _check_match(
    b: Battery, cells_per_battery: int, window: tuple[float, float]
) -> Battery | Invalid:
    """Rule 5: a pack of another cell count or chemistry is left out, keeping its flags.

    A pack without cell paths is judged by its voltage alone: a Lynx Smart BMS NG reports the
    cells of one battery module (4) for a bank of 8 in series; a count that divides the
    configured one means modules in series, and that is said once in the log.
    """
    if not cells_per_battery:
        return b
    per_cell = b.voltage / cells_per_battery
    fits = window[0] <= per_cell <= window[1]
    if b.cell_count is not None and b.cell_count != cells_per_battery:
        if not b.cells and fits:
            count = b.cell_count
            how = (
                f"{cells_per_battery // count} modules of {count} in series"
                if count and cells_per_battery % count == 0
                else f"{cells_per_battery} cells"
            )
            note = (
                f"reports {count} cells per battery, and its {b.voltage:.2f} V fits "
                f"{cells_per_battery}: taken as {how}"
            )
            return replace(b, notes=(*b.notes, note))
        why = f"{b.cell_count} cells, the bank is configured for {cells_per_battery}"
        return left_out(b, Offline.MISMATCH, why)
    if not fits:
        why = (
            f"{b.voltage:.2f} V is {per_cell:.2f} V per cell for {cells_per_battery} cells, "
            f"outside {window[0]:g}..{window[1]:g} V"
        )
        return left_out(b, Offline.MISMATCH, why)
    return b


def unique_names(candidates: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """Display names by key: the preferred name, else the service suffix; duplicates numbered.

    ``candidates`` are (service name, value of the configured name path). Names must be unique
    because cell ids (``name:C5``) are built from them; the reference keyed cells by a possibly
    empty CustomName, so two packs' ``C5`` overwrote each other (docs/comparison.md).
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
