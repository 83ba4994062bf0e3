"""Helper processes of the daemon benchmark, each run as ``python -m bench.procs ROLE ...``.

* ``sim ADDRESS BATTERIES CELLS [SIGNALS SOC RATE]``: fake localsettings and serialbattery packs
  that change every cell every second (``RATE`` times a second for a soak), as serialbattery
  does, at a SoC of ``SOC`` (0.45: clear of rule 4's bands). Reads commands on stdin:
  ``peak`` / ``calm`` push cell 2 of pack 1 over the max or back, and print the
  CLOCK_MONOTONIC time of publishing.
* ``bare ADDRESS``: a dbus-fast client with the daemon's match rules that only counts messages.
* ``probe ADDRESS``: prints the monotonic time and value of every CVL change of aggbatt.

CLOCK_MONOTONIC is shared by all processes of a Linux machine, so times compare directly.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time

from dbus_fast import Message, MessageType

from aggbatt.feedin import FEED_IN_PATH
from aggbatt.sim.battery import SimSerialBattery
from aggbatt.sim.localsettings import FakeLocalSettings
from aggbatt.venus import bus as busmod
from aggbatt.venus.bus import BUSITEM
from aggbatt.venus.wire import unwrap

SERVICE = "com.victronenergy.battery.aggbatt"


def say(**data: object) -> None:
    print(json.dumps(data), flush=True)


async def sim(
    address: str,
    batteries: int,
    cells: int,
    signals: str = "per-path",
    soc: float = 0.45,
    rate_hz: float = 1.0,
) -> None:
    """``soc`` 0.45 puts every cell in LFP's flat middle, clear of rule 4's bands; 0.975 at the
    top, in them. ``rate_hz`` above 1 runs the packs' time faster (a soak)."""
    settings = await FakeLocalSettings.start(address, {FEED_IN_PATH: 1})
    packs = [SimSerialBattery(f"ttyUSB{i}", i + 1, cells=cells, soc=soc, capacity_ah=280.0,
                              per_path=signals == "per-path")
             for i in range(batteries)]  # fmt: skip
    for pack in packs:
        await pack.start(address)
    say(ready=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def ticker() -> None:
        rng = random.Random(1)
        while True:
            await asyncio.sleep(1.0 / rate_hz)
            for pack in packs:
                pack.current_a = rng.uniform(-20.0, 20.0)  # every cell moves every second
                pack.step(1.0)

    task = asyncio.ensure_future(ticker())
    while line := (await reader.readline()).decode().strip():
        if line in ("peak", "calm"):
            t = time.monotonic()
            packs[0].set_cell_offset(2, 0.4 if line == "peak" else 0.0)
            say(event=line, t=t)
    task.cancel()
    await settings.close()


SUMMARY_NAMESPACES = ("/Dc", "/System", "/Info", "/Io", "/Alarms")
SUMMARY_PATHS = (
    "/Soc",
    "/Capacity",
    "/ConsumedAmphours",
    "/InstalledCapacity",
    "/Voltages/Sum",
    "/State",
    "/Balancing",
    "/CustomName",
    "/ProductName",
    "/DeviceInstance",
)


async def bare(address: str, only_summary: bool = False) -> None:
    bus = await busmod.connect(address)
    count = {"messages": 0}

    def handler(msg: Message) -> None:
        if msg.message_type == MessageType.SIGNAL and msg.interface == BUSITEM:
            count["messages"] += 1

    bus.add_message_handler(handler)
    names = [
        n for n in await busmod.list_names(bus) if n.startswith("com.victronenergy.battery.tty")
    ]
    for name in names:
        owner = await busmod.get_name_owner(bus, name)
        common = f"type='signal',sender='{owner}',interface='{BUSITEM}'"
        await busmod.add_match(bus, f"{common},member='ItemsChanged',path='/'")
        if not only_summary:
            await busmod.add_match(bus, f"{common},member='PropertiesChanged'")
            continue
        changed = f"{common},member='PropertiesChanged'"
        for ns in SUMMARY_NAMESPACES:
            await busmod.add_match(bus, f"{changed},path_namespace='{ns}'")
        for path in SUMMARY_PATHS:
            await busmod.add_match(bus, f"{changed},path='{path}'")
    say(ready=True, services=len(names))
    await asyncio.Event().wait()


async def probe(address: str) -> None:
    bus = await busmod.connect(address)

    def handler(msg: Message) -> None:
        if msg.message_type == MessageType.SIGNAL and msg.member == "ItemsChanged":
            entry = msg.body[0].get("/Info/MaxChargeVoltage")
            if entry is not None:
                say(t=time.monotonic(), cvl=unwrap(entry["Value"]))

    bus.add_message_handler(handler)
    while (owner := await busmod.get_name_owner(bus, SERVICE)) is None:
        await asyncio.sleep(0.05)
    await busmod.add_match(bus, f"type='signal',sender='{owner}',interface='{BUSITEM}'")
    say(ready=True)
    await asyncio.Event().wait()


def main(argv: list[str]) -> int:
    role, address = argv[0], argv[1]
    if role == "sim":
        signals = argv[4] if len(argv) > 4 else "per-path"
        soc = float(argv[5]) if len(argv) > 5 else 0.45
        rate = float(argv[6]) if len(argv) > 6 else 1.0
        asyncio.run(sim(address, int(argv[2]), int(argv[3]), signals, soc, rate))
    elif role == "bare":
        asyncio.run(bare(address, argv[2:3] == ["summary"]))
    elif role == "probe":
        asyncio.run(probe(address))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
