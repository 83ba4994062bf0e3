"""The shell of rule 4 (src/aggbatt/cells.py): it starts what the core decides, a moment after
the cycle's own signals, and nothing once the daemon is stopping."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, cast

from aggbatt.cells import DEFER_S, CellSubscriber
from aggbatt.config import validate_config
from aggbatt.core.cellwatch import MAX_PATH, Why
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
