"""Command line: ``aggbatt demo`` (more commands arrive with the daemon)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from aggbatt import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aggbatt", description="Merge parallel batteries on Venus OS into one virtual BMS."
    )
    parser.add_argument("--version", action="version", version=f"aggbatt {__version__}")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING or ERROR")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run on a simulated Venus system on a private D-Bus")
    demo.add_argument("--batteries", type=int, default=2, help="simulated packs (default 2)")
    demo.add_argument("--cells", type=int, default=16, help="cells per pack (default 16)")
    demo.add_argument(
        "--duration", type=float, default=0.0, help="seconds to run (default: until Ctrl-C)"
    )
    demo.add_argument(
        "--speed", type=float, default=60.0, help="simulated seconds per second (default 60)"
    )
    for flag, what in (
        ("--pull-at", "pack 2 leaves the bus for 120 s"),
        ("--peak-at", "a cell of pack 1 peaks by +0.15 V for 120 s"),
        ("--block-at", "pack 1's BMS blocks charging for 120 s"),
    ):
        demo.add_argument(
            flag, type=float, metavar="SECONDS", help=f"at this simulated time, {what}"
        )
    demo.add_argument(
        "--config", type=Path, help="config file (default: the repository's config.toml)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "demo":
        from aggbatt.demo import DemoOptions, run_demo

        options = DemoOptions(
            args.batteries, args.cells, args.duration, args.speed,
            args.pull_at, args.peak_at, args.block_at, args.config,
        )  # fmt: skip
        try:
            return asyncio.run(run_demo(options))
        except KeyboardInterrupt:
            return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
