"""``aggbatt status``: the running service's values, read from the bus as Venus reads them."""

from __future__ import annotations

import json
import time

from aggbatt.venus import bus as busmod
from aggbatt.venus.bus import BusCallError
from aggbatt.venus.wire import unwrap

SHOWN = (
    ("/CustomName", "name"), ("/DeviceInstance", "device instance"),
    ("/Dc/0/Voltage", "voltage"), ("/Dc/0/Current", "current"), ("/Dc/0/Power", "power"),
    ("/Soc", "SoC"), ("/Info/SocSync", "  100 % last"),
    ("/History/TimeSinceLastFullCharge", "  seconds since"), ("/Capacity", "remaining"),
    ("/InstalledCapacity", "installed"),
    ("/TimeToGo", "time to go"), ("/System/MinCellVoltage", "min cell"),
    ("/System/MinVoltageCellId", "  at"), ("/System/MaxCellVoltage", "max cell"),
    ("/System/MaxVoltageCellId", "  at"), ("/System/NrOfModulesOnline", "modules online"),
    ("/System/NrOfModulesOffline", "modules offline"), ("/Info/ChargeMode", "mode"),
    ("/Info/MaxChargeVoltage", "CVL"), ("/Info/ChargeVoltageLimitation", "  because"),
    ("/Info/MaxChargeCurrent", "CCL"), ("/Info/ChargeLimitation", "  because"),
    ("/Info/MaxDischargeCurrent", "DCL"), ("/Info/DischargeLimitation", "  because"),
)  # fmt: skip


async def show_status(bus_choice: str | None, service: str) -> int:
    bus = await busmod.connect(bus_choice)
    try:
        items = (await busmod.call(bus, service, "/", "GetItems"))[0]
    except BusCallError as exc:
        print(f"{service} is not on the bus ({exc.error_name}): is aggbatt running?")
        return 1
    finally:
        bus.disconnect()
    for path, label in SHOWN:
        entry = items.get(path)
        if entry is None:
            continue
        text = unwrap(entry.get("Text"))
        print(f"{label:<16} {text if text is not None else unwrap(entry.get('Value'))}")
    alarms = {
        p.removeprefix("/Alarms/"): unwrap(e["Value"])
        for p, e in items.items()
        if p.startswith("/Alarms/") and unwrap(e["Value"])
    }
    print(f"{'alarms':<16} {alarms or 'none'}")
    for line in unseen_lines(unwrap(items.get("/Packs/Unseen", {}).get("Value")), time.time()):
        print(line)
    return 0


def unseen_lines(published: object, now: float) -> list[str]:
    """The packs of the bank that are not seen, and for how long (rule 15)."""
    if not isinstance(published, str) or not published:
        return []
    try:
        packs = json.loads(published)
    except ValueError:
        return [f"{'not seen':<16} {published}"]
    lines = []
    for p in packs if isinstance(packs, list) else []:
        seen = p.get("last_seen") if isinstance(p, dict) else None
        ago = f" for {_duration(now - seen)}" if isinstance(seen, int | float) else ""
        lines.append(
            f"{'not seen':<16} {p.get('pack')} ({p.get('service')}): {p.get('why')}{ago}; "
            f"charging stopped (back, or: aggbatt forget {p.get('pack')})"
        )
    return lines


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {rest % 60} s"
