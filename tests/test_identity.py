"""The service's identity (src/aggbatt/identity.py) against our fake localsettings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from aggbatt.config import validate_config
from aggbatt.identity import CUSTOM_NAME_MAX, Identity, parse_instance
from aggbatt.sim.localsettings import FakeLocalSettings
from aggbatt.venus import bus as busmod
from aggbatt.venus.settings import SettingsClient
from tests.conftest import wait_until

SERVICE = validate_config({}).service
TAKEN = {
    "/Settings/Devices/serialbattery_x/ClassAndVrmInstance": f"battery:{SERVICE.device_instance}"
}


@pytest.fixture
async def identity(bus_address: str) -> AsyncIterator[tuple[Identity, FakeLocalSettings]]:
    fake = await FakeLocalSettings.start(bus_address, TAKEN)
    client = SettingsClient(await busmod.connect(bus_address))
    tasks = busmod.Tasks()
    yield Identity(client, SERVICE, tasks.spawn, lambda: None), fake
    await tasks.finish(1.0)
    await client.close()
    client.bus.disconnect()
    await fake.close()


async def test_localsettings_grants_a_free_instance_and_keeps_the_name(
    identity: tuple[Identity, FakeLocalSettings],
) -> None:
    ident, fake = identity
    assert await ident.claim()
    assert ident.instance == SERVICE.device_instance + 1  # the preferred one is taken
    name_path = f"/Settings/Devices/{SERVICE.unique_id}/CustomName"
    assert ident.name_written("", "Bank") is True
    await wait_until(lambda: fake.value(name_path) == "Bank")


async def test_a_name_is_bounded_and_printable(
    identity: tuple[Identity, FakeLocalSettings],
) -> None:
    ident, _ = identity
    assert ident.name_written("", "x" * (CUSTOM_NAME_MAX + 1)) is False
    assert ident.name_written("", "bad\x07name") is False
    assert ident.name_written("", 3) is False


async def test_the_users_instance_change_is_followed(
    identity: tuple[Identity, FakeLocalSettings],
) -> None:
    ident, fake = identity
    assert await ident.claim()
    seen: list[int] = []
    await ident.follow(seen.append)
    path = f"/Settings/Devices/{SERVICE.unique_id}/ClassAndVrmInstance"
    fake[path] = "battery:42"  # the user, in the GUI
    await wait_until(lambda: seen == [42])


def test_an_instance_is_read_only_from_its_class() -> None:
    assert parse_instance("battery:7") == 7
    assert parse_instance("vebus:7") is None
    assert parse_instance("battery:x") is None
