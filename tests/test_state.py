"""The state file: atomic, versioned, corrupt files reported and replaced, reference migration."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest

from aggbatt.core.stored import KnownPack, State
from aggbatt.state import STATE_FILE, day_of_year_to_time, load_state, save_state

NOW = dt.datetime(2026, 11, 21, 12).timestamp()


def test_round_trip(tmp_path: Path) -> None:
    state = State(
        charge_ah=123.4,
        installed_ah=560.0,
        last_balancing=NOW - 86400,
        balancing_phase="holding",
        feed_in_original=1,
        packs={
            "com.victronenergy.battery.ttyUSB0": KnownPack(280.0, NOW, "JBD_280Ah", 16, "A"),
            "com.victronenergy.battery.ttyUSB1": KnownPack(280.0, NOW - 60.0),
        },
    )
    save_state(tmp_path, state)
    loaded = load_state(tmp_path, NOW)
    assert (loaded.state, loaded.source) == (state, "file")
    assert json.loads((tmp_path / STATE_FILE).read_text())["version"] == 3
    assert not list(tmp_path.glob(".*.tmp"))


def test_missing_file_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        loaded = load_state(tmp_path, NOW)
    assert loaded.state == State() and loaded.source == "defaults (missing)"
    assert "no state file" in caplog.text


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        '{"version": 4}',
        '{"version": 2, "packs": {"a": {"installed_ah": "x", "last_seen": 1}}}',
        '{"version": 3, "packs": {"a": {"installed_ah": 1, "last_seen": 1, "cells": "16"}}}',
        '{"version": 3, "packs": {"a": {"installed_ah": 1, "last_seen": 1, "serial": 7}}}',
        '{"version": 1, "charge_ah": "12"}',
        '{"version": 1, "charge_ah": -5}',
        '{"version": 1, "charge_ah": NaN}',
        '{"version": 1, "balancing_phase": "dancing"}',
        '{"version": 1, "feed_in_original": 7}',
        "",
    ],
)
def test_corrupt_file_is_reported_kept_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, content: str
) -> None:
    (tmp_path / STATE_FILE).write_text(content)
    with caplog.at_level(logging.ERROR):
        loaded = load_state(tmp_path, NOW)
    assert loaded.state == State()
    assert loaded.source == "defaults (corrupt)"
    assert "corrupt" in caplog.text
    assert (tmp_path / (STATE_FILE + ".corrupt")).read_text() == content
    save_state(tmp_path, State(charge_ah=1.0))
    assert load_state(tmp_path, NOW).state.charge_ah == 1.0


@pytest.mark.parametrize(
    ("charge", "balancing"),
    [("storedvalue_charge", "storedvalue_last_balancing"), ("charge", "last_balancing")],
)
def test_reference_files_are_migrated(tmp_path: Path, charge: str, balancing: str) -> None:
    (tmp_path / charge).write_text("412.5\n")
    (tmp_path / balancing).write_text("320\n")
    loaded = load_state(tmp_path, NOW)
    assert loaded.source == "reference"
    assert loaded.state.charge_ah == 412.5
    assert loaded.state.last_balancing == dt.datetime(2026, 11, 16).timestamp()


def test_day_of_year_later_than_today_is_last_year() -> None:
    assert day_of_year_to_time(359, NOW) == dt.datetime(2025, 12, 25).timestamp()
    assert day_of_year_to_time(366, NOW) == dt.datetime(2024, 12, 31).timestamp()
    with pytest.raises(ValueError):
        day_of_year_to_time(400, NOW)


def test_reference_never_balanced_zero_is_none(tmp_path: Path) -> None:
    (tmp_path / "storedvalue_last_balancing").write_text("0")
    assert load_state(tmp_path, NOW).state.last_balancing is None
