"""What the virtual battery publishes: the path table and one cycle's values for it (pure).

Paths are those systemcalc, DVCC, the GUI and MQTT read of a battery (docs/protocol.md).
Values are rounded to the resolution a BMS reports, so float noise never turns into a
stream of ItemsChanged; ``/Info/MaxChargeVoltage`` is valid for as long as the service runs,
because DVCC treats a battery without it as "not a BMS".
"""

from __future__ import annotations

import json
import re
from typing import Any

from aggbatt import __version__
from aggbatt.config import Config
from aggbatt.core.battery import ALARMS, Invalid
from aggbatt.core.engine import CycleResult
from aggbatt.core.merge import CellRef
from aggbatt.venus.wire import TextFormatter, unit_formatter

FORMATS: dict[str, TextFormatter] = {
    "/Dc/0/Voltage": unit_formatter("V", 2),
    "/Dc/0/Current": unit_formatter("A", 1),
    "/Dc/0/Power": unit_formatter("W", 0),
    "/Dc/0/Temperature": unit_formatter("°C", 1),
    "/Soc": unit_formatter("%", 1),
    "/Capacity": unit_formatter("Ah", 1),
    "/InstalledCapacity": unit_formatter("Ah", 1),
    "/ConsumedAmphours": unit_formatter("Ah", 1),
    "/TimeToGo": unit_formatter("s", 0),
    "/History/TimeSinceLastFullCharge": unit_formatter("s", 0),
    "/System/MinCellVoltage": unit_formatter("V", 3),
    "/System/MaxCellVoltage": unit_formatter("V", 3),
    "/System/MinCellTemperature": unit_formatter("°C", 1),
    "/System/MaxCellTemperature": unit_formatter("°C", 1),
    "/Voltages/Sum": unit_formatter("V", 2),
    "/Voltages/Diff": unit_formatter("V", 3),
    "/Info/MaxChargeVoltage": unit_formatter("V", 2),
    "/Info/MaxChargeCurrent": unit_formatter("A", 1),
    "/Info/MaxDischargeCurrent": unit_formatter("A", 1),
    "/Info/BatteryLowVoltage": unit_formatter("V", 2),
}
CELL_FORMAT = unit_formatter("V", 3)


def static_paths(config: Config, device_instance: int, custom_name: str) -> dict[str, Any]:
    """Identity paths, set once before registration."""
    s = config.service
    return {
        "/Mgmt/ProcessName": "aggbatt",
        "/Mgmt/ProcessVersion": __version__,
        "/Mgmt/Connection": "Virtual (aggregate of batteries)",
        "/DeviceInstance": device_instance,
        "/ProductId": s.product_id,
        "/ProductName": s.product_name,
        "/FirmwareVersion": __version__,
        "/HardwareVersion": None,
        "/Connected": 1,
        "/CustomName": custom_name or s.product_name,
        "/Serial": f"aggbatt-{s.unique_id}",
        "/State": 9,
        "/Info/ChargeRequest": 0,
        "/System/NrOfCellsPerBattery": config.batteries.cells_per_battery,
    }


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _cell(ref: CellRef | None, digits: int) -> tuple[float | None, str | None]:
    return (None, None) if ref is None else (round(ref.value, digits), ref.id)


def cycle_values(result: CycleResult, config: Config) -> dict[str, Any]:
    """Every dynamic path's value after one cycle."""
    agg, lim = result.aggregate, result.limits
    min_v, min_v_id = _cell(agg.min_cell, 3)
    max_v, max_v_id = _cell(agg.max_cell, 3)
    min_t, min_t_id = _cell(agg.min_temp, 1)
    max_t, max_t_id = _cell(agg.max_temp, 1)
    remaining = result.remaining_ah
    online = agg.online
    values: dict[str, Any] = {
        "/Dc/0/Voltage": _r(agg.voltage, 2),
        "/Dc/0/Current": _r(agg.current, 2),
        "/Dc/0/Power": _r(agg.power, 0),
        "/Dc/0/Temperature": _r(agg.temperature, 1),
        "/Soc": _r(result.soc, 1),
        "/Capacity": _r(remaining, 2),
        "/InstalledCapacity": _r(agg.installed_ah, 2) if online else None,
        "/ConsumedAmphours": _r(result.consumed_ah, 2),
        "/TimeToGo": result.time_to_go,
        "/History/TimeSinceLastFullCharge": result.time_since_full,
        "/Info/SocSync": result.soc_sync,
        "/System/MinCellVoltage": min_v,
        "/System/MaxCellVoltage": max_v,
        "/System/MinVoltageCellId": min_v_id,
        "/System/MaxVoltageCellId": max_v_id,
        "/System/MinCellTemperature": min_t,
        "/System/MaxCellTemperature": max_t,
        "/System/MinTemperatureCellId": min_t_id,
        "/System/MaxTemperatureCellId": max_t_id,
        "/System/NrOfModulesOnline": agg.modules_online,
        "/System/NrOfModulesOffline": agg.modules_offline,
        "/System/NrOfModulesBlockingCharge": agg.blocking_charge,
        "/System/NrOfModulesBlockingDischarge": agg.blocking_discharge,
        "/System/NrOfBatteries": len(agg.batteries),
        "/System/BatteriesParallel": len(agg.batteries),
        "/Voltages/Sum": _r(agg.cell_sum, 2),
        "/Voltages/Diff": _r(agg.cell_diff, 3),
        "/Io/AllowToCharge": None
        if agg.allow_charge is None
        else int(agg.allow_charge and lim.ccl.value > 0),
        "/Io/AllowToDischarge": (
            None if agg.allow_discharge is None else int(agg.allow_discharge and lim.dcl.value > 0)
        ),
        "/Io/AllowToBalance": None if agg.allow_balance is None else int(agg.allow_balance),
        "/Balancing": int(agg.balancing or result.state.balancing.phase != "idle"),
        "/Info/MaxChargeVoltage": round(lim.cvl.value, 3),
        "/Info/MaxChargeCurrent": round(lim.ccl.value, 1),
        "/Info/MaxDischargeCurrent": round(lim.dcl.value, 1),
        "/Info/BatteryLowVoltage": _r(lim.battery_low_voltage, 2),
        "/Info/ChargeMode": lim.mode.text,
        "/Info/ChargeLimitation": lim.ccl.reason,
        "/Info/DischargeLimitation": lim.dcl.reason,
        "/Info/ChargeVoltageLimitation": lim.cvl.reason,
    }
    values["/Packs/Unseen"] = unseen_packs(result)
    for alarm in ALARMS:
        values[f"/Alarms/{alarm}"] = agg.alarms.get(alarm, 0)
    if config.service.publish_cell_voltages:
        values.update(cell_paths(result))
    return values


def unseen_packs(result: CycleResult) -> str:
    """The bank's packs that are not seen (rule 15), as JSON for ``aggbatt status``: name,
    service, why, and when (Unix time) each was last merged. Stable for an episode."""
    known = result.state.known
    unseen = [
        {
            "pack": r.name,
            "service": r.key,
            "why": r.reason,
            "last_seen": round(known[r.key].last_seen) if r.key in known else None,
        }
        for r in result.readings
        if isinstance(r, Invalid) and r.kind.unseen
    ]
    return json.dumps(unseen) if unseen else ""


_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def cell_path(battery: str, number: int) -> str:
    """``/Voltages/<battery>_Cell<N>``: the one place that builds a published cell's path."""
    return f"/Voltages/{_UNSAFE.sub('_', battery) or 'battery'}_Cell{number}"


def is_cell_path(path: str) -> bool:
    """A path :func:`cell_path` built (they come and go with the packs); checked once a
    cycle for every published path, so two string tests: of the paths published under
    ``/Voltages/``, only cells have ``_Cell`` in them (the others are ``Sum`` and ``Diff``)."""
    return path.startswith("/Voltages/") and "_Cell" in path


def formatter_of(path: str) -> TextFormatter | None:
    """The text a published path shows: its unit and resolution."""
    return FORMATS.get(path) or (CELL_FORMAT if path.startswith("/Voltages/") else None)


def cell_paths(result: CycleResult) -> dict[str, float]:
    """Every cell of every online battery (:func:`cell_path`)."""
    out: dict[str, float] = {}
    for battery, cells in result.aggregate.cells_by_battery.items():
        for i, v in enumerate(cells, start=1):
            out[cell_path(battery, i)] = round(v, 3)
    return out
