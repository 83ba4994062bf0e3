"""Cost of the D-Bus layer: CPU microseconds per changed path, published and received.

Scenario: 8 serialbattery-like services x (24 cells + 16 other live paths) publish one batch a
round, every path changed, as serialbattery does each poll. Three processes on a private bus:

* the publisher (``VeService.publish``: one ItemsChanged a service a round);
* aggbatt's ``Monitor`` (unwrap, snapshot, change times, listener callback);
* a bare dbus-fast listener with the same match rules that only counts the messages: the floor,
  what merely listening costs.

Rounds run back to back (not at 1 Hz) so a short run measures many; CPU per path does not
depend on the rate. The report converts to CPU % at 1 Hz.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import dbus_fast.message as dbus_fast_message
from dbus_fast import Message, MessageType

from aggbatt.sim.privatebus import PrivateBus
from aggbatt.venus import bus as busmod
from aggbatt.venus.bus import BUSITEM
from aggbatt.venus.client import Monitor, MonitorListener, RemoteService
from aggbatt.venus.service import VeService
from aggbatt.venus.wire import Value

OTHER_PATHS = [
    "/Dc/0/Voltage",
    "/Dc/0/Current",
    "/Dc/0/Power",
    "/Dc/0/Temperature",
    "/Soc",
    "/Capacity",
    "/ConsumedAmphours",
    "/TimeToGo",
    "/Voltages/Sum",
    "/Voltages/Diff",
    "/System/MinCellVoltage",
    "/System/MaxCellVoltage",
    "/System/MinVoltageCellId",
    "/System/MaxVoltageCellId",
    "/Info/MaxChargeCurrent",
    "/Info/MaxDischargeCurrent",
]


def names(batteries: int) -> list[str]:
    return [f"com.victronenergy.battery.bench{i}" for i in range(batteries)]


class Counter(MonitorListener):
    def __init__(self) -> None:
        self.paths = 0

    def values_changed(self, service: RemoteService, changes: dict[str, Value]) -> None:
        self.paths += len(changes)


async def run_monitor(address: str, expected: int) -> dict[str, float]:
    counter = Counter()
    monitor = await Monitor.connect(
        address, listener=counter, want=lambda n: n.startswith("com.victronenergy.battery.bench")
    )
    await monitor.start()
    print("ready", len(monitor.services), flush=True)
    start = time.process_time()
    while counter.paths < expected:
        await asyncio.sleep(0.01)
    return {"cpu_s": time.process_time() - start, "paths": counter.paths}


async def run_bare(address: str, expected: int, batteries: int) -> dict[str, float]:
    bus = await busmod.connect(address)
    received = {"messages": 0, "paths": 0}

    def handler(msg: Message) -> None:
        if msg.message_type == MessageType.SIGNAL and msg.member == "ItemsChanged":
            received["messages"] += 1
            received["paths"] += len(msg.body[0])

    bus.add_message_handler(handler)
    for name in names(batteries):
        owner = await busmod.get_name_owner(bus, name)
        await busmod.add_match(
            bus, f"type='signal',sender='{owner}',interface='{BUSITEM}',member='ItemsChanged'"
        )
    print("ready", batteries, flush=True)
    start = time.process_time()
    while received["paths"] < expected:
        await asyncio.sleep(0.01)
    return {"cpu_s": time.process_time() - start, "paths": received["paths"]}


async def run_publisher(address: str, batteries: int, cells: int, rounds: int) -> dict[str, Any]:
    services: list[VeService] = []
    for name in names(batteries):
        svc = await VeService.connect(name, address)
        svc.add_path("/DeviceInstance", len(services))
        svc.add_paths({f"/Voltages/Cell{c + 1}": 3.3 for c in range(cells)})
        svc.add_paths({p: 0.0 for p in OTHER_PATHS})
        await svc.register()
        services.append(svc)
    env = dict(os.environ)
    per_round = batteries * (cells + len(OTHER_PATHS))
    expected = per_round * rounds
    listeners = {
        role: subprocess.Popen(
            [sys.executable, "-m", "bench.dbus_cost", role, address, str(expected), str(batteries)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for role in ("monitor", "bare")
    }
    for proc in listeners.values():
        assert proc.stdout is not None
        await asyncio.to_thread(proc.stdout.readline)  # "ready", while our services answer scans
    start = time.process_time()
    wall = time.perf_counter()
    for r in range(1, rounds + 1):
        for s, svc in enumerate(services):
            values: dict[str, Value] = {
                f"/Voltages/Cell{c + 1}": 3.0 + r * 1e-4 + c * 1e-6 + s for c in range(cells)
            }
            values.update({p: float(r) + i for i, p in enumerate(OTHER_PATHS)})
            values["/System/MinVoltageCellId"] = f"C{r % cells + 1}"
            values["/System/MaxVoltageCellId"] = f"C{(r + 1) % cells + 1}"
            svc.publish(values)
        await asyncio.sleep(0)
    publish_cpu = time.process_time() - start
    results: dict[str, Any] = {}
    for role, proc in listeners.items():
        out, _ = await asyncio.to_thread(proc.communicate, None, 600)
        results[role] = json.loads(out.strip().splitlines()[-1])
    for svc in services:
        await svc.close()
    us = 1e6
    report = {
        "batteries": batteries,
        "cells": cells,
        "paths_per_round": per_round,
        "rounds": rounds,
        "wall_s": round(time.perf_counter() - wall, 2),
        "publish_us_per_path": round(publish_cpu * us / expected, 2),
        "monitor_us_per_path": round(results["monitor"]["cpu_s"] * us / expected, 2),
        "bare_listener_us_per_path": round(results["bare"]["cpu_s"] * us / expected, 2),
    }
    for role in ("publish", "monitor", "bare_listener"):
        report[f"{role}_cpu_percent_at_1hz"] = round(
            report[f"{role}_us_per_path"] * per_round / 1e4, 3
        )
    report["monitor_over_bare"] = round(
        report["monitor_us_per_path"] / max(report["bare_listener_us_per_path"], 1e-9), 2
    )
    return report


def main(argv: list[str]) -> int:
    role = argv[0] if argv else "run"
    if role in ("monitor", "bare"):
        address, expected, batteries = argv[1], int(argv[2]), int(argv[3])
        if role == "monitor":
            result = asyncio.run(run_monitor(address, expected))
        else:
            result = asyncio.run(run_bare(address, expected, batteries))
        print(json.dumps(result), flush=True)
        return 0
    rounds = int(argv[1]) if len(argv) > 1 else 300
    with PrivateBus() as private:
        report = asyncio.run(run_publisher(private.address, 8, 24, rounds))
    report["dbus_fast_compiled"] = not dbus_fast_message.__file__.endswith(".py")
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
