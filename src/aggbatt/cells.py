"""The shell of rule 4: watches, unwatches and reads the packs' cells as the core decides.

:mod:`aggbatt.core.cellwatch` decides which packs' cells are watched and when a pack's cells
are read for the cross-check; this module only moves the data: match rules through the
:class:`~aggbatt.venus.client.Monitor`, one ``GetValue`` of a pack's cell subtree per read, and
the result back into the core and into the snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from aggbatt.config import Config
from aggbatt.core import cellwatch
from aggbatt.core.battery import cell_subtree, is_cell
from aggbatt.core.cellwatch import CELL_NAMESPACES, CellWatch, cell_band
from aggbatt.venus.client import Monitor, RemoteService
from aggbatt.venus.wire import Value

log = logging.getLogger("aggbatt")
Spawn = Callable[[Coroutine[Any, Any, None]], object]
DEFER_S = 0.005
"""Match rules and reads start this long after they are decided, so that the signals of the
cycle that decided them (a new CVL) are written to the bus first."""


class CellSubscriber:
    """Keeps each pack's cell subscription as :class:`CellWatch` says."""

    def __init__(
        self, monitor: Monitor, config: Config, spawn: Spawn, clock: Callable[[], float]
    ) -> None:
        self.monitor = monitor
        self._bands = {attentive: cell_band(config, attentive) for attentive in (False, True)}
        """The configuration's two bands (calm, or a cut, block or latch in force)."""
        self.watch = CellWatch(self._bands[True])
        self._spawn = spawn
        self._clock = clock
        self._live: set[str] = set()
        """Packs whose cells' match rules are added (or being added)."""
        self._reading: set[str] = set()
        self._interval = cellwatch.check_interval(config)
        self._pending: set[asyncio.TimerHandle] = set()
        self._refused: set[str] = set()
        """Packs whose cell rule the bus refused (said once until it is accepted)."""
        self._closed = False

    def close(self) -> None:
        """Start nothing more (the daemon is stopping): deferred rules and reads are dropped."""
        self._closed = True
        for timer in self._pending:
            timer.cancel()
        self._pending.clear()

    def after_cycle(
        self, bank: Mapping[str, Mapping[str, Value]], attentive: bool, now: float
    ) -> None:
        """The core's plan for the next cycle's packs; the reads that are due."""
        before = self.watch.watched
        self.watch = cellwatch.plan(self.watch, bank, self._bands[attentive], now)
        for key in self.watch.watched.keys() - before.keys():
            log.debug("cells of %s watched: %s", key, self.watch.watched[key].value)
        self._sync(retry=True)
        for key in self.watch.due(now, self._interval):
            if key not in self._reading:
                self._defer(self._read, key)

    def on_values(self, service: RemoteService, changes: Mapping[str, Value]) -> None:
        """A signal of a pack of the bank: a summary entering the band is watched at once."""
        name = service.name
        if name not in self.watch.watched and self.watch.band.enters(changes):
            self.watch = cellwatch.watch_now(self.watch, name)
            self._sync()

    def _sync(self, retry: bool = False) -> None:
        """Watch what the core wants watched, unwatch the rest; a watch the bus refused is
        tried again once a cycle (``retry``), not at once."""
        wanted = self.watch.watched.keys()
        for key in wanted - self._live:
            if key in self._refused and not retry:
                continue
            self._live.add(key)
            self._defer(self._watch, key)
        for key in self._live - wanted:
            self._live.discard(key)
            self._defer(self._unwatch, key)

    def _defer(self, job: Callable[[str], Coroutine[Any, Any, None]], key: str) -> None:
        if self._closed:
            return

        def start() -> None:
            self._pending.discard(timer)
            self._spawn(job(key))

        timer = asyncio.get_running_loop().call_later(DEFER_S, start)
        self._pending.add(timer)

    async def _watch(self, key: str) -> None:
        await self._change(key, watch=True)

    async def _unwatch(self, key: str) -> None:
        await self._change(key, watch=False)

    async def _change(self, key: str, watch: bool) -> None:
        """Watch (or stop watching) a pack's cells, then read them once: the cells entering
        are current at once, and the cells leaving are left current, not stale."""
        if watch:
            if await self.monitor.watch(key, CELL_NAMESPACES):
                if key in self._refused:
                    self._refused.discard(key)
                    log.info("the cells of %s are watched again", key)
            else:  # refused (the bus's rule limit?): each cycle tries again and reads them
                if key not in self._refused:
                    log.warning("could not watch the cells of %s: read each cycle instead", key)
                self._refused.add(key)
                self._live.discard(key)
        else:
            await self.monitor.unwatch(key, CELL_NAMESPACES)
        await self._read(key)

    async def _read(self, key: str) -> None:
        service = self.monitor.services.get(key)
        if service is None or key in self._reading:
            return
        self._reading.add(key)
        try:
            read = await self.monitor.read(key, cell_subtree(service.values))
        finally:
            self._reading.discard(key)
        service = self.monitor.services.get(key)
        if read is None or service is None:
            return
        cells = {p: v for p, v in service.values.items() if is_cell(p)}
        cells.update(read)
        # a disagreement is a fault of the pack: the cycle reports it (one line per episode)
        self.watch = cellwatch.checked(self.watch, key, service.values, cells, self._clock())
        self.monitor.update(key, read)
        self._sync()
