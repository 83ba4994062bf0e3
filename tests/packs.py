"""Battery snapshots for core tests: what a serialbattery or a Lynx BMS publishes."""

from __future__ import annotations

from typing import Any

CLASSIC_OWN: dict[str, Any] = {
    "max_cell_voltage": 3.50,
    "balancing_voltage": 3.45,
    "max_charge_current": 200.0,
    "max_discharge_current": 200.0,
    "charge_voltage_per_month": [
        3.45,
        3.45,
        3.42,
        3.40,
        3.40,
        3.40,
        3.40,
        3.40,
        3.40,
        3.42,
        3.45,
        3.45,
    ],
}
"""The own-mode thresholds the hand-computed tests are written for (aggbatt's defaults until
they were set beside serialbattery's, docs/serialbattery.md): pinned, so those tests keep
testing exactly what they say."""


def pack(
    cells: list[float] | None = None,
    *,
    current: float = 0.0,
    soc: float | None = 50.0,
    installed: float = 280.0,
    ccl: float | None = 100.0,
    dcl: float | None = 150.0,
    cvl: float | None = 55.2,
    temperature: float | None = 20.0,
    **extra: Any,
) -> dict[str, Any]:
    """A serialbattery-like snapshot; ``extra`` overrides paths (use '/Path' keys via dict)."""
    cells = cells if cells is not None else [3.30] * 16
    total = round(sum(cells), 4)
    values: dict[str, Any] = {
        "/ProductId": 0xBA77,
        "/ProductName": "SerialBattery(Jkbms)",
        "/Dc/0/Voltage": total,
        "/Dc/0/Current": current,
        "/Dc/0/Power": total * current,
        "/Soc": soc,
        "/InstalledCapacity": installed,
        "/Capacity": None if soc is None else installed * soc / 100.0,
        "/ConsumedAmphours": None if soc is None else -(installed - installed * soc / 100.0),
        "/Dc/0/Temperature": temperature,
        "/Voltages/Sum": total,
        "/System/MinCellVoltage": min(cells),
        "/System/MaxCellVoltage": max(cells),
        "/System/MinVoltageCellId": f"C{cells.index(min(cells)) + 1}",
        "/System/MaxVoltageCellId": f"C{cells.index(max(cells)) + 1}",
        "/System/NrOfCellsPerBattery": len(cells),
        "/Info/MaxChargeVoltage": cvl,
        "/Info/MaxChargeCurrent": ccl,
        "/Info/MaxDischargeCurrent": dcl,
        "/Io/AllowToCharge": 1,
        "/Io/AllowToDischarge": 1,
        "/Io/AllowToBalance": 1,
        "/Alarms/HighCellVoltage": 0,
        "/Alarms/LowCellVoltage": 0,
    }
    for i, v in enumerate(cells):
        values[f"/Voltages/Cell{i + 1}"] = v
    values.update({k if k.startswith("/") else "/" + k: v for k, v in extra.items()})
    return values


def lynx(voltage: float = 52.42, current: float = -75.3, soc: float = 83.51) -> dict[str, Any]:
    """What Victron's Lynx Smart BMS publishes (bct recording): no cells, /Capacity installed."""
    return {
        "/ProductId": 0xA3E5,
        "/ProductName": "Lynx Smart BMS 500",
        "/Dc/0/Voltage": voltage,
        "/Dc/0/Current": current,
        "/Dc/0/Power": round(voltage * current),
        "/Soc": soc,
        "/Capacity": 200,
        "/ConsumedAmphours": -31.1,
        "/Dc/0/Temperature": None,
        "/System/MinCellVoltage": None,
        "/System/MaxCellVoltage": None,
        "/Info/MaxChargeVoltage": 54.0,
        "/Info/MaxChargeCurrent": 200.0,
        "/Info/MaxDischargeCurrent": 600.0,
        "/Io/AllowToCharge": 1,
        "/Io/AllowToDischarge": 1,
        "/Alarms/LowSoc": 0,
        "/Alarms/BmsCable": None,
        "/TimeToGo": None,
    }


def classic_config(data: dict[str, Any] | None = None) -> Any:
    """A Config from ``data`` with :data:`CLASSIC_OWN` under it (``data`` wins)."""
    from aggbatt.config import validate_config

    merged: dict[str, Any] = {
        k: dict(v) if isinstance(v, dict) else v for k, v in (data or {}).items()
    }
    control = dict(merged.get("control", {}))
    control["own"] = {**CLASSIC_OWN, **control.get("own", {})}
    merged["control"] = control
    return validate_config(merged)
