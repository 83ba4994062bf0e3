"""Benchmarks: ``python -m bench dbus [ROUNDS]`` (see bench/README.md)."""

from __future__ import annotations

import sys

from bench import dbus_cost

COMMANDS = {"dbus": dbus_cost.main}

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m bench {{{','.join(COMMANDS)}}} [args]")
        sys.exit(2)
    sys.exit(COMMANDS[args[0]](["run", *args[1:]]))
