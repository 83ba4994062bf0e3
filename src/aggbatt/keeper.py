"""The state file in the daemon, and the one owner of the user's feed-in value.

The core decides what is stored (:func:`aggbatt.core.engine.to_state`) and when
(:func:`aggbatt.core.engine.save_due`); :mod:`aggbatt.state` encodes the file. The keeper
holds what was last written, says a failing save once, and keeps the user's own feed-in value
while aggbatt holds feed-in off (rule 11): :class:`aggbatt.feedin.FeedInKeeper` reads and
writes it here, and every change is saved at once, so a restart in the middle of an episode
still restores it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from aggbatt.config import Config
from aggbatt.core import coulomb
from aggbatt.core.engine import EngineState, save_due, to_state
from aggbatt.core.stored import State
from aggbatt.state import load_state, save_state

log = logging.getLogger("aggbatt")


class StateKeeper:
    """Loads the state once, then saves the engine's state when the core says so."""

    def __init__(
        self,
        state_dir: Path,
        wall_now: float,
        engine: Callable[[], EngineState],
        saved: Callable[[EngineState], None],
    ) -> None:
        """``engine`` gives the engine's state to save; ``saved`` takes it back with its
        counter marked as saved."""
        self.state_dir = state_dir
        loaded = load_state(state_dir, wall_now)
        self.loaded: State = loaded.state
        self.feed_in_original: int | None = loaded.state.feed_in_original
        """The user's feed-in value while aggbatt holds feed-in off; None: nothing held."""
        self._saved: State | None = loaded.state if loaded.source == "file" else None
        self._engine = engine
        self._took = saved
        self._failing = False

    def keep_feed_in(self, original: int | None) -> None:
        """The user's value to restore (None: restored), saved at once."""
        self.feed_in_original = original
        self.save()

    def save_if_due(self, config: Config) -> None:
        if save_due(self._engine(), self._saved, self.feed_in_original, config):
            self.save()

    def save(self) -> bool:
        """Write the state now; a failure is logged once per outage and False."""
        engine = self._engine()
        state = to_state(engine, self.feed_in_original)
        try:
            save_state(self.state_dir, state)
        except OSError as exc:
            if not self._failing:
                log.error("could not save the state in %s: %s (said once)", self.state_dir, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("the state is saved again in %s", self.state_dir)
        self._failing = False
        self._saved = state
        if engine.counter is not None:
            self._took(replace(engine, counter=coulomb.mark_saved(engine.counter)))
        return True
