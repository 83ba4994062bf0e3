"""The shell of rule 4 (src/aggbatt/cells.py): it starts what the core decides, a moment after
the cycle's own signals, and nothing once the daemon is stopping."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, cast

import pytest

from aggbatt.cells import DEFER_S, CellSubscriber
from aggbatt.config import validate_config
from aggbatt.core.cellwatch import MAX_PATH, MIN_PATH, Why
from aggbatt.venus.bus import Tasks
from aggbatt.venus.client import Monitor, RemoteService


def subscriber() -> tuple[CellSubscriber, list[Coroutine[Any, Any, None]]]:
    started: list[Coroutine[Any, Any, None]] = []
    sub = CellSubscriber(cast(Monitor, None), validate_config({}), started.append, lambda: 0.0)
    sub.after_cycle({}, attentive=False, now=0.0)  # the band of a calm bank
    return sub, started


async def test_a_summary_entering_the_band_starts_a_watch_after_the_cycle() -> None:
    sub, started = subscriber()
    pack = RemoteService("com.victronenergy.battery.ttyUSB0", ":1.7")
    sub.on_values(pack, {MAX_PATH: 3.30})
    sub.on_values(pack, {MAX_PATH: 3.44})
    assert sub.watch.watched == {pack.name: Why.BAND}
    assert started == []  # not before the cycle's signals are written
    await asyncio.sleep(DEFER_S * 4)
    assert [getattr(c, "__qualname__", "") for c in started] == ["CellSubscriber._watch"]
    for coro in started:
        coro.close()


async def test_a_closed_subscriber_starts_nothing() -> None:
    sub, started = subscriber()
    pack = RemoteService("com.victronenergy.battery.ttyUSB0", ":1.7")
    sub.on_values(pack, {MAX_PATH: 3.44})
    sub.close()  # the daemon stops before the deferred watch would start
    sub.on_values(RemoteService("com.victronenergy.battery.ttyUSB1", ":1.8"), {MAX_PATH: 3.44})
    await asyncio.sleep(DEFER_S * 4)
    assert started == []


class RefusingMonitor:
    """A monitor whose bus refuses every match rule (its rule limit reached)."""

    def __init__(self) -> None:
        self.services = {"p": RemoteService("p", ":1.7", values={"/Voltages/Cell1": 3.3})}
        self.reads = 0

    async def watch(self, name: str, namespaces: Any) -> bool:
        return False

    async def read(self, name: str, path: str) -> dict[str, Any] | None:
        self.reads += 1
        return {}

    def update(self, name: str, values: Any) -> None:
        pass


async def test_a_refused_watch_is_said_once_and_the_cells_are_read_each_cycle(
    caplog: pytest.LogCaptureFixture,
) -> None:
    monitor = RefusingMonitor()
    tasks = Tasks()
    sub = CellSubscriber(cast(Monitor, monitor), validate_config({}), tasks.spawn, lambda: 0.0)
    pack = {"/Voltages/Cell1": 3.44, MAX_PATH: 3.44, MIN_PATH: 3.3}  # in the band
    with caplog.at_level(logging.INFO, logger="aggbatt"):
        for now in range(3):
            sub.after_cycle({"p": pack}, attentive=False, now=float(now))
            await asyncio.sleep(DEFER_S * 4)
            await tasks.finish(1.0)
    assert monitor.reads == 3  # not live: read at every cycle instead
    assert caplog.text.count("could not watch the cells of p") == 1
