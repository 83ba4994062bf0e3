"""Benchmarks: ``python -m bench dbus [ROUNDS]``, ``daemon [...]``, ``memory`` and ``cellband``."""

from __future__ import annotations

import sys

from bench import cellband, daemon_bench, dbus_cost, memory

COMMANDS = {
    "dbus": lambda a: dbus_cost.main(["run", *a]),
    "daemon": daemon_bench.main,
    "memory": memory.main,
    "cellband": cellband.main,
}

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] not in COMMANDS:
        print(f"usage: python -m bench {{{','.join(COMMANDS)}}} [args]")
        sys.exit(2)
    sys.exit(COMMANDS[args[0]](args[1:]))
