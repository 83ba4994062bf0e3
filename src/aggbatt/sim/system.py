"""A simulated Venus system: localsettings, N serialbattery packs, a Multi and an MPPT.

The bank current is set by a simple day: the MPPT charges, the Multi discharges into a load, and
the net current is shared between the packs by capacity, so each pack's cells follow it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from aggbatt.sim.battery import SimSerialBattery
from aggbatt.sim.localsettings import FakeLocalSettings
from aggbatt.sim.victron import SimSolarCharger, SimVebus

DEFAULT_SETTINGS = {
    "/Settings/CGwacs/OvervoltageFeedIn": 1,
    "/Settings/SystemSetup/BatteryService": "default",
    "/Settings/SystemSetup/BmsInstance": -1,
    "/Settings/Services/Bol": 1,
}


@dataclass
class SystemSpec:
    batteries: int = 2
    cells: int = 16
    capacity_ah: float = 280.0
    start_soc: float = 0.85
    charge_a: float = 120.0
    """Peak MPPT current of the simulated day."""
    load_a: float = 40.0
    """Constant current the Multi draws from the bank for the house load."""
    day_s: float = 1200.0
    """Length of one simulated day (solar sine) in seconds."""


class SimulatedSystem:
    def __init__(self, spec: SystemSpec | None = None) -> None:
        self.spec = spec or SystemSpec()
        s = self.spec
        self.settings: FakeLocalSettings | None = None
        self.batteries = [
            SimSerialBattery(
                f"ttyUSB{i}",
                device_instance=i + 1,
                cells=s.cells,
                capacity_ah=s.capacity_ah,
                soc=s.start_soc - 0.02 * i,
                custom_name="" if i % 2 else f"Pack {i + 1}",
            )
            for i in range(s.batteries)
        ]
        self.vebus = SimVebus()
        self.mppt = SimSolarCharger()
        self.elapsed = 0.0

    async def start(self, bus_choice: str | None = None) -> None:
        self.settings = await FakeLocalSettings.start(bus_choice, DEFAULT_SETTINGS)
        for device in (*self.batteries, self.vebus, self.mppt):
            await device.start(bus_choice)

    def solar_current(self) -> float:
        phase = (self.elapsed % self.spec.day_s) / self.spec.day_s
        return max(0.0, math.sin(phase * 2 * math.pi)) * self.spec.charge_a

    def bank_voltage(self) -> float:
        online = [b for b in self.batteries if b.service is not None] or self.batteries
        return sum(sum(b.pack.cell_voltages()) for b in online) / len(online)

    def step(self, dt_s: float, charge_limit_a: float = math.inf) -> None:
        """Advance by ``dt_s`` seconds and publish every device's new values.

        ``charge_limit_a`` caps the net charge current into the bank, as DVCC caps the chargers.
        """
        self.elapsed += dt_s
        solar = min(self.solar_current(), max(0.0, charge_limit_a) + self.spec.load_a)
        voltage = self.bank_voltage()
        self.mppt.set(solar, voltage)
        self.vebus.set(-self.spec.load_a, voltage)
        wired = self.batteries  # a pack whose BMS link is lost is still wired in
        total = sum(b.pack.capacity_ah for b in wired) or 1.0
        bank = solar - self.spec.load_a
        for battery in wired:
            battery.current_a = bank * battery.pack.capacity_ah / total
            battery.step(dt_s)

    async def stop(self) -> None:
        for device in (*self.batteries, self.vebus, self.mppt):
            await device.stop()
        if self.settings is not None:
            await self.settings.close()
