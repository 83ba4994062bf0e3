"""Reading one battery: the required/optional path table and what makes a battery invalid."""

from __future__ import annotations

import math

import pytest

from aggbatt.core.battery import PATHS, Battery, Invalid, read_battery, unique_names
from tests.packs import lynx, pack


def test_serialbattery_pack_reads_everything() -> None:
    cells = [3.30] * 15 + [3.40]
    b = read_battery("svc", "P1", pack(cells, current=10.0, soc=60.0))
    assert isinstance(b, Battery)
    assert b.voltage == pytest.approx(52.9)  # 15 x 3.30 + 3.40
    assert b.max_cell == (3.40, "C16")
    assert b.min_cell == (3.30, "C1")
    assert b.cells == tuple(cells)
    assert b.remaining_ah == pytest.approx(168.0)
    assert b.consumed_ah == pytest.approx(-112.0)
    assert b.bms_ccl == 100.0


def test_lynx_without_cells_takes_part_with_what_it_has() -> None:
    b = read_battery("svc", "Lynx", lynx())
    assert isinstance(b, Battery)
    assert b.installed_ah == 200.0  # /Capacity is the installed capacity without /InstalledCapacity
    assert b.remaining_ah == pytest.approx(167.02)
    assert b.cells == () and b.min_cell is None and b.max_cell is None
    assert b.cell_sum == pytest.approx(52.42)  # no /Voltages/Sum: the voltage, never 0
    assert b.temperature is None


def test_missing_optional_paths_are_derived() -> None:
    values = {
        "/Dc/0/Voltage": 52.0,
        "/Dc/0/Current": -10.0,
        "/Soc": 50.0,
        "/InstalledCapacity": 100.0,
    }
    b = read_battery("svc", "bare", values)
    assert isinstance(b, Battery)
    assert b.power == pytest.approx(-520.0)
    assert b.remaining_ah == pytest.approx(50.0)
    assert b.consumed_ah == pytest.approx(-50.0)
    assert b.allow_charge and b.allow_discharge


def test_missing_voltage_falls_back_to_the_cells_with_a_fault() -> None:
    values = pack()
    values["/Dc/0/Voltage"] = None
    b = read_battery("svc", "P1", values)
    assert isinstance(b, Battery)
    assert b.voltage == pytest.approx(16 * 3.30)
    assert [(f.path, f.problem) for f in b.faults] == [("/Dc/0/Voltage", "missing")]


def test_missing_soc_leaves_the_pack_in_with_a_fault() -> None:
    values = pack()
    values["/Soc"] = None
    b = read_battery("svc", "P1", values)
    assert isinstance(b, Battery) and b.soc is None
    assert [f.path for f in b.faults] == ["/Soc"]


def test_no_current_ever_is_invalid_but_keeps_flags_and_cells() -> None:
    values = pack([3.30] * 15 + [3.55])
    values["/Dc/0/Current"] = None
    values["/Io/AllowToCharge"] = 0
    result = read_battery("svc", "P1", values)
    assert isinstance(result, Invalid)
    assert "current" in result.reason
    assert result.allow_charge is False
    assert result.max_cell == (3.55, "C16")


def test_no_capacity_at_all_is_invalid() -> None:
    values = pack()
    values["/InstalledCapacity"] = None
    values["/Capacity"] = None
    result = read_battery("svc", "P1", values)
    assert isinstance(result, Invalid)
    assert "capacity" in result.reason


@pytest.mark.parametrize(
    ("path", "bad"),
    [
        ("/Dc/0/Voltage", math.nan),
        ("/Dc/0/Current", math.inf),
        ("/Soc", "83.5"),
        ("/Soc", 140.0),
        ("/Soc", True),
        ("/Dc/0/Temperature", -300.0),
        ("/Voltages/Cell3", 0.0),
        ("/Voltages/Cell3", "3.3"),
        ("/Info/MaxChargeCurrent", -5.0),
        ("/Alarms/HighCellVoltage", 7),
        ("/InstalledCapacity", 0.0),
    ],
)
def test_a_bad_value_is_a_fault_of_its_path_held_at_the_last_good_value(
    path: str, bad: object
) -> None:
    good = read_battery("svc", "P1", pack())
    assert isinstance(good, Battery)
    values = pack()
    values[path] = bad
    result = read_battery("svc", "P1", values, good)
    assert isinstance(result, Battery), result
    assert [f.path for f in result.faults] == [path]
    assert result.voltage == good.voltage and result.current == good.current
    assert result.cells == good.cells and result.bms_ccl == good.bms_ccl
    if path.startswith("/Alarms/"):
        assert result.alarms["HighCellVoltage"] == 2  # garbage is taken at its worst


def test_path_table_is_explicit() -> None:
    required = {rule.path for rule in PATHS if rule.required}
    assert required == {"/Dc/0/Voltage", "/Dc/0/Current", "/Soc"}  # a fault when missing
    assert all(rule.note for rule in PATHS)


def test_unique_names_fall_back_and_number_duplicates() -> None:
    names = unique_names(
        [
            ("com.victronenergy.battery.ttyUSB0", ""),
            ("com.victronenergy.battery.ttyUSB1", None),
            ("com.victronenergy.battery.ttyUSB2", "Pack"),
            ("com.victronenergy.battery.ttyUSB3", "Pack"),
            ("com.victronenergy.battery.ttyUSB4", 12345),
        ]
    )
    assert names == {
        "com.victronenergy.battery.ttyUSB0": "ttyUSB0",
        "com.victronenergy.battery.ttyUSB1": "ttyUSB1",
        "com.victronenergy.battery.ttyUSB2": "Pack",
        "com.victronenergy.battery.ttyUSB3": "Pack#2",
        "com.victronenergy.battery.ttyUSB4": "12345",
    }
