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
    Watch,
    diagnose,
    gather,
    render,
    watch_of,
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
    f = facts(watched={"com.victronenergy.battery.ttyUSB1": Watch(12.0)})
    f.services["com.victronenergy.battery.ttyUSB0"]["/Info/MaxChargeVoltage"] = 55.2
    f.services["com.victronenergy.battery.ttyUSB1"]["/Dc/0/Current"] = 20.0
    findings = diagnose(f, config)
    text = render(findings)
    assert "no connected Multi" in text
    assert "MultipleBatteries" in text
    assert "ttyUSB1 published nothing for 12 s while 20 A flows" in text


def test_freshness_is_judged_by_each_packs_own_rate() -> None:
    """serialbattery publishes changes only, every 1 to 10 s by its BMS: a 5 s BMS and a pack
    at rest that changes nothing are no alarm; a silent pack carrying current is."""
    five = watch_of([0.5, 5.5, 10.5], 0.0, 12.0)
    assert five.every == pytest.approx(5.0) and five.quiet_for == pytest.approx(1.5)
    f = facts(
        watched={
            "com.victronenergy.battery.ttyUSB0": five,
            "com.victronenergy.battery.ttyUSB1": Watch(12.0),  # nothing, at 0 A: quiet
        }
    )
    text = render(diagnose(f, CONFIG))
    assert "ttyUSB0 updates about every 5.0 s" in text
    assert "ttyUSB1 changed nothing in 12 s (at rest" in text
    assert "WARN" not in text.split("ttyUSB1", 1)[1].split("\n", 1)[0]


def test_collisions_with_serialbatterys_defaults_are_named_with_the_fix() -> None:
    """max_cell_voltage above a pack's own bulk voltage, a SoC reset that can never complete, a
    configured maximum above what the packs allow together; with aggbatt's and the driver's
    defaults, none."""
    from aggbatt.sim.serialbattery import SerialBatteryPack
    from tests.test_serialbattery import values

    def driver_pack(port: str, **config: Any) -> dict[str, Any]:
        from aggbatt.sim.battery import even_pack
        from aggbatt.sim.serialbattery import Board, DriverConfig

        sbp = SerialBatteryPack(even_pack(port, soc=0.5), Board(), DriverConfig(**config))
        sbp.port, sbp.instance = port, int(port[-1]) + 1
        sbp.step(0.0)
        return values(sbp, 0.0)

    defaults = {f"com.victronenergy.battery.ttyUSB{i}": driver_pack(f"ttyUSB{i}") for i in (0, 1)}
    found = diagnose(facts(services=defaults), CONFIG)
    assert [f.text for f in found if f.collision] == []
    assert "The packs allow 100 A of charge together now (50 + 50 A)" in render(found)
    old = validate_config(
        {
            "batteries": {"expected": 2},
            "control": {
                "own": {"max_cell_voltage": 3.50, "balancing_voltage": 3.45,
                        "max_charge_current": 200.0}
            },
        }
    )  # fmt: skip
    found = [f for f in diagnose(facts(services=defaults), old) if f.collision]
    texts = " ".join(f.text + " " + f.fix for f in found)
    assert "max_cell_voltage 3.50 V is above pack" in texts
    assert "Set control.own.max_cell_voltage = 3.45" in texts
    assert "max_charge_current 200 A is above what the packs allow together now, 100 A" in texts
    resetting = {
        **defaults,
        "com.victronenergy.battery.ttyUSB1": driver_pack("ttyUSB1", soc_reset_after_days=30.0),
    }
    found = [f for f in diagnose(facts(services=resetting), CONFIG) if f.collision]
    assert any("SoC reset to 3.65 V" in f.text and "SOC_RESET_AFTER_DAYS" in f.fix for f in found)


def test_battery_services_left_out_are_listed_with_why() -> None:
    jbd = {**pack(), "/ProductName": "JBD-SP16S020-L16S-200A-B-U", "/DeviceInstance": 3}
    services = {
        "com.victronenergy.battery.ttyUSB0": {**pack(), **SERIAL},
        "com.victronenergy.battery.ttyUSB1": jbd,
    }
    names_only = validate_config({"batteries": {"expected": 2, "product_ids": []}})
    text = render(diagnose(facts(services=services), names_only))
    assert "Battery service ttyUSB1 is not a pack of the bank: its /ProductId (0xBA77)" in text
    assert "1 of 2 batteries" in text
    text = render(diagnose(facts(services=services), CONFIG))  # the default finds it by its id
    assert "2 batteries found" in text


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


def test_a_multi_rs_that_exports_means_feed_in_is_never_switched() -> None:
    rs = {"/Ac/NoFeedInReason": 0, "/Ess/BatteryDischargeCapacity": 40.0}
    services = {"com.victronenergy.acsystem.socketcan_can0_sys0": rs}
    text = render(diagnose(facts(services=services, settings={FEED_IN_PATH: 1}), CONFIG))
    assert "Multi-RS" in text and "never switches feed-in" in text
    no_feed_in = {"com.victronenergy.acsystem.socketcan_can0_sys0": {**rs, "/Ac/NoFeedInReason": 2}}
    text = render(diagnose(facts(services=no_feed_in, settings={FEED_IN_PATH: 1}), CONFIG))
    assert "Multi-RS" not in text and "feed-in is on (your setting)" in text


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


async def test_on_the_demo_bank_with_the_defaults_nothing_collides(
    bus_address: str, tmp_path: Path
) -> None:
    """The demo's packs run the driver's defaults (50 A each); aggbatt runs config.toml."""
    from aggbatt.config import load_config
    from aggbatt.demo import DEFAULT_CONFIG
    from aggbatt.sim.system import SimulatedSystem, SystemSpec

    config = load_config(DEFAULT_CONFIG)
    system = SimulatedSystem(SystemSpec(2, 16))
    await system.start(bus_address)
    daemon = Daemon(config, tmp_path, bus_address)
    await daemon.start()
    try:
        system.step(1.0)
        found = diagnose(await gather(config, bus_address, 0.5), config)
    finally:
        daemon.stop()
        await daemon.close()
        await system.stop()
    assert [f.text for f in found if f.collision] == []
    text = render(found)
    assert "The packs allow 100 A of charge together now (50 + 50 A)" in text
    assert "2 batteries found" in text
