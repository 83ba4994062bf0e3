"""``aggbatt demo``: aggbatt's monitor and core on a simulated Venus system, in the terminal.

A private dbus-daemon carries a fake localsettings, simulated serialbattery packs, a Multi and
an MPPT. aggbatt's monitor reads the packs live from D-Bus; each second the pure core merges
them and decides CVL/CCL/DCL with their reasons; the simulated MPPT obeys those limits as DVCC
would, so the cells climb, a cell peaks, the CVL is cut and feed-in switched off.
Scripted events (``--pull-at``, ``--peak-at``, ``--block-at``) show degraded operation.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from aggbatt.config import Config, load_config
from aggbatt.core.engine import CycleResult, EngineState, initial_state, run_cycle
from aggbatt.core.merge import CellRef
from aggbatt.sim.privatebus import PrivateBus
from aggbatt.sim.system import SimulatedSystem, SystemSpec
from aggbatt.state import State
from aggbatt.venus.client import Monitor

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config.toml"


@dataclass
class DemoOptions:
    batteries: int = 2
    cells: int = 16
    duration: float = 0.0
    """Real seconds to run; 0 runs until Ctrl-C."""
    speed: float = 60.0
    """Simulated seconds per real second."""
    pull_at: float | None = None
    """Simulated second at which pack 2 leaves the bus (it returns 120 s later)."""
    peak_at: float | None = None
    """Simulated second at which a cell of pack 1 peaks by +0.15 V (for 120 s)."""
    block_at: float | None = None
    """Simulated second at which pack 1's BMS blocks charging (for 120 s)."""
    config: Path | None = None


def _v(value: float | None, spec: str, unit: str) -> str:
    return "---" if value is None else f"{value:{spec}}{unit}"


def _cell(cell: CellRef | None) -> str:
    return "---" if cell is None else f"{cell.value:.3f} ({cell.id})"


def render(result: CycleResult, elapsed: float, events: list[str]) -> list[str]:
    agg, lim = result.aggregate, result.limits
    lines = [
        f"simulated time {elapsed:7.0f} s   batteries online {len(agg.batteries)}"
        f"   offline {agg.modules_offline}",
        f"bank  {_v(agg.voltage, '.2f', ' V')}  {_v(agg.current, '+.1f', ' A')}  "
        f"SoC {_v(result.soc, '.1f', ' %')}  cells {_cell(agg.min_cell)} .. {_cell(agg.max_cell)}",
        f"mode  {lim.mode}",
        f"CVL {lim.cvl.value:6.2f} V  {lim.cvl.reason}",
        f"CCL {lim.ccl.value:6.1f} A  {lim.ccl.reason}",
        f"DCL {lim.dcl.value:6.1f} A  {lim.dcl.reason}",
        f"feed-in {'OFF' if lim.feed_in_off else 'on '}  {lim.feed_in_reason}",
    ]
    alarms = {k: v for k, v in agg.alarms.items() if v}
    lines.append(f"alarms {alarms or 'none'}")
    for invalid in agg.invalid:
        lines.append(f"left out: {invalid.name}: {invalid.reason}")
    lines.extend(f"event: {e}" for e in events[-4:])
    return lines


async def run_demo(options: DemoOptions) -> int:
    config_path = options.config or DEFAULT_CONFIG
    config = load_config(config_path) if config_path.exists() else Config()
    config = config.model_copy(
        update={"batteries": config.batteries.model_copy(
            update={"expected": options.batteries, "cells_per_battery": options.cells})}
    )  # fmt: skip
    with PrivateBus() as private:
        spec = SystemSpec(batteries=options.batteries, cells=options.cells, start_soc=0.93)
        system = SimulatedSystem(spec)
        await system.start(private.address)
        monitor = await Monitor.connect(
            private.address, want=lambda n: n.startswith("com.victronenergy.battery.")
        )
        await monitor.start()
        print(
            f"aggbatt demo on a private D-Bus ({private.address})\n"
            f"{options.batteries} simulated serialbattery packs x {options.cells} cells, a Multi "
            f"and an MPPT; config {config_path if config_path.exists() else '(built-in defaults)'}"
            "\nThe MPPT obeys the CVL/CCL below as DVCC would. Ctrl-C stops.\n"
            "(Publishing as com.victronenergy.battery.aggbatt arrives with the daemon.)"
        )
        try:
            await _loop(options, config, system, monitor, private.address)
        finally:
            await monitor.close()
            await system.stop()
    return 0


async def _loop(
    options: DemoOptions, config: Config, system: SimulatedSystem, monitor: Monitor, address: str
) -> None:
    tty = sys.stdout.isatty()
    loop = asyncio.get_running_loop()
    end = loop.time() + options.duration if options.duration > 0 else None
    state: EngineState = initial_state(State())
    events: list[str] = []
    ccl, cvl = float("inf"), float("inf")
    pack1, pack2 = system.batteries[0], system.batteries[-1]
    pulled = False
    while end is None or loop.time() < end:
        t = system.elapsed
        if options.peak_at is not None and options.peak_at <= t < options.peak_at + 120:
            if pack1.model.offset_v[3] == 0.0:
                events.append(f"{t:.0f} s: cell C4 of pack 1 peaks by +0.15 V")
                pack1.set_cell_offset(4, 0.15)
        elif pack1.model.offset_v[3] != 0.0:
            pack1.set_cell_offset(4, 0.0)
            events.append(f"{t:.0f} s: cell C4 of pack 1 back to normal")
        blocking = options.block_at is not None and options.block_at <= t < options.block_at + 120
        if blocking != pack1.block_charge:
            pack1.block_charge = blocking
            events.append(f"{t:.0f} s: pack 1's BMS {'blocks' if blocking else 'allows'} charging")
        if options.pull_at is not None and len(system.batteries) > 1:
            gone = options.pull_at <= t < options.pull_at + 120
            if gone and not pulled:
                await pack2.stop()
                pulled = True
                events.append(f"{t:.0f} s: {pack2.name} left the bus")
            elif not gone and pulled:
                await pack2.start(address)
                pulled = False
                events.append(f"{t:.0f} s: {pack2.name} is back")
        # the MPPT obeys the limits as DVCC would: no net charge at the CVL, at most CCL
        at_cvl = system.bank_voltage() >= cvl
        system.step(options.speed, charge_limit_a=0.0 if at_cvl else ccl)
        await asyncio.sleep(1.0)
        batteries = monitor.of_class("battery")
        snapshots = {s.name: s.values for s in batteries}
        names = {s.name: s.values.get(config.batteries.name_path) for s in batteries}
        result = run_cycle(
            snapshots, names, config, state, now_mono=time.monotonic(), now_wall=time.time(),
            month=dt.date.today().month,
        )  # fmt: skip
        state = result.state
        ccl, cvl = result.limits.ccl.value, result.limits.cvl.value
        if tty:
            print("\x1b[H\x1b[J", end="")
        print("\n".join(render(result, system.elapsed, events)), flush=True)
        if not tty:
            print()
