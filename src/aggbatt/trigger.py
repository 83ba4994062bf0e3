"""When the daemon runs a cycle: the periodic timer and urgent requests (a token bucket).

The core decides which changes are urgent (:class:`aggbatt.core.safety.Urgency`, anew every
cycle) and which paths are signs of life (rule 10); this only schedules, and notes when each
pack's values last moved (:class:`LastMoved`). The timer runs a cycle every
``update_interval`` while anything changed on the bus, and every :data:`IDLE_CYCLE_S`
otherwise (the counter, frozen-pack detection and balancing dates need time to pass, not
every second). An urgent request runs a cycle at once, coalesced into one per event-loop
turn: a burst of :data:`URGENT_BURST`, then at most one every :data:`MIN_URGENT_INTERVAL_S`
whatever a flood of changes asks for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any

from aggbatt.core.safety import Activity, Urgency, is_measurement, is_vital

IDLE_CYCLE_S = 5.0
"""With nothing changed on the bus, the periodic cycle runs only this often."""
MIN_URGENT_INTERVAL_S = 0.05
"""Urgent cycles run at most 20 times a second on average."""
URGENT_BURST = 4
"""Urgent cycles that may run back to back before that rate applies: a peaking cell right after
a cycle runs one at once instead of waiting out the interval."""


class CycleTrigger:
    """Calls ``cycle`` periodically and on request; ``ready`` says whether cycles may run yet
    (the service is registered)."""

    def __init__(
        self,
        cycle: Callable[[], None],
        clock: Callable[[], float],
        ready: Callable[[], bool],
        urgency: Urgency,
    ) -> None:
        self.urgency = urgency
        """Which pack changes run a cycle at once: the last cycle's decision."""
        self._cycle = cycle
        self._clock = clock
        self._ready = ready
        self.changed = True
        """Something changed on the bus since the last cycle."""
        self._last_cycle = -IDLE_CYCLE_S
        self._requested = False
        self._tokens = float(URGENT_BURST)
        self._tokens_at = 0.0
        self._timer: asyncio.TimerHandle | None = None

    def values_changed(self, changes: Mapping[str, Any], of_the_bank: bool) -> None:
        """Something changed on the bus; a pack of the bank may ask for a cycle at once."""
        self.changed = True
        if of_the_bank and self.urgency.urgent(changes):
            self.request()

    def ran(self, now: float) -> None:
        """A cycle ran at ``now`` (whoever started it)."""
        self.changed, self._last_cycle = False, now

    def start(self, interval: float) -> None:
        """The periodic cycle: a timer chain, no task or timeout object per cycle."""
        loop = asyncio.get_running_loop()

        def tick() -> None:
            if self.changed or self._clock() - self._last_cycle >= IDLE_CYCLE_S:
                self._cycle()
            if self._timer is not None:
                self._timer = loop.call_later(interval, tick)

        self._timer = loop.call_later(interval, tick)

    def stop(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def request(self) -> None:
        """Run a cycle soon; a burst of requests in one event-loop turn gives one cycle."""
        if self._requested or not self._ready():
            return
        self._requested = True
        wait = (1.0 - self._refill()) * MIN_URGENT_INTERVAL_S
        loop = asyncio.get_running_loop()
        if wait > 0:  # a flood: one cycle per MIN_URGENT_INTERVAL_S once the burst is spent
            loop.call_later(wait, self._requested_cycle)
        else:
            loop.call_soon(self._requested_cycle)

    def _refill(self) -> float:
        now = self._clock()
        refill = (now - self._tokens_at) / MIN_URGENT_INTERVAL_S
        self._tokens = min(float(URGENT_BURST), self._tokens + refill)
        self._tokens_at = now
        return self._tokens

    def _requested_cycle(self) -> None:
        self._requested = False
        self._tokens = self._refill() - 1.0
        self._cycle()


class LastMoved:
    """When each pack's values last moved (monotonic), as signals show it (rule 10)."""

    def __init__(self) -> None:
        self._measured: dict[str, float] = {}
        self._vital: dict[str, float] = {}

    def changed(self, name: str, changes: Mapping[str, Any], at: float) -> None:
        for path in changes:  # the core says which paths are signs of life
            if is_measurement(path):
                self._measured[name] = at
                if is_vital(path):
                    self._vital[name] = at
                    return

    def added(self, name: str, now: float) -> None:
        self._vital[name] = self._measured[name] = now

    def removed(self, name: str) -> None:
        self._vital.pop(name, None)
        self._measured.pop(name, None)

    def activity(self, name: str, last_change: float) -> Activity:
        """``last_change``: when any value of the pack last changed (before any signal)."""
        moved = self._measured.get(name, last_change)
        return Activity(moved, self._vital.get(name, moved))
