"""``aggbatt demo``: aggbatt on a simulated Venus system, on a private D-Bus, in the terminal."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass

from aggbatt.sim.privatebus import PrivateBus
from aggbatt.sim.system import SimulatedSystem, SystemSpec
from aggbatt.venus.client import Monitor, RemoteService


@dataclass
class DemoOptions:
    batteries: int = 2
    cells: int = 16
    duration: float = 0.0
    """Seconds to run; 0 runs until Ctrl-C."""
    speed: float = 10.0
    """Simulated seconds per real second."""


def _fmt(value: object, spec: str, unit: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:{spec}}{unit}"
    return "---"


def render_batteries(services: list[RemoteService]) -> list[str]:
    lines = [f"{'battery':<34} {'V':>8} {'A':>8} {'SoC':>7} {'min cell':>12} {'max cell':>12}"]
    for s in sorted(services, key=lambda s: s.name):
        lines.append(
            f"{s.name:<34} {_fmt(s.values.get('/Dc/0/Voltage'), '.2f', 'V'):>8} "
            f"{_fmt(s.values.get('/Dc/0/Current'), '.1f', 'A'):>8} "
            f"{_fmt(s.values.get('/Soc'), '.1f', '%'):>7} "
            f"{_fmt(s.values.get('/System/MinCellVoltage'), '.3f', 'V'):>7} "
            f"{s.values.get('/System/MinVoltageCellId') or '':<4} "
            f"{_fmt(s.values.get('/System/MaxCellVoltage'), '.3f', 'V'):>7} "
            f"{s.values.get('/System/MaxVoltageCellId') or '':<4}"
        )
    return lines


async def run_demo(options: DemoOptions) -> int:
    with PrivateBus() as private:
        system = SimulatedSystem(SystemSpec(batteries=options.batteries, cells=options.cells))
        await system.start(private.address)
        monitor = await Monitor.connect(
            private.address, want=lambda n: n.startswith("com.victronenergy.battery.")
        )
        await monitor.start()
        print(
            f"aggbatt demo: private D-Bus {private.address}\n"
            f"{options.batteries} simulated serialbattery packs x {options.cells} cells, a Multi "
            "and an MPPT; the table shows each pack as aggbatt's monitor receives it live."
        )
        tty = sys.stdout.isatty()
        loop = asyncio.get_running_loop()
        end = loop.time() + options.duration if options.duration > 0 else None
        try:
            while end is None or loop.time() < end:
                system.step(options.speed * 1.0)
                await asyncio.sleep(1.0)
                lines = render_batteries(monitor.of_class("battery"))
                if tty:
                    print("\x1b[H\x1b[J", end="")
                print(f"t={system.elapsed:6.0f} s (simulated)")
                print("\n".join(lines), flush=True)
        finally:
            await monitor.close()
            await system.stop()
    return 0
