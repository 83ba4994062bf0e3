"""The serialbattery double against the released driver (v2.0.20250729): what it publishes,
and when. Each test names the driver's behaviour it pins down (docs/serialbattery.md); the
numbers are the ones measured on the real driver where the table says so."""

from __future__ import annotations

import pytest

from aggbatt.sim.battery import even_pack
from aggbatt.sim.serialbattery import (
    PRODUCT_ID,
    Board,
    DriverConfig,
    SerialBatteryPack,
)


def make(soc: float = 0.6, temperature: float = 20.0, **config: object) -> SerialBatteryPack:
    pack = even_pack("ttyUSB0", 16, 280.0, soc, temperature)
    return SerialBatteryPack(pack, Board(), DriverConfig(**config))  # type: ignore[arg-type]


def run(sbp: SerialBatteryPack, start: float, seconds: float, step: float = 1.0) -> float:
    """Poll for ``seconds`` from ``start``; returns the time reached."""
    t = start
    while t < start + seconds:
        t += step
        sbp.step(t)
    return t


def values(sbp: SerialBatteryPack, now: float) -> dict[str, object]:
    found = sbp.values(now)
    assert found is not None
    return found


def test_it_registers_as_setup_vedbus_does_and_runs_after_the_first_poll() -> None:
    pack = even_pack("ttyUSB0")
    sbp = SerialBatteryPack(pack)
    sbp._next_poll = 1.0  # registered now: the first poll one interval later
    first = values(sbp, 0.0)
    assert first["/State"] == 0 and first["/Io/AllowToCharge"] == 0
    assert first["/Dc/0/Voltage"] is None and first["/Soc"] is None
    assert first["/ProductId"] == PRODUCT_ID and first["/ProductName"] == "SerialBattery(Jkbms)"
    sbp.step(1.0)
    polled = values(sbp, 1.0)
    assert polled["/State"] == 9 and polled["/Io/AllowToCharge"] == 1
    assert polled["/Info/MaxChargeCurrent"] == 50.0  # MAX_BATTERY_CHARGE_CURRENT's default
    assert polled["/Info/MaxDischargeCurrent"] == 60.0
    assert polled["/Info/MaxChargeVoltage"] == pytest.approx(55.2)  # 3.45 V a cell
    assert polled["/Info/ChargeMode"] == "Bulk │ Linear Mode"
    assert polled["/System/MinTemperatureCellId"] == "Temp 1"
    assert set(polled) == set(first)  # no path is ever added or removed


@pytest.mark.parametrize(
    ("cell", "ccl", "allowed"),
    [(3.40, 12.5, 1), (3.425, 2.5, 1), (3.45, 0.25, 1), (3.475, 0.125, 1), (3.50, 0.0, 0)],
)
def test_its_charge_current_over_the_highest_cell_as_measured(
    cell: float, ccl: float, allowed: int
) -> None:
    """Measured on the real driver with a simulated JBD (facts sheet): CCL and AllowToCharge."""
    sbp = make()
    sbp.pack.offset_v = [0.0] * 15 + [cell - sbp.pack.cell_voltages()[15]]
    sbp.step(0.0)
    v = values(sbp, 0.0)
    assert v["/Info/MaxChargeCurrent"] == pytest.approx(ccl, abs=0.01)
    assert v["/Io/AllowToCharge"] == allowed
    assert v["/State"] == 9  # one direction is still allowed
    if not allowed:
        assert v["/Info/ChargeLimitation"] == "Cell Voltage"  # a soft 0: the FET is closed
        assert sbp.pack.charge_fet


def test_cold_is_standby_with_its_fets_closed() -> None:
    """-12 °C: CCL and DCL 0 by its temperature curves, both flags 0, /State 14 (the measured
    driver: after 0.9 s, ChargeLimitation "Temp"); back at 20 °C it runs again."""
    sbp = make(temperature=-12.0)
    sbp.step(0.0)
    v = values(sbp, 0.0)
    assert v["/State"] == 14
    assert (v["/Io/AllowToCharge"], v["/Io/AllowToDischarge"]) == (0, 0)
    assert v["/Info/ChargeLimitation"] == "Temp" and v["/Info/DischargeLimitation"] == "Temp"
    assert sbp.pack.charge_fet and sbp.pack.discharge_fet  # the hardware still conducts
    sbp.pack.temperature_c = 20.0
    sbp.step(1.0)
    v = values(sbp, 1.0)
    assert v["/State"] == 9 and v["/Info/MaxChargeCurrent"] == 50.0


def test_an_open_fet_names_bms_as_the_reason() -> None:
    sbp = make()
    sbp.board.charge_off = True
    sbp.step(0.0)
    v = values(sbp, 0.0)
    assert v["/Io/AllowToCharge"] == 0 and v["/Info/ChargeLimitation"] == "BMS"


def test_its_limits_hold_for_60_s_unless_they_move_a_third_and_leave_0_above_1_5_percent() -> None:
    sbp = make()
    sbp.step(0.0)
    sbp.pack.temperature_c = 42.0  # its hotter sensor 42.5 °C: 40 °C 1.0 -> 45 °C 0.5, 0.75
    sbp.step(1.0)
    assert values(sbp, 1.0)["/Info/MaxChargeCurrent"] == 50.0  # a quarter down: held
    t = run(sbp, 1.0, 59.0)
    assert values(sbp, t)["/Info/MaxChargeCurrent"] == pytest.approx(37.5)
    sbp.pack.temperature_c = 0.0  # to 0: at once
    sbp.step(t + 1)
    assert values(sbp, t + 1)["/Info/MaxChargeCurrent"] == 0.0
    sbp.pack.temperature_c = 0.1  # 0.625 A: below 1.5 % of 50 A, it stays at 0
    t = run(sbp, t + 1, 61.0)
    v = values(sbp, t)
    assert v["/Info/MaxChargeCurrent"] == 0.0 and str(v["/Info/ChargeLimitation"]).endswith(" *")


def test_a_lost_link_sets_only_voltage_current_and_power_to_none_then_it_exits() -> None:
    """After 10 s without its BMS (measured: 10.7 s) V/I/P go None, NrOfModulesOnline 0,
    BmsCable 1; cells, SoC, limits and flags keep their last values; ConnectionInformation
    ticks. With cells outside 3.25-3.35 V the driver exits after 60 s, else after 20 min."""
    sbp = make(soc=0.6)  # cells at 3.30 V: "good"
    sbp.step(0.0)
    before = values(sbp, 0.0)
    sbp.board.link_up = False
    t = run(sbp, 0.0, 9.0)
    assert values(sbp, t)["/Dc/0/Voltage"] is not None
    t = run(sbp, t, 2.0)
    lost = values(sbp, t)
    assert lost["/Dc/0/Voltage"] is None and lost["/Dc/0/Current"] is None
    assert lost["/Dc/0/Power"] is None
    assert lost["/System/NrOfModulesOnline"] == 0 and lost["/Alarms/BmsCable"] == 1
    for path in ("/Voltages/Cell1", "/Soc", "/Info/MaxChargeCurrent", "/Io/AllowToCharge"):
        assert lost[path] == before[path], path
    assert lost["/State"] == 9
    ticking = values(sbp, run(sbp, t, 1.0))["/ConnectionInformation"]
    assert ticking != lost["/ConnectionInformation"]
    t = run(sbp, t, 120.0)
    assert sbp.on_bus  # good cells: it waits 20 minutes
    t = run(sbp, t, 20 * 60.0, step=5.0)
    assert not sbp.on_bus and sbp.exits == 1


def test_block_on_disconnect_publishes_both_flags_0_and_exits_after_60_s() -> None:
    sbp = make(block_on_disconnect=True)
    sbp.step(0.0)
    sbp.board.link_up = False
    t = run(sbp, 0.0, 12.0)
    v = values(sbp, t)
    assert (v["/Io/AllowToCharge"], v["/Io/AllowToDischarge"]) == (0, 0)
    assert v["/Alarms/BmsCable"] == 2 and v["/State"] == 9
    assert v["/Info/MaxChargeCurrent"] == 50.0  # not recomputed while the BMS is silent
    t = run(sbp, t, 50.0)
    assert not sbp.on_bus
    gone = t
    sbp.board.link_up = True  # daemontools starts it again 16 s later; it probes the BMS
    while not sbp.on_bus:
        t = run(sbp, t, 1.0)
    assert 16.0 <= t - gone <= 18.0
    assert values(sbp, t)["/State"] == 0  # registered; its first poll one interval later
    t = run(sbp, t, 1.0)
    assert values(sbp, t)["/State"] == 9


def test_float_after_900_s_at_its_maximum_and_back_to_bulk() -> None:
    """CVCM: 15 min at 3.45 V a cell with the cells within 10 mV, then the CVL ramps down at
    1 mV/s to 3.375 V a cell ("Float Transition", then "Float")."""
    sbp = make(soc=0.985)
    pack = sbp.pack
    for cell in pack.cells:
        cell.soc = 0.985  # all alike: within 10 mV
    pack.offset_v = [3.451 - v for v in pack.cell_voltages()]
    sbp.step(0.0)
    assert values(sbp, 0.0)["/Info/ChargeMode"] == "Absorption │ Linear Mode"
    t = run(sbp, 0.0, 905.0, step=5.0)
    v = values(sbp, t)
    assert str(v["/Info/ChargeMode"]).startswith("Float Transition")
    assert v["/History/TimeSinceLastFullCharge"] == 0
    t = run(sbp, t, 600.0, step=5.0)  # 1 mV per second on the pack voltage
    assert values(sbp, t)["/Info/MaxChargeVoltage"] == pytest.approx(55.2 - 0.6, abs=0.02)
    t = run(sbp, t, 700.0, step=5.0)
    v = values(sbp, t)
    assert v["/Info/ChargeMode"] == "Float │ Linear Mode"
    assert v["/Info/MaxChargeVoltage"] == pytest.approx(54.0)  # 3.375 V a cell
    assert v["/Info/MaxChargeCellVoltage"] == pytest.approx(3.45)  # its bulk voltage
    assert v["/History/TimeSinceLastFullCharge"] == pytest.approx(1300, abs=10)  # ticks


def test_a_cell_over_its_maximum_cuts_its_cvl_and_the_ovp_mark_stays() -> None:
    """The P-controller: CVL = the cells' sum less their over-voltage. The driver never clears
    its limit time, so "(Cell OVP)" stays in its charge mode until it restarts."""
    sbp = make()
    sbp.pack.offset_v = [0.0] * 15 + [3.50 - sbp.pack.cell_voltages()[15]]
    sbp.step(0.0)
    v = values(sbp, 0.0)
    cells = [float(v[f"/Voltages/Cell{i}"]) for i in range(1, 17)]  # type: ignore[arg-type]
    assert v["/Info/MaxChargeVoltage"] == pytest.approx(sum(cells) - 0.05, abs=0.01)
    assert "(Cell OVP)" in str(v["/Info/ChargeMode"])
    sbp.pack.offset_v = []
    t = run(sbp, 0.0, 400.0, step=10.0)  # 60 s hold, then 1 mV/s back to the maximum
    v = values(sbp, t)
    assert v["/Info/MaxChargeVoltage"] == pytest.approx(55.2)
    assert "(Cell OVP)" in str(v["/Info/ChargeMode"])


def test_a_soc_reset_charges_to_3_65_and_silences_its_high_voltage_alarms() -> None:
    sbp = make(soc_reset_after_days=10.0)
    sbp.pack.offset_v = [0.0] * 15 + [3.62 - sbp.pack.cell_voltages()[15]]  # over 3.60: alarm
    sbp.step(0.0)
    v = values(sbp, 0.0)
    assert v["/Info/MaxChargeVoltage"] == pytest.approx(58.4)
    assert v["/Info/MaxChargeCellVoltage"] == pytest.approx(3.65)
    assert "& SoC Reset" in str(v["/Info/ChargeMode"])
    assert v["/Alarms/HighCellVoltage"] == 0  # silenced until the reset completes (+30 min)


def test_an_invalid_config_is_state_10_with_error_119_for_good() -> None:
    sbp = make(valid=False)
    run(sbp, 0.0, 3.0)
    v = values(sbp, 3.0)
    assert v["/State"] == 10 and v["/ErrorCode"] == 119
    assert v["/Io/AllowToCharge"] == 1  # the state blocks nothing by itself


def test_cell_data_format_2_publishes_cells_under_cell_n_volts() -> None:
    sbp = make(cell_format=2)
    sbp.step(0.0)
    v = values(sbp, 0.0)
    assert "/Voltages/Cell1" not in v and v["/Cell/1/Volts"] is not None
    assert "/Cell/Sum" in v


def test_a_5_s_bms_is_polled_every_5_s() -> None:
    sbp = make(poll_s=5.0)
    sbp.step(0.0)
    polls = 0
    for t in range(1, 21):
        before = sbp._next_poll
        sbp.step(float(t))
        polls += sbp._next_poll != before
    assert polls == 4


def test_jbd_publishes_its_hardware_name_and_a_serial_of_hardware_and_capacity() -> None:
    a = SerialBatteryPack(even_pack("ttyUSB0"), bms="LltJbd", port="ttyUSB0")
    b = SerialBatteryPack(even_pack("ttyUSB1"), bms="LltJbd", port="ttyUSB1")
    va, vb = values(a, 0.0), values(b, 0.0)
    assert str(va["/ProductName"]).startswith("JBD-") and va["/ProductId"] == PRODUCT_ID
    assert va["/Serial"] == vb["/Serial"] == "JBD_SP16S020_280Ah"  # identical packs: the same
