"""aggbatt doctor: each bad state of the live system gives a finding with its fix."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from aggbatt.config import validate_config
from aggbatt.daemon import Daemon
from aggbatt.doctor import (
    BATTERY_SERVICE,
    BMS_INSTANCE,
    DVCC,
    Facts,
    Finding,
    diagnose,
    gather,
    render,
)
from aggbatt.feedin import FEED_IN_PATH
from aggbatt.sim.battery import SimSerialBattery
from aggbatt.sim.localsettings import FakeLocalSettings
from tests.packs import pack

CONFIG = validate_config({"batteries": {"expected": 2}})
GOOD_SETTINGS = {
    BATTERY_SERVICE: "com.victronenergy.battery/100",
    BMS_INSTANCE: 100,
    DVCC: 1,
    FEED_IN_PATH: 1,
}
SERIAL = {"/ProductName": "SerialBattery(JKBMS)", "/DeviceInstance": 1}


def facts(**changes: Any) -> Facts:
    base = Facts(
        ours={"/DeviceInstance": 100},
        settings=dict(GOOD_SETTINGS),
        services={
            "com.victronenergy.battery.ttyUSB0": {**pack(cvl=None), **SERIAL},
            "com.victronenergy.battery.ttyUSB1": {**pack(cvl=None), **SERIAL},
        },
    )
    for key, value in changes.items():
        if key == "settings":
            base.settings.update(value)
        else:
            setattr(base, key, value)
    return base


def problems(findings: list[Finding]) -> list[str]:
    return [f.text + " " + f.fix for f in findings if f.level == "problem"]


def test_a_good_system_has_no_problem() -> None:
    findings = diagnose(facts(), CONFIG)
    assert problems(findings) == []
    assert "DVCC is on." in render(findings)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"ours": None}, "aggbatt is not running"),
        ({"settings": {BATTERY_SERVICE: "default"}}, "Battery monitor: choose aggbatt"),
        ({"settings": {BMS_INSTANCE: -1}}, "'Automatic'"),
        ({"settings": {BMS_INSTANCE: -255}}, "'No BMS control'"),
        ({"settings": {BMS_INSTANCE: 3}}, "instance 3, not aggbatt"),
        ({"settings": {DVCC: 0}}, "turn DVCC on"),
        (
            {"services": {"com.victronenergy.battery.ttyUSB0": {**pack(), **SERIAL}}},
            "1 of 2 batteries",
        ),
    ],
)
def test_each_bad_state_is_named_with_its_fix(change: dict[str, Any], expected: str) -> None:
    found = problems(diagnose(facts(**change), CONFIG))
    assert any(expected in p for p in found), found


def test_current_source_missing_and_other_bms_and_silent_packs() -> None:
    config = validate_config({"batteries": {"expected": 2}, "current": {"source": "victron"}})
    f = facts(silent_for={"com.victronenergy.battery.ttyUSB1": 3.0})
    f.services["com.victronenergy.battery.ttyUSB0"]["/Info/MaxChargeVoltage"] = 55.2
    findings = diagnose(f, config)
    text = render(findings)
    assert "no connected Multi" in text
    assert "MultipleBatteries" in text
    assert "ttyUSB1 published nothing for 3 s" in text


def test_a_pack_that_does_not_match_the_config_is_named() -> None:
    services = {
        "com.victronenergy.battery.ttyUSB0": {**SERIAL, **pack(), "/Serial": "A"},
        "com.victronenergy.battery.ttyUSB1": {**SERIAL, **pack([3.3] * 8), "/Serial": "B"},
    }
    findings = diagnose(facts(services=services), CONFIG)
    problem = next(f for f in findings if "does not match" in f.text)
    assert problem.level == "problem"
    assert "Pack B" in problem.text and "8 cells" in problem.text
    assert "cells_per_battery" in problem.fix


def test_feed_in_held_by_aggbatt_is_explained() -> None:
    text = render(diagnose(facts(settings={FEED_IN_PATH: 0}, feed_in_held=1), CONFIG))
    assert "held off by aggbatt" in text and "your value 1 is restored" in text


@contextlib.asynccontextmanager
async def live_system(
    address: str, settings: dict[str, Any], tmp: Path, run_daemon: bool = True
) -> AsyncIterator[Daemon | None]:
    fake = await FakeLocalSettings.start(address, settings)
    packs = [SimSerialBattery(f"ttyUSB{i}", i + 1) for i in range(2)]
    for p in packs:
        await p.start(address)

    async def publish() -> None:
        while True:
            await asyncio.sleep(0.05)
            for p in packs:
                p.current_a += 0.1
                p.step(1.0)

    ticker = asyncio.ensure_future(publish())
    daemon = Daemon(CONFIG, tmp, address) if run_daemon else None
    if daemon is not None:
        await daemon.start()
    try:
        yield daemon
    finally:
        ticker.cancel()
        if daemon is not None:
            daemon.stop()
            await daemon.close()
        for p in packs:
            await p.stop()
        await fake.close()


async def test_doctor_on_a_live_bus_good_and_bad(bus_address: str, tmp_path: Path) -> None:
    async with live_system(bus_address, {**GOOD_SETTINGS, BMS_INSTANCE: -1}, tmp_path) as daemon:
        assert daemon is not None and daemon.service is not None
        instance = daemon.service["/DeviceInstance"]
        assert instance == 100
        found = diagnose(await gather(CONFIG, bus_address, 0.3), CONFIG)
        assert any("'Automatic'" in p for p in problems(found)), problems(found)
        assert "aggbatt is the selected battery monitor." in render(found)
        assert "published nothing" not in render(found)  # the packs were watched publishing
    good = {**GOOD_SETTINGS}
    async with live_system(bus_address, good, tmp_path) as daemon:
        assert daemon is not None and daemon.service is not None
        assert daemon.service["/DeviceInstance"] == 100
        found = diagnose(await gather(CONFIG, bus_address, 0.3), CONFIG)
        assert problems(found) == []
    async with live_system(bus_address, good, tmp_path, run_daemon=False):
        found = diagnose(await gather(CONFIG, bus_address, 0.3), CONFIG)
        assert any("not running" in p for p in problems(found))
