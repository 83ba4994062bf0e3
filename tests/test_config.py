"""Config: the commented default file is the model's defaults; errors name key, value, fix."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from aggbatt.config import Config, ConfigError, load_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "config.toml"


def keys_of(model: type[BaseModel], prefix: str = "") -> set[str]:
    out: set[str] = set()
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out |= keys_of(ann, f"{prefix}{name}.")
        else:
            out.add(f"{prefix}{name}")
    return out


def test_default_file_is_the_model_defaults() -> None:
    assert load_config(DEFAULT) == Config()


def test_every_option_is_documented_in_the_default_file() -> None:
    text = DEFAULT.read_text()
    section = ""
    documented: set[str] = set()
    for line in text.splitlines():
        if m := re.match(r"^\[([a-z_.]+)\]", line):
            section = m.group(1) + "."
        elif m := re.match(r"^#?\s*([a-z_]+) = ", line):
            documented.add(section + m.group(1))
    assert keys_of(Config) <= documented, keys_of(Config) - documented


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"control": {"own": {"max_cell_voltag": 3.5}}},
            "did you mean control.own.max_cell_voltage?",
        ),
        ({"batteriez": {}}, "did you mean batteries?"),
        ({"control": {"own": {"max_cell_voltage": 55.2}}}, "max_cell_voltage = 55.2"),
        ({"control": {"own": {"max_cell_voltage": 55.2}}}, "not a bank voltage"),
        ({"batteries": {"expected": "two"}}, "batteries.expected = 'two'"),
        ({"control": {"mode": "auto"}}, "'own' or 'passthrough'"),
        ({"control": {"own": {"charge_voltage_per_month": [3.4] * 11}}}, "needs 12 values"),
        ({"control": {"own": {"min_cell_voltage": 3.5}}}, "must be below max_cell_voltage"),
        ({"control": {"own": {"charge_curve_voltages": [3.4, 3.3, 3.5, 3.6, 3.7]}}}, "ascending"),
        ({"control": {"own": {"min_cell_voltage": 3.4}}}, "give the curve explicitly"),
        ({"control": {"own": {"max_cell_voltage": 4.1}}}, "batteries.chemistry"),
        (
            {"control": {"own": {"balancing_voltage": 3.49, "max_cell_voltage": 3.50}}},
            "at most 3.485",
        ),
        ({"soc": {"own": True}, "control": {"mode": "passthrough"}}, "soc.full_cell_voltage"),
        ({"soc": {"efficiency": 1.5}}, "soc.efficiency = 1.5"),
        ({"batteries": {"expected": "2"}}, "batteries.expected = '2'"),  # quoted: a typo
        ({"soc": {"own": 1}}, "soc.own = 1: Input should be a valid boolean"),
    ],
)
def test_errors_name_the_key_the_value_and_the_fix(data: dict[str, object], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_config(data, "config.toml")
    assert expected in str(err.value)
    assert str(err.value).startswith("config.toml is not valid")


def test_lto_example_is_valid() -> None:
    lto = {
        "batteries": {"expected": 2, "cells_per_battery": 24, "chemistry": "LTO"},
        "soc": {"own": True},
        "control": {
            "own": {
                "charge_voltage_per_month": [
                    2.50,
                    2.45,
                    2.45,
                    2.40,
                    2.35,
                    2.35,
                    2.35,
                    2.35,
                    2.40,
                    2.45,
                    2.45,
                    2.50,
                ],
                "balancing_voltage": 2.5,
                "max_cell_voltage": 2.6,
                "min_cell_voltage": 1.9,
                "min_cell_hysteresis": 0.3,
            }
        },
    }
    config = validate_config(lto)
    assert config.control.own.charge_curve[0] == [1.9, 1.95, 2.4, 2.5, 2.6]
    assert config.full_cell_voltage == 2.33  # charged: the lowest month less 0.02 V


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text("[batteries\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.toml")
    assert tomllib.loads(DEFAULT.read_text())["service"]["product_id"] == 0xBA44


def test_configuration_reference_is_generated_from_the_model() -> None:
    from aggbatt.configdoc import render

    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == render(DEFAULT.read_text()), "run: python -m aggbatt.configdoc config.toml"
    for key in keys_of(Config):
        assert f"| `{key.rsplit('.', 1)[-1]}` |" in page


def test_every_toml_example_in_the_user_docs_is_valid() -> None:
    for page in ("guide.md", "install.md"):
        text = (ROOT / "docs" / page).read_text()
        for block in re.findall(r"```toml\n(.*?)```", text, flags=re.S):
            validate_config(tomllib.loads(block), f"docs/{page}")
    assert "```toml" in (ROOT / "docs" / "guide.md").read_text()
