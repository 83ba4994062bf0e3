"""Each pack's BMS as dbus-serialbattery runs it: its own limits, its flags, its hard cut-offs.

The BMS publishes what serialbattery publishes (the paths aggbatt's core reads), computes its
own CVL, CCL (serialbattery's cell-voltage and temperature curves) and DCL, and *disconnects*
the pack at its hard cut-offs, reconnecting with hysteresis: over-voltage opens the charge FET,
under-voltage the discharge FET, cold opens the charge FET. Faults are injected as values
forced onto paths (a dead sensor publishes None).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aggbatt.core.curve import interpolate
from aggbatt.sim.bank.cells import Pack


@dataclass(frozen=True)
class BmsSettings:
    cell_over_v: float = 3.65
    """Hard cut-off: the charge FET opens at or above this cell voltage."""
    cell_over_release_v: float = 3.40
    cell_under_v: float = 2.50
    cell_under_release_v: float = 2.90
    charge_cold_c: float = -10.0
    """The hardware's own low-temperature charge cut-off (a lax one, as often set)."""
    max_cell_v: float = 3.45
    """serialbattery's MAX_CELL_VOLTAGE: its CVL is this x cells."""
    max_charge_a: float = 150.0
    max_discharge_a: float = 200.0
    charge_curve: tuple[tuple[float, ...], tuple[float, ...]] = (
        (3.375, 3.40, 3.425, 3.45, 3.50),
        (1.0, 0.25, 0.05, 0.005, 0.0),
    )
    """serialbattery's CCL factor over the highest cell voltage."""


LTO_BMS = BmsSettings(
    cell_over_v=2.80, cell_over_release_v=2.55, cell_under_v=1.70, cell_under_release_v=1.95,
    charge_cold_c=-30.0, max_cell_v=2.55,
    charge_curve=((2.45, 2.50, 2.55, 2.60), (1.0, 0.25, 0.05, 0.0)),
)  # fmt: skip

REMOVED = object()
"""Forced onto a path: the path is not published at all."""

_TEMPS = (0.0, 2.0, 5.0, 10.0, 40.0, 45.0, 50.0, 55.0)
_TEMP_FACTORS = (0.0, 0.1, 0.3, 1.0, 1.0, 0.5, 0.2, 0.0)


@dataclass
class SimBms:
    pack: Pack
    settings: BmsSettings = BmsSettings()
    forced: dict[str, Any] = field(default_factory=dict)
    """Values forced onto paths (fault injection), over the computed ones."""
    on_bus: bool = True
    disconnects: int = 0
    _tick: int = 0

    def update(self) -> None:
        """Open or close the FETs at the hard cut-offs, with hysteresis."""
        s, p = self.settings, self.pack
        cells = p.cell_voltages()
        hi, lo = max(cells), min(cells)
        charge_ok, discharge_ok = p.charge_fet, p.discharge_fet
        if hi >= s.cell_over_v or p.temperature_c <= s.charge_cold_c:
            charge_ok = False
        elif hi < s.cell_over_release_v and p.temperature_c > s.charge_cold_c + 2.0:
            charge_ok = True
        if lo <= s.cell_under_v:
            discharge_ok = False
        elif lo > s.cell_under_release_v:
            discharge_ok = True
        opened = (p.charge_fet and not charge_ok) + (p.discharge_fet and not discharge_ok)
        self.disconnects += opened
        p.charge_fet, p.discharge_fet = charge_ok, discharge_ok

    def ccl(self) -> float:
        s, p = self.settings, self.pack
        if not p.charge_fet:
            return 0.0
        factor = min(
            interpolate(max(p.cell_voltages()), *s.charge_curve),
            interpolate(p.temperature_c, _TEMPS, _TEMP_FACTORS) if p.chemistry == "LFP" else 1.0,
        )
        return round(s.max_charge_a * factor, 1)

    def dcl(self) -> float:
        return self.settings.max_discharge_a if self.pack.discharge_fet else 0.0

    def values(self) -> dict[str, Any]:
        """What the pack's serialbattery service holds on D-Bus now."""
        p, s = self.pack, self.settings
        cells = [round(v, 3) for v in p.cell_voltages()]
        volts = round(sum(cells), 2)
        soc = round(100.0 * p.true_soc(), 1)
        ccl = self.ccl()
        self._tick += 1
        noise = 0.01 if self._tick % 2 else -0.01  # a real BMS's current reading is never still
        values: dict[str, Any] = {
            "/Dc/0/Voltage": volts,
            "/Dc/0/Current": round(p.current_a + noise, 2),
            "/Dc/0/Power": round(volts * p.current_a, 1),
            "/Dc/0/Temperature": round(p.temperature_c, 1),
            "/Soc": soc,
            "/InstalledCapacity": round(p.capacity_ah, 1),
            "/Capacity": round(p.capacity_ah * soc / 100.0, 2),
            "/System/NrOfCellsPerBattery": len(cells),
            "/System/MinCellVoltage": min(cells),
            "/System/MaxCellVoltage": max(cells),
            "/System/MinVoltageCellId": f"C{cells.index(min(cells)) + 1}",
            "/System/MaxVoltageCellId": f"C{cells.index(max(cells)) + 1}",
            "/Info/MaxChargeVoltage": round(s.max_cell_v * len(cells), 2),
            "/Info/MaxChargeCurrent": ccl,
            "/Info/MaxDischargeCurrent": self.dcl(),
            "/Io/AllowToCharge": int(p.charge_fet and ccl > 0),
            "/Io/AllowToDischarge": int(p.discharge_fet),
            "/System/NrOfModulesBlockingCharge": int(not p.charge_fet),
            "/System/NrOfModulesBlockingDischarge": int(not p.discharge_fet),
            "/Info/ChargeMode": "Bulk",
            "/State": 9,
        }
        for i, v in enumerate(cells):
            values[f"/Voltages/Cell{i + 1}"] = v
        for path, value in self.forced.items():
            if value is REMOVED:
                values.pop(path, None)
            else:
                values[path] = value
        return values
