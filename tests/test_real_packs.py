"""aggbatt against serialbattery as it is released (issue "no pack charged through unseen").

Each test drives the core with what the double of the released driver publishes
(:mod:`aggbatt.sim.serialbattery`, docs/serialbattery.md) and checks aggbatt's answer; the
numbers in the names of the sections are the points of the issue.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from aggbatt.config import Config, validate_config
from aggbatt.core.battery import Battery, Invalid, Offline
from aggbatt.core.engine import CycleResult, EngineState, forget, initial_state, run_cycle
from aggbatt.core.limits import Cause, ChargeMode
from aggbatt.core.safety import Activity
from aggbatt.core.selection import select_batteries
from aggbatt.core.stored import State
from aggbatt.sim.battery import even_pack
from aggbatt.sim.replay import load_system
from aggbatt.sim.serialbattery import Board, DriverConfig, SerialBatteryPack

WALL = 1_780_000_000.0
CONFIG = validate_config({"batteries": {"expected": 2}})
BALANCED = State(last_balancing=WALL - 3600.0)
S_RECORDING = Path(__file__).parent / "fixtures" / "recordings" / "s"


class Bank:
    """Two packs with their drivers, and aggbatt's core reading them as the daemon does."""

    def __init__(self, config: Config = CONFIG, **driver: Any) -> None:
        self.config = config
        self.packs = [
            SerialBatteryPack(
                even_pack(f"ttyUSB{i}", soc=0.6), Board(), DriverConfig(**driver),
                port=f"ttyUSB{i}", instance=i + 1, serial=f"JK{i}",
            )
            for i in range(2)
        ]  # fmt: skip
        self.state: EngineState = initial_state(BALANCED)
        self.t = 0.0

    def step(self, seconds: float = 1.0, every: float = 1.0) -> CycleResult:
        """Advance the packs and run a cycle every ``every`` seconds; the last result."""
        end = self.t + seconds
        result: CycleResult | None = None
        while self.t < end:
            self.t += every
            for p in self.packs:
                p.step(self.t)
            result = self.cycle()
        assert result is not None
        return result

    def cycle(self, at: float | None = None, unmoved: bool = False) -> CycleResult:
        """One cycle now (or ``at``); ``unmoved``: no value moved since the start."""
        t = self.t if at is None else at
        snaps = {p.service: v for p in self.packs if (v := p.values(self.t)) is not None}
        names = {k: v.get("/Serial") for k, v in snaps.items()}
        still = {k: Activity(last_change=0.0, last_vital_change=0.0) for k in snaps}
        result = run_cycle(
            snaps, names, self.config, self.state, now_mono=t, now_wall=WALL + t, month=5,
            activity=still if unmoved else None,
        )  # fmt: skip
        self.state = result.state
        return result


def names(result: CycleResult) -> list[str]:
    return [b.name for b in result.aggregate.batteries]


# --- 1: /State 14 is standby, not "switched out" ------------------------------------------


def test_1_a_pack_in_standby_stays_in_the_bank_and_its_flags_vote() -> None:
    """At -12 °C serialbattery publishes /State 14 with both flags 0 while its FETs conduct:
    the pack stays in the bank, its block stops both directions, its temperature counts."""
    bank = Bank()
    bank.step()
    bank.packs[1].pack.temperature_c = -12.0
    result = bank.step()
    standby = bank.packs[1].values(bank.t)
    assert standby is not None and standby["/State"] == 14
    assert names(result) == ["JK0", "JK1"]
    assert result.limits.ccl.value == 0.0 and result.limits.dcl.value == 0.0
    assert result.aggregate.min_temp is not None and result.aggregate.min_temp.value == -12.0


def test_1_a_pack_whose_bms_opened_both_fets_carries_nothing_and_blocks_nobody() -> None:
    """What rule 12 is for: both FETs open (its reasons name "BMS" both ways)."""
    bank = Bank()
    bank.step()
    board = bank.packs[1].board
    board.charge_off = board.discharge_off = True
    result = bank.step()
    assert names(result) == ["JK0"]
    out = result.aggregate.invalid[0]
    assert out.kind is Offline.NOT_RUNNING and "both FETs open" in out.reason
    assert result.limits.dcl.value > 0.0  # the other pack runs on


# --- 2: a lost BMS link is lost at once, not merged for 20 minutes -------------------------


def test_2_a_lost_bms_link_stops_charging_at_once_and_discharging_goes_on_at_the_share() -> None:
    bank = Bank()
    full = bank.step()
    assert full.limits.ccl.value > 0.0
    bank.packs[1].board.link_up = False
    result = bank.step(11.0)  # serialbattery sets V, I and P to None after 10 s
    lost = result.aggregate.invalid
    assert [(r.name, r.kind) for r in lost] == [("JK1", Offline.LOST)]
    assert names(result) == ["JK0"]
    assert result.limits.ccl.value == 0.0 and result.limits.ccl.cause is Cause.PACK_LOST
    assert "JK1" in result.limits.ccl.reason and "aggbatt forget" in result.limits.ccl.reason
    assert result.limits.mode is ChargeMode.PACK_LOST
    assert 0.0 < result.limits.dcl.value <= full.limits.dcl.value / 2 + 1e-6
    assert result.limits.feed_in_off
    # its last cells still bound the bank (the cut), and it stays lost while its driver waits
    assert result.aggregate.max_cell is not None
    later = bank.step(300.0, every=10.0)
    assert later.limits.ccl.value == 0.0
    bank.packs[1].board.link_up = True
    back = bank.step(2.0)
    assert names(back) == ["JK0", "JK1"] and back.limits.ccl.value > 0.0


def test_2_ticking_paths_are_no_sign_of_life_while_current_flows() -> None:
    """A live driver ticks /History/TimeSinceLastFullCharge and /ConnectionInformation every
    poll; only measurements say the BMS behind it is alive (rule 10)."""
    from aggbatt.core.safety import is_measurement

    assert not is_measurement("/History/TimeSinceLastFullCharge")
    assert not is_measurement("/ConnectionInformation")
    assert is_measurement("/Dc/0/Voltage") and is_measurement("/Cell/3/Volts")
    bank = Bank()
    for p in bank.packs:
        p.pack.current_a = 20.0
    bank.step()
    result = bank.cycle(at=100.0, unmoved=True)
    assert {r.kind for r in result.aggregate.invalid} == {Offline.FROZEN}
    assert result.limits.ccl.value == 0.0  # frozen data is unseen: charging stops


def test_2_at_rest_a_quiet_pack_is_not_frozen() -> None:
    """No current anywhere: unchanged values are a quiet bank (a real BMS on 10 mA steps may not
    move for minutes); freezing it would hold it at rest for good."""
    bank = Bank()
    bank.step()
    result = bank.cycle(at=3600.0, unmoved=True)
    assert names(result) == ["JK0", "JK1"]


# --- 3: a driver that exits leaves its pack wired in: it stays unseen -------------------------


def test_3_a_pack_whose_driver_exited_holds_charging_until_it_is_back_or_forgotten() -> None:
    bank = Bank(block_on_disconnect=True)
    bank.step()
    bank.packs[1].board.link_up = False
    result = bank.step(70.0)  # BLOCK_ON_DISCONNECT: the driver exits after 60 s
    assert not bank.packs[1].on_bus
    assert [(r.name, r.kind) for r in result.aggregate.invalid] == [("JK1", Offline.GONE)]
    result = bank.step(3600.0, every=30.0)  # an hour later: still not released
    assert result.limits.ccl.value == 0.0 and result.limits.ccl.cause is Cause.PACK_LOST
    assert result.limits.dcl.value > 0.0
    on_bus = [p.service for p in bank.packs if p.on_bus]
    state, done, text = forget(bank.state, "JK1", on_bus)
    assert done and "ttyUSB1" in text
    bank.state = state
    forgotten = bank.step(1.0)
    assert forgotten.limits.ccl.value > 0.0 and forgotten.aggregate.invalid == ()
    # a pack on the bus is never forgotten
    _, done, text = forget(bank.state, "JK0", on_bus)
    assert not done and "on the bus" in text


def test_3_an_option_lets_packs_with_hardware_protection_charge_at_their_share() -> None:
    config = validate_config({"batteries": {"expected": 2, "lost_pack_charge_after": 600.0}})
    bank = Bank(config)
    bank.step()
    bank.packs[1].pack.current_a = 0.0
    bank.packs[1].board.link_up = False
    assert bank.step(70.0).limits.ccl.value == 0.0
    later = bank.step(600.0, every=30.0)
    assert later.limits.ccl.value > 0.0 and later.limits.ccl.cause is Cause.PACK_MISSING


def test_3_a_pack_missing_after_a_restart_is_still_the_banks() -> None:
    from aggbatt.core.engine import to_state

    bank = Bank()
    bank.step()
    stored = to_state(bank.state, None)
    bank.state = initial_state(stored)
    bank.packs[1].kill(bank.t)
    bank.packs[1].board.link_up = False  # and its BMS does not answer: no restart
    result = bank.step(60.0, every=10.0)
    assert result.limits.ccl.value == 0.0 and "JK1" in result.limits.ccl.reason


# --- 4: identity is who a pack is, not its tty -------------------------------------------------


def test_4_a_usb_replug_that_renames_the_port_is_the_same_pack() -> None:
    bank = Bank()
    full = bank.step()
    bank.packs[1].replug("ttyUSB4", bank.t)
    result = bank.step(20.0)  # daemontools restarts the driver under its new name
    keys = [b.key for b in result.aggregate.batteries]
    assert keys == ["com.victronenergy.battery.ttyUSB0", "com.victronenergy.battery.ttyUSB4"]
    assert set(bank.state.known) == set(keys)  # no phantom left behind
    assert result.aggregate.invalid == () and result.aggregate.alarms.get("BmsCable", 0) == 0
    assert result.limits.ccl.value == pytest.approx(full.limits.ccl.value)
    assert bank.step().recognised == ()  # nothing more to recognise once it is known


def test_4_identical_jbd_packs_share_a_serial_and_are_still_recognised() -> None:
    bank = Bank()
    for i, p in enumerate(bank.packs):
        p.bms, p.serial = "LltJbd", None
        p.driver = p.new_driver(0.0)
        p.instance = i + 1
    bank.step()
    serials = {v["/Serial"] for p in bank.packs if (v := p.values(bank.t)) is not None}
    assert serials == {"JBD_SP16S020_280Ah"}  # serialbattery's <hardware>_<capacity>Ah
    bank.packs[0].replug("ttyUSB2", bank.t)
    bank.packs[1].replug("ttyUSB3", bank.t)
    seen: list[str] = []
    for _ in range(20):
        seen += [r.text for r in bank.step().recognised]
    assert len(seen) == 2 and all("same serial, capacity and cells" in t for t in seen)
    assert set(bank.state.known) == {
        "com.victronenergy.battery.ttyUSB2",
        "com.victronenergy.battery.ttyUSB3",
    }


# --- 5: defaults that work beside serialbattery's --------------------------------------------


def test_5_the_default_cut_acts_before_serialbatterys_charge_current_reaches_0() -> None:
    """Its CCL reaches 0 at 3.50 V, and its AllowToCharge 0 then blocks the whole bank until
    the cell is back at about 3.444 V; aggbatt's default cut starts at 3.45 V."""
    bank = Bank()
    pack = bank.packs[0].pack
    pack.offset_v = [0.0] * 15 + [3.47 - pack.cell_voltages()[15]]
    result = bank.step()
    assert result.limits.mode is ChargeMode.CVL_CUT
    assert result.aggregate.allow_charge  # the pack itself still allows charging


def test_5_a_pack_in_float_does_not_cut_own_modes_charge_voltage() -> None:
    """serialbattery's float (3.375 V a cell after 15 min at 3.45 V) is its charge stage, not a
    protection: own mode keeps the month's voltage, capped at the pack's bulk voltage."""
    bank = Bank()
    bank.step()
    first, second = (bank.packs[i].values(bank.t) for i in (0, 1))
    assert first is not None and second is not None
    floating = {**second, "/Info/ChargeMode": "Float │ Linear Mode", "/Info/MaxChargeVoltage": 54.0}
    snaps = {bank.packs[0].service: first, bank.packs[1].service: floating}
    t = bank.t
    result = run_cycle(snaps, {}, CONFIG, bank.state, now_mono=t, now_wall=WALL + t, month=5)
    assert result.limits.cvl.value == pytest.approx(16 * 3.40)  # May's voltage, not 54.0 V
    # a pack that lowered its CVL for a cell still wins
    ovp = {**floating, "/Info/ChargeMode": "Bulk (Cell OVP) │ Linear Mode"}
    snaps[bank.packs[1].service] = ovp
    result = run_cycle(snaps, {}, CONFIG, bank.state, now_mono=t, now_wall=WALL + t, month=5)
    assert result.limits.cvl.value == pytest.approx(54.0)


def test_5_a_soc_reset_that_can_never_complete_is_reported() -> None:
    bank = Bank(soc_reset_after_days=30.0)
    result = bank.step()
    faults = [f.text for fs in result.aggregate.faults.values() for f in fs]
    assert any("SOC_RESET_AFTER_DAYS" in f for f in faults), faults
    assert result.aggregate.alarms["InternalFailure"] == 1
    assert result.limits.cvl.value <= 16 * CONFIG.control.own.max_cell_voltage + 1e-6


# --- 6: error state, other cell paths -----------------------------------------------------------


def test_6_an_invalid_driver_config_is_a_warning_naming_the_pack() -> None:
    bank = Bank(valid=False)
    result = bank.step()
    assert names(result) == ["JK0", "JK1"]
    faults = result.aggregate.faults["com.victronenergy.battery.ttyUSB0"]
    assert [f.path for f in faults] == ["/State"]
    assert "ErrorCode 119: its config.ini is invalid" in faults[0].text
    assert result.aggregate.alarms["InternalFailure"] == 1


def test_6_cells_published_as_cell_n_volts_are_read() -> None:
    bank = Bank(cell_format=2)
    pack = bank.packs[0].pack
    pack.offset_v = [0.0] * 15 + [3.47 - pack.cell_voltages()[15]]
    bank.packs[0].config = replace(bank.packs[0].config)
    result = bank.step()
    first = result.aggregate.batteries[0]
    assert isinstance(first, Battery) and len(first.cells) == 16
    assert result.limits.mode is ChargeMode.CVL_CUT  # the cut from the cells themselves
    assert result.aggregate.faults == {}


def test_6_no_cell_paths_at_all_is_a_fault_not_silence() -> None:
    bank = Bank(cell_format=0)
    result = bank.step()
    faults = [f.text for fs in result.aggregate.faults.values() for f in fs]
    assert any("no cell voltages published" in f for f in faults), faults


# --- 7: found by its product id ---------------------------------------------------------------


def test_7_a_jbd_pack_is_found_by_its_product_id() -> None:
    bank = Bank()
    for p in bank.packs:
        p.bms, p.serial = "LltJbd", None
        p.driver = p.new_driver(0.0)
    bank.step()
    services = {p.service: v for p in bank.packs if (v := p.values(bank.t)) is not None}
    assert all(str(v["/ProductName"]).startswith("JBD-") for v in services.values())
    found = select_batteries(services, Config(), "com.victronenergy.battery.aggbatt")
    assert set(found) == set(services)


# --- 8: real systems: modules in series, a v3.0 curve -------------------------------------------


def test_8_two_lynx_smart_bms_ng_of_4_cell_modules_make_an_8_cell_bank() -> None:
    """Victron's recording "s" (venus-docker, MIT): a 24 V bank; each BMS reports the 4 cells
    of a battery module, and its 26.4 V fits 8 cells in series."""
    recordings = {r.name: r for r in load_system(S_RECORDING)}
    bmses = {n: r.state_at(0) for n, r in recordings.items() if "vecan0" in n}
    assert len(bmses) == 2
    config = validate_config(
        {
            "batteries": {
                "cells_per_battery": 8, "expected": 2, "product_ids": [],
                "product_names": ["Lynx Smart BMS"], "name_path": "/CustomName",
            },
            "control": {"mode": "passthrough"},
        }
    )  # fmt: skip
    result = run_cycle(
        bmses, {n: v.get("/CustomName") for n, v in bmses.items()}, config,
        initial_state(State()), now_mono=0.0, now_wall=WALL, month=5,
    )  # fmt: skip
    assert len(result.aggregate.batteries) == 2, result.aggregate.invalid
    notes = [n for b in result.aggregate.batteries for n in b.notes]
    assert notes and all("2 modules of 4 in series" in n for n in notes)
    assert result.limits.ccl.value > 0.0
    # a pack with cell paths of another count is still refused (rule 5)
    other: dict[str, Any] = {f"/Voltages/Cell{i}": 3.3 for i in range(1, 5)}
    odd = {**next(iter(bmses.values())), **other}
    result = run_cycle(
        {"odd": odd}, {}, config, initial_state(State()), now_mono=0.0, now_wall=WALL, month=5
    )
    assert isinstance(result.aggregate.invalid[0], Invalid)
    assert result.aggregate.invalid[0].kind is Offline.MISMATCH
