"""Options that had no test of their own: the published cell paths, exclude, the expected
number of solar chargers and the periodic summary line."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import pytest

from aggbatt.config import validate_config
from aggbatt.core.engine import initial_state, run_cycle
from aggbatt.core.selection import measure_current, select_batteries
from aggbatt.core.stored import State
from aggbatt.publish import cycle_values
from tests.packs import pack

NOW = dt.datetime(2026, 5, 10, 12).timestamp()
SERIAL = {"/ProductName": "SerialBattery(JKBMS)"}


def test_cell_paths_name_each_pack_and_cell_when_asked_for() -> None:
    config = validate_config({"service": {"publish_cell_voltages": True}})
    snaps = {"com.victronenergy.battery.ttyUSB0": pack([3.30] * 15 + [3.42])}
    names = {"com.victronenergy.battery.ttyUSB0": "Pack A/1"}  # unsafe for a D-Bus path
    result = run_cycle(snaps, names, config, initial_state(State()), now_mono=1.0,
                       now_wall=NOW, month=5)  # fmt: skip
    values = cycle_values(result, config)
    cells = {p: v for p, v in values.items() if p.startswith("/Voltages/Pack")}
    assert len(cells) == 16
    assert values["/Voltages/Pack_A_1_Cell16"] == pytest.approx(3.42)
    off = cycle_values(result, validate_config({}))
    assert not any(p.startswith("/Voltages/Pack") for p in off)


@pytest.mark.parametrize("entry", [2, "B", "com.victronenergy.battery.ttyUSB1"])
def test_exclude_by_instance_name_or_service(entry: Any) -> None:
    services: dict[str, dict[str, Any]] = {
        "com.victronenergy.battery.ttyUSB0": {**SERIAL, "/DeviceInstance": 1, "/Serial": "A"},
        "com.victronenergy.battery.ttyUSB1": {**SERIAL, "/DeviceInstance": 2, "/Serial": "B"},
    }
    config = validate_config({"batteries": {"exclude": [entry]}})
    assert list(select_batteries(services, config, "com.victronenergy.battery.aggbatt")) == [
        "com.victronenergy.battery.ttyUSB0"
    ]


def test_fewer_solar_chargers_than_expected_falls_back_to_the_bms_current() -> None:
    services: dict[str, dict[str, Any]] = {
        "com.victronenergy.vebus.ttyS4": {"/Connected": 1, "/Dc/0/Current": -20.0},
        "com.victronenergy.solarcharger.ttyUSB2": {"/Dc/0/Current": 35.0},
    }
    two = validate_config({"current": {"source": "victron", "expected_solar_chargers": 2}})
    measured = measure_current(services, two)
    assert measured.value is None and measured.problem == "1 of 2 solar chargers found"
    one = validate_config({"current": {"source": "victron", "expected_solar_chargers": 1}})
    assert measure_current(services, one).value == pytest.approx(15.0)


async def test_the_summary_line_comes_once_per_log_period(
    bus_address: str, tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from aggbatt.daemon import Daemon
    from aggbatt.sim.battery import SimSerialBattery

    clock = [1000.0]
    packs = SimSerialBattery("ttyUSB0", 1)
    await packs.start(bus_address)
    config = validate_config({"daemon": {"log_period": 300.0}})
    daemon = Daemon(config, tmp_path, bus_address, mono_clock=lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="aggbatt"):
        await daemon.start()
        for step in range(10):  # cycles at 1000 s, then every 60 s up to 1540 s
            clock[0] += 60.0 if step else 0.0
            packs.current_a = 1.0 + step
            packs.step(1.0)
            daemon.cycle()
        daemon.stop()
        await daemon.close()
    await packs.stop()
    summaries = [r for r in caplog.records if "online," in r.getMessage()]
    assert len(summaries) == 2  # at 1000 s and 1300 s; the next would be at 1600 s
