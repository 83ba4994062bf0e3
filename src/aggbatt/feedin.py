"""Acts on the core's feed-in decision: ``/Settings/CGwacs/OvervoltageFeedIn`` off and back.

The user's own value is kept in the state file while we hold feed-in off, so a restart in the
middle of an episode still restores it (the reference kept it in RAM: docs/comparison.md). The
setting is written only when it differs from the wanted value: no bus or log spam. A bus where
the setting does not exist (a bare localsettings) is reported once and left alone.

Rule 11 of :mod:`aggbatt.core.safety`: :meth:`FeedInKeeper.restore` writes the user's value
back when aggbatt stops, before the service leaves the bus; a user who switches feed-in on
while we hold it off is overruled at once (the limit would not be enforced otherwise) and
told so in the log, and the value they chose is the one restored at the end of the episode.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from aggbatt.venus.bus import BusCallError
from aggbatt.venus.settings import SettingsClient
from aggbatt.venus.wire import Value

log = logging.getLogger(__name__)

FEED_IN_PATH = "/Settings/CGwacs/OvervoltageFeedIn"


class FeedInStore(Protocol):
    """Where the user's value lives while feed-in is held off (the daemon's state keeper)."""

    feed_in_original: int | None

    def keep_feed_in(self, original: int | None) -> None: ...


class FeedInKeeper:
    def __init__(self, settings: SettingsClient, store: FeedInStore) -> None:
        self.settings = settings
        self.store = store
        self.current: int | None = None
        self.available = False
        self._lock = asyncio.Lock()
        self._wanted_off: bool | None = None
        self._failing = False
        self._watching = False

    async def start(self) -> None:
        """Read the setting and watch it; called again whenever localsettings (re)appears."""
        try:
            value = await self.settings.get_value(FEED_IN_PATH)
        except BusCallError as exc:
            log.warning("%s is not available (%s): feed-in is not managed", FEED_IN_PATH, exc)
            return
        self.current = value if isinstance(value, int) else None
        self.available = True
        if not self._watching:
            await self.settings.watch(FEED_IN_PATH, self._changed)
            self._watching = True
            if self.original is not None:
                log.info(
                    "holding feed-in off since before the restart (user's value %s)",
                    self.original,
                )

    @property
    def original(self) -> int | None:
        """The user's value while we hold feed-in off; None when we hold nothing. Owned by
        the store: every change is saved at once."""
        return self.store.feed_in_original

    @original.setter
    def original(self, value: int | None) -> None:
        self.store.keep_feed_in(value)

    def resync(self) -> None:
        """Forget what was last written: the next decision is written again (localsettings
        came back, and may hold another value than the one we wrote)."""
        self._wanted_off = None

    def _changed(self, path: str, value: Value) -> None:
        self.current = value if isinstance(value, int) else None
        if self._wanted_off and self.current not in (0, None) and not self._lock.locked():
            log.warning(
                "%s was set to %s while a protective limit is in force: overruled (DVCC would "
                "ignore the charge limit); %s is restored when the episode ends",
                FEED_IN_PATH, value, value,
            )  # fmt: skip
            self.original = self.current
            self._wanted_off = None  # the next cycle writes 0 again

    def pending(self, off: bool) -> bool:
        """Whether the decision differs from the one last acted on (checked before any task)."""
        return self.available and off != self._wanted_off

    async def apply(self, off: bool, reason: str) -> None:
        """Make the setting match the decision; only transitions write anything."""
        if not self.pending(off):
            return
        async with self._lock:
            self._wanted_off = off
            if off:
                if self.current not in (0, None):
                    if self.original is None:
                        self.original = self.current
                    await self._write(0, f"DC-coupled PV feed-in off: {reason}")
            elif self.original is not None:
                if self.current != self.original:
                    await self._write(self.original, f"DC-coupled PV feed-in restored: {reason}")
                self.original = None

    async def restore(self, reason: str) -> None:
        """Write the user's value back now (aggbatt is stopping); the state keeps it until
        the write has succeeded."""
        if not self.available or self.original is None:
            return
        async with self._lock:
            if self.current != self.original:
                await self._write(self.original, f"DC-coupled PV feed-in restored: {reason}")
            if self.current == self.original:
                self.original = None
            self._wanted_off = None

    async def _write(self, value: int, message: str) -> None:
        try:
            code = await self.settings.set_value(FEED_IN_PATH, value)
        except BusCallError as exc:
            self._failed(f"could not write {FEED_IN_PATH}={value}: {exc}")
            return
        if code != 0:
            self._failed(f"localsettings refused {FEED_IN_PATH}={value} (code {code})")
            return
        if self._failing:
            log.info("%s writable again", FEED_IN_PATH)
        self._failing = False
        self.current = value
        log.info(message)

    def _failed(self, message: str) -> None:
        """Retry next cycle; say it once per outage, not every second."""
        if not self._failing:
            log.error("%s; retrying every cycle", message)
        self._failing = True
        self._wanted_off = None
