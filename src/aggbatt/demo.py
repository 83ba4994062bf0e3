"""``aggbatt demo``: the real daemon on a simulated Venus system, watched from the bus.

A private dbus-daemon carries a fake localsettings, simulated serialbattery packs, a Multi and
an MPPT (or, with ``--replay``, the recorded bct system). The real :class:`~aggbatt.daemon.Daemon`
runs on it with the default config.toml and publishes ``com.victronenergy.battery.aggbatt``;
the view reads that service from the bus exactly as Venus would. The simulated MPPT obeys
the published CVL and CCL as DVCC would, so the cells climb, a cell peaks, the CVL is cut and
feed-in is switched off. Scripted events (``--pull-at``, ``--peak-at``, ``--block-at``) show
degraded operation and blocking.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggbatt.config import Config, load_config, validate_config
from aggbatt.daemon import Daemon
from aggbatt.feedin import FEED_IN_PATH
from aggbatt.sim.privatebus import PrivateBus
from aggbatt.sim.replay import Replayer, load_system
from aggbatt.sim.system import SimulatedSystem, SystemSpec
from aggbatt.venus.client import Monitor

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = ROOT / "config.toml"
BCT = ROOT / "tests" / "fixtures" / "recordings" / "bct"
"""Victron's recorded system (MIT, see its LICENSE), kept in the repository for the tests."""
LYNX_PARALLEL = "com.victronenergy.battery.lynxparallel0"


@dataclass
class DemoOptions:
    batteries: int = 2
    cells: int = 16
    duration: float = 0.0
    """Real seconds to run; 0 runs until Ctrl-C."""
    speed: float = 60.0
    """Simulated seconds per real second."""
    pull_at: float | None = None
    peak_at: float | None = None
    block_at: float | None = None
    config: Path | None = None
    replay: bool = False
    events: list[str] = field(default_factory=list)


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


def render(ours: dict[str, Any], daemon: Daemon, elapsed: str, events: list[str],
           victron: dict[str, Any] | None = None) -> list[str]:  # fmt: skip
    v = ours
    lines = [
        f"{elapsed}   modules online {_text(v, '/System/NrOfModulesOnline')}"
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
                lines.append(f"left out: {r.name}: {r.reason}")
    alarms = {p.removeprefix("/Alarms/"): x for p, x in v.items() if p.startswith("/Alarms/") and x}
    lines.append(f"alarms {alarms or 'none'}")
    if victron is not None:
        lines.append(
            f"Victron's own lynxparallel0: {_text(victron, '/Dc/0/Voltage', '.2f', ' V')} "
            f"{_text(victron, '/Dc/0/Current', '+.1f', ' A')} "
            f"SoC {_text(victron, '/Soc', '.1f', ' %')}"
            f" capacity {_text(victron, '/Capacity', '', ' Ah')}"
        )
    lines.extend(f"event: {e}" for e in events[-4:])
    return lines


async def run_demo(options: DemoOptions) -> int:
    config, where = _config(options)
    with PrivateBus() as private, tempfile.TemporaryDirectory(prefix="aggbatt-demo-") as state:
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
        what = "the recorded bct system" if options.replay else (
            f"{options.batteries} simulated serialbattery packs x {options.cells} cells, "
            "a Multi and an MPPT that obeys the published CVL/CCL as DVCC would")  # fmt: skip
        print(f"aggbatt demo on a private D-Bus ({address}): {what}.\nconfig: {where}. "
              f"The view reads {config.service.name} from the bus. Ctrl-C stops.")  # fmt: skip
        try:
            await _loop(options, daemon, viewer, address, system, replayer)
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
) -> None:
    tty = sys.stdout.isatty()
    loop = asyncio.get_running_loop()
    end = loop.time() + options.duration if options.duration > 0 else None
    tick = 0
    name = daemon.config.service.name
    while end is None or loop.time() < end:
        if system is not None:
            ours = viewer.services[name].values if name in viewer.services else {}
            await _script(options, system, address)
            cvl = ours.get("/Info/MaxChargeVoltage") or float("inf")
            ccl = ours.get("/Info/MaxChargeCurrent")
            at_cvl = system.bank_voltage() >= cvl
            system.step(options.speed, charge_limit_a=0.0 if at_cvl else (ccl or 0.0))
            elapsed = f"simulated time {system.elapsed:7.0f} s"
        else:
            assert replayer is not None
            tick += 1
            replayer.play_tick(tick)
            elapsed = f"recording second {tick:4d}"
        await asyncio.sleep(1.0)
        daemon.cycle()
        await asyncio.sleep(0.05)
        ours = viewer.services[name].values if name in viewer.services else {}
        victron = viewer.services.get(LYNX_PARALLEL)
        if tty:
            print("\x1b[H\x1b[J", end="")
        lines = render(ours, daemon, elapsed, options.events, victron.values if victron else None)
        print("\n".join(lines), flush=True)
        if not tty:
            print()


async def _script(options: DemoOptions, system: SimulatedSystem, address: str) -> None:
    t, events = system.elapsed, options.events
    pack1, pack2 = system.batteries[0], system.batteries[-1]
    peaking = options.peak_at is not None and options.peak_at <= t < options.peak_at + 120
    if peaking != (pack1.model.offset_v[3] != 0.0):
        pack1.set_cell_offset(4, 0.15 if peaking else 0.0)
        events.append(
            f"{t:.0f} s: cell C4 of pack 1 {'peaks by +0.15 V' if peaking else 'is back'}"
        )
    blocking = options.block_at is not None and options.block_at <= t < options.block_at + 120
    if blocking != pack1.block_charge:
        pack1.block_charge = blocking
        events.append(f"{t:.0f} s: pack 1's BMS {'blocks' if blocking else 'allows'} charging")
    if options.pull_at is not None and len(system.batteries) > 1:
        gone = options.pull_at <= t < options.pull_at + 120
        if gone and pack2.service is not None:
            await pack2.stop()
            events.append(f"{t:.0f} s: {pack2.name} left the bus")
        elif not gone and pack2.service is None:
            await pack2.start(address)
            events.append(f"{t:.0f} s: {pack2.name} is back")
