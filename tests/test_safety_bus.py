"""The safety rules end to end: simulated packs and localsettings on a private bus, the real
daemon, and only what a Venus consumer reads (GetItems on our service, the feed-in setting).

Rules 1, 2, 3, 5, 6 and 11 of ``core/safety.py``; the pure tests are in ``test_safety.py``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Variant

from aggbatt.config import Config
from aggbatt.daemon import Daemon
from aggbatt.feedin import FEED_IN_PATH
from aggbatt.sim.battery import SimSerialBattery
from aggbatt.venus import bus as busmod
from tests.conftest import wait_until
from tests.test_daemon import Bench, batteries_online, make_config

# 100 A is what the two simulated packs' BMSes allow together (100 A each, by capacity share
# 135 A): in normal operation only the configuration limits, and feed-in stays on
NORMAL = {"control": {"own": {"max_charge_current": 100.0}}}


@pytest.fixture
async def bench(bus_address: str, tmp_path: Path) -> AsyncIterator[Bench]:
    b = Bench(bus_address, tmp_path)
    yield b
    await b.stop()


async def start(bench: Bench, **sections: Any) -> dict[str, Any]:
    await bench.start(make_config(**{**NORMAL, **sections}))
    items = await bench.items()
    assert items["/Info/MaxChargeCurrent"] == 100.0
    assert bench.settings is not None and bench.settings[FEED_IN_PATH] == 1
    return items


async def cycle(bench: Bench) -> dict[str, Any]:
    """Let the signals arrive, run a cycle, and read the service as a consumer does."""
    await asyncio.sleep(0.05)
    assert bench.daemon is not None
    bench.daemon.cycle()
    await asyncio.sleep(0.02)
    return await bench.items()


def feed_in(bench: Bench) -> Any:
    assert bench.settings is not None
    return bench.settings[FEED_IN_PATH]


async def test_rule1_a_cold_pack_stops_charging_and_feed_in_goes_off(bench: Bench) -> None:
    await start(bench)
    bench.packs[1].temperature_c = -2.0
    bench.packs[1].step(1.0)
    items = await cycle(bench)
    assert items["/Info/MaxChargeCurrent"] == 0.0
    # serialbattery's own curve is at 0 A too, and its AllowToCharge 0 is named first
    why = items["/Info/ChargeLimitation"]
    assert "too cold" in why or "blocked by the BMS of SIM0002" in why, why
    await wait_until(lambda: feed_in(bench) == 0)


async def test_rule1_a_pack_lost_scales_the_limit_and_feed_in_goes_off(bench: Bench) -> None:
    await start(bench)
    await bench.packs[1].stop()
    await wait_until(lambda: batteries_online(bench.daemon) == 1)
    items = await bench.items()
    assert items["/Info/MaxChargeCurrent"] < 100.0
    await wait_until(lambda: feed_in(bench) == 0)


async def test_rule2_a_hot_sensor_does_not_hide_a_cell_over_the_max(bench: Bench) -> None:
    before = await start(bench)
    bad = bench.packs[1]
    bad.force("/Dc/0/Temperature", 200.0)
    bad.set_cell_offset(4, 0.4)  # ~3.7 V
    items = await cycle(bench)
    assert items["/System/NrOfModulesOnline"] == 2  # the pack is still in the bank
    assert items["/Info/MaxChargeVoltage"] < before["/Info/MaxChargeVoltage"]  # the cut
    assert items["/Info/ChargeMode"] == "Cell over-voltage: CVL cut"
    assert items["/System/MaxCellVoltage"] >= 3.65
    assert items["/Alarms/InternalFailure"] == 1
    await wait_until(lambda: feed_in(bench) == 0)


async def test_rule2_a_bad_value_is_logged_once_per_episode(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    await start(bench)
    with caplog.at_level(logging.INFO, logger="aggbatt"):
        bench.packs[1].force("/Soc", 100.4)
        for _ in range(5):
            await cycle(bench)
        bench.packs[1].unforce("/Soc")
        await cycle(bench)
    lines = [r.getMessage() for r in caplog.records if "/Soc" in r.getMessage()]
    assert len(lines) == 2, lines
    assert "100.4" in lines[0] and "plausible again" in lines[1]


async def test_rule3_a_block_with_every_other_value_none_stops_charging(bench: Bench) -> None:
    await start(bench)
    pack = bench.packs[1]
    assert pack.service is not None
    for path in pack.service.paths():  # serialbattery's BLOCK_ON_DISCONNECT
        if path.startswith(("/Dc/", "/Soc", "/Voltages/", "/System/", "/Info/", "/Capacity")):
            pack.force(path, None)
    pack.force("/Io/AllowToCharge", 0)
    pack.force("/Io/AllowToDischarge", 0)
    items = await cycle(bench)
    assert items["/Info/MaxChargeCurrent"] == 0.0
    assert items["/Info/MaxDischargeCurrent"] == 0.0
    assert items["/Io/AllowToCharge"] == 0
    assert "blocked" in items["/Info/ChargeLimitation"]
    await wait_until(lambda: feed_in(bench) == 0)


async def test_rule5_a_pack_of_another_cell_count_stops_charging(bench: Bench) -> None:
    await start(bench)
    stranger = SimSerialBattery("ttyUSB2", 3, cells=8, capacity_ah=100.0, soc=0.5)
    bench.packs.append(stranger)
    await stranger.start(bench.address)
    await wait_until(
        lambda: bench.daemon is not None and len(bench.daemon.journal.last_status) == 3
    )
    items = await cycle(bench)
    assert items["/Info/MaxChargeCurrent"] == 0.0
    assert "does not match" in items["/Info/ChargeLimitation"]
    assert "8 cells" in items["/Info/ChargeLimitation"]
    assert items["/Alarms/InternalFailure"] == 2
    assert items["/System/NrOfModulesOnline"] == 2  # not averaged into the bank
    month = Config().control.own.charge_voltage_per_month[time.localtime().tm_mon - 1]
    assert items["/Info/MaxChargeVoltage"] == pytest.approx(16 * month, abs=0.01)
    await wait_until(lambda: feed_in(bench) == 0)


async def test_rule6_the_cvl_never_exceeds_a_packs_own_bms(bench: Bench) -> None:
    before = await start(bench)
    bench.packs[0].force("/Info/MaxChargeVoltage", 53.0)
    items = await cycle(bench)
    assert before["/Info/MaxChargeVoltage"] > 53.0
    assert items["/Info/MaxChargeVoltage"] == 53.0
    assert "BMS charge voltage" in items["/Info/ChargeVoltageLimitation"]


async def test_rule6_pass_through_never_above_cells_times_max(bench: Bench) -> None:
    passthrough = {"mode": "passthrough", "passthrough": {"max_charge_current": 200.0}}
    await bench.start(make_config(control=passthrough))
    for pack in bench.packs:
        pack.force("/Info/MaxChargeVoltage", 58.4)  # serialbattery's SoC-reset voltage
    items = await cycle(bench)
    assert items["/Info/MaxChargeVoltage"] == pytest.approx(
        16 * Config().control.own.max_cell_voltage
    )


async def test_rule11_a_user_who_re_enables_feed_in_is_overruled(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    await start(bench)
    bench.packs[0].set_cell_offset(3, 0.3)
    await wait_until(lambda: feed_in(bench) == 0, timeout=15.0)
    assert bench.raw is not None
    with caplog.at_level(logging.WARNING):
        code = await busmod.call(
            bench.raw, "com.victronenergy.settings", FEED_IN_PATH, "SetValue", "v",
            [Variant("i", 1)],
        )  # fmt: skip
        assert code == [0]
        await wait_until(lambda: feed_in(bench) == 1, timeout=1.0)
        await cycle(bench)
        await wait_until(lambda: feed_in(bench) == 0, timeout=15.0)
    assert "overruled" in caplog.text


async def test_rule11_stopping_restores_feed_in_before_leaving_the_bus(bench: Bench) -> None:
    await start(bench)
    bench.packs[0].set_cell_offset(3, 0.3)
    await wait_until(lambda: feed_in(bench) == 0)
    daemon = bench.daemon
    assert daemon is not None
    daemon.stop()
    await daemon.close()
    bench.daemon = None
    assert feed_in(bench) == 1
    assert '"feed_in_original": null' in (bench.state / "state.json").read_text()


async def _run_cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aggbatt", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_rule15_a_lost_bms_link_stops_charging_status_names_it_and_forget_ends_it(
    bench: Bench,
) -> None:
    """serialbattery's lost phase on the bus: after 10 s voltage and current go None. The
    pack is unseen: charging stops, `aggbatt status` says for how long, and once it is removed
    for good `aggbatt forget` gives the bank back its charging."""
    await start(bench)
    lost = bench.packs[1]
    lost.link_up = False
    for _ in range(11):
        lost.step(1.0)
    items = await cycle(bench)
    assert items["/Info/MaxChargeCurrent"] == 0.0
    assert "SIM0002TTYUSB1" in items["/Info/ChargeLimitation"]
    assert items["/Info/ChargeMode"] == "Pack not seen: charging stopped"
    assert items["/Info/MaxDischargeCurrent"] > 0.0
    code, out, _ = await _run_cli("status", "--bus", bench.address)
    assert code == 0 and "not seen" in out and "SIM0002TTYUSB1" in out and "for " in out
    code, _, err = await _run_cli("forget", "SIM0002TTYUSB1", "--bus", bench.address)
    assert code == 1 and "refused" in err  # still on the bus: a pack whose link is lost ...
    await lost.stop()  # ... is forgotten once it is gone for good
    await cycle(bench)
    code, out, _ = await _run_cli("forget", "SIM0002TTYUSB1", "--bus", bench.address)
    assert code == 0, out
    items = await cycle(bench)
    assert items["/Info/MaxChargeCurrent"] > 0.0
    assert items["/Packs/Unseen"] == ""
    state = (bench.state / "state.json").read_text()
    assert "ttyUSB1" not in state


async def test_rule15_forget_without_the_service_edits_the_state_file(tmp_path: Path) -> None:
    from aggbatt.core.stored import KnownPack, State
    from aggbatt.state import load_state, save_state

    packs = {
        f"com.victronenergy.battery.ttyUSB{i}": KnownPack(280.0, 1.0, name=f"P{i}") for i in (0, 1)
    }
    save_state(tmp_path, State(packs=packs))
    unused = "unix:path=/nonexistent/aggbatt-test-bus"
    code, out, _ = await _run_cli("forget", "P1", "--bus", unused, "--state-dir", str(tmp_path))
    assert code == 0, out
    assert list(load_state(tmp_path, 2.0).state.packs) == ["com.victronenergy.battery.ttyUSB0"]
    code, _, err = await _run_cli("forget", "P9", "--bus", unused, "--state-dir", str(tmp_path))
    assert code == 1 and "known: P0" in err


async def test_rule16_a_replugged_pack_comes_back_as_itself(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    """A USB re-plug renames ttyUSB1 to ttyUSB4: the same serial, capacity and cells."""
    await start(bench)
    old = bench.packs[1]
    await old.stop()
    await cycle(bench)
    again = SimSerialBattery(
        "ttyUSB4", 2, soc=0.5, capacity_ah=100.0, serial="SIM0002TTYUSB1", config=old.sbp.config
    )
    bench.packs[1] = again
    with caplog.at_level(logging.WARNING, logger="aggbatt"):
        await again.start(bench.address)
        await wait_until(lambda: batteries_online(bench.daemon) == 2)
    items = await cycle(bench)
    assert items["/Info/MaxChargeCurrent"] == 100.0
    assert items["/Alarms/BmsCable"] == 0 and items["/System/NrOfModulesOffline"] == 0
    assert "pack ttyUSB1 is back as ttyUSB4" in caplog.text
    assert bench.daemon is not None
    assert set(bench.daemon.engine.known) == {
        "com.victronenergy.battery.ttyUSB0",
        "com.victronenergy.battery.ttyUSB4",
    }


async def test_rule10_ticking_history_is_no_sign_of_life(bus_address: str, tmp_path: Path) -> None:
    """Pack B's driver polls on and its /History/TimeSinceLastFullCharge ticks, but its BMS's
    measurements stand still while pack A carries current: B is frozen."""
    offset = [0.0]
    b = Bench(bus_address, tmp_path)
    try:
        config = make_config(**NORMAL, batteries={"expected": 2, "stale_after": 30})
        await b.start_system()
        b.daemon = Daemon(
            config, tmp_path, bus_address, mono_clock=lambda: time.monotonic() + offset[0]
        )
        await b.daemon.start()
        quiet = b.packs[1]
        assert quiet.sbp.driver is not None
        quiet.sbp.driver.last_full_charge = 0.0  # it has seen a full charge: the path ticks
        for second in range(45):
            offset[0] = float(second)
            b.packs[0].current_a = 5.0 + 0.1 * (second % 2)
            b.packs[0].step(1.0)
            quiet.now += 1.0
            assert quiet.poll() >= 1  # the ticking path, published every poll
            await asyncio.sleep(0.005)
        b.daemon.cycle()
        assert b.daemon.result is not None
        invalid = b.daemon.result.aggregate.invalid
        assert [(r.name, r.reason) for r in invalid] == [
            ("SIM0002TTYUSB1", "frozen: no measurement changed for over 30 s while current flows")
        ]
    finally:
        await b.stop()
