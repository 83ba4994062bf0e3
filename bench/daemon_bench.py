"""The daemon benchmark: CPU per hour, peak RSS and reaction latency against the floor.

``python -m bench daemon [--window S] [--events N] [--sweep] [--build pure|compiled|both]
[--signals per-path|batched]``

By default both builds of dbus-fast run, the pure-Python 2.22.1 that Venus OS ships first
(``.venv-venus``, made by ``./dev compat`` or ``./dev bench``), then the compiled one of
``.venv``. ``--python PATH`` runs one interpreter instead.

On a private bus: a sim process (packs whose every cell changes each second), the real daemon
(``aggbatt run`` as its own process), a bare dbus-fast listener with the same subscriptions (the
floor: what merely listening costs) and a probe that timestamps every CVL change. Latency is
from the sim publishing a cell over the max (or back) to the probe seeing the new CVL.

The packs publish as dbus-serialbattery does (``--signals per-path``, the default): velib sends
one PropertiesChanged per changed path, since ``publish_dbus`` sets path by path; the batched
load (one ItemsChanged per update, as drivers with ``with service as s:`` send) runs as a
second row. A second listener subscribes to the summary paths only (no cell path): what a
daemon that did not receive every cell would pay for listening.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from aggbatt.sim.privatebus import PrivateBus

ROOT = Path(__file__).resolve().parents[1]
BUILDS = {"pure": ROOT / ".venv-venus" / "bin" / "python", "compiled": Path(sys.executable)}
"""dbus-fast as Venus ships it (pure Python, 2.22.1), and as PyPI's wheels build it."""
MIDDLE_SOC = 0.45
"""Every cell in LFP's flat middle, clear of rule 4's bands: the packs' cells are not received."""
TOP_SOC = 0.975
"""At the top of charge, every pack's summary in the band: all their cells are received."""
PROFILE = os.environ.get("AGGBATT_PROFILE", "")
"""Set to a file name to run the daemon under cProfile (the profile is written on SIGTERM)."""


def cpu_seconds(pid: int) -> float:
    """CPU time of all the process's threads, from schedstat (ns resolution; /proc/PID/stat
    counts 10 ms ticks, too coarse for a listener that uses a few ms a second)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Proc:
    """A helper process whose JSON stdout lines arrive on a queue."""

    def __init__(self, argv: list[str], stdin: bool = False) -> None:
        env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"}
        self.p = subprocess.Popen(
            argv, stdin=subprocess.PIPE if stdin else None, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env,
        )  # fmt: skip
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            try:
                self.lines.put(json.loads(line))
            except ValueError:
                continue

    def next(self, timeout: float = 30.0) -> dict[str, Any]:
        return self.lines.get(timeout=timeout)

    def send(self, text: str) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()

    def stop(self) -> None:
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()


def vm_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _config(tmp: str, batteries: int, cells: int) -> Path:
    config = Path(tmp) / "config.toml"
    config.write_text(
        f"[batteries]\nexpected = {batteries}\ncells_per_battery = {cells}\n"
        '[daemon]\nlog_level = "WARNING"\nlog_period = 0\n'
    )
    return config


def run_once(
    python: str,
    batteries: int,
    cells: int,
    window: float,
    events: int,
    signals: str = "per-path",
    soc: float = MIDDLE_SOC,
) -> dict[str, Any]:
    with PrivateBus() as bus, tempfile.TemporaryDirectory() as tmp:
        address = bus.address
        config = _config(tmp, batteries, cells)
        sim = Proc(
            [python, "-m", "bench.procs", "sim", address, str(batteries), str(cells), signals,
             str(soc)], True,
        )  # fmt: skip
        sim.next()
        profile = ["-m", "cProfile", "-o", PROFILE] if PROFILE else []
        daemon = Proc([python, *profile, "-m", "aggbatt", "run", "--config", str(config),
                       "--state-dir", tmp, "--bus", address])  # fmt: skip
        probe = Proc([python, "-m", "bench.procs", "probe", address])
        probe.next()
        bare = Proc([python, "-m", "bench.procs", "bare", address])
        bare.next()
        summary = Proc([python, "-m", "bench.procs", "bare", address, "summary"])
        summary.next()
        try:
            time.sleep(3.0)  # warm-up: scans done, first cycles run
            d0, b0, t0 = cpu_seconds(daemon.p.pid), cpu_seconds(bare.p.pid), time.monotonic()
            s0 = cpu_seconds(summary.p.pid)
            time.sleep(window)
            elapsed = time.monotonic() - t0
            daemon_cpu = (cpu_seconds(daemon.p.pid) - d0) / elapsed
            bare_cpu = (cpu_seconds(bare.p.pid) - b0) / elapsed
            summary_cpu = (cpu_seconds(summary.p.pid) - s0) / elapsed
            latencies = measure_latency(sim, probe, events)
            rss = peak_rss_mib(daemon.p.pid)
            bare_rss = peak_rss_mib(bare.p.pid)
            alive = daemon.p.poll() is None
        finally:
            for proc in (summary, bare, probe, daemon, sim):
                proc.stop()
    result: dict[str, Any] = {
        "batteries": batteries,
        "cells": cells,
        "signals": signals,
        "soc": soc,
        "window_s": round(elapsed, 1),
        "daemon_cpu_s_per_hour": round(daemon_cpu * 3600, 1),
        "bare_listener_cpu_s_per_hour": round(bare_cpu * 3600, 1),
        "daemon_over_bare": round(daemon_cpu / bare_cpu, 2) if bare_cpu else None,
        "summary_listener_cpu_s_per_hour": round(summary_cpu * 3600, 1),
        "daemon_peak_rss_mib": round(rss, 1),
        "bare_listener_peak_rss_mib": round(bare_rss, 1),
        "daemon_rss_over_bare_mib": round(rss - bare_rss, 1),
        "daemon_alive": alive,
    }
    both = latencies["peak"] + latencies["calm"]
    for key, values in (("", both), ("enter_", latencies["peak"]), ("leave_", latencies["calm"])):
        if values:
            result.update(_percentiles(key, values))
    return result


def _percentiles(prefix: str, seconds: list[float]) -> dict[str, Any]:
    ms = sorted(x * 1000 for x in seconds)
    return {
        f"{prefix}latency_events": len(ms),
        f"{prefix}latency_ms_p50": round(statistics.median(ms), 1),
        f"{prefix}latency_ms_p99": round(ms[min(len(ms) - 1, int(len(ms) * 0.99))], 1),
        f"{prefix}latency_ms_max": round(ms[-1], 1),
    }


def soak(
    python: str, seconds: float, rate_hz: float, batteries: int = 8, cells: int = 24
) -> dict[str, Any]:
    """The daemon's memory over a long run at ``rate_hz`` times serialbattery's rate, the packs
    pushed into rule 4's band and back every 20 s (both paths of the cells exercised)."""
    with PrivateBus() as bus, tempfile.TemporaryDirectory() as tmp:
        address = bus.address
        config = _config(tmp, batteries, cells)
        sim = Proc(
            [python, "-m", "bench.procs", "sim", address, str(batteries), str(cells), "per-path",
             str(MIDDLE_SOC), str(rate_hz)], True,
        )  # fmt: skip
        sim.next()
        daemon = Proc([python, "-m", "aggbatt", "run", "--config", str(config),
                       "--state-dir", tmp, "--bus", address])  # fmt: skip
        samples: list[tuple[float, float]] = []
        try:
            time.sleep(30.0)  # warm-up: imports, scans, the first reads of every pack's cells
            start = time.monotonic()
            n = 0
            while (t := time.monotonic() - start) < seconds:
                samples.append((round(t, 1), round(vm_rss_mib(daemon.p.pid), 2)))
                sim.send("peak" if n % 2 == 0 else "calm")
                n += 1
                time.sleep(20.0)
            samples.append((round(time.monotonic() - start, 1), vm_rss_mib(daemon.p.pid)))
            alive = daemon.p.poll() is None
        finally:
            for proc in (daemon, sim):
                proc.stop()
    first, last = samples[0][1], samples[-1][1]
    # the growth: the mean of the last quarter against the first quarter (RSS moves in pages)
    quarter = max(1, len(samples) // 4)
    early = statistics.mean(r for _, r in samples[:quarter])
    late = statistics.mean(r for _, r in samples[-quarter:])
    return {
        "seconds": seconds,
        "rate_hz": rate_hz,
        "rss_first_mib": round(first, 2),
        "rss_last_mib": round(last, 2),
        "rss_max_mib": round(max(r for _, r in samples), 2),
        "growth_mib": round(late - early, 2),
        "daemon_alive": alive,
        "samples": samples,
    }


def measure_latency(sim: Proc, probe: Proc, events: int) -> dict[str, list[float]]:
    """Seconds from a cell published over the max ("peak": its summary enters rule 4's band
    and cuts the CVL) or back ("calm") to the new CVL seen by another client, by kind."""
    while not probe.lines.empty():
        probe.lines.get_nowait()
    target = None
    latencies: dict[str, list[float]] = {"peak": [], "calm": []}
    for i in range(events):
        kind = "peak" if i % 2 == 0 else "calm"
        sim.send(kind)
        sent = sim.next()["t"]
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                seen = probe.next(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if seen["t"] < sent:
                target = target if kind == "peak" else seen["cvl"]
                continue
            if kind == "peak" and (target is None or seen["cvl"] < target):
                latencies[kind].append(seen["t"] - sent)
                break
            if kind == "calm" and (target is None or seen["cvl"] >= target):
                target = seen["cvl"]
                latencies[kind].append(seen["t"] - sent)
                break
        time.sleep(0.05 + 0.1 * ((i * 7919) % 10) / 10)
    return latencies


def run_build(build: str, python: str, args: argparse.Namespace) -> dict[str, Any]:
    probe = [python, "-c", "import dbus_fast, dbus_fast.message as m; print(m.__file__)"]
    where = subprocess.run(probe, capture_output=True, text=True, check=True).stdout.strip()
    version = subprocess.run(
        [python, "-c", "from importlib.metadata import version; print(version('dbus-fast'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    run: dict[str, Any] = {
        "build": build,
        "python": python,
        "dbus_fast": version,
        "dbus_fast_compiled": where.endswith(".so"),
        "main": run_once(python, 8, 24, args.window, args.events, args.signals),
    }
    if args.signals == "per-path":  # the cells of every pack in rule 4's band (the top)
        run["in_band"] = run_once(python, 8, 24, args.window, 0, args.signals, TOP_SOC)
    if args.soak:
        run["soak"] = soak(python, args.soak, args.soak_rate)
    if args.signals == "per-path":  # the batched load of drivers that use ``with service``
        run["batched"] = run_once(python, 8, 24, args.window, 0, "batched")
    if args.sweep:
        run["sweep"] = [
            run_once(python, b, c, max(10.0, args.window / 4), 0, args.signals)
            for b in (1, 4, 8, 16)
            for c in (16, 24, 32)
        ]
    return run


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench daemon")
    parser.add_argument("--window", type=float, default=60.0, help="CPU window in seconds")
    parser.add_argument("--events", type=int, default=500, help="latency events")
    parser.add_argument("--sweep", action="store_true", help="also 1..16 packs x 16..32 cells")
    parser.add_argument("--build", choices=("pure", "compiled", "both"), default="both")
    parser.add_argument(
        "--signals", choices=("per-path", "batched"), default="per-path",
        help="how the packs publish: per-path PropertiesChanged (serialbattery) or ItemsChanged",
    )  # fmt: skip
    parser.add_argument("--python", help="one interpreter instead of --build")
    parser.add_argument("--soak", type=float, default=0.0, help="also a memory soak, seconds")
    parser.add_argument("--soak-rate", type=float, default=5.0, help="the soak's packs, Hz")
    parser.add_argument("--out", type=Path, help="write the JSON here too")
    args = parser.parse_args(argv)
    if args.python:
        pythons = {"given": Path(args.python)}
    elif args.build == "both":
        pythons = dict(BUILDS)
    else:
        pythons = {args.build: BUILDS[args.build]}
    report: dict[str, Any] = {"runs": []}
    for build, python in pythons.items():
        if not python.exists():
            print(f"{python} is missing: run ./dev compat (it builds .venv-venus)", file=sys.stderr)
            return 2
        report["runs"].append(run_build(build, str(python), args))
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0
