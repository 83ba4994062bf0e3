"""The DVCC model checked against Victron's own code: ``dbus_systemcalc.py`` (vendored in
``tests/vendor``) runs on a private bus with aggbatt as the BMS, and the tests read what it
writes to the solar charger and the Multi.

What rule 1 of ``core/safety.py`` assumes, and these tests show, with feed-in on:

- a VE.Bus ESS Multi: systemcalc maximises the solar charger whatever our CCL (0 A too), and
  passes our CVL (plus its 0.1 V absorb offset) to it: the CVL is the one limit that holds;
- with feed-in off it passes our CCL, 0 A included, so a hard stop does stop the charger, and
  our CVL without an offset, so a cut holds the charger at the cut;
- a Multi-RS (``acsystem``) that exports: the charger gets our CCL plus what the inverter
  exports, so the CCL holds and nothing is switched.

systemcalc runs under Debian's python3 with python3-dbus and python3-gi (``./dev bootstrap``
installs them), as it does on a GX.
"""

from __future__ import annotations

import asyncio
import math
import os
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from aggbatt.config import validate_config
from aggbatt.core.safety import HOLD_AT
from aggbatt.daemon import Daemon
from aggbatt.feedin import FEED_IN_PATH
from aggbatt.sim.battery import SimSerialBattery
from aggbatt.sim.device import SimDevice
from aggbatt.sim.localsettings import FakeLocalSettings
from aggbatt.sim.serialbattery import DriverConfig
from aggbatt.sim.victron import SimSolarCharger, SimVebus
from aggbatt.venus import bus as busmod
from aggbatt.venus.wire import Value, unwrap

SYSTEMCALC = Path(__file__).resolve().parent / "vendor" / "dbus-systemcalc-py"
SERVICE = "com.victronenergy.battery.aggbatt"
SYSTEM = "com.victronenergy.system"
MPPT_MAX_A = 100.0
"""The solar charger's own ``/Settings/ChargeCurrentLimit``: what "maximised" writes."""
ABSORB_OFFSET_V = 0.1
"""systemcalc adds this to the CVL for the solar chargers of an ESS Multi in a charge state
with feed-in allowed (dvcc.py ``_get_chargevoltage``)."""
RS_EXPORT_A = 40.0


def is_(expected: Any) -> Callable[[Any], bool]:
    return lambda value: bool(value == expected)


def near(expected: float) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, float) and abs(value - expected) < 0.01


def says(text: str) -> Callable[[Any], bool]:
    return lambda value: isinstance(value, str) and text in value


class SimAcSystem(SimDevice):
    """``com.victronenergy.acsystem``: a Multi-RS that exports; systemcalc reads two paths."""

    product_name = "Multi RS Solar 48V/6000VA/100A"
    product_id = 0xA442
    connection = "VE.Can"

    def __init__(self) -> None:
        super().__init__("com.victronenergy.acsystem.socketcan_can0_sys0", 0)

    def initial_paths(self) -> dict[str, Value]:
        return {
            "/Ac/NoFeedInReason": 0,
            "/Ess/BatteryDischargeCapacity": RS_EXPORT_A,
            "/Ess/BatteryDischargeSetpoint": 0.0,
            "/Pv/Disable": 0,
        }

    def writable_paths(self) -> frozenset[str]:
        return frozenset({"/Ess/BatteryDischargeSetpoint", "/Pv/Disable"})


class System:
    """Two serialbattery packs, an MPPT, localsettings, aggbatt and Victron's systemcalc."""

    def __init__(self, address: str, state: Path) -> None:
        self.address = address
        self.state = state
        sized = DriverConfig(max_charge_a=100.0, max_discharge_a=150.0)
        self.packs = [SimSerialBattery(f"ttyUSB{i}", i + 1, soc=0.5, config=sized) for i in (0, 1)]
        self.mppt = SimSolarCharger()
        self.devices: list[SimDevice] = [*self.packs, self.mppt]
        self.settings: FakeLocalSettings | None = None
        self.daemon: Daemon | None = None
        self.systemcalc: subprocess.Popen[bytes] | None = None
        self.log = state / "systemcalc.log"

    async def start(self, *others: SimDevice) -> None:
        """As a GX boots: localsettings, then systemcalc, then the devices and aggbatt (so
        systemcalc has bound its settings before the batteries appear)."""
        self.devices += others
        self.settings = await FakeLocalSettings.start(
            self.address,
            {
                FEED_IN_PATH: 1,
                "/Settings/CGwacs/Hub4Mode": 1,
                "/Settings/Services/Bol": 1,
                "/Settings/SystemSetup/BmsInstance": -1,
            },
        )
        env = {**os.environ, "DBUS_SESSION_BUS_ADDRESS": self.address, "VRM_IFACE": "lo"}
        with self.log.open("wb") as log:
            self.systemcalc = subprocess.Popen(
                ["/usr/bin/python3", str(SYSTEMCALC / "dbus_systemcalc.py")],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        await self.wait_for(SYSTEM, "/Dc/Battery/Soc", timeout=90.0)
        for device in self.devices:
            await device.start(self.address)
        config = validate_config({"batteries": {"expected": 2}, "daemon": {"log_period": 0}})
        self.daemon = Daemon(config, self.state, self.address)
        await self.daemon.start()
        # the user selects aggbatt as the BMS (Settings > DVCC > Controlling BMS)
        self.settings["/Settings/SystemSetup/BmsInstance"] = await self.ours("/DeviceInstance")
        await self.settle(SYSTEM, "/ActiveBmsService", is_(SERVICE))

    async def get(self, service: str, path: str) -> Any:
        raw = await busmod.connect(self.address)
        try:
            return unwrap((await busmod.call(raw, service, path, "GetValue"))[0])
        except Exception:
            return None
        finally:
            raw.disconnect()

    async def ours(self, path: str) -> Any:
        return await self.get(SERVICE, path)

    async def wait_for(self, service: str, path: str, timeout: float) -> None:
        """Until ``service`` answers for ``path`` (it is on the bus and has added it)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        raw = await busmod.connect(self.address)
        try:
            while True:
                try:
                    await busmod.call(raw, service, path, "GetValue")
                    return
                except Exception:
                    if loop.time() > deadline:
                        tail = self.log.read_text(errors="replace")[-3000:]
                        raise AssertionError(f"{service} not up\n{tail}") from None
                    await asyncio.sleep(0.2)
        finally:
            raw.disconnect()

    async def settle(
        self, service: str, path: str, ok: Callable[[Any], bool], timeout: float = 20.0
    ) -> Any:
        """Run aggbatt's cycle each second until ``path`` reads ``ok`` (systemcalc adjusts
        every 3 s) and return the value; fail with what was read and systemcalc's log."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            assert self.daemon is not None
            self.daemon.cycle()
            value = await self.get(service, path)
            if ok(value):
                return value
            if loop.time() > deadline:
                tail = self.log.read_text(errors="replace")[-3000:]
                raise AssertionError(f"{service}{path} = {value!r}\n{tail}")
            await asyncio.sleep(1.0)

    def set_packs(self, *, temperature_c: float, current_a: float) -> None:
        for pack in self.packs:
            pack.temperature_c = temperature_c
            pack.current_a = current_a
            pack.poll()

    def feed_in(self) -> Any:
        assert self.settings is not None
        return self.settings[FEED_IN_PATH]

    async def stop(self) -> None:
        if self.systemcalc is not None:
            self.systemcalc.terminate()
            self.systemcalc.wait(timeout=10)
        if self.daemon is not None:
            self.daemon.stop()
            await self.daemon.close()
        for device in self.devices:
            await device.stop()
        if self.settings is not None:
            await self.settings.close()


@pytest.fixture(scope="module", autouse=True)
def systemcalc_runs() -> Iterator[None]:
    """systemcalc needs Debian's python3 with dbus and gi; ``./dev bootstrap`` installs them,
    so their absence is a broken setup, not a reason to skip."""
    probe = subprocess.run(
        ["/usr/bin/python3", "-c", "import dbus, gi"], capture_output=True, text=True, check=False
    )
    assert probe.returncode == 0, f"run ./dev bootstrap: {probe.stderr}"
    yield


@pytest.fixture
async def system(bus_address: str, tmp_path: Path) -> AsyncIterator[System]:
    s = System(bus_address, tmp_path)
    yield s
    await s.stop()


async def test_ess_multi_feed_in_on_only_the_cvl_holds_and_a_hard_stop_switches_it_off(
    system: System,
) -> None:
    multi = SimVebus(ess=True)
    await system.start(multi)
    mppt = system.mppt.name

    # the cold taper: our CCL is a part of the packs' 200 A, but with feed-in on systemcalc
    # maximises the charger; aggbatt leaves feed-in on (the CVL alone holds the bank)
    system.set_packs(temperature_c=3.0, current_a=5.0)
    ccl = await system.settle(SERVICE, "/Info/MaxChargeCurrent", lambda a: 0 < a < MPPT_MAX_A)
    await system.settle(mppt, "/Link/ChargeCurrent", is_(MPPT_MAX_A))
    assert system.feed_in() == 1

    # the current reaches the CCL: aggbatt holds it through the CVL, and that CVL (+0.1 V)
    # is what the charger and the Multi get (the bank then takes the aim: the CVL stays)
    system.set_packs(temperature_c=3.0, current_a=ccl / 2)
    await system.settle(SERVICE, "/Info/ChargeVoltageLimitation", says("holding the charge"))
    system.set_packs(temperature_c=3.0, current_a=HOLD_AT * ccl / 2)
    held = await system.settle(SERVICE, "/Info/MaxChargeVoltage", lambda v: v is not None)
    await system.settle(multi.name, "/BatteryOperationalLimits/MaxChargeVoltage", near(held))
    multi.update({"/Hub/ChargeVoltage": held})  # the Multi's ESS setpoint follows the CVL
    await system.settle(mppt, "/Link/ChargeVoltage", near(held + ABSORB_OFFSET_V))
    assert await system.ours("/Info/MaxChargeVoltage") == held
    assert system.feed_in() == 1

    # below freezing the CCL is 0 A, which systemcalc would ignore with feed-in on: aggbatt
    # switches feed-in off, and the charger and the Multi stop
    system.set_packs(temperature_c=-2.0, current_a=0.0)
    await system.settle(mppt, "/Link/ChargeCurrent", is_(0.0))
    assert system.feed_in() == 0
    assert await system.ours("/Info/MaxChargeCurrent") == 0.0
    await system.settle(multi.name, "/BatteryOperationalLimits/MaxChargeCurrent", is_(0.0))

    # warm again: feed-in stays off for the restore wait, and systemcalc passes our CCL
    # (rounded up to whole amps, as it does for one charger)
    system.set_packs(temperature_c=3.0, current_a=0.0)
    await system.settle(mppt, "/Link/ChargeCurrent", is_(math.ceil(ccl)))
    assert system.feed_in() == 0


async def test_ess_multi_a_peaking_cell_cuts_the_cvl_and_switches_feed_in_off(
    system: System,
) -> None:
    multi = SimVebus(ess=True)
    await system.start(multi)
    mppt = system.mppt.name
    await system.settle(mppt, "/Link/ChargeCurrent", is_(MPPT_MAX_A))  # feed-in on

    # one cell 3.47 V (over max_cell_voltage 3.45): the CVL is cut and feed-in goes off, so
    # the charger gets the cut CVL itself (no feed-in offset) and the CCL again
    pack = system.packs[0]
    pack.set_cell_offset(1, 3.47 - pack.cell_voltages()[0])
    await system.settle(SERVICE, "/Info/ChargeVoltageLimitation", says("cut to the cells"))
    assert system.feed_in() == 0
    cut = await system.ours("/Info/MaxChargeVoltage")
    ccl = await system.ours("/Info/MaxChargeCurrent")
    await system.settle(multi.name, "/BatteryOperationalLimits/MaxChargeVoltage", near(cut))
    multi.update({"/Hub/ChargeVoltage": cut})  # the Multi's ESS setpoint follows the CVL
    await system.settle(mppt, "/Link/ChargeVoltage", near(cut))
    await system.settle(mppt, "/Link/ChargeCurrent", is_(math.ceil(ccl)))


async def test_multi_rs_honours_the_ccl_with_feed_in_on_so_nothing_is_switched(
    system: System,
) -> None:
    await system.start(SimAcSystem())
    mppt = system.mppt.name

    # the charger may make our CCL plus what the Multi-RS exports, not its maximum
    system.set_packs(temperature_c=3.0, current_a=5.0)
    ccl = await system.settle(SERVICE, "/Info/MaxChargeCurrent", lambda a: 0 < a < MPPT_MAX_A)
    await system.settle(mppt, "/Link/ChargeCurrent", is_(math.ceil(ccl + RS_EXPORT_A)))

    # a hard stop: the battery's share is 0 A, the charger only makes what is exported
    system.set_packs(temperature_c=-2.0, current_a=0.0)
    await system.settle(mppt, "/Link/ChargeCurrent", is_(RS_EXPORT_A))
    assert await system.ours("/Info/MaxChargeCurrent") == 0.0
    assert system.feed_in() == 1
