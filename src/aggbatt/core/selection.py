"""Which services are batteries, which measure current, and the bank current they give (pure).

Input is what the monitor holds: ``{service name: {path: value}}``. Nothing here touches D-Bus.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aggbatt.config import Config

Services = Mapping[str, Mapping[str, Any]]


def service_class(name: str) -> str:
    """``com.victronenergy.battery.ttyUSB0`` -> ``battery``; "" for names outside Victron's."""
    parts = name.split(".")
    return parts[2] if len(parts) >= 3 and name.startswith("com.victronenergy.") else ""


def wanted_classes(config: Config) -> frozenset[str]:
    """The service classes the daemon (and doctor) track: the packs', the Victron devices
    that measure the current (``vebus``, ``solarcharger``, SmartShunts as ``battery`` or
    ``dcload``) and ``acsystem`` (a Multi-RS, rule 1 (d))."""
    return frozenset(
        {config.batteries.service_class, "battery", "vebus", "solarcharger", "dcload", "acsystem"}
    )


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _matches(entry: int | str, name: str, values: Mapping[str, Any], name_path: str) -> bool:
    if isinstance(entry, int):
        instance = values.get("/DeviceInstance")
        return isinstance(instance, int) and not isinstance(instance, bool) and instance == entry
    wanted = entry.strip()
    candidates = {
        name,
        _text(values.get(name_path)),
        _text(values.get("/Serial")),
        _text(values.get("/CustomName")),
    }
    return wanted in candidates


def is_smartshunt(values: Mapping[str, Any], config: Config) -> bool:
    return config.current.smartshunt_product in _text(values.get("/ProductName"))


def _left_out(name: str, values: Mapping[str, Any], config: Config) -> str:
    """Why a battery service is not a pack of the bank ("" when it is one)."""
    b = config.batteries
    pid = values.get("/ProductId")
    product = _text(values.get("/ProductName"))
    if b.product_ids or b.product_names:
        by_id = type(pid) is int and pid in b.product_ids
        by_name = any(p in product for p in b.product_names)
        if not (by_id or by_name):
            shown = f"0x{pid:04X}" if type(pid) is int else "none"
            return (
                f"its /ProductId ({shown}) is not in batteries.product_ids and its /ProductName "
                f"({product or 'none'!r}) contains none of batteries.product_names"
            )
    elif is_smartshunt(values, config):
        return "a SmartShunt"
    if b.include and not any(_matches(e, name, values, b.name_path) for e in b.include):
        return "not in batteries.include"
    if any(_matches(e, name, values, b.name_path) for e in b.exclude):
        return "in batteries.exclude"
    return ""


def classify_batteries(
    services: Services, config: Config, own_name: str
) -> tuple[dict[str, Mapping[str, Any]], dict[str, str]]:
    """(the packs of the bank, the other battery services with why they are left out)."""
    cls = config.batteries.service_class
    chosen: dict[str, Mapping[str, Any]] = {}
    others: dict[str, str] = {}
    for name, values in services.items():
        if name == own_name or service_class(name) != cls:
            continue
        why = _left_out(name, values, config)
        if why:
            others[name] = why
        else:
            chosen[name] = values
    return chosen, others


def select_batteries(
    services: Services, config: Config, own_name: str
) -> dict[str, Mapping[str, Any]]:
    """The services that are batteries of the bank, by service name: serialbattery's by its
    ``/ProductId`` 0xBA77 (the JBD driver's product name is the BMS's own), or by name."""
    return classify_batteries(services, config, own_name)[0]


@dataclass(frozen=True, slots=True)
class CurrentMeasurement:
    value: float | None
    """Bank current from Victron devices; None: use the BMS current."""
    detail: str
    problem: str = ""
    """Why a configured source could not be used (empty when all is well)."""


def _current(values: Mapping[str, Any]) -> float | None:
    v = values.get("/Dc/0/Current")
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        return None
    return float(v)


def _shunts(services: Services, config: Config) -> tuple[list[tuple[str, Mapping[str, Any]]], str]:
    """(selected shunts, problem): battery-mode shunts and dcload shunts per config."""
    c = config.current
    found = [
        (name, values)
        for name, values in sorted(services.items())
        if service_class(name) in ("battery", "dcload") and is_smartshunt(values, config)
    ]
    if c.smartshunts is False or c.smartshunts == []:
        return [], ""
    if c.smartshunts is True:
        return found, ""
    selected, missing = [], []
    for entry in c.smartshunts:
        match = [(n, v) for n, v in found if _matches(entry, n, v, c.smartshunt_name_path)]
        if match:
            selected.extend(match)
        else:
            missing.append(str(entry))
    problem = (
        ""
        if not missing or c.ignore_smartshunt_absence
        else f"SmartShunt {', '.join(missing)} missing"
    )
    return selected, problem


def measure_current(services: Services, config: Config) -> CurrentMeasurement:
    """The bank current per ``[current]``, or None with the reason to fall back to the BMSes."""
    c = config.current
    if c.source == "bms":
        return CurrentMeasurement(None, "BMS current")
    shunts, problem = _shunts(services, config)
    if problem:
        return CurrentMeasurement(None, "BMS current (fallback)", problem)
    if c.source == "smartshunt":
        battery_shunts = [(n, v) for n, v in shunts if service_class(n) == "battery"]
        if not battery_shunts:
            return CurrentMeasurement(None, "BMS current (fallback)", "no battery-mode SmartShunt")
        name, values = battery_shunts[0]
        value = _current(values)
        if value is None:
            return CurrentMeasurement(None, "BMS current (fallback)", f"{name} has no current")
        return CurrentMeasurement(-value if c.invert_smartshunts else value, f"SmartShunt {name}")
    total, parts = 0.0, []
    groups: list[tuple[str, list[tuple[str, Mapping[str, Any]]], str]] = []
    if c.vebus:
        multis = [
            (n, v)
            for n, v in services.items()
            if service_class(n) == "vebus" and v.get("/Connected") == 1
        ]
        groups.append(("Multi", multis, "" if multis else "no connected Multi (vebus)"))
    if c.solar_chargers:
        mppts = [(n, v) for n, v in services.items() if service_class(n) == "solarcharger"]
        short = len(mppts) < c.expected_solar_chargers
        missing = f"{len(mppts)} of {c.expected_solar_chargers} solar chargers found"
        groups.append(("MPPT", mppts, missing if short else ""))
    for label, devices, missing in groups:
        if missing:
            return CurrentMeasurement(None, "BMS current (fallback)", missing)
        for name, values in devices:
            value = _current(values)
            if value is None:
                return CurrentMeasurement(None, "BMS current (fallback)", f"{name} has no current")
            total += value
        parts.append(f"{len(devices)} {label}")
    for name, values in shunts:
        value = _current(values)
        if value is None:
            if c.ignore_smartshunt_absence:
                continue
            return CurrentMeasurement(None, "BMS current (fallback)", f"{name} has no current")
        sign = 1.0 if service_class(name) == "battery" else -1.0
        total += -sign * value if c.invert_smartshunts else sign * value
    if shunts:
        parts.append(f"{len(shunts)} SmartShunt")
    return CurrentMeasurement(total, " + ".join(parts) or "no Victron source")


def ccl_honoured_with_feed_in(services: Services) -> bool:
    """A Multi-RS (``com.victronenergy.acsystem``) that feeds in: systemcalc then makes PV give
    what the battery takes plus what the inverter exports, so the CCL holds with feed-in on
    (its dvcc.py ``acsystem_allows_feedback``)."""
    for name, values in services.items():
        if service_class(name) != "acsystem":
            continue
        if (
            values.get("/Ac/NoFeedInReason") == 0
            and values.get("/Ess/BatteryDischargeCapacity") is not None
        ):
            return True
    return False
