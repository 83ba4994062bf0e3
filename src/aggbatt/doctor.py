"""``aggbatt doctor``: is the live system set up so that DVCC follows aggbatt? What is missing?

:func:`gather` reads the bus (settings, the system service, the batteries and our own service,
watching them for a few seconds to see how fresh their data is); :func:`diagnose` is pure and
turns those facts into findings, each a plain sentence with the fix.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aggbatt.config import Config
from aggbatt.core.battery import Invalid, Offline
from aggbatt.core.engine import read_all
from aggbatt.core.selection import measure_current, select_batteries, service_class
from aggbatt.feedin import FEED_IN_PATH
from aggbatt.venus import bus as busmod
from aggbatt.venus.client import Monitor
from aggbatt.venus.settings import SettingsClient

BATTERY_SERVICE = "/Settings/SystemSetup/BatteryService"
BMS_INSTANCE = "/Settings/SystemSetup/BmsInstance"
DVCC = "/Settings/Services/Bol"
SETTINGS = (BATTERY_SERVICE, BMS_INSTANCE, DVCC, FEED_IN_PATH)

Level = Literal["ok", "warning", "problem"]


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    text: str
    fix: str = ""


@dataclass
class Facts:
    ours: dict[str, Any] | None
    """Our service's values, None when it is not on the bus."""
    settings: dict[str, Any]
    """The SETTINGS paths (missing ones absent)."""
    services: dict[str, dict[str, Any]]
    """Every other com.victronenergy service of interest, by name."""
    silent_for: dict[str, float] = field(default_factory=dict)
    """Batteries that published nothing during the watch window: seconds watched."""
    feed_in_held: int | None = None
    """The user's feed-in value that aggbatt holds (from the state file), if any."""


def diagnose(facts: Facts, config: Config, before_enable: bool = False) -> list[Finding]:
    """The findings; ``before_enable``: aggbatt is not started yet, so its absence is fine."""
    out: list[Finding] = []
    name = config.service.name
    instance = facts.ours.get("/DeviceInstance") if facts.ours else None
    if facts.ours is None and before_enable:
        out.append(Finding("ok", f"{name} is not started yet (first install)."))
    elif facts.ours is None:
        out.append(
            Finding(
                "problem",
                f"{name} is not on the bus: aggbatt is not running.",
                "Start it: svc -u /service/aggbatt; see /var/log/aggbatt/current.",
            )
        )
    else:
        out.append(Finding("ok", f"{name} is on the bus as battery instance {instance}."))
    wanted = f"com.victronenergy.battery/{instance}" if instance is not None else "aggbatt"
    monitor = facts.settings.get(BATTERY_SERVICE)
    if monitor is None:
        out.append(
            Finding(
                "warning",
                "The battery monitor setting could not be read.",
                "Check that localsettings runs (com.victronenergy.settings).",
            )
        )
    elif instance is not None and monitor == wanted:
        out.append(Finding("ok", "aggbatt is the selected battery monitor."))
    else:
        out.append(
            Finding(
                "problem",
                f"The battery monitor is {monitor!r}, not aggbatt: the system's voltage, "
                "current and SoC come from another service.",
                "Settings → System setup → Battery monitor: choose aggbatt "
                f"({BATTERY_SERVICE} = {wanted}).",
            )
        )
    bms = facts.settings.get(BMS_INSTANCE)
    if bms is not None and instance is not None and bms == instance:
        out.append(Finding("ok", "aggbatt is the BMS that controls DVCC."))
    elif bms == -1:
        out.append(
            Finding(
                "problem",
                "The controlling BMS is 'Automatic': while aggbatt is off the bus, DVCC "
                "silently uses one pack's own limits for the whole bank.",
                f"Settings → DVCC → Controlling BMS: choose aggbatt ({BMS_INSTANCE} = {instance}).",
            )
        )
    elif bms == -255:
        out.append(
            Finding(
                "problem",
                "The controlling BMS is 'No BMS control': DVCC ignores aggbatt's limits.",
                f"Settings → DVCC → Controlling BMS: choose aggbatt ({BMS_INSTANCE} = {instance}).",
            )
        )
    elif bms is not None:
        out.append(
            Finding(
                "problem",
                f"The controlling BMS is instance {bms}, not aggbatt ({instance}).",
                "Settings → DVCC → Controlling BMS: choose aggbatt.",
            )
        )
    dvcc = facts.settings.get(DVCC)
    if isinstance(dvcc, int) and dvcc & 1:
        out.append(Finding("ok", "DVCC is on."))
    else:
        out.append(
            Finding(
                "problem",
                "DVCC is off: no charger follows the bank's CVL/CCL/DCL.",
                "Settings → DVCC: turn DVCC on.",
            )
        )
    others = sorted(
        n
        for n, v in facts.services.items()
        if n.startswith("com.victronenergy.battery.")
        and v.get("/Info/MaxChargeVoltage") is not None
    )
    if others:
        out.append(
            Finding(
                "warning",
                f"{len(others)} other batteries publish a charge voltage "
                f"({', '.join(o.rsplit('.', 1)[-1] for o in others)}): DVCC's MultipleBatteries "
                "flag stays on. Expected with serialbattery.",
                "Nothing to do while aggbatt is pinned as the controlling BMS.",
            )
        )
    out += _sources(facts, config)
    out += _freshness(facts)
    out += _feed_in(facts)
    return out


def _sources(facts: Facts, config: Config) -> list[Finding]:
    out: list[Finding] = []
    batteries = select_batteries(facts.services, config, config.service.name)
    expected = config.batteries.expected
    found = ", ".join(n.rsplit(".", 1)[-1] for n in sorted(batteries)) or "none"
    if expected and len(batteries) < expected:
        out.append(
            Finding(
                "problem",
                f"{len(batteries)} of {expected} batteries found ({found}).",
                "Check the missing packs' cables and drivers, or batteries.product_names/include "
                "in the config.",
            )
        )
    else:
        out.append(Finding("ok", f"{len(batteries)} batteries found ({found})."))
    names = {n: v.get(config.batteries.name_path) for n, v in batteries.items()}
    for reading in read_all(batteries, names, config):
        if isinstance(reading, Invalid) and reading.kind is Offline.MISMATCH:
            out.append(
                Finding(
                    "problem",
                    f"Pack {reading.name} does not match the configuration: {reading.reason}. "
                    "aggbatt holds the bank's charge current at 0 while it is on the bus.",
                    "Set batteries.cells_per_battery (and batteries.chemistry) to the bank's, "
                    "or exclude that pack with batteries.exclude.",
                )
            )
        elif isinstance(reading, Invalid) and reading.kind is Offline.NOT_RUNNING:
            out.append(
                Finding(
                    "warning",
                    f"Pack {reading.name} is on the bus but its BMS is {reading.reason}: it is "
                    "not part of the bank.",
                    "Check that BMS (its own display or app).",
                )
            )
    measured = measure_current(facts.services, config)
    if measured.problem:
        out.append(
            Finding(
                "problem",
                f"Current source: {measured.problem}; the BMS current is used instead.",
                "Check the device, or [current] in the config.",
            )
        )
    elif config.current.source != "bms":
        out.append(Finding("ok", f"Bank current from {measured.detail}."))
    return out


def _freshness(facts: Facts) -> list[Finding]:
    return [
        Finding(
            "warning",
            f"{name.rsplit('.', 1)[-1]} published nothing for {secs:.0f} s.",
            "A driver that publishes nothing is frozen: check it (serialbattery updates "
            "every second); aggbatt leaves it out after batteries.stale_after.",
        )
        for name, secs in sorted(facts.silent_for.items())
    ]


def _feed_in(facts: Facts) -> list[Finding]:
    value = facts.settings.get(FEED_IN_PATH)
    if value is None:
        return [
            Finding(
                "warning",
                "The ESS feed-in setting does not exist (no ESS assistant?).",
                "Nothing to do unless you use ESS with DC-coupled PV.",
            )
        ]
    if facts.feed_in_held is not None:
        return [
            Finding(
                "ok",
                f"DC-coupled PV feed-in is held off by aggbatt (a cell is high or "
                f"charging is blocked); your value {facts.feed_in_held} is restored when "
                "the cells settle.",
            )
        ]
    state = "on" if value == 1 else "off"
    return [Finding("ok", f"DC-coupled PV feed-in is {state} (your setting).")]


async def gather(
    config: Config, bus_choice: str | None, watch_s: float = 3.0, feed_in_held: int | None = None
) -> Facts:
    classes = {config.batteries.service_class, "battery", "vebus", "solarcharger", "dcload"}
    monitor = await Monitor.connect(bus_choice, want=lambda n: service_class(n) in classes)
    try:
        await monitor.start()
        settings = SettingsClient(monitor.bus)
        values: dict[str, Any] = {}
        for path in SETTINGS:
            try:
                values[path] = await settings.get_value(path)
            except busmod.BusCallError:
                continue
        started = time.monotonic()
        await asyncio.sleep(watch_s)
        services = {n: dict(s.values) for n, s in monitor.services.items()}
        ours = services.pop(config.service.name, None)
        batteries = select_batteries(services, config, config.service.name)
        silent = {n: watch_s for n in batteries if monitor.services[n].last_update < started}
    finally:
        await monitor.close()
    return Facts(ours, values, services, silent, feed_in_held)


def render(findings: list[Finding]) -> str:
    marks = {"ok": "ok  ", "warning": "WARN", "problem": "FIX "}
    lines = []
    for f in findings:
        lines.append(f"[{marks[f.level]}] {f.text}")
        if f.fix:
            lines.append(f"       → {f.fix}")
    problems = sum(f.level == "problem" for f in findings)
    lines.append(
        f"{problems} problem(s), {sum(f.level == 'warning' for f in findings)} warning(s)."
    )
    return "\n".join(lines)
