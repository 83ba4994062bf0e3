"""Replay recorded Venus D-Bus services (dbus-recorder's tab-separated format) on a bus.

Format (tests/fixtures/recordings/README.md): line 1 is the service name; then
``path TYPE value text`` lines with the initial state; a blank line; then
``tick path TYPE value text`` events, one tick per second. ``ARRAY []`` is an invalid
value. Every value goes on the wire with its recorded type (``UINT32`` as ``u``, ``INT16`` as
``n`` ...) and its recorded text.
"""

from __future__ import annotations

import ast
import asyncio
import csv
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from aggbatt.venus import bus as busmod
from aggbatt.venus.service import VeService
from aggbatt.venus.wire import Value

TYPE_SIGNATURES = {
    "BYTE": "y",
    "INT16": "n",
    "INT32": "i",
    "UINT16": "q",
    "UINT32": "u",
    "INT64": "x",
    "UINT64": "t",
    "DOUBLE": "d",
    "STRING": "s",
    "BOOLEAN": "b",
}


class RecordingError(ValueError):
    """A recording line that cannot be read; names the file and line."""


@dataclass(frozen=True, slots=True)
class RecordedValue:
    path: str
    value: Value
    signature: str | None
    """The D-Bus type to send, None for an invalid value."""
    text: str | None


@dataclass
class Recording:
    name: str
    initial: dict[str, RecordedValue]
    events: dict[int, list[RecordedValue]] = field(default_factory=dict)

    @property
    def last_tick(self) -> int:
        return max(self.events, default=0)

    def state_at(self, tick: int) -> dict[str, Value]:
        """Every path's value after the events up to and including ``tick``."""
        values = {p: r.value for p, r in self.initial.items()}
        for t in sorted(self.events):
            if t > tick:
                break
            values.update({r.path: r.value for r in self.events[t]})
        return values


def parse_value(dtype: str, raw: str) -> tuple[Value, str | None]:
    """(value, signature) of one recorded cell."""
    if dtype == "ARRAY":
        items = ast.literal_eval(raw) if raw.strip() else []
        return (list(items) or None), ("av" if items else None)
    if dtype.startswith("ARRAY[") and dtype.endswith("]"):
        inner = TYPE_SIGNATURES[dtype[6:-1]]
        items = ast.literal_eval(raw)
        return (list(items) or None), (f"a{inner}" if items else None)
    signature = TYPE_SIGNATURES[dtype]
    if signature in "ynqiuxt":
        return int(raw), signature
    if signature == "d":
        return float(raw), signature
    if signature == "b":
        return raw.strip().lower() in ("1", "true"), signature
    return raw, signature


def _record(fields: list[str]) -> RecordedValue:
    path, dtype, raw = fields[0], fields[1], fields[2]
    text = fields[3] if len(fields) > 3 else None
    value, signature = parse_value(dtype, raw)
    return RecordedValue(path, value, signature, text)


def load_recording(path: Path) -> Recording:
    with path.open(newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quotechar="'"))
    if not rows or not rows[0]:
        raise RecordingError(f"{path}: line 1 must name the service")
    recording = Recording(rows[0][0].strip(), {})
    events: dict[int, list[RecordedValue]] = defaultdict(list)
    in_events = False
    for number, row in enumerate(rows[1:], start=2):
        try:
            if not row or not any(c.strip() for c in row):
                in_events = True
                continue
            if in_events:
                events[int(row[0])].append(_record(row[1:]))
            else:
                rec = _record(row)
                recording.initial[rec.path] = rec
        except (ValueError, KeyError, IndexError, SyntaxError) as exc:
            raise RecordingError(f"{path}:{number}: cannot read {row!r} ({exc})") from exc
    recording.events = dict(events)
    return recording


def load_system(folder: Path) -> list[Recording]:
    """All recordings (``*.csv``) of one recorded system, by file name."""
    files = sorted(folder.glob("*.csv"))
    if not files:
        raise RecordingError(f"no recordings (*.csv) in {folder}")
    return [load_recording(p) for p in files]


class Replayer:
    """Publishes recordings on a bus, each service on its own connection."""

    def __init__(self, recordings: list[Recording]) -> None:
        self.recordings = recordings
        self.services: dict[str, VeService] = {}
        self.tick = 0

    async def start(self, bus_choice: str | None = None) -> None:
        for rec in self.recordings:
            service = VeService(await busmod.connect(bus_choice), rec.name)
            for r in rec.initial.values():
                writable = r.path == "/CustomName"
                service.add_path(
                    r.path, r.value, signature=r.signature, text_override=r.text, writable=writable
                )
            await service.register()
            self.services[rec.name] = service

    @property
    def last_tick(self) -> int:
        """The recordings' length in ticks (seconds)."""
        return max((rec.last_tick for rec in self.recordings), default=0)

    def rewind(self) -> int:
        """Publish every recording's initial state again, to play it from tick 1; paths sent."""
        self.tick = 0
        sent = 0
        for rec in self.recordings:
            service = self.services.get(rec.name)
            if service is None:
                continue
            values = {p: r.value for p, r in rec.initial.items() if p in service}
            texts = {
                p: r.text for p, r in rec.initial.items() if r.text is not None and p in service
            }
            sent += service.publish(values, texts)
        return sent

    def play_tick(self, tick: int) -> int:
        """Publish the events of one tick (one ItemsChanged per service); returns paths sent."""
        self.tick = tick
        sent = 0
        for rec in self.recordings:
            events = rec.events.get(tick)
            service = self.services.get(rec.name)
            if not events or service is None:
                continue
            for r in events:
                if r.path not in service:
                    service.add_path(r.path, None, signature=r.signature)
            sent += service.publish(
                {r.path: r.value for r in events},
                {r.path: r.text for r in events if r.text is not None},
            )
        return sent

    async def play(self, speed: float = 1.0, loop: bool = False) -> None:
        """Play every tick in real time divided by ``speed``; forever with ``loop``."""
        last = self.last_tick
        while True:
            for tick in range(1, last + 1):
                await asyncio.sleep(1.0 / speed)
                self.play_tick(tick)
            if not loop:
                return

    async def stop(self) -> None:
        for service in self.services.values():
            await service.close()
        self.services.clear()
