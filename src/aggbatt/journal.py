"""The daemon's log: transitions only, one line when an episode starts and one when it ends.

A cycle runs every second; its log must not. The journal compares each cycle's result with
the last one and says what changed: a pack online or left out (and why), a pack recognised
under a new name (rule 16), a value that turned implausible or plausible again (rule 2), a
note about a pack, the charge mode with its limits and reasons, the counter's and the
balancing scheduler's events, the current source failing or back; and, every
``daemon.log_period`` seconds, a one-line summary.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from aggbatt.config import Config
from aggbatt.core.battery import Invalid
from aggbatt.core.engine import CycleResult

log = logging.getLogger("aggbatt")


class Journal:
    def __init__(self, config: Config, clock: Callable[[], float]) -> None:
        self.config = config
        self._clock = clock
        self.last_status: dict[str, str] = {}
        """Per pack: "online" or why it is left out, as last logged."""
        self._last_faults: dict[str, frozenset[str]] = {}
        self._last_notes: dict[str, tuple[str, ...]] = {}
        self._last_mode = ""
        self._current_problem = ""
        self._last_summary = 0.0

    def cycle(self, result: CycleResult) -> None:
        """What one cycle changed, in the log."""
        self._packs(result)
        self._faults(result)
        self._current(result.current_problem, result.current_detail)
        limits = result.limits
        if limits.mode.text != self._last_mode:
            log.info(
                "mode %s: CVL %.2f V (%s), CCL %.1f A (%s), DCL %.1f A (%s)",
                limits.mode.text, limits.cvl.value, limits.cvl.reason, limits.ccl.value,
                limits.ccl.reason, limits.dcl.value, limits.dcl.reason,
            )  # fmt: skip
            self._last_mode = limits.mode.text
        balancing, counter = result.state.balancing, result.state.counter
        if balancing.kind is not None:
            log.info("%s", balancing.event)
        if counter is not None and counter.kind is not None and counter.kind.logged:
            log.info("%s", counter.event)
        self._summary(result)

    def _packs(self, result: CycleResult) -> None:
        status = {
            r.key: (f"left out: {r.reason}" if isinstance(r, Invalid) else "online")
            for r in result.readings
        }
        for key, text in status.items():
            if self.last_status.get(key) != text:
                level = logging.WARNING if text != "online" else logging.INFO
                log.log(level, "battery %s: %s", key, text)
        for key in self.last_status.keys() - status.keys():
            log.warning("battery %s left the bus", key)
        self.last_status = status
        for found in result.recognised:
            log.warning("%s", found.text)

    def _faults(self, result: CycleResult) -> None:
        """Rule 2: one line when a pack starts publishing a bad value, one when it stops."""
        faults = result.aggregate.faults
        for key in self._last_faults.keys() | faults.keys():
            now = {f.path for f in faults.get(key, ())}
            before = self._last_faults.get(key, frozenset())
            for fault in faults.get(key, ()):
                if fault.path not in before:
                    log.warning("battery %s: %s", key, fault.text)
            for path in sorted(before - now):
                log.info("battery %s: %s is plausible again", key, path)
        self._last_faults = {k: frozenset(f.path for f in v) for k, v in faults.items()}
        notes = {b.key: b.notes for b in result.aggregate.batteries if b.notes}
        for key, texts in notes.items():
            if self._last_notes.get(key) != texts:
                for text in texts:
                    log.info("battery %s %s", key, text)
        self._last_notes = notes

    def _current(self, problem: str, detail: str) -> None:
        if problem == self._current_problem:
            return
        if problem:
            log.warning("current source unusable (%s): using the BMS current", problem)
        elif self._current_problem:
            log.info("current from %s again", detail)
        self._current_problem = problem

    def _summary(self, result: CycleResult) -> None:
        period = self.config.daemon.log_period
        now = self._clock()
        if not period or now - self._last_summary < period:
            return
        self._last_summary = now
        agg, limits = result.aggregate, result.limits
        log.info(
            "%d online, %d offline; %.2f V %.1f A SoC %s; CVL %.2f CCL %.1f DCL %.1f",
            len(agg.batteries), agg.modules_offline, agg.voltage or 0.0, agg.current or 0.0,
            "---" if result.soc is None else f"{result.soc:.1f} %",
            limits.cvl.value, limits.ccl.value, limits.dcl.value,
        )  # fmt: skip
