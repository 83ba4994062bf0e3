"""``aggbatt doctor``: is the live system set up so that DVCC follows aggbatt? What is missing?

:func:`gather` reads the bus (settings, the system service, the batteries and our own service,
watching them for a few seconds to see how fresh their data is); :func:`diagnose` is pure and
turns those facts into findings, each a plain sentence with the fix.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from aggbatt.config import Config
from aggbatt.core.battery import Battery, Invalid, Offline, Product, product_of
from aggbatt.core.engine import read_all
from aggbatt.core.limits import bms_bank_limit
from aggbatt.core.selection import (
    ccl_honoured_with_feed_in,
    classify_batteries,
    measure_current,
    select_batteries,
    service_class,
    wanted_classes,
)
from aggbatt.feedin import FEED_IN_PATH
from aggbatt.venus import bus as busmod
from aggbatt.venus.client import Monitor, MonitorListener, RemoteService
from aggbatt.venus.settings import SettingsClient
from aggbatt.venus.wire import Value

BATTERY_SERVICE = "/Settings/SystemSetup/BatteryService"
BMS_INSTANCE = "/Settings/SystemSetup/BmsInstance"
DVCC = "/Settings/Services/Bol"
SETTINGS = (BATTERY_SERVICE, BMS_INSTANCE, DVCC, FEED_IN_PATH)

Level = Literal["ok", "warning", "problem"]
WATCH_S = 12.0
"""How long ``gather`` watches the packs by default: longer than the slowest BMS's poll
(HLPdata, 10 s), so each pack's own rate is seen."""


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    text: str
    fix: str = ""
    collision: bool = False
    """aggbatt's settings and a pack driver's work against each other."""


@dataclass(frozen=True, slots=True)
class Watch:
    """How one pack published during the watch."""

    seconds: float
    """How long it was watched."""
    updates: int = 0
    """Signals that changed a value."""
    every: float | None = None
    """Its own rate: the median seconds between them (None with fewer than three)."""
    quiet_for: float = 0.0
    """Seconds from its last update to the end of the watch."""


@dataclass
class Facts:
    ours: dict[str, Any] | None
    """Our service's values, None when it is not on the bus."""
    settings: dict[str, Any]
    """The SETTINGS paths (missing ones absent)."""
    services: dict[str, dict[str, Any]]
    """Every other com.victronenergy service of interest, by name."""
    watched: dict[str, Watch] = field(default_factory=dict)
    """How each battery published while it was watched."""
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
    out += _collisions(facts, config)
    out += _freshness(facts, config)
    out += _feed_in(facts)
    return out


def _sources(facts: Facts, config: Config) -> list[Finding]:
    out: list[Finding] = []
    batteries, others = classify_batteries(facts.services, config, config.service.name)
    for name, why in sorted(others.items()):
        out.append(
            Finding(
                "warning" if product_of(facts.services[name]) is Product.SERIALBATTERY else "ok",
                f"Battery service {name.rsplit('.', 1)[-1]} is not a pack of the bank: {why}.",
                "If it is one of your packs: batteries.product_ids, product_names or include.",
            )
        )
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
                    f"Pack {reading.name} is on the bus but {reading.reason}: it is not part "
                    "of the bank.",
                    "Check that BMS (its own display or app).",
                )
            )
        elif isinstance(reading, Invalid) and reading.kind.unseen:
            out.append(
                Finding(
                    "problem",
                    f"Pack {reading.name}: {reading.reason}. aggbatt stops charging the bank "
                    "while a pack of it is not seen.",
                    "Check its BMS cable and its driver's log (serialbattery: "
                    "/data/log/dbus-serialbattery.*/current).",
                )
            )
        faults = reading.faults
        for fault in faults:
            if fault.path in ("/State", "/Info/ChargeMode", "/Voltages/Cell"):
                out.append(Finding("warning", f"Pack {reading.name}: {fault.text}.", ""))
        if isinstance(reading, Battery):
            for note in reading.notes:
                out.append(Finding("ok", f"Pack {reading.name} {note}."))
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


def _collisions(facts: Facts, config: Config) -> list[Finding]:
    """Where aggbatt's settings and a serialbattery driver's would work against each other."""
    out: list[Finding] = []
    batteries = select_batteries(facts.services, config, config.service.name)
    names = {n: v.get(config.batteries.name_path) for n, v in batteries.items()}
    readings = [r for r in read_all(batteries, names, config) if isinstance(r, Battery)]
    if not readings:
        return []
    serial = [b for b in readings if b.product is Product.SERIALBATTERY]
    own = config.control.own
    if config.control.mode == "own":
        for b in serial:
            cell = b.bms_cell_cvl
            if cell is None:
                continue
            resetting = "SoC Reset" in (b.charge_mode or "")
            if resetting and cell > own.max_cell_voltage:
                out.append(
                    Finding(
                        "warning",
                        f"Pack {b.name}'s driver runs a SoC reset to {cell:.2f} V a cell "
                        f"(SOC_RESET_AFTER_DAYS): under max_cell_voltage "
                        f"{own.max_cell_voltage:.2f} V it never completes, and the driver "
                        "silences its high-voltage alarms meanwhile.",
                        "Unset SOC_RESET_AFTER_DAYS in its config.ini: aggbatt's balancing "
                        "tops up the bank.",
                        collision=True,
                    )
                )
            elif own.max_cell_voltage > cell:
                out.append(
                    Finding(
                        "warning",
                        f"control.own.max_cell_voltage {own.max_cell_voltage:.2f} V is above "
                        f"pack {b.name}'s own bulk voltage ({cell:.2f} V a cell): its driver "
                        "cuts its charge current to 0 first, and its AllowToCharge 0 then "
                        "blocks the whole bank until that cell is back down.",
                        f"Set control.own.max_cell_voltage = {cell:.2f}, or raise the "
                        "driver's MAX_CELL_VOLTAGE.",
                        collision=True,
                    )
                )
    out += _currents(readings, config)
    floating = [b.name for b in serial if "float" in (b.charge_mode or "").lower()]
    if floating and config.control.mode == "own":
        out.append(
            Finding(
                "ok",
                f"Pack(s) {', '.join(floating)} float by their driver's own stages: aggbatt "
                "keeps its own charge voltage there (capped at their bulk voltage), a float "
                "is no protection.",
            )
        )
    return out


def _currents(readings: list[Battery], config: Config) -> list[Finding]:
    """The configured maximum against what the packs' BMSes allow together."""
    if config.control.mode != "own" or not readings:
        return []
    allowed = bms_bank_limit(tuple(readings), "charge")
    if allowed is None:
        return []
    each = " + ".join(f"{b.bms_ccl:g}" for b in readings if b.bms_ccl is not None)
    configured = config.control.own.max_charge_current
    if configured is None:
        return [
            Finding(
                "ok",
                f"The packs allow {allowed.value:.0f} A of charge together now ({each} A): "
                "aggbatt's maximum is their rating (control.own.max_charge_current unset).",
            )
        ]
    if configured > allowed.value * 1.05:
        return [
            Finding(
                "warning",
                f"control.own.max_charge_current {configured:g} A is above what the packs "
                f"allow together now, {allowed.value:.0f} A ({each} A): their limits "
                "govern (with feed-in on, through a lower CVL).",
                "Leave control.own.max_charge_current unset (their rating), or set it at or "
                f"below {allowed.value:.0f} A.",
                collision=True,
            )
        ]
    return [Finding("ok", f"The packs allow {allowed.value:.0f} A of charge together ({each} A).")]


def _freshness(facts: Facts, config: Config) -> list[Finding]:
    """Each pack judged by its own rate: serialbattery publishes changes only, every 1 to
    10 s by its BMS, and a quiet pack at rest may change nothing for long."""
    out: list[Finding] = []
    for name, w in sorted(facts.watched.items()):
        short = name.rsplit(".", 1)[-1]
        current: Any = facts.services.get(name, {}).get("/Dc/0/Current")
        flowing = type(current) in (int, float) and abs(current) >= 1.0
        if w.updates == 0:
            if flowing:
                out.append(
                    Finding(
                        "warning",
                        f"{short} published nothing for {w.seconds:.0f} s while {current:g} A "
                        "flows: its driver or BMS may be hung.",
                        "Check its driver's log; aggbatt takes a pack whose values do not move "
                        "while current flows as frozen (batteries.frozen_after).",
                    )
                )
            else:
                out.append(
                    Finding(
                        "ok",
                        f"{short} changed nothing in {w.seconds:.0f} s (at rest: its driver "
                        "publishes changes only).",
                    )
                )
        elif w.every is not None and w.quiet_for > max(3.0 * w.every, 3.0) and flowing:
            out.append(
                Finding(
                    "warning",
                    f"{short} has published nothing for {w.quiet_for:.0f} s, though it "
                    f"updates about every {w.every:.0f} s.",
                    "Check its driver's log.",
                )
            )
        elif w.every is not None:
            out.append(Finding("ok", f"{short} updates about every {w.every:.1f} s."))
    return out


def _feed_in(facts: Facts) -> list[Finding]:
    if ccl_honoured_with_feed_in(facts.services):
        return [
            Finding(
                "ok",
                "A Multi-RS exports what the battery does not take: DVCC holds aggbatt's "
                "charge current limit with feed-in on, so aggbatt never switches feed-in.",
            )
        ]
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
                "DC-coupled PV feed-in is held off by aggbatt (charging stopped, a cell at "
                "its maximum, or the current not held: /Info/ChargeLimitation says which); "
                f"your value {facts.feed_in_held} is restored when that has passed.",
            )
        ]
    state = "on" if value == 1 else "off"
    return [Finding("ok", f"DC-coupled PV feed-in is {state} (your setting).")]


class _Stopwatch(MonitorListener):
    """When each service published a change during the watch."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    def values_changed(self, service: RemoteService, changes: dict[str, Value]) -> None:
        self.times.setdefault(service.name, []).append(time.monotonic())


def watch_of(times: list[float], started: float, ended: float) -> Watch:
    """A pack's rate from the times of its updates."""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    every = statistics.median(gaps) if len(gaps) >= 2 else None
    quiet = ended - (times[-1] if times else started)
    return Watch(ended - started, len(times), every, quiet)


async def gather(
    config: Config,
    bus_choice: str | None,
    watch_s: float = WATCH_S,
    feed_in_held: int | None = None,
) -> Facts:
    classes = wanted_classes(config)
    stopwatch = _Stopwatch()
    async with await Monitor.connect(
        bus_choice, want=lambda n: service_class(n) in classes, listener=stopwatch
    ) as monitor:
        await monitor.start()
        settings = SettingsClient(monitor.bus)
        values: dict[str, Any] = {}
        for path in SETTINGS:
            try:
                values[path] = await settings.get_value(path)
            except busmod.BusCallError:
                continue
        started = time.monotonic()
        stopwatch.times.clear()
        await asyncio.sleep(watch_s)
        ended = time.monotonic()
        services = {n: dict(s.values) for n, s in monitor.services.items()}
        ours = services.pop(config.service.name, None)
        batteries = select_batteries(services, config, config.service.name)
        watched = {n: watch_of(stopwatch.times.get(n, []), started, ended) for n in batteries}
    return Facts(ours, values, services, watched, feed_in_held)


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
