"""The settings client against our fake localsettings, and the fake's localsettings behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from aggbatt.sim.localsettings import ERR_NOT_SETTINGS, FakeLocalSettings
from aggbatt.venus import bus as busmod
from aggbatt.venus.bus import BUSITEM
from aggbatt.venus.settings import (
    SETTINGS_SERVICE,
    Setting,
    SettingsClient,
    SettingsError,
    instance_setting_path,
)
from aggbatt.venus.wire import Value
from tests.conftest import wait_until


@pytest.fixture
async def settings(bus_address: str) -> AsyncIterator[tuple[FakeLocalSettings, SettingsClient]]:
    fake = await FakeLocalSettings.start(bus_address, {"/Settings/CGwacs/OvervoltageFeedIn": 1})
    client = SettingsClient(await busmod.connect(bus_address))
    yield fake, client
    await client.close()
    client.bus.disconnect()
    await fake.close()


async def test_add_settings_returns_granted_values_and_keeps_existing(
    settings: tuple[FakeLocalSettings, SettingsClient],
) -> None:
    _fake, client = settings
    granted = await client.add_settings(
        [
            Setting("/Settings/AggBatt/CustomName", "Bank"),
            Setting("/Settings/CGwacs/OvervoltageFeedIn", 0, 0, 1),
        ]
    )
    assert granted == {
        "/Settings/AggBatt/CustomName": "Bank",
        "/Settings/CGwacs/OvervoltageFeedIn": 1,
    }
    assert await client.get_value("/Settings/AggBatt/CustomName") == "Bank"
    with pytest.raises(SettingsError) as err:
        await client.add_settings([Setting("/Foo/Bar", 1)])
    assert err.value.code == ERR_NOT_SETTINGS


async def test_device_instance_allocation_bumps_taken_instances(
    settings: tuple[FakeLocalSettings, SettingsClient],
) -> None:
    _fake, client = settings
    assert await client.allocate_device_instance("serialbattery_1", "battery", 1) == 1
    assert await client.allocate_device_instance("aggbatt", "battery", 1) == 2
    # asking again keeps what was granted
    assert await client.allocate_device_instance("aggbatt", "battery", 1) == 2
    # a SetValue onto a taken instance is bumped as well
    path = instance_setting_path("other")
    assert await client.allocate_device_instance("other", "battery", 5) == 5
    assert await client.set_value(path, "battery:1") == 0
    assert await client.get_value(path) == "battery:3"
    # another class does not collide
    assert await client.allocate_device_instance("multi", "vebus", 1) == 1


async def test_set_value_checks_range_and_type(
    settings: tuple[FakeLocalSettings, SettingsClient],
) -> None:
    fake, client = settings
    await client.add_settings([Setting("/Settings/Test/Level", 5, 0, 10)])
    assert await client.set_value("/Settings/Test/Level", 11) == -1
    assert await client.set_value("/Settings/Test/Level", "x") == -1
    assert await client.set_value("/Settings/Test/Level", 7) == 0
    assert fake["/Settings/Test/Level"] == 7


async def test_changes_are_properties_changed_only(
    settings: tuple[FakeLocalSettings, SettingsClient], raw_bus: MessageBus
) -> None:
    _fake, client = settings
    seen: list[Message] = []

    def record(msg: Message) -> None:
        if msg.message_type == MessageType.SIGNAL and msg.interface == BUSITEM:
            seen.append(msg)

    raw_bus.add_message_handler(record)
    await busmod.add_match(raw_bus, f"type='signal',interface='{BUSITEM}'")
    watched: list[tuple[str, Value]] = []
    await client.watch("/Settings/CGwacs/OvervoltageFeedIn", lambda p, v: watched.append((p, v)))
    await client.add_settings([Setting("/Settings/New/One", 1.5)])
    assert await client.set_value("/Settings/CGwacs/OvervoltageFeedIn", 0) == 0
    await wait_until(lambda: watched == [("/Settings/CGwacs/OvervoltageFeedIn", 0)])
    await asyncio.sleep(0.05)
    assert {m.member for m in seen} == {"PropertiesChanged"}
    added = next(m for m in seen if m.path == "/Settings/New/One")
    assert {"Value", "Text", "Default", "Min", "Max"} <= set(added.body[0])


async def test_localsettings_extra_methods(
    settings: tuple[FakeLocalSettings, SettingsClient], raw_bus: MessageBus
) -> None:
    fake, client = settings
    await client.add_settings([Setting("/Settings/Test/Level", 5, 0, 10)])
    for member, expected in (("GetMin", 0), ("GetMax", 10), ("GetDefault", 5)):
        body = await busmod.call(raw_bus, SETTINGS_SERVICE, "/Settings/Test/Level", member)
        assert body[0] == Variant("i", expected)
    body = await busmod.call(
        raw_bus,
        SETTINGS_SERVICE,
        "/Settings",
        "AddSetting",
        "ssvsvv",
        ["Group", "Name", Variant("i", 3), "i", Variant("i", 0), Variant("i", 5)],
    )
    assert body == [0]
    assert fake["/Settings/Group/Name"] == 3
    body = await busmod.call(
        raw_bus, SETTINGS_SERVICE, "/", "RemoveSettings", "as", [["/Settings/Group/Name", "/x"]]
    )
    assert body == [[0, -1]]
    assert "/Settings/Group/Name" not in fake
