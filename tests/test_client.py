"""The live monitor on a real dbus-daemon: discovery, scan, signals, leaving and returning."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from dbus_fast import Message, MessageFlag, MessageType, Variant

from aggbatt.core.selection import service_class
from aggbatt.venus import bus as busmod
from aggbatt.venus.bus import BUSITEM
from aggbatt.venus.client import Monitor, MonitorListener, RemoteService
from aggbatt.venus.service import Item, VeService
from aggbatt.venus.wire import Value
from tests.conftest import wait_until


class Recorder(MonitorListener):
    def __init__(self) -> None:
        self.added: list[str] = []
        self.removed: list[str] = []
        self.changes: list[tuple[str, dict[str, Value]]] = []

    def service_added(self, service: RemoteService) -> None:
        self.added.append(service.name)

    def service_removed(self, service: RemoteService) -> None:
        self.removed.append(service.name)

    def values_changed(self, service: RemoteService, changes: dict[str, Value]) -> None:
        self.changes.append((service.name, changes))


async def make_service(address: str, name: str, values: dict[str, Value]) -> VeService:
    svc = await VeService.connect(name, address)
    for path, value in values.items():
        svc.add_path(path, value)
    await svc.register()
    return svc


@pytest.fixture
async def monitor(bus_address: str) -> AsyncIterator[tuple[Monitor, Recorder]]:
    rec = Recorder()
    mon = await Monitor.connect(bus_address, listener=rec, classify=service_class)
    yield mon, rec
    await mon.close()


BATT = "com.victronenergy.battery.ttyUSB0"


async def test_discovers_existing_and_later_services(
    bus_address: str, monitor: tuple[Monitor, Recorder]
) -> None:
    mon, rec = monitor
    first = await make_service(bus_address, BATT, {"/DeviceInstance": 1, "/Soc": 50.0})
    await mon.start()
    assert rec.added == [BATT]
    assert mon.services[BATT].values == {"/DeviceInstance": 1, "/Soc": 50.0}
    assert mon.services[BATT].owner == first.bus.unique_name
    later = await make_service(
        bus_address, "com.victronenergy.vebus.ttyS4", {"/DeviceInstance": 276, "/Connected": 1}
    )
    await wait_until(lambda: "com.victronenergy.vebus.ttyS4" in mon.services)
    assert mon.services["com.victronenergy.vebus.ttyS4"].device_instance == 276
    assert [s.name for s in mon.of_class("vebus")] == ["com.victronenergy.vebus.ttyS4"]
    await first.close()
    await later.close()


async def test_signals_update_the_snapshot_and_the_listener(
    bus_address: str, monitor: tuple[Monitor, Recorder]
) -> None:
    mon, rec = monitor
    svc = await make_service(bus_address, BATT, {"/DeviceInstance": 1, "/Soc": 50.0, "/Io/A": 1})
    await mon.start()
    before = mon.services[BATT].changed_at["/Soc"]
    svc.publish({"/Soc": 51.0, "/Io/A": 1})
    svc["/Io/A"] = None
    await wait_until(lambda: mon.services[BATT].values["/Io/A"] is None)
    remote = mon.services[BATT]
    assert remote.values["/Soc"] == 51.0
    assert remote.changed_at["/Soc"] > before
    assert rec.changes == [(BATT, {"/Soc": 51.0}), (BATT, {"/Io/A": None})]
    await svc.close()


async def test_items_changed_without_text_is_accepted(
    bus_address: str, monitor: tuple[Monitor, Recorder]
) -> None:
    mon, _ = monitor
    svc = await make_service(bus_address, BATT, {"/DeviceInstance": 1, "/Soc": 50.0})
    await mon.start()
    svc.bus.send(
        Message(
            message_type=MessageType.SIGNAL,
            path="/",
            interface=BUSITEM,
            member="ItemsChanged",
            signature="a{sa{sv}}",
            body=[{"/Soc": {"Value": Variant("d", 42.0)}, "/Bad": {}}],
            flags=MessageFlag.NO_REPLY_EXPECTED,
        )
    )
    await wait_until(lambda: mon.services[BATT].values["/Soc"] == 42.0)
    assert "/Bad" not in mon.services[BATT].values
    await svc.close()


class RacingService(VeService):
    """Publishes a new value while a GetItems is in flight, then answers with the old one."""

    def _busitem_call(self, msg: Message) -> Message | None:
        if msg.member == "GetItems" and msg.path == "/":
            stale = {p: i.entry(p) for p, i in self._items.items()}
            self.publish({"/Soc": 99.0})
            return Message.new_method_return(msg, "a{sa{sv}}", [stale])
        return super()._busitem_call(msg)


async def test_value_signalled_during_the_scan_wins(
    bus_address: str, monitor: tuple[Monitor, Recorder]
) -> None:
    mon, rec = monitor
    svc = RacingService(await busmod.connect(bus_address), BATT)
    svc.add_path("/DeviceInstance", 1)
    svc.add_path("/Soc", 50.0)
    await svc.register()
    await mon.start()
    # the signal reached us only because the match rule was in place before the scan
    assert mon.services[BATT].values["/Soc"] == 99.0
    assert rec.changes == []  # the scan's own values are not reported as changes
    await svc.close()


class NoGetItems(VeService):
    """An old-style service: no GetItems (and optionally no root GetValue)."""

    root_get_value = True

    def _busitem_call(self, msg: Message) -> Message | None:
        if msg.member == "GetItems":
            return None
        if msg.path == "/" and not self.root_get_value:
            return None
        return super()._busitem_call(msg)


class NoRootAtAll(NoGetItems):
    root_get_value = False


@pytest.mark.parametrize("cls", [NoGetItems, NoRootAtAll])
async def test_legacy_scan_without_get_items(bus_address: str, cls: type[VeService]) -> None:
    svc = cls(await busmod.connect(bus_address), BATT)
    svc.add_path("/DeviceInstance", 3)
    svc.add_path("/Dc/0/Voltage", 52.0)
    svc.add_path("/Unlisted", 1)
    await svc.register()
    mon = await Monitor.connect(
        bus_address, fallback_paths={"battery": ["/Dc/0/Voltage"]}, classify=service_class
    )
    await mon.start()
    values = mon.services[BATT].values
    assert values["/DeviceInstance"] == 3
    assert values["/Dc/0/Voltage"] == 52.0
    assert ("/Unlisted" in values) is (cls is NoGetItems)
    await mon.close()
    await svc.close()


async def test_services_without_device_instance_or_ignored_are_not_tracked(
    bus_address: str, monitor: tuple[Monitor, Recorder]
) -> None:
    mon, rec = monitor
    mon.ignore("com.victronenergy.battery.aggbatt")
    own = await make_service(
        bus_address, "com.victronenergy.battery.aggbatt", {"/DeviceInstance": 9}
    )
    anon = await make_service(bus_address, "com.victronenergy.battery.anon", {"/Soc": 1.0})
    other = await make_service(bus_address, "org.example.other", {"/DeviceInstance": 1})
    await mon.start()
    assert mon.services == {}
    assert rec.added == []
    for svc in (own, anon, other):
        await svc.close()


async def test_leaving_and_returning_service(
    bus_address: str, monitor: tuple[Monitor, Recorder]
) -> None:
    mon, rec = monitor
    svc = await make_service(bus_address, BATT, {"/DeviceInstance": 1, "/Soc": 50.0})
    await mon.start()
    await svc.close()
    await wait_until(lambda: rec.removed == [BATT])
    assert BATT not in mon.services
    back = await make_service(bus_address, BATT, {"/DeviceInstance": 1, "/Soc": 20.0})
    await wait_until(lambda: BATT in mon.services)
    assert mon.services[BATT].values["/Soc"] == 20.0
    assert mon.services[BATT].owner == back.bus.unique_name
    assert rec.added == [BATT, BATT]
    # signals from the new owner are tracked, from the old one they cannot come any more
    back.publish({"/Soc": 21.0})
    await wait_until(lambda: mon.services[BATT].values["/Soc"] == 21.0)
    await back.close()


async def test_set_value_on_another_service(
    bus_address: str, monitor: tuple[Monitor, Recorder]
) -> None:
    mon, _ = monitor
    svc = await make_service(bus_address, BATT, {"/DeviceInstance": 1})
    svc.add_path("/Mode", 3, writable=True)
    await mon.start()
    assert await mon.set_value(BATT, "/Mode", 4) == 0
    assert svc["/Mode"] == 4
    assert await mon.set_value(BATT, "/DeviceInstance", 2) == 1
    assert await mon.set_value(BATT, "/Missing", 2) == -1
    await svc.close()


async def test_burst_ends_with_the_last_value_of_every_path(bus_address: str) -> None:
    """20 services x 300 paths, each changing 50 times back to back: nothing is lost."""
    services_n, paths_n, rounds = 20, 300, 50
    services: list[VeService] = []
    for s in range(services_n):
        svc = await VeService.connect(f"com.victronenergy.battery.burst{s}", bus_address)
        svc.add_path("/DeviceInstance", s)
        svc.add_paths({f"/Voltages/Cell{p}": 0.0 for p in range(paths_n)})
        await svc.register()
        services.append(svc)
    mon = await Monitor.connect(bus_address)
    await mon.start()
    assert len(mon.services) == services_n
    for r in range(1, rounds + 1):
        for s, svc in enumerate(services):
            svc.publish(
                {f"/Voltages/Cell{p}": float(r * 1000 + s + p / 1000) for p in range(paths_n)}
            )
        if r % 10 == 0:
            await asyncio.sleep(0)

    def complete() -> bool:
        return all(
            mon.services[svc.name].values[f"/Voltages/Cell{paths_n - 1}"]
            == float(rounds * 1000 + s + (paths_n - 1) / 1000)
            for s, svc in enumerate(services)
        )

    await wait_until(complete, timeout=60)
    for s, svc in enumerate(services):
        values = mon.services[svc.name].values
        for p in range(paths_n):
            assert values[f"/Voltages/Cell{p}"] == float(rounds * 1000 + s + p / 1000)
    await mon.close()
    for svc in services:
        await svc.close()


def test_item_entry_shape() -> None:
    entry = Item(1.5).entry("/x")
    assert entry == {"Value": Variant("d", 1.5), "Text": Variant("s", "1.5")}


async def test_a_superseded_scan_leaves_nothing_behind(
    bus_address: str, monitor: tuple[Monitor, Recorder]
) -> None:
    """A NameOwnerChanged for a service whose scan is still running replaces that scan."""
    mon, _ = monitor
    svc = await make_service(bus_address, BATT, {"/DeviceInstance": 1, "/Soc": 50.0})
    await mon.start()
    owner = svc.bus.unique_name
    assert owner is not None
    # two scans of the same owner at once, as start() and a late NameOwnerChanged can cause
    await asyncio.gather(mon._add(BATT, owner), mon._add(BATT, owner))
    assert len(mon._by_owner[owner]) == 1
    assert mon._by_owner[owner][0] is mon.services[BATT]
    await svc.close()
    await wait_until(lambda: BATT not in mon.services)
    assert owner not in mon._by_owner


async def test_namespaces_are_received_from_every_service_and_cells_only_when_watched(
    bus_address: str,
) -> None:
    """Rule 4's subscription: a handful of namespace rules for all packs, a watch per pack."""
    rec = Recorder()
    mon = await Monitor.connect(
        bus_address, listener=rec, signals=("/Dc", "/Soc"), in_full=lambda n: "vebus" in n
    )
    cells = {f"/Voltages/Cell{i}": 3.30 for i in range(1, 4)}
    pack = await make_service(
        bus_address, BATT, {"/DeviceInstance": 1, "/Soc": 50.0, "/Dc/0/Voltage": 9.9, **cells}
    )
    multi = await make_service(
        bus_address, "com.victronenergy.vebus.ttyS4", {"/DeviceInstance": 2, "/Ac/Out": 1.0}
    )
    try:
        await mon.start()
        snapshot = mon.services[BATT].values
        assert snapshot["/Voltages/Cell2"] == 3.30  # the scan reads everything
        pack["/Voltages/Cell2"] = 3.31  # a lone update: PropertiesChanged, as serialbattery's
        pack["/Soc"] = 51.0
        pack["/Dc/0/Voltage"] = 9.95
        multi["/Ac/Out"] = 2.0  # a service received in full
        await wait_until(lambda: snapshot["/Dc/0/Voltage"] == 9.95)
        await wait_until(
            lambda: mon.services["com.victronenergy.vebus.ttyS4"].values["/Ac/Out"] == 2.0
        )
        assert snapshot["/Soc"] == 51.0
        assert snapshot["/Voltages/Cell2"] == 3.30  # not subscribed
        await mon.watch(BATT, ("/Voltages",))
        pack["/Voltages/Cell3"] = 3.32
        await wait_until(lambda: snapshot["/Voltages/Cell3"] == 3.32)
        read = await mon.read(BATT, "/Voltages")
        assert read == {"/Voltages/Cell1": 3.30, "/Voltages/Cell2": 3.31, "/Voltages/Cell3": 3.32}
        mon.update(BATT, read)
        assert snapshot["/Voltages/Cell2"] == 3.31
        assert (BATT, {"/Voltages/Cell2": 3.31}) in rec.changes
        await mon.unwatch(BATT, ("/Voltages",))  # RemoveMatch is answered before it returns
        pack["/Voltages/Cell1"] = 3.29
        pack["/Soc"] = 52.0
        await wait_until(lambda: snapshot["/Soc"] == 52.0)
        assert snapshot["/Voltages/Cell1"] == 3.30
    finally:
        await pack.close()
        await multi.close()
        await mon.close()


class LeafGetValueOnly(VeService):
    """A driver whose objects are leaves only: GetValue on /Voltages is an error."""

    def _busitem_call(self, msg: Message) -> Message | None:
        if msg.member == "GetValue" and msg.path not in self._items:
            return None
        return super()._busitem_call(msg)


async def test_a_subtree_is_read_with_get_items_where_get_value_has_no_subtree(
    bus_address: str,
) -> None:
    svc = await LeafGetValueOnly.connect(BATT, bus_address)
    for path, value in {
        "/DeviceInstance": 1,
        "/Voltages/Cell1": 3.31,
        "/Voltages/Cell2": 3.32,
    }.items():
        svc.add_path(path, value)
    await svc.register()
    mon = await Monitor.connect(bus_address)
    try:
        await mon.start()
        assert await mon.read(BATT, "/Voltages") == {
            "/Voltages/Cell1": 3.31,
            "/Voltages/Cell2": 3.32,
        }
        assert await mon.read(BATT, "/Voltages/Cell2") == {"/Voltages/Cell2": 3.32}
    finally:
        await mon.close()
        await svc.close()
