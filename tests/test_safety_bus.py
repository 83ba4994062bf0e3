"""The safety rules end to end: simulated packs and localsettings on a private bus, the real
daemon, and only what a Venus consumer reads (GetItems on our service, the feed-in setting).

Rules 1, 2, 3, 5, 6 and 11 of ``core/safety.py``; the pure tests are in ``test_safety.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from dbus_fast import Variant

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
    assert "too cold" in items["/Info/ChargeLimitation"]
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
    await wait_until(lambda: bench.daemon is not None and len(bench.daemon._last_status) == 3)
    items = await cycle(bench)
    assert items["/Info/MaxChargeCurrent"] == 0.0
    assert "does not match" in items["/Info/ChargeLimitation"]
    assert "8 cells" in items["/Info/ChargeLimitation"]
    assert items["/Alarms/InternalFailure"] == 2
    assert items["/System/NrOfModulesOnline"] == 2  # not averaged into the bank
    assert items["/Info/MaxChargeVoltage"] == pytest.approx(16 * 3.45, abs=0.01)
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
    assert items["/Info/MaxChargeVoltage"] == pytest.approx(16 * 3.50)


async def test_rule11_a_user_who_re_enables_feed_in_is_overruled(
    bench: Bench, caplog: pytest.LogCaptureFixture
) -> None:
    await start(bench)
    bench.packs[0].set_cell_offset(3, 0.3)
    await wait_until(lambda: feed_in(bench) == 0)
    assert bench.raw is not None
    with caplog.at_level(logging.WARNING):
        code = await busmod.call(
            bench.raw, "com.victronenergy.settings", FEED_IN_PATH, "SetValue", "v",
            [Variant("i", 1)],
        )  # fmt: skip
        assert code == [0]
        await wait_until(lambda: feed_in(bench) == 1, timeout=1.0)
        await cycle(bench)
        await wait_until(lambda: feed_in(bench) == 0)
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
