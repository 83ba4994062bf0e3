"""The cycle trigger (src/aggbatt/trigger.py): when cycles run, and when packs last moved."""

from __future__ import annotations

import asyncio

from aggbatt.config import validate_config
from aggbatt.core.safety import Activity, urgency
from aggbatt.trigger import (
    IDLE_CYCLE_S,
    MIN_URGENT_INTERVAL_S,
    URGENT_BURST,
    CycleTrigger,
    LastMoved,
)

URGENCY = urgency(None, validate_config({}))  # before the first cycle: every cell is urgent


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(clock: Clock, ready: bool = True) -> tuple[CycleTrigger, list[float]]:
    runs: list[float] = []
    trigger = CycleTrigger(lambda: runs.append(clock()), clock, lambda: ready, URGENCY)
    return trigger, runs


async def turn() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_requests_in_one_turn_are_one_cycle_and_a_burst_runs_at_once() -> None:
    clock = Clock()
    trigger, runs = make(clock)
    for _ in range(10):
        trigger.request()
    await turn()
    assert len(runs) == 1
    for _ in range(URGENT_BURST - 1):  # the rest of the burst, back to back, no wait
        trigger.request()
        await turn()
    assert len(runs) == URGENT_BURST
    trigger.request()  # the burst is spent: this one waits its turn
    await turn()
    assert len(runs) == URGENT_BURST
    await asyncio.sleep(MIN_URGENT_INTERVAL_S * 1.5)
    assert len(runs) == URGENT_BURST + 1


async def test_nothing_runs_before_the_service_is_registered() -> None:
    trigger, runs = make(Clock(), ready=False)
    trigger.request()
    await turn()
    assert runs == []


async def test_only_urgent_changes_of_the_bank_ask_for_a_cycle() -> None:
    trigger, runs = make(Clock())
    trigger.changed = False
    trigger.values_changed({"/Voltages/Cell3": 3.3}, of_the_bank=False)
    await turn()
    assert runs == [] and trigger.changed  # noted for the periodic cycle
    trigger.values_changed({"/Info/MaxChargeCurrent": 50.0}, of_the_bank=True)
    await turn()
    assert len(runs) == 1


async def test_the_timer_idles_when_nothing_changed() -> None:
    clock = Clock()
    trigger, runs = make(clock)
    trigger.ran(clock())
    trigger.start(0.01)
    try:
        await asyncio.sleep(0.05)
        assert runs == []  # nothing changed, and IDLE_CYCLE_S has not passed
        trigger.changed = True
        await asyncio.sleep(0.03)
        assert len(runs) >= 1
        count = len(runs)
        trigger.ran(clock())
        clock.now += IDLE_CYCLE_S  # time passes on the monotonic clock: a cycle is due
        await asyncio.sleep(0.03)
        assert len(runs) > count
    finally:
        trigger.stop()
    count = len(runs)
    trigger.changed = True
    await asyncio.sleep(0.03)
    assert len(runs) == count  # stopped


def test_last_moved_counts_measurements_not_ticking_counters() -> None:
    moved = LastMoved()
    moved.added("p", 10.0)
    moved.changed("p", {"/History/ChargeCycles": 5, "/ConnectionInformation": "x"}, 20.0)
    assert moved.activity("p", 0.0) == Activity(10.0, 10.0)
    moved.changed("p", {"/Soc": 51.0}, 30.0)  # a measurement, not a vital one
    assert moved.activity("p", 0.0) == Activity(30.0, 10.0)
    moved.changed("p", {"/System/MaxCellVoltage": 3.31}, 40.0)  # rule 4: the summary is vital
    assert moved.activity("p", 0.0) == Activity(40.0, 40.0)
    moved.removed("p")
    assert moved.activity("p", 50.0) == Activity(50.0, 50.0)  # unknown: when it last changed
