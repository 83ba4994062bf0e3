"""Base of the simulated Venus devices: a VeService with the mandatory paths, on its own bus."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aggbatt import __version__
from aggbatt.venus import bus as busmod
from aggbatt.venus.service import VeService
from aggbatt.venus.wire import Value


class SimDevice:
    """One simulated device publishing one service, as its real driver would.

    Subclasses fill :meth:`initial_paths`. :meth:`update` publishes as the driver does: a
    batch as a ``with service as s:`` block would (one ItemsChanged with the changed paths), or,
    with ``per_path``, each changed path as its own PropertiesChanged, as velib sends it for
    ``service[path] = v`` (dbus-serialbattery publishes so: ``publish_dbus`` sets path by path).
    """

    product_name = "Simulated device"
    product_id = 0
    connection = "simulated"

    def __init__(self, name: str, device_instance: int, *, per_path: bool = False) -> None:
        self.name = name
        self.device_instance = device_instance
        self.per_path = per_path
        self.service: VeService | None = None

    def mandatory_paths(self) -> dict[str, Value]:
        return {
            "/Mgmt/ProcessName": f"aggbatt-sim {type(self).__name__}",
            "/Mgmt/ProcessVersion": __version__,
            "/Mgmt/Connection": self.connection,
            "/DeviceInstance": self.device_instance,
            "/ProductId": self.product_id,
            "/ProductName": self.product_name,
            "/FirmwareVersion": None,
            "/HardwareVersion": None,
            "/Connected": 1,
        }

    def initial_paths(self) -> dict[str, Value]:
        return {}

    def writable_paths(self) -> frozenset[str]:
        return frozenset({"/CustomName"})

    async def start(self, bus_choice: str | None = None) -> VeService:
        """Connect, add every path, then claim the name (velib's register-last order)."""
        service = VeService(await busmod.connect(bus_choice), self.name)
        writable = self.writable_paths()
        for path, value in {**self.mandatory_paths(), **self.initial_paths()}.items():
            service.add_path(path, value, writable=path in writable)
        await service.register()
        self.service = service
        return service

    def update(self, values: Mapping[str, Value]) -> int:
        if self.service is None:
            return 0
        return self.service.publish(values, per_path=self.per_path)

    async def stop(self) -> None:
        """Leave the bus without invalidating anything, as a crashing driver does."""
        if self.service is not None:
            await self.service.close()
            self.service = None

    def __getitem__(self, path: str) -> Any:
        assert self.service is not None
        return self.service[path]
