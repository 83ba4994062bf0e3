"""Command line: ``aggbatt run|check|status|demo``.

Exit codes: 0 fine; 1 a runtime failure (the bus, the service name); 2 a bad config or bad
arguments (nothing is published then).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aggbatt import __version__
from aggbatt.config import Config, ConfigError, load_config
from aggbatt.venus.bus import BusCallError

try:  # dbus-fast 2.22 (Venus) and 5.x both have it
    from dbus_fast.errors import InvalidAddressError
except ImportError:  # pragma: no cover - an older layout
    InvalidAddressError = ValueError  # type: ignore[misc,assignment]

EXIT_RUNTIME = 1
EXIT_CONFIG = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggbatt", description="Merge parallel batteries on Venus OS into one virtual BMS."
    )
    parser.add_argument("--version", action="version", version=f"aggbatt {__version__}")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default: config)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="the daemon")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument("--state-dir", type=Path, default=Path("state"))
    run.add_argument("--bus", help="system, session or a bus address (default: velib's rule)")

    check = sub.add_parser("check", help="validate a config and print the effective values")
    check.add_argument("--config", type=Path, required=True)

    status = sub.add_parser("status", help="print the running service's values from the bus")
    status.add_argument("--bus", help="system, session or a bus address")
    status.add_argument("--service", default=Config().service.name)

    doctor = sub.add_parser("doctor", help="check the live system: DVCC settings, sources, data")
    doctor.add_argument("--config", type=Path, help="the config (default: built-in defaults)")
    doctor.add_argument("--state-dir", type=Path, help="aggbatt's state folder (feed-in held)")
    doctor.add_argument("--bus", help="system, session or a bus address")
    doctor.add_argument(
        "--watch", type=float, default=12.0,
        help="seconds to watch the packs publish (default 12: longer than the slowest BMS poll)",
    )  # fmt: skip
    doctor.add_argument(
        "--before-enable",
        action="store_true",
        help="aggbatt is not started yet: check the packs against the config (install.sh)",
    )

    restore = sub.add_parser(
        "restore-feed-in",
        help="write back the DC-coupled feed-in value aggbatt holds off (uninstall does this)",
    )
    restore.add_argument("--state-dir", type=Path, required=True, help="aggbatt's state folder")
    restore.add_argument("--bus", help="system, session or a bus address")

    forget = sub.add_parser(
        "forget",
        help="forget a pack of the bank that was removed (charging stops while one is not seen)",
    )
    forget.add_argument("pack", help="its name (aggbatt status shows it) or its service name")
    forget.add_argument("--bus", help="system, session or a bus address")
    forget.add_argument("--service", default=Config().service.name)
    forget.add_argument(
        "--state-dir", type=Path,
        help="aggbatt's state folder: used when the service is not running",
    )  # fmt: skip

    imp = sub.add_parser(
        "import-ini", help="convert a dbus-aggregate-batteries config.ini to TOML (on stdout)"
    )
    imp.add_argument("ini", type=Path, help="the reference's config.ini")
    imp.add_argument("--defaults", type=Path, help="its config.default.ini (for v4.x installs)")
    imp.add_argument(
        "--state-dir", type=Path,
        help="also import the charge counter and last balancing into this state folder",
    )  # fmt: skip

    simulate = sub.add_parser(
        "simulate",
        help="the closed-loop bank simulator: scenarios, invariants, pictures (docs/safety.md)",
    )
    simulate.add_argument("scenario", nargs="*", help="scenario names (default: all)")
    simulate.add_argument("--fast", action="store_true", help="the short lengths CI runs")
    simulate.add_argument(
        "--out", type=Path, default=Path("simulation"), help="folder of the report (simulation)"
    )
    simulate.add_argument(
        "--bus",
        action="store_true",
        help="the real daemon on a private bus in the loop (the first 0.6 days of each scenario)",
    )

    demo = sub.add_parser("demo", help="run on a simulated Venus system on a private D-Bus")
    demo.add_argument("--batteries", type=int, default=2, help="simulated packs (default 2)")
    demo.add_argument("--cells", type=int, default=16, help="cells per pack (default 16)")
    demo.add_argument(
        "--duration", type=float, default=0.0, help="seconds to run (default: until Ctrl-C)"
    )
    demo.add_argument(
        "--speed",
        type=float,
        help="simulated (or recorded) seconds per second (default 10; 1 for --replay)",
    )
    lasting = "for 120 s, or 10 s of real time at high speeds"
    for flag, what in (
        ("--pull-at", f"the last pack's BMS cable is pulled {lasting}"),
        ("--peak-at", f"a cell of pack 1 peaks by +0.15 V {lasting}"),
        ("--block-at", f"pack 1's BMS blocks charging {lasting}"),
    ):
        demo.add_argument(
            flag, type=float, metavar="SECONDS", help=f"at this simulated time, {what}"
        )
    demo.add_argument(
        "--no-faults",
        dest="faults",
        action="store_false",
        help="no scripted faults (default: a cell peaks, a BMS cable is pulled, a BMS blocks)",
    )
    demo.add_argument(
        "--replay", action="store_true", help="replay the recorded bct system instead (looped)"
    )
    demo.add_argument(
        "--config", type=Path, help="config file (default: the repository's config.toml)"
    )
    return parser


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Every command ends in one line, never a traceback, when the bus is missing or
    unusable or the reader of its output goes away (``aggbatt check ... | head``)."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except BrokenPipeError:
        # the reader left: say nothing more (and let Python's own flush at exit say nothing)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except (OSError, EOFError, InvalidAddressError, BusCallError) as exc:
        where = getattr(args, "bus", None) or "the default bus"
        print(f"aggbatt {args.command}: cannot use D-Bus ({where}): {exc}", file=sys.stderr)
        return EXIT_RUNTIME


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return cmd_run(args)
    if args.command == "check":
        return cmd_check(args)
    if args.command == "import-ini":
        return cmd_import(args)
    if args.command == "doctor":
        return cmd_doctor(args)
    _logging(args.log_level or "WARNING")
    if args.command == "restore-feed-in":
        return cmd_restore_feed_in(args)
    if args.command == "forget":
        return cmd_forget(args)
    if args.command == "simulate":
        return cmd_simulate(args)
    if args.command == "status":
        from aggbatt.status import show_status

        return asyncio.run(show_status(args.bus, args.service))
    if args.command == "demo":
        from aggbatt.demo import DemoError, DemoOptions, run_demo

        options = DemoOptions(
            args.batteries, args.cells, args.duration, args.speed,
            args.pull_at, args.peak_at, args.block_at, args.config, args.replay, args.faults,
        )  # fmt: skip
        try:
            options.checked()
        except DemoError as exc:
            print(f"aggbatt demo: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        try:
            return asyncio.run(run_demo(options))
        except KeyboardInterrupt:
            return 0
    return EXIT_CONFIG


def _load(path: Path) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"aggbatt: {exc}", file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    own = config.control.own
    print(f"{args.config}: valid")
    print(config.model_dump_json(indent=2))
    volts, factors = own.charge_curve
    print(f"effective charge curve: {list(zip(volts, factors, strict=True))}")
    volts, factors = own.discharge_curve
    print(f"effective discharge curve: {list(zip(volts, factors, strict=True))}")
    full, empty = config.full_cell_voltage, config.empty_cell_voltage
    print(f"SoC full at {full} V/cell, empty at {empty} V/cell")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    import time

    from aggbatt.doctor import diagnose, gather, render
    from aggbatt.state import load_state

    config = _load(args.config) if args.config else Config()
    if config is None:
        return EXIT_CONFIG
    held = None
    if args.state_dir is not None:
        held = load_state(args.state_dir, time.time()).state.feed_in_original
    facts = asyncio.run(gather(config, args.bus, args.watch, held))
    findings = diagnose(facts, config, before_enable=args.before_enable)
    print(render(findings))
    return 1 if any(f.level == "problem" for f in findings) else 0


def cmd_restore_feed_in(args: argparse.Namespace) -> int:
    """Rule 11 of core/safety.py for uninstall: the state file keeps the user's value until it
    is written back; exit 1 (value kept) when localsettings cannot take it."""
    import time
    from dataclasses import replace

    from aggbatt.feedin import FEED_IN_PATH
    from aggbatt.state import load_state, save_state
    from aggbatt.venus import bus as busmod
    from aggbatt.venus.settings import SettingsClient

    loaded = load_state(args.state_dir, time.time())
    value = loaded.state.feed_in_original
    if value is None:
        print("aggbatt holds no feed-in value: nothing to restore")
        return 0

    async def write() -> int:
        bus = await busmod.connect(args.bus)
        try:
            return await SettingsClient(bus).set_value(FEED_IN_PATH, value)
        finally:
            bus.disconnect()

    try:
        code = asyncio.run(asyncio.wait_for(write(), 10.0))
    except (OSError, EOFError, TimeoutError, busmod.BusCallError) as exc:
        print(
            f"could not restore {FEED_IN_PATH}={value}: {exc}; kept in the state", file=sys.stderr
        )
        return 1
    if code != 0:
        print(f"localsettings refused {FEED_IN_PATH}={value} (code {code})", file=sys.stderr)
        return 1
    save_state(args.state_dir, replace(loaded.state, feed_in_original=None))
    print(f"{FEED_IN_PATH} restored to {value}")
    return 0


def cmd_forget(args: argparse.Namespace) -> int:
    """Rule 15's way out: forget a pack that is not seen, through the running service (which
    refuses a pack that is online), else in the state file. Exit 1 when nothing was forgotten."""
    import time
    from dataclasses import replace

    from aggbatt.core.packs import to_forget
    from aggbatt.daemon import FORGET_PATH
    from aggbatt.state import load_state, save_state
    from aggbatt.venus import bus as busmod
    from aggbatt.venus.wire import wrap

    async def ask() -> int | None:
        try:
            bus = await busmod.connect(args.bus)
        except (OSError, EOFError, InvalidAddressError):
            return None  # no bus at all: the state file is the way
        try:
            body = await busmod.call(
                bus, args.service, FORGET_PATH, "SetValue", "v", [wrap(args.pack)]
            )
        except busmod.BusCallError as exc:
            if exc.error_name in ("org.freedesktop.DBus.Error.ServiceUnknown", "no-reply"):
                return None
            raise
        finally:
            bus.disconnect()
        return int(body[0])

    code = asyncio.run(ask())
    if code == 0:
        print(f"{args.service} forgot {args.pack}: the bank is the packs left")
        return 0
    if code is not None:
        print(
            f"{args.service} refused to forget {args.pack}: it is not known, or still on the "
            "bus (its log says which; aggbatt status lists the packs not seen)",
            file=sys.stderr,
        )
        return 1
    if args.state_dir is None:
        print(
            f"{args.service} is not running: give --state-dir to forget {args.pack} in its "
            "state file",
            file=sys.stderr,
        )
        return 1
    loaded = load_state(args.state_dir, time.time())
    keys, why = to_forget(loaded.state.packs, args.pack)
    if not keys:
        print(why, file=sys.stderr)
        return 1
    packs = {k: p for k, p in loaded.state.packs.items() if k not in keys}
    save_state(args.state_dir, replace(loaded.state, packs=packs))
    print(f"forgot {', '.join(keys)} in {args.state_dir}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Run the scenarios for aggbatt and the reference; exit 1 when aggbatt fails one."""
    import time

    from aggbatt.sim.bank.controllers import Controller
    from aggbatt.sim.bank.onbus import BusController
    from aggbatt.sim.bank.report import write_report
    from aggbatt.sim.bank.scenarios import BUS_DAYS, BY_NAME, SCENARIOS, aggbatt_config

    unknown = [n for n in args.scenario if n not in BY_NAME]
    if unknown:
        print(
            f"unknown scenario {', '.join(unknown)}; known: {', '.join(BY_NAME)}", file=sys.stderr
        )
        return 2
    chosen = [BY_NAME[n] for n in args.scenario] or list(SCENARIOS)
    results = []
    for scenario in chosen:
        controllers: list[Controller] = (
            [BusController(aggbatt_config(scenario.packs, **scenario.own))]
            if args.bus
            else scenario.controllers()
        )
        for controller in controllers:
            t0 = time.monotonic()
            try:
                days = BUS_DAYS if args.bus else 0.0
                result = scenario.run(controller, fast=args.fast, days=days)
            finally:
                if isinstance(controller, BusController):
                    controller.close()
            results.append(result)
            verdict = "pass" if result.passed else "FAIL"
            print(
                f"{scenario.name:24s} {controller.name:9s} {result.days:4g} days  {verdict}  "
                f"({time.monotonic() - t0:.1f} s)",
                flush=True,
            )
    titles = {s.name: s.title for s in chosen}
    found = {s.name: s.found for s in chosen}
    report = write_report(results, titles, found, args.out)
    print(f"report: {report}")
    return 0 if all(r.passed for r in results if r.controller.startswith("aggbatt")) else 1


def cmd_import(args: argparse.Namespace) -> int:
    import time

    from aggbatt.importini import IniImportError, import_ini
    from aggbatt.state import read_reference_files, save_state

    notes: list[str] = []
    try:
        text, _ = import_ini(args.ini, args.defaults, notes)
    except (IniImportError, ConfigError) as exc:
        print(f"aggbatt import-ini: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    sys.stdout.write(text)
    for note in notes:  # every dropped option and changed meaning, also in the TOML
        print(f"note: {note}", file=sys.stderr)
    if args.state_dir is not None:
        logging.basicConfig(level="WARNING", format="%(message)s", stream=sys.stderr)
        state = read_reference_files(args.ini.resolve().parent, time.time())
        if state is None:
            print(f"no charge/last_balancing files beside {args.ini}", file=sys.stderr)
        else:
            save_state(args.state_dir, state)
            charge = "none" if state.charge_ah is None else f"{state.charge_ah:g} Ah"
            last = (
                "never (due at once)"
                if state.last_balancing is None
                else time.strftime("%Y-%m-%d", time.localtime(state.last_balancing))
            )
            print(
                f"imported into {args.state_dir}: charge counter {charge}, last balancing {last}",
                file=sys.stderr,
            )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return EXIT_CONFIG
    _logging(args.log_level or config.daemon.log_level)
    from aggbatt.daemon import Daemon
    from aggbatt.venus.service import ServiceNameTakenError

    async def main_loop() -> int:
        daemon = Daemon(config, args.state_dir, args.bus)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.stop)
        await daemon.run()
        return daemon.exit_code

    try:
        code = asyncio.run(main_loop())
    except ServiceNameTakenError as exc:
        logging.getLogger("aggbatt").error("%s", exc)
        return EXIT_RUNTIME
    except (OSError, EOFError) as exc:
        logging.getLogger("aggbatt").error("D-Bus connection failed: %s", exc)
        return EXIT_RUNTIME
    return code


if __name__ == "__main__":
    sys.exit(main())
