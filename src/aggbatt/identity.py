"""Who the service is on the bus: its VRM DeviceInstance and its CustomName, via localsettings.

localsettings grants the instance (``ClassAndVrmInstance``: the config's is only the
preference, the next free one if it is taken) and keeps the CustomName a user sets in the GUI.
Both are asked for whenever localsettings appears (at start, late, or after it restarted);
until then the config's values are used. A user who changes the instance (GUI, VRM) is
followed: the daemon publishes it and re-registers so that consumers rescan.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aggbatt.config import ServiceConfig
from aggbatt.venus.bus import BusCallError
from aggbatt.venus.service import VeService
from aggbatt.venus.settings import (
    Setting,
    SettingsClient,
    custom_name_setting_path,
    instance_setting_path,
)
from aggbatt.venus.wire import Value

log = logging.getLogger("aggbatt")

SETTINGS_TIMEOUT = 5.0
CUSTOM_NAME_MAX = 64
"""A name is in every GetItems: bounded."""


class Identity:
    def __init__(
        self,
        settings: SettingsClient,
        config: ServiceConfig,
        spawn: Callable[[Coroutine[Any, Any, None]], object],
        service: Callable[[], VeService | None],
    ) -> None:
        """``service``: the exported service once it exists (it is created after the first
        claim, so that it registers with the granted instance)."""
        self.settings = settings
        self.config = config
        self._service = service
        self.instance = config.device_instance
        """The VRM instance: the config's until localsettings grants one."""
        self.custom_name = config.custom_name
        self._spawn = spawn
        self._watching = False

    async def up(self) -> bool:
        """localsettings is there: claim, follow the user's changes, and bring a registered
        service up to date. False when it does not answer."""
        if not await self.claim():
            return False
        await self.follow(self._instance)
        service = self._service()
        if service is not None and service.registered:
            if self.custom_name and service["/CustomName"] != self.custom_name:
                service["/CustomName"] = self.custom_name
            self._instance(self.instance)
        return True

    def _instance(self, number: int) -> None:
        """The user changed our VRM instance (GUI, VRM): publish it and re-register."""
        service = self._service()
        if service is not None and service["/DeviceInstance"] != number:
            service["/DeviceInstance"] = number
            log.info("VRM instance changed to %d: re-registering so consumers rescan", number)
            self._spawn(service.reregister())

    async def claim(self) -> bool:
        """Ask localsettings for the instance and the CustomName; False when it does not
        answer (the config's values stay, said once per attempt)."""
        s = self.config
        name_path = custom_name_setting_path(s.unique_id)
        try:
            instance = await asyncio.wait_for(
                self.settings.allocate_device_instance(s.unique_id, "battery", s.device_instance),
                SETTINGS_TIMEOUT,
            )
            granted = await self.settings.add_settings([Setting(name_path, s.custom_name)])
        except (BusCallError, TimeoutError, RuntimeError) as exc:
            log.warning(
                "localsettings unavailable (%s): using DeviceInstance %d from the config",
                exc, s.device_instance,
            )  # fmt: skip
            return False
        name = granted.get(name_path)
        self.instance = instance
        self.custom_name = name if isinstance(name, str) else s.custom_name
        return True

    async def follow(self, changed: Callable[[int], None]) -> None:
        """Call ``changed(instance)`` when the user changes the instance (watched once)."""
        if self._watching:
            return

        def on_change(path: str, value: Value) -> None:
            number = parse_instance(value)
            if number is not None:
                changed(number)

        await self.settings.watch(instance_setting_path(self.config.unique_id), on_change)
        self._watching = True

    def name_written(self, path: str, value: Value) -> bool:
        """A client's SetValue on /CustomName: a bounded name without control characters is
        accepted and kept in localsettings; anything else is refused."""
        if not isinstance(value, str) or len(value) > CUSTOM_NAME_MAX:
            return False
        if any(ord(c) < 32 or ord(c) == 127 for c in value):
            return False
        self._spawn(self._save(custom_name_setting_path(self.config.unique_id), value))
        return True

    async def _save(self, path: str, value: Value) -> None:
        try:
            await self.settings.set_value(path, value)
        except BusCallError as exc:
            log.warning("could not save %s: %s", path, exc)


def parse_instance(value: Value) -> int | None:
    """``"battery:7"`` -> 7; None for another class or a malformed value."""
    cls, _, number = str(value).partition(":")
    return int(number) if cls == "battery" and number.isdigit() else None
