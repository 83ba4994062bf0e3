"""A simulated dbus-serialbattery battery: every path serialbattery publishes, live cell voltages.

The cell model is small but physical enough for the demo and the end-to-end tests: each cell
has its own state of charge (an imbalance), an LFP open-circuit curve, and an internal
resistance, so cell voltages rise with charge current and the top cell peaks first near full.
Faults can be injected: a cell offset (a peaking or sagging cell), BMS charge/discharge blocks,
a value forced onto any path (None, NaN, a string ...), and leaving the bus.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from aggbatt.sim.device import SimDevice
from aggbatt.venus.wire import Value

# LFP open-circuit voltage per cell over state of charge (0..1).
LFP_OCV: tuple[tuple[float, float], ...] = (
    (0.00, 2.80), (0.05, 3.10), (0.10, 3.20), (0.20, 3.25), (0.40, 3.28), (0.60, 3.30),
    (0.80, 3.32), (0.90, 3.34), (0.95, 3.36), (0.98, 3.40), (1.00, 3.55),
)  # fmt: skip
_OCV_SOC = [p[0] for p in LFP_OCV]

ALARM_PATHS = (
    "LowVoltage", "HighVoltage", "LowCellVoltage", "HighCellVoltage", "LowSoc",
    "HighChargeCurrent", "HighDischargeCurrent", "HighCurrent", "CellImbalance",
    "HighChargeTemperature", "LowChargeTemperature", "HighTemperature", "LowTemperature",
    "HighInternalTemperature", "FuseBlown", "BmsCable",
)  # fmt: skip


def lfp_ocv(soc: float) -> float:
    """Open-circuit cell voltage at a state of charge, linear between the table's points."""
    soc = min(max(soc, 0.0), 1.0)
    i = bisect.bisect_right(_OCV_SOC, soc)
    if i >= len(LFP_OCV):
        return LFP_OCV[-1][1]
    (s0, v0), (s1, v1) = LFP_OCV[i - 1], LFP_OCV[i]
    return v0 + (v1 - v0) * (soc - s0) / (s1 - s0)


@dataclass
class CellModel:
    """Cells of one battery: per-cell SoC around the battery's, plus injected offsets."""

    cells: int = 16
    capacity_ah: float = 280.0
    soc: float = 0.6
    resistance_ohm: float = 0.0004
    imbalance: list[float] = field(default_factory=list)
    offset_v: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.imbalance:
            # a deterministic spread of +-1 % SoC, the last cell highest
            n = self.cells
            self.imbalance = [0.01 * ((i * 7) % n - n / 2) / n for i in range(n)]
            self.imbalance[-1] = 0.012
        if not self.offset_v:
            self.offset_v = [0.0] * self.cells

    def step(self, current_a: float, dt_s: float) -> None:
        self.soc = min(max(self.soc + current_a * dt_s / 3600.0 / self.capacity_ah, 0.0), 1.0)

    def voltages(self, current_a: float) -> list[float]:
        drop = current_a * self.resistance_ohm
        return [
            round(lfp_ocv(self.soc + self.imbalance[i]) + drop + self.offset_v[i], 3)
            for i in range(self.cells)
        ]


class SimSerialBattery(SimDevice):
    """``com.victronenergy.battery.ttyUSBn`` as published by dbus-serialbattery."""

    product_id = 0xBA77
    connection = "Serial /dev/ttyUSB0"

    def __init__(
        self,
        port: str = "ttyUSB0",
        device_instance: int = 1,
        *,
        cells: int = 16,
        capacity_ah: float = 280.0,
        soc: float = 0.6,
        serial: str | None = None,
        custom_name: str = "",
        bms: str = "JKBMS",
        temperature_c: float = 22.0,
        per_path: bool = True,
    ) -> None:
        super().__init__(f"com.victronenergy.battery.{port}", device_instance, per_path=per_path)
        self.product_name = f"SerialBattery({bms})"
        self.connection = f"Serial /dev/{port}"
        self.model = CellModel(cells=cells, capacity_ah=capacity_ah, soc=soc)
        self.serial = serial or f"SIM{device_instance:04d}{port.upper()}"
        self.custom_name = custom_name
        self.temperature_c = temperature_c
        self.current_a = 0.0
        self.block_charge = False
        self.block_discharge = False
        self.forced: dict[str, Any] = {}
        """Values that override the model on the next updates (fault injection)."""

    # --- what serialbattery publishes ------------------------------------------------------

    def initial_paths(self) -> dict[str, Value]:
        paths: dict[str, Value] = {
            "/CustomName": self.custom_name,
            "/Serial": self.serial,
            "/State": 9,
            "/Mode": 3,
            "/ErrorCode": 0,
            "/Soh": 100.0,
            "/InstalledCapacity": self.model.capacity_ah,
            "/History/ChargeCycles": 12,
            "/History/MinimumVoltage": None,
            "/History/MaximumVoltage": None,
            "/Info/BatteryLowVoltage": round(2.9 * self.model.cells, 2),
            "/Info/MaxChargeCellVoltage": 3.45,
            "/Info/ChargeMode": "Bulk",
            "/Info/ChargeModeDebug": "",
            "/Info/ChargeLimitation": "",
            "/Info/DischargeLimitation": "",
            "/Info/ChargeRequest": 0,
            "/System/NrOfCellsPerBattery": self.model.cells,
            "/System/NrOfModulesOnline": 1,
            "/System/NrOfModulesOffline": 0,
            "/System/MOSTemperature": self.temperature_c + 3,
            "/System/Temperature1": self.temperature_c,
            "/System/Temperature2": self.temperature_c + 0.5,
            "/Io/ForceChargingOff": 0,
            "/Io/ForceDischargingOff": 0,
            "/Io/TurnBalancingOff": 0,
            "/TimeToSoC/100": None,
        }
        paths.update({f"/Alarms/{name}": 0 for name in ALARM_PATHS})
        paths.update({f"/Balances/Cell{i + 1}": 0 for i in range(self.model.cells)})
        paths.update(self.live_values())
        return paths

    def live_values(self) -> dict[str, Value]:
        """Every value that changes with the cells, as serialbattery computes it each poll."""
        model = self.model
        cells = model.voltages(self.current_a)
        vsum = round(sum(cells), 3)
        vmin, vmax = min(cells), max(cells)
        soc = round(model.soc * 100.0, 1)
        remaining = round(model.capacity_ah * model.soc, 2)
        temp = self.temperature_c
        values: dict[str, Value] = {
            "/Dc/0/Voltage": round(vsum, 2),
            "/Dc/0/Current": round(self.current_a, 2),
            "/Dc/0/Power": round(vsum * self.current_a, 1),
            "/Dc/0/Temperature": temp,
            "/Soc": soc,
            "/Capacity": remaining,
            "/ConsumedAmphours": round(remaining - model.capacity_ah, 2),
            "/TimeToGo": (
                round(remaining / -self.current_a * 3600) if self.current_a < -0.5 else None
            ),
            "/Voltages/Sum": vsum,
            "/Voltages/Diff": round(vmax - vmin, 3),
            "/System/MinCellVoltage": vmin,
            "/System/MaxCellVoltage": vmax,
            "/System/MinVoltageCellId": f"C{cells.index(vmin) + 1}",
            "/System/MaxVoltageCellId": f"C{cells.index(vmax) + 1}",
            "/System/MinCellTemperature": temp,
            "/System/MaxCellTemperature": temp + 0.5,
            "/System/MinTemperatureCellId": "T1",
            "/System/MaxTemperatureCellId": "T2",
            "/System/NrOfModulesBlockingCharge": int(self.block_charge),
            "/System/NrOfModulesBlockingDischarge": int(self.block_discharge),
            "/Io/AllowToCharge": int(not self.block_charge),
            "/Io/AllowToDischarge": int(not self.block_discharge),
            "/Io/AllowToBalance": 1,
            "/Balancing": 0,
            "/Info/MaxChargeVoltage": round(3.45 * model.cells, 2),
            "/Info/MaxChargeCurrent": 0.0 if self.block_charge else 100.0,
            "/Info/MaxDischargeCurrent": 0.0 if self.block_discharge else 150.0,
            "/Alarms/HighCellVoltage": 2 if vmax >= 3.65 else (1 if vmax >= 3.6 else 0),
            "/Alarms/LowCellVoltage": 2 if vmin <= 2.8 else (1 if vmin <= 2.9 else 0),
        }
        for i, v in enumerate(cells):
            values[f"/Voltages/Cell{i + 1}"] = v
        values.update(self.forced)
        return values

    # --- driving it -------------------------------------------------------------------------

    def step(self, dt_s: float) -> int:
        """Advance the cells by ``dt_s`` at the present current and publish what changed."""
        self.model.step(self.current_a, dt_s)
        return self.update(self.live_values())

    def set_cell_offset(self, cell: int, volts: float) -> int:
        """Push cell ``cell`` (1-based) up or down by ``volts`` and publish at once."""
        self.model.offset_v[cell - 1] = volts
        return self.update(self.live_values())

    def force(self, path: str, value: Any) -> int:
        """Publish a (possibly invalid) value on a path until :meth:`unforce`."""
        self.forced[path] = value
        assert self.service is not None
        return self.update({path: value}) if path in self.service else 0

    def unforce(self, path: str | None = None) -> int:
        if path is None:
            self.forced.clear()
        else:
            self.forced.pop(path, None)
        return self.update(self.live_values())
