"""``aggbatt demo``: the real daemon on a simulated Venus system, watched from the bus.

A private dbus-daemon carries a fake localsettings, simulated serialbattery packs, a Multi and
an MPPT (or, with ``--replay``, the recorded bct system). The real :class:`~aggbatt.daemon.Daemon`
runs on it with the default config.toml and publishes ``com.victronenergy.battery.aggbatt``;
the view reads that service from the bus exactly as Venus would. The simulated MPPT obeys
the published CVL and CCL as DVCC would.

The story: unless told otherwise (``--no-faults``, or the ``--*-at`` flags), a cell peaks, a
pack's BMS cable is pulled (its serialbattery driver goes through its lost phase and exits)
and a BMS blocks charging, one after the other. Each fault lasts long
enough to read at any ``--speed``: at least ``FAULT_VISIBLE_S`` real seconds. SIGTERM and
SIGHUP end the demo as Ctrl-C does: the private bus and the temporary folders are removed.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from aggbatt.config import Config, load_config, validate_config
from aggbatt.core.stored import State
from aggbatt.daemon import Daemon
from aggbatt.feedin import FEED_IN_PATH
from aggbatt.sim.privatebus import PrivateBus
from aggbatt.sim.replay import Replayer, load_system
from aggbatt.sim.system import SimulatedSystem, SystemSpec
from aggbatt.state import save_state
from aggbatt.venus.client import Monitor

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "config.toml"
BCT = ROOT / "tests" / "fixtures" / "recordings" / "bct"
"""Victron's recorded system (MIT, see its LICENSE), kept in the repository for the tests."""
LYNX_PARALLEL = "com.victronenergy.battery.lynxparallel0"
SIM_SPEED = 10.0
"""Simulated seconds per real second unless ``--speed`` says otherwise (replay: 1)."""
FAULT_S = 120.0
"""A scripted fault lasts this many simulated seconds ..."""
FAULT_VISIBLE_S = 10.0
"""... and at least this many real seconds, so it can be read at any speed."""
MAX_PACKS = 16
CELLS = (4, 32)


class DemoError(ValueError):
    """A flag the demo cannot run with; the message names it and the fix."""


@dataclass
class DemoOptions:
    batteries: int = 2
    cells: int = 16
    duration: float = 0.0
    """Real seconds to run; 0 runs until Ctrl-C."""
    speed: float | None = None
    """Simulated (or recorded) seconds per real second; None: SIM_SPEED, or 1 for a replay."""
    pull_at: float | None = None
    peak_at: float | None = None
    block_at: float | None = None
    config: Path | None = None
    replay: bool = False
    faults: bool = True
    """The default story when no ``*_at`` is given; False: a quiet bank."""
    events: list[str] = field(default_factory=list)
    driver_up: bool = True
    """What the story last told of the pulled pack's driver (running or exited)."""

    def checked(self) -> DemoOptions:
        """These options with the story filled in; raises :class:`DemoError` naming a flag."""
        if not 1 <= self.batteries <= MAX_PACKS:
            raise DemoError(f"--batteries {self.batteries}: give 1 to {MAX_PACKS} packs")
        if not CELLS[0] <= self.cells <= CELLS[1]:
            raise DemoError(f"--cells {self.cells}: give {CELLS[0]} to {CELLS[1]} cells per pack")
        if self.speed is not None and not 0 < self.speed <= 3600:
            raise DemoError(
                f"--speed {self.speed:g}: give simulated seconds per second, 0 < speed <= 3600"
            )
        if self.duration < 0:
            raise DemoError(f"--duration {self.duration:g}: give seconds >= 0 (0: until Ctrl-C)")
        for flag, at in (("--pull-at", self.pull_at), ("--peak-at", self.peak_at),
                         ("--block-at", self.block_at)):  # fmt: skip
            if at is not None and at < 0:
                raise DemoError(f"{flag} {at:g}: give a simulated time >= 0 s")
        if self.pull_at is not None and self.batteries < 2:
            raise DemoError(
                "--pull-at needs --batteries 2 or more: the last pack's cable is pulled"
            )
        speed = self.rate
        story = self.faults and (self.pull_at, self.peak_at, self.block_at) == (None,) * 3
        checked = replace(self, speed=speed)
        if story and not self.replay:
            lasting = self.fault_s(speed)
            checked.peak_at = lasting / 2
            checked.pull_at = checked.peak_at + 2 * lasting if self.batteries > 1 else None
            checked.block_at = checked.peak_at + 4 * lasting
        return checked

    @property
    def rate(self) -> float:
        """Simulated (or recorded) seconds per real second, the default filled in."""
        return self.speed or (1.0 if self.replay else SIM_SPEED)

    @staticmethod
    def fault_s(speed: float) -> float:
        """How long (simulated seconds) a scripted fault lasts at ``speed``."""
        return max(FAULT_S, FAULT_VISIBLE_S * speed)


def _config(options: DemoOptions) -> tuple[Config, str]:
    path = options.config or DEFAULT_CONFIG
    base = load_config(path) if path.exists() else Config()
    where = str(path) if path.exists() else "built-in defaults"
    data: dict[str, Any] = base.model_dump()
    data["daemon"]["log_period"] = 0
    if options.replay:
        # the bct system: one 48 V Lynx bank (and a 24 V one, which is not parallel to it)
        data["batteries"].update(product_names=["Lynx Smart BMS"], include=["48v House"],
                                 name_path="/CustomName", expected=1)  # fmt: skip
        data["control"]["mode"] = "passthrough"
        # the Lynx's own 200 A: a BMS limit below it is a reduction (feed-in off, rule 1)
        data["control"]["passthrough"]["max_charge_current"] = 200.0
        return validate_config(data), f"{where}, pass-through for the recorded Lynx BMS"
    data["batteries"].update(expected=options.batteries, cells_per_battery=options.cells)
    return validate_config(data), where


def _text(values: dict[str, Any], path: str, spec: str = "", unit: str = "") -> str:
    v = values.get(path)
    if v is None:
        return "---"
    if spec and isinstance(v, int | float):
        return f"{v:{spec}}{unit}"
    return f"{v}{unit}"


ALARM_LEVEL = {1: "warning", 2: "alarm"}


def alarm_text(values: dict[str, Any]) -> str:
    """The raised alarms in words: "BMS cable (warning), high cell voltage (alarm)"."""
    raised = []
    for path, level in sorted(values.items()):
        if not path.startswith("/Alarms/") or not level:
            continue
        words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", path.removeprefix("/Alarms/")).lower()
        words = words.replace("bms", "BMS").replace("fet", "FET")
        raised.append(f"{words} ({ALARM_LEVEL.get(level, level)})")
    return ", ".join(raised) or "none"


def render(
    ours: dict[str, Any],
    daemon: Daemon,
    elapsed: str,
    events: list[str],
    victron: dict[str, Any] | None = None,
    header: tuple[str, ...] = (),
) -> list[str]:
    v = ours
    lines = [
        *header,
        f"{elapsed}   packs online {_text(v, '/System/NrOfModulesOnline')}"
        f"   offline {_text(v, '/System/NrOfModulesOffline')}",
        f"bank  {_text(v, '/Dc/0/Voltage', '.2f', ' V')}  {_text(v, '/Dc/0/Current', '+.1f', ' A')}"
        f"  SoC {_text(v, '/Soc', '.1f', ' %')}  cells {_text(v, '/System/MinCellVoltage', '.3f')}"
        f" ({_text(v, '/System/MinVoltageCellId')}) .. {_text(v, '/System/MaxCellVoltage', '.3f')}"
        f" ({_text(v, '/System/MaxVoltageCellId')})",
        f"mode  {_text(v, '/Info/ChargeMode')}",
        f"CVL {_text(v, '/Info/MaxChargeVoltage', '6.2f', ' V')}  "
        f"{_text(v, '/Info/ChargeVoltageLimitation')}",
        f"CCL {_text(v, '/Info/MaxChargeCurrent', '6.1f', ' A')}  "
        f"{_text(v, '/Info/ChargeLimitation')}",
        f"DCL {_text(v, '/Info/MaxDischargeCurrent', '6.1f', ' A')}  "
        f"{_text(v, '/Info/DischargeLimitation')}",
    ]
    if daemon.result is not None:
        lim = daemon.result.limits
        lines.append(f"feed-in {'OFF' if lim.feed_in_off else 'on '}  {lim.feed_in_reason}")
        for r in daemon.result.readings:
            if hasattr(r, "reason"):
                lines.append(f"pack left out: {r.name}: {r.reason}")
    lines.append(f"alarms: {alarm_text(v)}")
    if victron is not None:
        lines.append(
            f"Victron's own lynxparallel0: {_text(victron, '/Dc/0/Voltage', '.2f', ' V')} "
            f"{_text(victron, '/Dc/0/Current', '+.1f', ' A')} "
            f"SoC {_text(victron, '/Soc', '.1f', ' %')}"
            f" capacity {_text(victron, '/Capacity', '', ' Ah')}"
        )
    lines.extend(f"event: {e}" for e in events[-4:])
    return lines


def _story(options: DemoOptions) -> str:
    lasting = DemoOptions.fault_s(options.rate)
    parts = [
        f"{what} at {at:.0f} s" for what, at in (
            ("a cell peaks", options.peak_at), ("a BMS cable is pulled", options.pull_at),
            ("a BMS blocks charging", options.block_at)) if at is not None
    ]  # fmt: skip
    if not parts:
        return "no scripted faults"
    return f"{', '.join(parts)} (simulated time; each for {lasting:.0f} s)"


async def run_demo(options: DemoOptions) -> int:
    """Run until ``duration``, Ctrl-C, SIGTERM or SIGHUP; each cleans up the same way."""
    options = options.checked()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    assert main is not None
    for sig in (signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(sig, main.cancel)
    try:
        return await _run(options)
    except asyncio.CancelledError:
        return 0
    finally:
        for sig in (signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def _run(options: DemoOptions) -> int:
    config, where = _config(options)
    speed = options.rate
    with PrivateBus() as private, tempfile.TemporaryDirectory(prefix="aggbatt-demo-") as state:
        save_state(Path(state), State())  # a fresh bank, not a missing file to warn about
        address = private.address
        system: SimulatedSystem | None = None
        replayer: Replayer | None = None
        if options.replay:
            replayer = Replayer(load_system(BCT))
            await replayer.start(address)
            from aggbatt.sim.localsettings import FakeLocalSettings

            settings = await FakeLocalSettings.start(address, {FEED_IN_PATH: 1})
        else:
            system = SimulatedSystem(SystemSpec(options.batteries, options.cells, start_soc=0.93))
            await system.start(address)
        daemon = Daemon(config, Path(state), address)
        await daemon.start()
        viewer = await Monitor.connect(
            address, want=lambda n: n in (config.service.name, LYNX_PARALLEL)
        )
        await viewer.start()
        if replayer is not None:
            what = (f"the recorded bct system ({replayer.last_tick} s, looped) at "
                    f"{speed:g}x")  # fmt: skip
        else:
            what = (f"{options.batteries} simulated serialbattery packs x {options.cells} cells, "
                    f"a Multi and an MPPT that obeys the published CVL/CCL as DVCC would; "
                    f"{speed:g} simulated s per s; {_story(options)}")  # fmt: skip
        header = (
            f"aggbatt demo on a private D-Bus: {what}.",
            f"config: {where}. The view reads {config.service.name} from the bus. Ctrl-C stops.",
            "",
        )
        try:
            await _loop(options, daemon, viewer, address, system, replayer, header)
        finally:
            await viewer.close()
            daemon.stop()
            await daemon.close()
            if system is not None:
                await system.stop()
            if replayer is not None:
                await replayer.stop()
                await settings.close()
    return 0


async def _loop(
    options: DemoOptions,
    daemon: Daemon,
    viewer: Monitor,
    address: str,
    system: SimulatedSystem | None,
    replayer: Replayer | None,
    header: tuple[str, ...],
) -> None:
    tty = sys.stdout.isatty()
    loop = asyncio.get_running_loop()
    end = loop.time() + options.duration if options.duration > 0 else None
    speed = options.rate
    due, loops = 0.0, 0
    name = daemon.config.service.name
    if not tty:
        print("\n".join(header), flush=True)
    while end is None or loop.time() < end:
        if system is not None:
            ours = viewer.services[name].values if name in viewer.services else {}
            await _script(options, system, address)
            cvl = ours.get("/Info/MaxChargeVoltage") or float("inf")
            ccl = ours.get("/Info/MaxChargeCurrent")
            at_cvl = system.bank_voltage() >= cvl
            system.step(speed, charge_limit_a=0.0 if at_cvl else (ccl or 0.0))
            elapsed = f"simulated time {system.elapsed:7.0f} s"
        else:
            assert replayer is not None
            due += speed
            while due >= 1.0:
                due -= 1.0
                if replayer.tick >= replayer.last_tick:
                    replayer.rewind()
                    loops += 1
                    options.events.append(
                        f"the recording ended after {replayer.last_tick} s: playing it again "
                        f"(pass {loops + 1})"
                    )
                replayer.play_tick(replayer.tick + 1)
            elapsed = f"recording second {replayer.tick:4d} of {replayer.last_tick}"
        await asyncio.sleep(1.0)
        daemon.cycle()
        await asyncio.sleep(0.05)
        ours = viewer.services[name].values if name in viewer.services else {}
        victron = viewer.services.get(LYNX_PARALLEL)
        if tty:
            print("\x1b[H\x1b[J", end="")
        lines = render(
            ours, daemon, elapsed, options.events, victron.values if victron else None,
            header if tty else (),  # a screen keeps its header; a log has it once, on top
        )  # fmt: skip
        print("\n".join(lines), flush=True)
        if not tty:
            print()


async def _script(options: DemoOptions, system: SimulatedSystem, address: str) -> None:
    t, events = system.elapsed, options.events
    lasting = DemoOptions.fault_s(options.rate)
    pack1, pack2 = system.batteries[0], system.batteries[-1]
    peaking = options.peak_at is not None and options.peak_at <= t < options.peak_at + lasting
    if peaking != bool(pack1.pack.offset_v and pack1.pack.offset_v[3] != 0.0):
        pack1.set_cell_offset(4, 0.15 if peaking else 0.0)
        events.append(
            f"{t:.0f} s: cell C4 of pack 1 {'peaks by +0.15 V' if peaking else 'is back'}"
        )
    blocking = options.block_at is not None and options.block_at <= t < options.block_at + lasting
    if blocking != pack1.block_charge:
        pack1.block_charge = blocking
        events.append(f"{t:.0f} s: pack 1's BMS {'blocks' if blocking else 'allows'} charging")
    if options.pull_at is not None and len(system.batteries) > 1:
        pulled = options.pull_at <= t < options.pull_at + lasting
        which = f"pack {len(system.batteries)} ({pack2.name.rsplit('.', 1)[-1]})"
        if pulled and pack2.link_up:
            pack2.link_up = False
            events.append(f"{t:.0f} s: {which}: BMS cable pulled (its driver loses the BMS)")
        elif not pulled and not pack2.link_up:
            pack2.link_up = True
            events.append(f"{t:.0f} s: {which}: BMS cable back")
        running = pack2.sbp.driver is not None
        if running != options.driver_up:
            options.driver_up = running
            left = "its driver is back on the bus" if running else "its driver exited"
            events.append(f"{t:.0f} s: {which}: {left}")
