"""The closed-loop bank simulator: its physics, and every scenario's invariants for aggbatt.

CI runs each scenario at its short length (``fast_days``) with aggbatt's real core in the
loop; ``./dev simulate`` runs them in full with pictures (docs/safety.md).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aggbatt.sim.bank.cells import Bank, make_pack
from aggbatt.sim.bank.controllers import ReferenceController
from aggbatt.sim.bank.report import table, write_report
from aggbatt.sim.bank.scenarios import BY_NAME, SCENARIOS, aggbatt_config, make_bank


def test_a_bank_in_one_line_shares_current_by_resistance() -> None:
    bank, bmses = make_bank(2, resistance=(2.0, 1.0))
    assert len(bank.packs) == 2 and len(bmses) == 2 and len(bank.packs[0].cells) == 16
    twins = Bank([make_pack("a", seed=1, resistance_factor=2.0), make_pack("b", seed=1)])
    twins.share(90.0)  # the same cells, one pack of twice the resistance
    high_r, low_r = (p.current_a for p in twins.packs)
    assert high_r + low_r == pytest.approx(90.0)
    assert low_r == pytest.approx(2 * high_r)


def test_a_pack_whose_fet_is_open_carries_nothing() -> None:
    bank = Bank([make_pack("a", seed=1), make_pack("b", seed=2)])
    bank.packs[0].charge_fet = False
    bank.share(50.0)
    assert bank.packs[0].current_a == 0.0 and bank.packs[1].current_a == pytest.approx(50.0)
    bank.share(-50.0)  # discharging through the body diode is still possible
    assert bank.packs[0].current_a < 0.0


@pytest.mark.parametrize("name", [s.name for s in SCENARIOS])
def test_every_scenario_keeps_its_invariants_with_aggbatt(name: str) -> None:
    scenario = BY_NAME[name]
    result = scenario.run(scenario.aggbatt(), fast=True)
    failed = {n: c.detail for n, c in result.checks.items() if c.applies and not c.ok}
    assert failed == {}, failed
    assert result.feed_in_writes / result.days <= 4  # per episode, never per cycle


def test_the_reference_breaks_what_aggbatt_keeps() -> None:
    """The comparison has teeth: the reference's own mode overloads the low-resistance pack
    (no BMS limits) and leaves feed-in off after an episode (field notes §4.11)."""
    result = BY_NAME["unequal-resistance"].run(
        ReferenceController(cells=16, expected=2, max_charge_a=300.0, max_discharge_a=400.0),
        fast=True,
    )
    assert not result.checks["pack currents within their BMS limits"].ok
    assert not result.checks["feed-in restored after every episode"].ok


def test_the_report_has_the_verdicts_without_matplotlib(tmp_path: Path) -> None:
    scenario = BY_NAME["all-packs-lost"]
    results = [scenario.run(c, fast=True) for c in scenario.controllers()]
    text = table(results, {scenario.name: scenario.title})
    assert "All packs' BMS links lost at noon" in text and "pass / " in text
    report = write_report(results, {}, {}, tmp_path)
    assert report.read_text().startswith("# aggbatt simulate: verdicts")


def test_simulate_command_runs_a_scenario_and_says_where_the_report_is(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aggbatt", "simulate", "--fast", "cell-count-mismatch",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "cell-count-mismatch" in proc.stdout and "aggbatt" in proc.stdout
    assert (tmp_path / "report.md").exists()
    bad = subprocess.run(
        [sys.executable, "-m", "aggbatt", "simulate", "no-such"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode == 2 and "known:" in bad.stderr


@pytest.mark.parametrize("name", ["all-packs-lost", "restart-mid-cut"])
def test_the_real_daemon_on_a_bus_keeps_the_invariants_too(name: str) -> None:
    """The second mode: the shell in the loop (the monitor, the service read back with
    GetItems, the feed-in keeper writing a fake localsettings, a real restart)."""
    from aggbatt.sim.bank.onbus import BusController
    from aggbatt.sim.bank.scenarios import BUS_DAYS

    scenario = BY_NAME[name]
    controller = BusController(aggbatt_config(scenario.packs))
    try:
        days = BUS_DAYS + (0.1 if name == "restart-mid-cut" else 0.0)  # past the 14:00 restart
        result = scenario.run(controller, days=days)
    finally:
        controller.close()
    failed = {n: c.detail for n, c in result.checks.items() if c.applies and not c.ok}
    assert failed == {}, failed
    assert any("restarts" in line or "stops answering" in line for line in result.log)
