"""A fake ``com.victronenergy.settings`` that behaves like Victron's localsettings on the wire.

What it copies (localsettings.py, see shared docs): AddSettings on ``/`` with the granted value in
the reply and localsettings' error codes, AddSetting(ssvsvv) on a group, RemoveSettings,
SetValue answering 0/-1 with min/max and type checks, GetMin/GetMax/GetDefault/GetAttributes,
``ClassAndVrmInstance`` bumping to the next free instance of a class, and change reports as
``PropertiesChanged`` only (never ItemsChanged). Nothing is written to disk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dbus_fast import Message, Variant
from dbus_fast.aio import MessageBus

from aggbatt.venus import bus as busmod
from aggbatt.venus.bus import BUSITEM
from aggbatt.venus.service import Item, VeService
from aggbatt.venus.settings import SETTINGS_INTERFACE, SETTINGS_SERVICE
from aggbatt.venus.wire import Value, unwrap, wrap

# localsettings' AddSettingError codes
ERR_UNDERSCORE = -2
ERR_TYPE = -3
ERR_INVALID_PATH = -4
ERR_TYPE_DIFFERS = -5
ERR_DEFAULT = -6
ERR_RANGE = -7
ERR_IS_GROUP = -8
ERR_NOT_SETTINGS = -9

_TYPES: dict[str, type] = {"i": int, "f": float, "s": str}


@dataclass(slots=True)
class _Meta:
    kind: str
    default: Value
    min: Value
    max: Value
    silent: bool


def _add_setting_signature(signature: str) -> bool:
    """``ssvsvv`` as declared, or what a dbus-python client sends without introspecting it:
    the same six arguments as plain values (velib's settingsdevice: ``ssssii``, ``ssdsdd`` ...)."""
    if signature == "ssvsvv":
        return True
    return (
        len(signature) == 6
        and signature[:2] == "ss"
        and signature[3] == "s"
        and all(c in "sidxuynqtb" for c in signature)
    )


def _kind_of(value: Value) -> str | None:
    if isinstance(value, bool):
        return "i"
    if isinstance(value, int):
        return "i"
    if isinstance(value, float):
        return "f"
    if isinstance(value, str):
        return "s"
    return None


class FakeLocalSettings(VeService):
    """``com.victronenergy.settings`` for private buses."""

    def __init__(self, bus: MessageBus, initial: Mapping[str, Value] | None = None) -> None:
        super().__init__(bus, SETTINGS_SERVICE)
        self._meta: dict[str, _Meta] = {}
        for path, value in (initial or {}).items():
            self._add_setting(path, value, None, None, False)

    @classmethod
    async def start(
        cls, bus_choice: str | None = None, initial: Mapping[str, Value] | None = None
    ) -> FakeLocalSettings:
        service = cls(await busmod.connect(bus_choice), initial)
        await service.register()
        return service

    def value(self, path: str) -> Value:
        return self[path]

    # --- adding -----------------------------------------------------------------------------

    def _add_setting(
        self, path: str, default: Value, lo: Value, hi: Value, silent: bool
    ) -> tuple[int, Value]:
        if not path.startswith("/Settings/"):
            return ERR_NOT_SETTINGS, None
        if any(part.startswith("_") for part in path.split("/")):
            return ERR_UNDERSCORE, None
        if path.endswith("/") or "//" in path:
            return ERR_INVALID_PATH, None
        kind = _kind_of(default)
        if kind is None:
            return ERR_TYPE, None
        if path in self._children:
            return ERR_IS_GROUP, None
        ranged = kind != "s" and lo is not None and hi is not None and (lo or hi)
        if ranged and not lo <= default <= hi:
            return ERR_RANGE, None
        if path in self._meta:
            meta = self._meta[path]
            if meta.kind != kind:
                return ERR_TYPE_DIFFERS, None
            return 0, self[path]
        value = default
        if path.endswith("/ClassAndVrmInstance"):
            value = self._free_instance(path, str(default))
        self._meta[path] = _Meta(kind, default, lo, hi, silent)
        try:
            self.add_path(path, value, writable=True, announce=False)
        except ValueError:
            del self._meta[path]
            return ERR_INVALID_PATH, None
        if self.registered:
            self._announce(path, with_attributes=True)
        return 0, value

    def _free_instance(self, path: str, wanted: str) -> str:
        """localsettings' DevicesGroup: a taken ``class:n`` becomes the next free n."""
        cls, _, number = wanted.partition(":")
        if not number.isdigit():
            return wanted
        taken = {
            str(self[p]) for p in self._meta if p.endswith("/ClassAndVrmInstance") and p != path
        }
        n = int(number)
        while f"{cls}:{n}" in taken:
            n += 1
        return f"{cls}:{n}"

    def _announce(self, path: str, with_attributes: bool = False) -> None:
        item = self._items[path]
        body: dict[str, Variant] = dict(item.entry(path))
        if with_attributes:
            meta = self._meta[path]
            body["Default"] = wrap(meta.default)
            body["Min"] = wrap(meta.min if meta.min is not None else 0)
            body["Max"] = wrap(meta.max if meta.max is not None else 0)
        self._send(path, "PropertiesChanged", "a{sv}", [body])

    # --- calls ------------------------------------------------------------------------------

    def _on_message(self, msg: Message) -> Message | bool | None:
        if msg.interface in (None, SETTINGS_INTERFACE, BUSITEM):
            member = msg.member
            if member == "AddSettings" and msg.signature == "aa{sv}":
                return self._add_settings_call(msg)
            if member in ("AddSetting", "AddSilentSetting") and _add_setting_signature(
                msg.signature
            ):
                return self._add_setting_call(msg, silent=member == "AddSilentSetting")
            if member == "RemoveSettings" and msg.signature == "as":
                return self._remove_settings_call(msg)
        return super()._on_message(msg)

    def _add_settings_call(self, msg: Message) -> Message:
        results: list[dict[str, Variant]] = []
        for entry in msg.body[0]:
            path = str(unwrap(entry.get("path", Variant("s", ""))))
            default = unwrap(entry.get("default", Variant("ai", [])))
            lo = unwrap(entry["min"]) if "min" in entry else None
            hi = unwrap(entry["max"]) if "max" in entry else None
            silent = bool(unwrap(entry["silent"])) if "silent" in entry else False
            if default is None:
                code, value = ERR_DEFAULT, None
            else:
                code, value = self._add_setting(path, default, lo, hi, silent)
            result = {"path": Variant("s", path), "error": Variant("i", code)}
            if code == 0:
                result["value"] = wrap(value)
            results.append(result)
        return Message.new_method_return(msg, "aa{sv}", [results])

    def _add_setting_call(self, msg: Message, silent: bool) -> Message:
        group, name, default, kind, lo, hi = msg.body
        if kind not in _TYPES:
            return Message.new_method_return(msg, "i", [ERR_TYPE])
        try:
            cast = _TYPES[kind]
            value = cast(unwrap(default))
            lo_v, hi_v = (None, None) if kind == "s" else (cast(unwrap(lo)), cast(unwrap(hi)))
        except (TypeError, ValueError):
            return Message.new_method_return(msg, "i", [ERR_DEFAULT])
        base = (msg.path or "/").rstrip("/")
        path = f"{base}/{group.strip('/')}/{name.strip('/')}".replace("//", "/")
        if not path.startswith("/Settings"):
            path = "/Settings" + path
        code, _ = self._add_setting(path, value, lo_v, hi_v, silent)
        return Message.new_method_return(msg, "i", [code])

    def _remove_settings_call(self, msg: Message) -> Message:
        codes: list[int] = []
        removed: list[str] = []
        for path in msg.body[0]:
            if path in self._meta:
                del self._meta[path]
                removed.append(path)
                codes.append(0)
            else:
                codes.append(-1)
        if removed:
            self._remove_quietly(removed)
        return Message.new_method_return(msg, "ai", [codes])

    def _remove_quietly(self, paths: list[str]) -> None:
        for path in paths:
            self._items.pop(path, None)
            self._send(
                path,
                "PropertiesChanged",
                "a{sv}",
                [{"Value": Variant("ai", []), "Text": Variant("s", "")}],
            )
        self._rebuild_tree()

    def _set_value(self, msg: Message, path: str, item: Item) -> Message:
        meta = self._meta.get(path)
        new = unwrap(msg.body[0])
        if meta is None or new is None:
            return Message.new_method_return(msg, "i", [-1])
        try:
            value: Any = _TYPES[meta.kind](new)
        except (TypeError, ValueError):
            return Message.new_method_return(msg, "i", [-1])
        if isinstance(new, str) and meta.kind != "s":
            return Message.new_method_return(msg, "i", [-1])
        ranged = meta.kind != "s" and (meta.min or meta.max)
        if ranged and not meta.min <= value <= meta.max:
            return Message.new_method_return(msg, "i", [-1])
        if path.endswith("/ClassAndVrmInstance"):
            value = self._free_instance(path, str(value))
        self[path] = value
        return Message.new_method_return(msg, "i", [0])

    def _extra_leaf_call(self, msg: Message, path: str, item: Item) -> Message | None:
        meta = self._meta.get(path)
        if meta is None:
            return None
        member = msg.member
        if member == "GetDefault":
            return Message.new_method_return(msg, "v", [wrap(meta.default)])
        if member == "GetMin":
            return Message.new_method_return(msg, "v", [wrap(meta.min or 0)])
        if member == "GetMax":
            return Message.new_method_return(msg, "v", [wrap(meta.max or 0)])
        if member == "GetAttributes":
            return Message.new_method_return(
                msg,
                "vvvi",
                [wrap(meta.default), wrap(meta.min or 0), wrap(meta.max or 0), int(meta.silent)],
            )
        return None
