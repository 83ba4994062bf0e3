"""A simulated dbus-serialbattery service on D-Bus: the double of :mod:`aggbatt.sim.serialbattery`
with its cells, published as the released driver publishes it.

It registers as ``setup_vedbus`` does (every path, ``/State 0``, both flags 0, voltage,
current and SoC None), then each poll of the driver publishes what changed, path by path (one
PropertiesChanged each, as velib sends for ``service[path] = v``); no path is ever added or
removed. A driver that exits leaves the bus, and daemontools' restart brings it back 16 s later
if its BMS answers. Faults: a cell offset (a peaking or sagging cell), a FET forced open
(``block_charge``), the BMS link lost (``link_up``), a value forced onto any path (None, NaN, a
string ...), and the process killed (:meth:`stop`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from aggbatt.sim.bank.cells import Cell, Pack
from aggbatt.sim.device import SimDevice
from aggbatt.sim.serialbattery import (
    PRODUCT_ID,
    Board,
    BoardSettings,
    DriverConfig,
    SerialBatteryPack,
)
from aggbatt.venus.service import VeService
from aggbatt.venus.wire import Value


def even_pack(
    name: str,
    cells: int = 16,
    capacity_ah: float = 280.0,
    soc: float = 0.6,
    temperature_c: float = 22.0,
) -> Pack:
    """A pack of equal cells with a small, fixed imbalance (+-0.5 % SoC, the last cell the
    fullest), so the same cell peaks first in every run."""
    n = cells
    spread = [0.01 * ((i * 7) % n - n / 2) / n for i in range(n)]
    spread[-1] = 0.012
    made = [
        Cell(capacity_ah, min(max(soc + d, 0.0), 1.0), r_ohm=0.0004, self_discharge_per_day=0.0)
        for d in spread
    ]
    return Pack(name, made, wiring_ohm=0.0, temperature_c=temperature_c)


class SimSerialBattery(SimDevice):
    """``com.victronenergy.battery.<port>`` as dbus-serialbattery publishes it."""

    product_id = PRODUCT_ID

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
        bms: str = "Jkbms",
        temperature_c: float = 22.0,
        per_path: bool = True,
        config: DriverConfig | None = None,
        board: BoardSettings | None = None,
    ) -> None:
        super().__init__(f"com.victronenergy.battery.{port}", device_instance, per_path=per_path)
        if serial is None and bms == "Jkbms":
            serial = f"SIM{device_instance:04d}{port.upper()}"  # a JK's own serial: unique
        self.sbp = SerialBatteryPack(
            even_pack(port, cells, capacity_ah, soc, temperature_c),
            Board(board or BoardSettings()),
            config or DriverConfig(),
            port=port,
            instance=device_instance,
            bms=bms,
            serial=serial,
        )
        assert self.sbp.driver is not None
        self.product_name = self.sbp.driver.product_name
        self.custom_name = self.sbp.custom_name = custom_name
        self.connection = f"Serial /dev/{port}"
        self.now = 0.0
        """The double's clock: seconds advanced by :meth:`step`."""
        self._bus_choice: str | None = None
        self._moving: asyncio.Task[None] | None = None

    # --- the pack, its board and its driver ----------------------------------------------------

    @property
    def pack(self) -> Pack:
        return self.sbp.pack

    @property
    def current_a(self) -> float:
        return self.pack.current_a

    @current_a.setter
    def current_a(self, value: float) -> None:
        self.pack.current_a = value

    @property
    def temperature_c(self) -> float:
        return self.pack.temperature_c

    @temperature_c.setter
    def temperature_c(self, value: float) -> None:
        self.pack.temperature_c = value

    @property
    def block_charge(self) -> bool:
        return self.sbp.board.charge_off

    @block_charge.setter
    def block_charge(self, value: bool) -> None:
        self.sbp.board.charge_off = value

    @property
    def block_discharge(self) -> bool:
        return self.sbp.board.discharge_off

    @block_discharge.setter
    def block_discharge(self, value: bool) -> None:
        self.sbp.board.discharge_off = value

    @property
    def link_up(self) -> bool:
        return self.sbp.board.link_up

    @link_up.setter
    def link_up(self, value: bool) -> None:
        self.sbp.board.link_up = value

    @property
    def forced(self) -> dict[str, Any]:
        return self.sbp.forced

    def cell_voltages(self) -> list[float]:
        """What the board measures now, C1 first."""
        return [round(v, 3) for v in self.pack.cell_voltages()]

    # --- on the bus -----------------------------------------------------------------------------

    def mandatory_paths(self) -> dict[str, Value]:
        return {}

    def initial_paths(self) -> dict[str, Value]:
        return self.sbp.values(self.now) or {}

    def writable_paths(self) -> frozenset[str]:
        return frozenset({"/CustomName"})

    async def start(self, bus_choice: str | None = None, *, poll: bool = True) -> VeService:
        """Register as setup_vedbus does; ``poll``: run the first poll at once (the driver
        polls one interval after registering, which tests would otherwise wait out)."""
        self._bus_choice = bus_choice
        if self.sbp.driver is None:
            self.sbp.driver = self.sbp.new_driver(self.now)
        service = await super().start(bus_choice)
        if poll:
            self.sbp.first_poll(self.now)
            self.republish()
        return service

    def step(self, dt_s: float) -> int:
        """Advance the cells and the clock by ``dt_s``; the driver polls when it is due.
        Returns how many paths changed on the bus."""
        self.now += dt_s
        self.pack.step(dt_s)
        return self._advance()

    def poll(self) -> int:
        """One poll of the driver now (the board's new state published at once)."""
        self.sbp.first_poll(self.now)
        return self._after_poll()

    def _advance(self) -> int:
        self.sbp.step(self.now)
        return self._after_poll()

    def _after_poll(self) -> int:
        running = self.sbp.driver is not None
        if self.service is not None and not running:  # the driver exited: it leaves the bus
            self._moving = asyncio.ensure_future(self._leave())
            return 0
        if self.service is None and running and self._moving is None:
            self._moving = asyncio.ensure_future(self._return())
            return 0
        return self.republish()

    async def _leave(self) -> None:
        await SimDevice.stop(self)
        self._moving = None

    async def _return(self) -> None:
        await SimDevice.start(self, self._bus_choice)
        self._moving = None

    async def settled(self) -> None:
        """Wait until an exit or a restart started by :meth:`step` is done on the bus."""
        while self._moving is not None:
            await asyncio.shield(self._moving)

    def republish(self) -> int:
        """Publish what the driver holds now (forced values included), what changed."""
        values = self.sbp.values(self.now)
        return self.update(values) if values is not None else 0

    async def stop(self) -> None:
        """The driver's process killed: it leaves the bus at once, invalidating nothing."""
        await self.settled()
        await super().stop()

    def set_cell_offset(self, cell: int, volts: float) -> int:
        """Push cell ``cell`` (1-based) up or down by ``volts``; the driver polls at once."""
        if not self.pack.offset_v:
            self.pack.offset_v = [0.0] * len(self.pack.cells)
        self.pack.offset_v[cell - 1] = volts
        return self.poll()

    def force(self, path: str, value: Any) -> int:
        """Publish a (possibly invalid) value on a path until :meth:`unforce`."""
        self.forced[path] = value
        return self.update({path: value}) if self.service and path in self.service else 0

    def unforce(self, path: str | None = None) -> int:
        if path is None:
            self.forced.clear()
        else:
            self.forced.pop(path, None)
        return self.republish()
