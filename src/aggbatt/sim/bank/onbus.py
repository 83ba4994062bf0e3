"""The second mode: the real daemon on a private bus in the loop, so the shell is tested too.

:class:`BusController` is a controller like the others for :func:`aggbatt.sim.bank.run.run`:
each decision publishes the BMSes' values as serialbattery services on a private dbus-daemon,
lets the real :class:`aggbatt.daemon.Daemon` (on a clock the simulation sets) run a cycle, and
reads back what Venus reads: our service's values (GetItems) and the feed-in setting in a fake
localsettings. A restart stops the daemon and starts a new one on the same state folder. The
bus runs in a thread of its own, so the simulation loop stays the same plain loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import threading
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any, TypeVar

from aggbatt.config import Config
from aggbatt.daemon import Daemon
from aggbatt.feedin import FEED_IN_PATH
from aggbatt.sim.bank.controllers import Decision, Snapshots
from aggbatt.sim.bank.venus import Limits
from aggbatt.sim.device import SimDevice
from aggbatt.sim.localsettings import FakeLocalSettings
from aggbatt.sim.privatebus import PrivateBus
from aggbatt.venus import bus as busmod
from aggbatt.venus.wire import Value, unwrap

T = TypeVar("T")


class PackDevice(SimDevice):
    """A simulated pack's serialbattery service: it registers every path its driver holds
    (the double's, :mod:`aggbatt.sim.serialbattery`, identity paths included) and then
    publishes what changed, path by path, as velib does for the driver; no path is ever added
    or removed."""

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        instance = values.get("/DeviceInstance")
        super().__init__(name, instance if isinstance(instance, int) else 1, per_path=True)
        self.values = dict(values)

    def mandatory_paths(self) -> dict[str, Value]:
        return {}

    def initial_paths(self) -> dict[str, Value]:
        return dict(self.values)

    def push(self, values: Mapping[str, Any]) -> None:
        assert self.service is not None
        service = self.service
        self.update({p: v for p, v in values.items() if p in service})


class BusController:
    name = "aggbatt (bus)"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.now = (0.0, 0.0)
        self._state = Path(tempfile.mkdtemp(prefix="aggbatt-sim-state-"))
        self._bus = PrivateBus()
        self._bus.start()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._devices: dict[str, PackDevice] = {}
        self.daemon: Daemon | None = None
        self._settings: FakeLocalSettings | None = None
        self._raw: Any = None
        self._call(self._open())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=60)

    async def _open(self) -> None:
        address = self._bus.address
        self._settings = await FakeLocalSettings.start(address, {FEED_IN_PATH: 1})
        self._raw = await busmod.connect(address)

    def decide(
        self, snapshots: Snapshots, now_mono: float, now_wall: float, month: int
    ) -> Decision:
        self.now = (now_mono, now_wall)
        return self._call(self._decide(snapshots))

    async def _decide(self, snapshots: Snapshots) -> Decision:
        address = self._bus.address
        for key, values in snapshots.items():
            device = self._devices.get(key)
            if device is None:
                device = PackDevice(key, values)
                await device.start(address)
                self._devices[key] = device
            else:
                device.push(values)
        for key in set(self._devices) - set(snapshots):
            await self._devices.pop(key).stop()
        await asyncio.sleep(0.005)  # the signals reach the daemon's monitor
        if self.daemon is None:
            self.daemon = Daemon(
                self.config, self._state, address,
                wall_clock=lambda: self.now[1], mono_clock=lambda: self.now[0],
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):  # rule 13: it waits for a first pack
                await asyncio.wait_for(self.daemon.start(), 5.0)
        self.daemon.cycle()
        await asyncio.sleep(0.005)  # the feed-in keeper writes
        items = await self._items()
        assert self._settings is not None
        feed_in_off = self._settings[FEED_IN_PATH] == 0
        if items is None:  # not (yet) on the bus: for DVCC, no BMS
            return Decision(Limits(0.0, 0.0, 0.0, present=False), feed_in_off, None, "absent")
        return Decision(
            Limits(
                cvl=float(items["/Info/MaxChargeVoltage"]),
                ccl=float(items["/Info/MaxChargeCurrent"]),
                dcl=float(items["/Info/MaxDischargeCurrent"]),
                allow_charge=items.get("/Io/AllowToCharge") == 1,
                allow_discharge=items.get("/Io/AllowToDischarge") == 1,
            ),
            feed_in_off=feed_in_off,
            soc=items.get("/Soc"),
            reason=str(items.get("/Info/ChargeLimitation")),
        )

    async def _items(self) -> dict[str, Any] | None:
        try:
            body = await busmod.call(self._raw, self.config.service.name, "/", "GetItems")
        except busmod.BusCallError:
            return None
        return {p: unwrap(e["Value"]) for p, e in body[0].items()}

    def restart(self) -> None:
        self._call(self._stop_daemon())

    async def _stop_daemon(self) -> None:
        if self.daemon is not None:
            self.daemon.stop()
            await self.daemon.close()
            self.daemon = None

    def close(self) -> None:
        async def shut() -> None:
            await self._stop_daemon()
            for device in self._devices.values():
                await device.stop()
            if self._settings is not None:
                await self._settings.close()
            if self._raw is not None:
                self._raw.disconnect()

        with contextlib.suppress(Exception):
            self._call(shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._bus.stop()
