"""The state keeper (src/aggbatt/keeper.py): saves when the core says so, owns the user's
feed-in value, and says a failing save once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from aggbatt.config import validate_config
from aggbatt.core.engine import EngineState, initial_state
from aggbatt.core.stored import State
from aggbatt.keeper import StateKeeper
from aggbatt.state import load_state

CONFIG = validate_config({})


class Holder:
    def __init__(self) -> None:
        self.engine: EngineState = initial_state(State())


def keeper_in(folder: Path, holder: Holder) -> StateKeeper:
    return StateKeeper(
        folder, 1.78e9, lambda: holder.engine, lambda e: setattr(holder, "engine", e)
    )


def test_the_users_feed_in_value_is_saved_at_once_and_survives_a_restart(tmp_path: Path) -> None:
    holder = Holder()
    keeper = keeper_in(tmp_path, holder)
    assert keeper.feed_in_original is None
    keeper.keep_feed_in(1)
    assert load_state(tmp_path, 1.78e9).state.feed_in_original == 1
    again = keeper_in(tmp_path, Holder())  # a restart in the middle of the episode
    assert again.feed_in_original == 1
    again.keep_feed_in(None)
    assert load_state(tmp_path, 1.78e9).state.feed_in_original is None


def test_it_saves_only_when_the_core_says_so(tmp_path: Path) -> None:
    holder = Holder()
    keeper = keeper_in(tmp_path, holder)
    keeper.save_if_due(CONFIG)  # nothing saved yet: due
    first = (tmp_path / "state.json").stat().st_mtime_ns
    keeper.save_if_due(CONFIG)  # nothing changed: not due
    assert (tmp_path / "state.json").stat().st_mtime_ns == first


def test_a_failing_save_is_said_once_per_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    keeper = keeper_in(blocker / "state", Holder())
    with caplog.at_level(logging.INFO):
        assert keeper.save() is False
        assert keeper.save() is False
    assert caplog.text.count("could not save the state") == 1
