"""Periodic balancing charge: when it is due, what per-cell voltage it asks for, when it ends.

Theory of operation
-------------------
Phases: ``idle`` -> ``charging`` -> ``holding`` -> ``idle``.

* **due**: ``repetition_days`` x 86400 s have elapsed since the last completed balancing.
  Both are Unix timestamps, so year ends and leap days need no arithmetic of their own (the
  reference subtracted days of the year and wrapped wrongly: docs/comparison.md). A bank never
  balanced is due at once.
* **charging**: the per-cell target is max(balancing voltage, month voltage). The goal is
  reached when the bank voltage is within ``GOAL_MARGIN_V`` per cell of it and the cell
  difference is below the goal.
* **holding**: the target stays until the bank has come down to the month's voltage (the
  balancers keep working meanwhile); then balancing is finished and time-stamped. When the
  month's voltage is the balancing voltage already, a reached goal just stamps the time.

Rule 9 of :mod:`aggbatt.core.safety`: balancing ends. Once the bank first reaches the
target, ``max_hours`` later the balancing ends with a warning even if the cells have not
converged; the holding phase is bounded the same way. A balancing that has not even reached
its target ``repetition_days`` after it started ends with a warning too (the packs' own BMSes
taper their current before the bank gets there: found by the bank simulator's winter month).
A last balancing in the future (a clock set back, a corrupt date) is reported and treated as
due.

Time is the wall clock (the timestamps survive restarts) and comes in as an argument; the
phase and its start are persisted with the timestamp, so a restart mid-balancing continues
where it was.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

from aggbatt.config import GOAL_MARGIN_V
from aggbatt.core.stored import Phase

DAY_S = 86400.0
FUTURE_TOLERANCE_S = 3600.0
"""A last balancing more than this after now is in the future (rule 9)."""


@dataclass(frozen=True, slots=True)
class BalancingSettings:
    repetition_days: float
    balancing_voltage: float
    cell_diff_goal: float
    cells: int
    max_hours: float = 4.0


class Event(enum.Enum):
    """What a step did (:attr:`Balancing.event` says it in words)."""

    STARTED = "started"
    REACHED = "goal reached"
    HOLDING = "holding"
    FINISHED = "finished"
    ENDED = "ended without its goal"
    """Rule 9: not reached in the repetition period, not converged, or held too long."""


@dataclass(frozen=True, slots=True)
class Balancing:
    last_completed: float | None = None
    """Unix time of the last completed balancing; None: never."""
    phase: Phase = "idle"
    event: str = ""
    """What the last step did, for the log; empty when nothing."""
    since: float | None = None
    """Unix time since which the bank has been at the target (charging) or holding."""
    started: float | None = None
    kind: Event | None = None
    """The last step's event as a type (None: none)."""
    """Unix time at which this balancing started (charging began)."""


def due_at(state: Balancing, settings: BalancingSettings) -> float | None:
    """Unix time at which the next balancing is due; None: due now (never balanced)."""
    if state.last_completed is None:
        return None
    return state.last_completed + settings.repetition_days * DAY_S


def step(
    state: Balancing,
    now: float,
    month_voltage: float,
    bank_voltage: float | None,
    cell_diff: float | None,
    settings: BalancingSettings,
) -> Balancing:
    """One transition at wall time ``now``; ``month_voltage`` is per cell."""
    state = replace(state, event="", kind=None) if state.event else state
    if state.phase == "idle":
        due = due_at(state, settings)
        last = state.last_completed
        if last is not None and last > now + FUTURE_TOLERANCE_S:
            return replace(
                state, phase="charging", since=None, started=now,
                event=f"the last balancing time {last:.0f} is in the future: treated as due",
                kind=Event.STARTED,
            )  # fmt: skip
        if due is None or now >= due:
            reason = "never balanced" if due is None else "repetition period elapsed"
            return replace(
                state, phase="charging", since=None, started=now,
                event=f"balancing started ({reason})", kind=Event.STARTED,
            )  # fmt: skip
        return state
    if bank_voltage is None:
        return state
    limit_s = settings.max_hours * 3600.0
    target = max(settings.balancing_voltage, month_voltage) * settings.cells
    if state.phase == "charging":
        at_voltage = bank_voltage >= target - GOAL_MARGIN_V * settings.cells
        since = state.since if state.since is not None else (now if at_voltage else None)
        if at_voltage and cell_diff is not None and cell_diff < settings.cell_diff_goal:
            if month_voltage >= settings.balancing_voltage:
                return Balancing(now, "idle", "balancing goal reached", kind=Event.REACHED)
            return Balancing(
                state.last_completed, "holding", "balancing goal reached; holding", now,
                kind=Event.HOLDING,
            )  # fmt: skip
        started = state.started if state.started is not None else now
        if since is None and now - started >= settings.repetition_days * DAY_S:
            return Balancing(
                now, "idle",
                f"warning: balancing did not reach its target ({target:.2f} V) in "
                f"{settings.repetition_days:g} days: the packs' own BMSes may limit charging "
                "before it; lower balancing_voltage or check their limits", kind=Event.ENDED,
            )  # fmt: skip
        if since is not None and now - since >= limit_s:
            diff = "unknown" if cell_diff is None else f"{cell_diff:.3f} V"
            return Balancing(
                now, "idle",
                f"warning: balancing did not converge within {settings.max_hours:g} h at the "
                f"target (cell difference {diff}): ended", kind=Event.ENDED,
            )  # fmt: skip
        if since != state.since or started != state.started:
            return replace(state, since=since, started=started)
        return state
    # holding: finished once the bank is back down at the normal charge voltage
    if bank_voltage <= month_voltage * settings.cells:
        return Balancing(now, "idle", "balancing finished", kind=Event.FINISHED)
    since = state.since if state.since is not None else now
    if now - since >= limit_s:
        return Balancing(
            now, "idle", f"warning: holding ended after {settings.max_hours:g} h, the bank is "
            "still above the month's voltage", kind=Event.ENDED,
        )  # fmt: skip
    return replace(state, since=since) if since != state.since else state


def in_force(state: Balancing, month_voltage: float, settings: BalancingSettings) -> bool:
    """Whether the balancing voltage, not the month's, is the charge target now."""
    return state.phase != "idle" and settings.balancing_voltage > month_voltage


def target_cell_voltage(
    state: Balancing, month_voltage: float, month_name: str, settings: BalancingSettings
) -> tuple[float, str]:
    """(per-cell charge voltage, the reason for it)."""
    if in_force(state, month_voltage, settings):
        if state.phase == "charging":
            return settings.balancing_voltage, "balancing charge"
        return settings.balancing_voltage, "balancing: holding until the bank settles"
    return month_voltage, f"{month_name} charge voltage"
