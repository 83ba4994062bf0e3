"""The journal (src/aggbatt/journal.py): one log line when something starts, one when it ends."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from aggbatt.config import validate_config
from aggbatt.core.engine import CycleResult, EngineState, initial_state, run_cycle
from aggbatt.core.selection import CurrentMeasurement
from aggbatt.core.stored import State
from aggbatt.journal import Journal
from tests.packs import pack

CONFIG = validate_config({"batteries": {"expected": 0}, "daemon": {"log_period": 0}})


def cycles(
    *snapshots: dict[str, Any], current: CurrentMeasurement | None = None
) -> list[CycleResult]:
    state: EngineState = initial_state(State())
    out = []
    for t, values in enumerate(snapshots):
        result = run_cycle(
            {"svc0": values}, {}, CONFIG, state, now_mono=float(t), now_wall=1.78e9 + t,
            month=6, current=current,
        )  # fmt: skip
        state = result.state
        out.append(result)
    return out


def test_a_bad_value_is_one_line_when_it_starts_and_one_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good, bad = pack(), pack()
    bad["/Soc"] = float("nan")
    journal = Journal(CONFIG, lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="aggbatt"):
        for result in cycles(good, bad, bad, bad, good, good):
            journal.cycle(result)
    assert caplog.text.count("/Soc = nan") == 1
    assert caplog.text.count("/Soc is plausible again") == 1
    assert caplog.text.count("battery svc0: online") == 1


def test_the_current_source_failing_is_said_once_and_its_return_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    journal = Journal(CONFIG, lambda: 0.0)
    failing = CurrentMeasurement(None, "BMS current (fallback)", "no battery-mode SmartShunt")
    working = CurrentMeasurement(12.0, "SmartShunt")
    with caplog.at_level(logging.INFO, logger="aggbatt"):
        for result in cycles(pack(), pack(), current=failing):
            journal.cycle(result)
            assert result.aggregate.alarms["InternalFailure"] >= 1  # the core's decision
        for result in cycles(pack(), pack(), current=working):
            journal.cycle(result)
    assert caplog.text.count("current source unusable (no battery-mode SmartShunt)") == 1
    assert caplog.text.count("current from SmartShunt again") == 1


def test_a_capacity_change_is_no_line_of_its_own(caplog: pytest.LogCaptureFixture) -> None:
    config = validate_config({"batteries": {"expected": 0}, "soc": {"own": True}})
    journal = Journal(config, lambda: 0.0)
    state: EngineState = initial_state(State())
    with caplog.at_level(logging.INFO, logger="aggbatt"):
        for t, installed in enumerate((280.0, 280.0, 300.0)):
            result = run_cycle(
                {"svc0": pack(installed=installed)}, {}, config, state, now_mono=float(t),
                now_wall=1.78e9 + t, month=6,
            )  # fmt: skip
            state = result.state
            journal.cycle(result)
    assert state.counter is not None and state.counter.event == "capacity changed"
    assert "counter started" in caplog.text and "capacity changed" not in caplog.text
