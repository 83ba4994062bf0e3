"""What the daemon's memory is made of: resident size after each import of ``aggbatt run``.

``python -m bench memory [--python PATH]`` imports, in a fresh interpreter, what ``aggbatt run``
imports, one step at a time, and prints the growth of VmRSS after each (MiB). The default
interpreter is Venus's build (``.venv-venus``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STEPS = (
    ("the interpreter", ""),
    ("asyncio (with ssl, concurrent.futures, ...)", "import asyncio"),
    ("logging, argparse, json, tomllib", "import logging, argparse, json, tomllib"),
    ("dbus_fast (+ aio)", "import dbus_fast, dbus_fast.aio"),
    ("pydantic (import)", "import pydantic"),
    ("pydantic: its first model (schema machinery)",
     "class _M(pydantic.BaseModel):\n    x: int = 1"),
    ("aggbatt.config (the config models)", "import aggbatt.config"),
    ("aggbatt.core (merge, limits, safety, ...)", "import aggbatt.core.engine"),
    ("aggbatt.venus (client, service, settings)",
     "import aggbatt.venus.client, aggbatt.venus.service, aggbatt.venus.settings"),
    ("aggbatt.daemon, cli, state, feed-in", "import aggbatt.daemon, aggbatt.cli"),
    ("config.toml loaded and validated",
     "from pathlib import Path; aggbatt.config.load_config(Path('config.toml'))"),
)  # fmt: skip

PROGRAM = """
import json, sys
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024
rows = []
for what, code in json.loads(sys.argv[1]):
    before = rss()
    exec(code)
    rows.append((what, round(rss() - before if code else rss(), 1)))
print(json.dumps({"rows": rows, "total": round(rss(), 1), "modules": len(sys.modules)}))
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench memory")
    parser.add_argument("--python", default=str(ROOT / ".venv-venus" / "bin" / "python"))
    args = parser.parse_args(argv)
    out = subprocess.run(
        [args.python, "-c", PROGRAM, json.dumps(STEPS)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    ).stdout  # fmt: skip
    result = json.loads(out)
    print("| step | RSS MiB |\n|---|---|")
    for what, mib in result["rows"]:
        print(f"| {what} | {'+' if what != STEPS[0][0] else ''}{mib} |")
    print(f"| **total after the imports** ({result['modules']} modules) | **{result['total']}** |")
    return 0
