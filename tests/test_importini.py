"""import-ini: the reference's default, LFP and LTO configs import to valid configs that give the
same CVL/CCL/DCL as the reference's own formulas where the semantics did not change."""

from __future__ import annotations

import bisect
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aggbatt.config import CELL_WINDOWS, Config
from aggbatt.core.engine import initial_state, run_cycle
from aggbatt.core.stored import State
from aggbatt.importini import IniImportError, import_ini
from tests.packs import pack

REF = Path(__file__).parent / "fixtures" / "reference"
DEFAULTS = REF / "config.default.ini"
NOW = dt.datetime(2026, 4, 10, 12).timestamp()  # April: month voltage index 3


def reference_interpolate(x: float, xs: list[float], ys: list[float]) -> float:
    """The reference's _interpolate (ascending X, flat outside), written out independently."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_left(xs, x)
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - xs[i - 1]) / (xs[i] - xs[i - 1])


def reference_own(ini: dict[str, Any], packs: list[list[float]]) -> tuple[float, float, float]:
    """CVL, CCL, DCL of the reference's own mode for these cells (no balancing due)."""
    cells = ini["cells"]
    vmax, vmin, bal = ini["max"], ini["min"], ini["balancing"]
    # the one changed meaning: a month voltage the cut would make unreachable for a
    # balancing (above max - cell_diff_goal + 0.01) is lowered on import (rule 7)
    cvl = cells * min(ini["months"][3], round(vmax + 0.01 - 0.025, 4))
    if max(max(p) for p in packs) >= vmax:
        cvl = min(cvl, *(sum(p) - sum(v - vmax for v in p if v > vmax) for p in packs))
    charge_v = [vmin, vmin + 0.05, bal - 0.1, bal, vmax]
    discharge_v = [vmin, vmin + 0.1, vmin + 0.2]
    ccl = ini["ccl"] * reference_interpolate(
        max(max(p) for p in packs), charge_v, [0.2, 1, 1, 0.1, 0]
    )
    dcl = ini["dcl"] * reference_interpolate(min(min(p) for p in packs), discharge_v, [0, 0.05, 1])
    return cvl, ccl, dcl


def ours(config: Config, packs: list[list[float]]) -> tuple[float, float, float]:
    top = CELL_WINDOWS[config.batteries.chemistry][1]  # a BMS CVL that never caps ours
    snaps = {
        f"svc{i}": pack(p, ccl=1000.0, dcl=1000.0, cvl=top * len(p)) for i, p in enumerate(packs)
    }
    state = initial_state(State(last_balancing=NOW - 3600))  # balancing not due
    result = run_cycle(snaps, {}, config, state, now_mono=1.0, now_wall=NOW, month=4)
    limits = result.limits
    return limits.cvl.value, limits.ccl.value, limits.dcl.value


LFP = {
    "cells": 16,
    "max": 3.45,
    "min": 2.90,
    "balancing": 3.40,
    "ccl": 200,
    "dcl": 200,
    "months": [3.55, 3.50, 3.50, 3.45, 3.40, 3.40, 3.40, 3.40, 3.45, 3.50, 3.50, 3.55],
}
LTO = {
    "cells": 24,
    "max": 2.6,
    "min": 1.9,
    "balancing": 2.5,
    "ccl": 200,
    "dcl": 200,
    "months": [2.50, 2.45, 2.45, 2.40, 2.35, 2.35, 2.35, 2.35, 2.40, 2.45, 2.45, 2.50],
}
LFP_CASES = [
    [3.30] * 16,
    [3.30] * 15 + [3.42],
    [3.41] * 15 + [3.47],
    [2.95] * 16,
    [3.05] * 16,
    [3.32] * 14 + [3.36, 3.38],
]
LTO_CASES = [[2.30] * 24, [2.30] * 23 + [2.45], [2.50] * 23 + [2.62], [1.95] * 24, [2.05] * 24]


@pytest.mark.parametrize(
    ("ini", "reference", "cases"),
    [("config_LFP.ini", LFP, LFP_CASES), ("config_LTO.ini", LTO, LTO_CASES)],
)
def test_examples_import_and_decide_as_the_reference(
    ini: str, reference: dict[str, Any], cases: list[list[float]]
) -> None:
    _, config = import_ini(REF / ini, DEFAULTS)
    assert config.control.mode == "own" and config.soc.own
    assert config.batteries.expected == 2
    assert config.batteries.cells_per_battery == reference["cells"]
    assert config.current.source == "victron"
    for cells in cases:
        two = [cells, cells]
        expected = reference_own(reference, two)
        got = ours(config, two)
        assert got == pytest.approx(expected, abs=1e-6), (cells, got, expected)


def test_default_imports_as_pass_through_with_the_references_policies() -> None:
    text, config = import_ini(DEFAULTS)
    assert config.control.mode == "passthrough"
    assert config.control.passthrough.current_policy == "min_times_n"
    assert config.batteries.expected == 0  # -1 (unset) becomes "any", with a note
    assert "NR_OF_BATTERIES is -1 (unset)" in text
    assert "SEARCH_TRIALS dropped" in text
    snaps = {"a": pack(cvl=56.0, ccl=100.0, dcl=150.0), "b": pack(cvl=55.2, ccl=80.0, dcl=90.0)}
    result = run_cycle(
        snaps, {}, config, initial_state(State()), now_mono=1.0, now_wall=NOW, month=4
    )
    # reference: CVL = min, CCL/DCL = min x N
    assert result.limits.cvl.value == 55.2
    assert result.limits.ccl.value == 160.0 and result.limits.dcl.value == 180.0


def test_lto_options_whose_meaning_changed_are_commented() -> None:
    text, config = import_ini(REF / "config_LTO.ini", DEFAULTS)
    assert config.current.smartshunts == [278, "FrontShunt"]
    assert config.control.passthrough.cvl == "max_until_all_float"
    assert "the reference's code did the opposite" in text
    assert "capacity share" in text
    assert config.service.device_instance == 99
    # the TOML text itself is a valid config, equal to what was validated
    import tomllib

    from aggbatt.config import validate_config

    assert validate_config(tomllib.loads(text)) == config


def test_older_option_names() -> None:
    _, config = import_ini(REF / "config_v2_names.ini")
    assert config.batteries.expected == 3 and config.batteries.cells_per_battery == 16
    assert config.batteries.name_path == "/CustomName"
    assert config.current.invert_smartshunts
    assert config.control.own.charge_curve_voltages == [3.30, 3.40, 3.45]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[DEFAULT]\nNO_SUCH_OPTION = 1\n", "NO_SUCH_OPTION is not an option"),
        ("[DEFAULT]\nOWN_SOC = maybe\n", "OWN_SOC = 'maybe': expected True or False"),
        ("[DEFAULT]\nDCLOAD_SERVICE_NAME = com.example.load\n", "aggbatt always uses"),
        ("[DEFAULT]\nOWN_SOC_FULL_VOLTAGE = 55\n", "OWN_SOC_FULL_VOLTAGE = 55"),
        (
            "[DEFAULT]\nMAX_CHARGE_CURRENT = lots\n",
            "MAX_CHARGE_CURRENT = 'lots': expected a number",
        ),
        ("[DEFAULT]\nMAX_CELL_VOLTAGE = 55.2\n", "max_cell_voltage = 55.2"),
    ],
)
def test_values_it_cannot_map_are_refused_naming_them(
    tmp_path: Path, content: str, message: str
) -> None:
    ini = tmp_path / "config.ini"
    ini.write_text(content)
    with pytest.raises((IniImportError, ValueError)) as err:
        import_ini(ini)
    assert message in str(err.value)


def test_cli_imports_config_and_state(tmp_path: Path) -> None:
    folder = tmp_path / "dbus-aggregate-batteries"
    folder.mkdir()
    (folder / "config.ini").write_text((REF / "config_LFP.ini").read_text())
    (folder / "storedvalue_charge").write_text("321.5")
    (folder / "storedvalue_last_balancing").write_text("100")
    state_dir = tmp_path / "state"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "aggbatt",
            "import-ini",
            str(folder / "config.ini"),
            "--defaults",
            str(DEFAULTS),
            "--state-dir",
            str(state_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[control.own]" in proc.stdout
    stored = json.loads((state_dir / "state.json").read_text())
    assert stored["charge_ah"] == 321.5 and stored["last_balancing"] is not None
    bad = subprocess.run(
        [sys.executable, "-m", "aggbatt", "import-ini", str(tmp_path / "missing.ini")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "cannot read" in bad.stderr


def import_cli(folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aggbatt", "import-ini", str(folder / "config.ini"),
         "--defaults", str(DEFAULTS), *extra],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_after_import_temperature_is_off_as_in_the_reference(tmp_path: Path) -> None:
    """Before: an imported LTO bank stopped charging at 0 °C, which the reference never did."""
    text, config = import_ini(REF / "config_LTO.ini", DEFAULTS)
    assert config.temperature.enabled is False
    assert "the reference did not limit by temperature" in text
    assert config.batteries.chemistry == "LTO"
    # switched on, an LTO bank gets LTO's thresholds, not LFP's 0 °C
    data: dict[str, Any] = config.model_dump()
    data["temperature"] = {"enabled": True}
    from aggbatt.config import validate_config

    assert validate_config(data).temperature.charge_min == -20.0


def test_dropped_options_and_changed_meanings_are_said_on_stderr(tmp_path: Path) -> None:
    """Before: the notes were only comments in the TOML."""
    folder = tmp_path / "ref"
    folder.mkdir()
    ini = (REF / "config_LFP.ini").read_text()
    (folder / "config.ini").write_text(
        ini + "\nIGNORE_SMARTSHUNT_ABSENCE = True\nMULTI_KEYWORD = com.victronenergy.vebus.ttyS4\n"
    )
    proc = import_cli(folder)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stderr.splitlines() if line.startswith("note: ")]
    assert any("IGNORE_SMARTSHUNT_ABSENCE" in n and "BMS current" in n for n in notes), notes
    assert any("MULTI_KEYWORD" in n and "not supported" in n for n in notes), notes
    assert "ignore_smartshunt_absence = false" in proc.stdout  # the reference's meaning


def test_state_dir_keeps_what_is_usable_and_says_it_plainly(tmp_path: Path) -> None:
    """Before: an unusable counter file dropped a valid last balancing too, and the summary
    was a Python repr."""
    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "config.ini").write_text((REF / "config_LFP.ini").read_text())
    (folder / "storedvalue_charge").write_text("garbage")
    (folder / "storedvalue_last_balancing").write_text("100")
    proc = import_cli(folder, "--state-dir", str(tmp_path / "state"))
    assert proc.returncode == 0, proc.stderr
    stored = json.loads((tmp_path / "state" / "state.json").read_text())
    assert stored["charge_ah"] is None and stored["last_balancing"] is not None
    assert "State(" not in proc.stderr
    assert "charge counter none, last balancing 20" in proc.stderr
    assert "storedvalue_charge is unusable" in proc.stderr


@pytest.mark.parametrize(
    ("fixture", "cells", "chemistry"),
    [("settings_v2.py", 16, "LFP"), ("settings_v3.py", 24, "LTO")],
)
def test_v2_and_v3_settings_py_import_without_being_run(
    fixture: str, cells: int, chemistry: str
) -> None:
    """Before: v3.2-v3.6 settings.py 'is not a valid INI file'; v3.0/v3.1's Python quoting
    ("'/ProductName'") was refused."""
    notes: list[str] = []
    text, config = import_ini(REF / fixture, notes=notes)
    assert config.batteries.cells_per_battery == cells
    assert config.batteries.chemistry == chemistry
    assert config.control.mode == "own"
    if fixture == "settings_v2.py":  # computed from earlier names, as the file wrote them
        assert config.control.own.charge_curve_voltages == [2.9, 2.95, 3.3, 3.4, 3.45]
        assert config.control.own.charge_voltage_per_month == [3.40] * 12
    else:
        assert any("LOG_FORMAT" in n for n in notes)
        assert "[control.own]" in text


def test_settings_py_that_needs_running_is_refused_naming_the_line(tmp_path: Path) -> None:
    settings = tmp_path / "settings.py"
    settings.write_text("import os\nNR_OF_BATTERIES = int(os.environ['N'])\n")
    with pytest.raises(
        IniImportError, match=r"settings.py:2: NR_OF_BATTERIES is not a plain value"
    ):
        import_ini(settings)


def test_ini_values_in_python_quotes_are_accepted(tmp_path: Path) -> None:
    ini = tmp_path / "config.ini"
    ini.write_text(
        (REF / "config_LFP.ini").read_text() + "\nBATTERY_PRODUCT_NAME_PATH = \"'/ProductName'\"\n"
    )
    _, config = import_ini(ini, DEFAULTS)
    assert config.control.mode == "own"


def test_equal_curve_points_are_a_step_as_in_the_reference(tmp_path: Path) -> None:
    """Before: refused ("must be strictly ascending") without naming the INI option."""
    from aggbatt.core.curve import interpolate

    ini = tmp_path / "config.ini"
    ini.write_text(
        (REF / "config_LFP.ini").read_text()
        + "\nCELL_CHARGE_LIMITING_VOLTAGE = 2.90, 2.95, 3.30, 3.45, 3.45\n"
    )
    _, config = import_ini(ini, DEFAULTS)
    volts, factors = config.control.own.charge_curve
    assert volts == [2.90, 2.95, 3.30, 3.45, 3.45]
    assert interpolate(3.45, volts, factors) == factors[-1]  # a step, no division by zero
    assert interpolate(3.449, volts, factors) == pytest.approx(0.1, abs=0.01)


def test_a_refused_import_names_the_ini_option(tmp_path: Path) -> None:
    ini = tmp_path / "config.ini"
    ini.write_text(
        (REF / "config_LFP.ini").read_text() + "\nCELL_CHARGE_LIMITING_VOLTAGE = 3.4, 3.3, 3.5\n"
    )
    with pytest.raises(Exception, match=r"INI option .*CELL_CHARGE_LIMITING_VOLTAGE"):
        import_ini(ini, DEFAULTS)


def test_the_v3_balancing_switch_is_imported(tmp_path: Path) -> None:
    settings = tmp_path / "settings.py"
    settings.write_text((REF / "settings_v3.py").read_text() + "BALANCING_CVL_ENABLED = False\n")
    _, config = import_ini(settings)
    assert config.control.own.balancing is False


def test_an_imported_own_counter_keeps_the_references_100_percent_rule(tmp_path: Path) -> None:
    """Own mode: the reference set 100 % at a bank voltage of cells x balancing voltage, at
    once; the import keeps that rule (soc.sync = "reference") and says so."""
    from aggbatt.core.engine import counter_settings

    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "config.ini").write_text((REF / "config_LFP.ini").read_text())  # own SoC, own mode
    proc = import_cli(folder)
    assert proc.returncode == 0, proc.stderr
    assert any("soc.sync" in n for n in proc.stderr.splitlines() if n.startswith("note: "))
    _, config = import_ini(folder / "config.ini", DEFAULTS)
    assert config.soc.sync == "reference"
    s = counter_settings(config)
    cells, balancing = config.batteries.cells_per_battery, config.control.own.balancing_voltage
    assert s.charged_voltage == pytest.approx(cells * balancing)
    assert s.tail_c is None and s.charged_time_s == 0.0


def test_pass_through_full_voltage_is_taken_on_the_bank_not_one_cell(tmp_path: Path) -> None:
    """The reference set 100 % when the highest cell reached MAX_CELL_VOLTAGE_SOC_FULL: one
    runner cell did it. Imported, it is the bank voltage (cells x it), and the note says so."""
    from aggbatt.core.engine import counter_settings

    folder = tmp_path / "ref"
    folder.mkdir()
    (folder / "config.ini").write_text(
        "[DEFAULT]\nOWN_SOC = True\nOWN_CHARGE_PARAMETERS = False\n"
        "MAX_CELL_VOLTAGE_SOC_FULL = 3.45\n"
    )
    proc = import_cli(folder)
    assert proc.returncode == 0, proc.stderr
    assert "runner cell" in proc.stderr and "runner cell" in proc.stdout
    _, config = import_ini(folder / "config.ini", DEFAULTS)
    assert config.control.mode == "passthrough" and config.soc.full_cell_voltage == 3.45
    assert counter_settings(config).charged_voltage == pytest.approx(
        config.batteries.cells_per_battery * 3.45
    )


def test_a_v3_0_curve_out_of_order_imports_as_the_references_interpolation_did(
    tmp_path: Path,
) -> None:
    """The reference's own v3.0 LTO settings.py has CELL_EMPTY_LIMITING_VOLTAGE =
    [DISCHARGE_VOLTAGE - 0.1, DISCHARGE_VOLTAGE, MIN_CELL_VOLTAGE] = [1.9, 2.0, 1.9]. Its
    interpolation took the first factor at or below 1.9 V and the last above: a step."""
    from aggbatt.core.curve import interpolate
    from aggbatt.importini import reference_interpolation

    notes: list[str] = []
    text, config = import_ini(REF / "settings_v3_0_lto.py", None, notes)
    volts, factors = config.control.own.discharge_curve
    assert (volts, factors) == ([1.9, 1.9], [0.0, 1.0])
    ref_x, ref_y = [1.9, 2.0, 1.9], [0.0, 0.05, 1.0]
    for v in (1.7, 1.9, 1.90001, 1.95, 2.0, 2.3):
        assert interpolate(v, volts, factors) == reference_interpolation(ref_x, ref_y, v), v
    said = [n for n in notes if "CELL_EMPTY_LIMITING_VOLTAGE" in n]
    assert said and "a step at 1.9 V: 0 at or below, 1 above" in said[0]
    assert "a step at 1.9 V" in text  # the TOML says it too
    assert config.batteries.chemistry == "LTO" and config.batteries.cells_per_battery == 22
