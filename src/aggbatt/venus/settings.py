"""Client of ``com.victronenergy.settings`` (localsettings): persistent settings on Venus.

localsettings answers ``AddSettings`` on ``/`` (interface ``com.victronenergy.Settings``) with the
value it actually granted, which is how a VRM DeviceInstance is allocated: ask for
``battery:N`` at ``/Settings/Devices/<unique id>/ClassAndVrmInstance`` and read back the ``N``
that was free. It reports changes with ``PropertiesChanged`` per setting, never ItemsChanged.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from aggbatt.venus import bus as busmod
from aggbatt.venus.bus import BUSITEM, BusCallError
from aggbatt.venus.wire import Value, unwrap, wrap

log = logging.getLogger(__name__)

SETTINGS_SERVICE = "com.victronenergy.settings"
SETTINGS_INTERFACE = "com.victronenergy.Settings"

SettingCallback = Callable[[str, Value], None]


class SettingsError(RuntimeError):
    """localsettings refused a setting (the error code is localsettings' AddSettingError)."""

    def __init__(self, path: str, code: int) -> None:
        super().__init__(f"localsettings refused {path} (error {code})")
        self.path = path
        self.code = code


@dataclass(frozen=True, slots=True)
class Setting:
    """One setting to create if missing; its type follows the default's Python type."""

    path: str
    default: Value
    min: Value = None
    max: Value = None
    silent: bool = False

    def to_dbus(self) -> dict[str, Variant]:
        entry = {"path": Variant("s", self.path), "default": wrap(self.default)}
        if self.min is not None:
            entry["min"] = wrap(self.min)
        if self.max is not None:
            entry["max"] = wrap(self.max)
        if self.silent:
            entry["silent"] = Variant("i", 1)
        return entry


def instance_setting_path(unique_id: str) -> str:
    return f"/Settings/Devices/{unique_id}/ClassAndVrmInstance"


def custom_name_setting_path(unique_id: str) -> str:
    return f"/Settings/Devices/{unique_id}/CustomName"


class SettingsClient:
    """Reads, writes and creates settings; tells a callback when one changes."""

    def __init__(self, bus: MessageBus, service: str = SETTINGS_SERVICE) -> None:
        self.bus = bus
        self.service = service
        self._watchers: dict[str, list[SettingCallback]] = {}
        self._match: str | None = None

    async def add_settings(self, settings: Sequence[Setting]) -> dict[str, Value]:
        """Create the settings that do not exist; returns every setting's current value."""
        body = await busmod.call(
            self.bus,
            self.service,
            "/",
            "AddSettings",
            "aa{sv}",
            [[s.to_dbus() for s in settings]],
            interface=SETTINGS_INTERFACE,
        )
        granted: dict[str, Value] = {}
        for result in body[0]:
            path = unwrap(result["path"])
            code = unwrap(result.get("error", Variant("i", 0)))
            if code != 0:
                raise SettingsError(path, code)
            granted[path] = unwrap(result.get("value"))
        return granted

    async def get_value(self, path: str) -> Value:
        body = await busmod.call(self.bus, self.service, path, "GetValue")
        return unwrap(body[0])

    async def set_value(self, path: str, value: Value) -> int:
        """localsettings' SetValue: 0 accepted, -1 refused (out of range, wrong type)."""
        body = await busmod.call(self.bus, self.service, path, "SetValue", "v", [wrap(value)])
        return int(body[0])

    async def allocate_device_instance(
        self, unique_id: str, device_class: str = "battery", preferred: int = 1
    ) -> int:
        """Reserve a VRM DeviceInstance; localsettings may grant another number than asked."""
        path = instance_setting_path(unique_id)
        granted = (await self.add_settings([Setting(path, f"{device_class}:{preferred}")]))[path]
        cls, _, number = str(granted).partition(":")
        if cls != device_class or not number.isdigit():
            raise SettingsError(path, -6)
        log.info("DeviceInstance %s granted by localsettings (%s)", number, path)
        return int(number)

    async def watch(self, path: str, callback: SettingCallback) -> None:
        """Call ``callback(path, value)`` whenever localsettings reports a new value."""
        if self._match is None:
            self._match = (
                f"type='signal',sender='{self.service}',interface='{BUSITEM}',"
                "member='PropertiesChanged'"
            )
            self.bus.add_message_handler(self._on_message)
            await busmod.add_match(self.bus, self._match)
        self._watchers.setdefault(path, []).append(callback)

    def _on_message(self, msg: Message) -> None:
        if msg.message_type != MessageType.SIGNAL or msg.member != "PropertiesChanged":
            return
        callbacks = self._watchers.get(msg.path or "")
        if not callbacks:
            return
        try:
            value = unwrap(msg.body[0]["Value"])
        except (IndexError, KeyError, TypeError):
            return
        for callback in callbacks:
            try:
                callback(msg.path or "", value)
            except Exception:
                log.exception("settings watcher of %s failed", msg.path)

    async def close(self) -> None:
        if self._match is not None:
            self.bus.remove_message_handler(self._on_message)
            with contextlib.suppress(BusCallError):
                await busmod.remove_match(self.bus, self._match)
            self._match = None


__all__ = [
    "SETTINGS_INTERFACE",
    "SETTINGS_SERVICE",
    "Setting",
    "SettingsClient",
    "SettingsError",
    "custom_name_setting_path",
    "instance_setting_path",
]
