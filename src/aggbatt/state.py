"""What must survive a restart, in one small versioned JSON file written crash-safely.

Held (:class:`aggbatt.core.stored.State`, owned by the core): the Coulomb counter's charge
(and the capacity it was counted against), the last balancing time and phase, the user's own
feed-in setting while we hold feed-in off, and the packs last seen with their capacities.

Writes are atomic: a temporary file in the same folder, fsync, rename over the old file, fsync
of the folder. A reader therefore sees the old file or the new one, never a torn one, even on a
power cut; a failed write leaves no temporary file behind. A file that is missing is reported
and replaced by safe defaults; one that is corrupt (not UTF-8, not JSON, a bad field, larger
than :data:`MAX_BYTES`, or not a regular file at all: a FIFO is never opened) is reported, kept
beside as ``state.json.corrupt`` for inspection, and replaced too; nothing is replaced silently.

The reference project's files (``storedvalue_charge``/``storedvalue_last_balancing`` or the older
``charge``/``last_balancing``) are read once when no state file exists yet.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aggbatt.core.stored import PHASES, KnownPack, State
from aggbatt.files import read_bounded

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
MAX_BYTES = 64 * 1024
"""A state file is a few hundred bytes; anything larger is not ours."""
VERSION = 3
"""Version 2 added ``packs`` and ``balancing_since``, version 3 each pack's serial, cells and
name; older files are read as they are."""
REFERENCE_FILES = (
    ("storedvalue_charge", "storedvalue_last_balancing"),
    ("charge", "last_balancing"),
)


@dataclass(frozen=True, slots=True)
class Loaded:
    state: State
    source: str
    """Where it came from: "file", "defaults (missing)", "defaults (corrupt)", "reference"."""
    problem: str = ""


def _finite(value: Any, name: str, low: float = -math.inf) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} is {value!r}, not a number")
    number = float(value)
    if not math.isfinite(number) or number < low:
        raise ValueError(f"{name} is {value!r}")
    return number


def _packs(data: Any) -> dict[str, KnownPack]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"packs is {data!r}")
    packs: dict[str, KnownPack] = {}
    for key, entry in data.items():
        if not isinstance(entry, dict):
            raise ValueError(f"packs[{key!r}] is {entry!r}")
        installed = _finite(entry.get("installed_ah"), f"packs[{key!r}].installed_ah", 0.0)
        seen = _finite(entry.get("last_seen"), f"packs[{key!r}].last_seen", 0.0)
        if installed is None or seen is None:
            raise ValueError(f"packs[{key!r}] lacks installed_ah or last_seen")
        cells = entry.get("cells")
        if cells is not None and (type(cells) is not int or not 0 < cells <= 1000):
            raise ValueError(f"packs[{key!r}].cells is {cells!r}")
        texts = [entry.get(field) for field in ("serial", "name")]
        if any(t is not None and not isinstance(t, str) for t in texts):
            raise ValueError(f"packs[{key!r}] has a serial or name that is no text")
        packs[str(key)] = KnownPack(installed, seen, texts[0], cells, texts[1])
    return packs


def parse_state(data: Any) -> State:
    """Check a decoded state file; raises ValueError naming the bad field."""
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("version") not in (1, 2, VERSION):
        raise ValueError(f"version {data.get('version')!r} is not {VERSION}")
    phase = data.get("balancing_phase", "idle")
    if phase not in PHASES:
        raise ValueError(f"balancing_phase is {phase!r}")
    feed_in = data.get("feed_in_original")
    if feed_in is not None and (isinstance(feed_in, bool) or feed_in not in (0, 1)):
        raise ValueError(f"feed_in_original is {feed_in!r}")
    return State(
        charge_ah=_finite(data.get("charge_ah"), "charge_ah", 0.0),
        installed_ah=_finite(data.get("installed_ah"), "installed_ah", 0.0),
        last_balancing=_finite(data.get("last_balancing"), "last_balancing", 0.0),
        balancing_phase=phase,
        balancing_since=_finite(data.get("balancing_since"), "balancing_since", 0.0),
        balancing_started=_finite(data.get("balancing_started"), "balancing_started", 0.0),
        last_full_charge=_finite(data.get("last_full_charge"), "last_full_charge", 0.0),
        feed_in_original=feed_in,
        packs=_packs(data.get("packs")),
    )


def load_state(folder: Path, now: float) -> Loaded:
    """The stored state, or safe defaults with the reason (never raises on file content).

    ``now`` (Unix time) places a migrated day-of-year balancing date.
    """
    path = folder / STATE_FILE
    try:
        raw = read_bounded(path, MAX_BYTES)
        return Loaded(parse_state(json.loads(raw.decode("utf-8"))), "file")
    except FileNotFoundError:
        migrated = read_reference_files(folder, now)
        if migrated is not None:
            log.warning("no %s; migrated the reference project's files: %s", path, migrated)
            return Loaded(migrated, "reference")
        log.warning("no state file %s: starting from defaults", path)
        return Loaded(State(), "defaults (missing)", "missing")
    except OSError as exc:
        log.error("cannot read %s (%s): starting from defaults", path, exc.strerror)
        return Loaded(State(), "defaults (unreadable)", str(exc.strerror))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        kept = path.with_name(STATE_FILE + ".corrupt")
        try:
            os.replace(path, kept)
        except OSError:
            kept = path
        log.error(
            "state file %s is corrupt (%s); kept as %s, starting from defaults", path, exc, kept
        )
        return Loaded(State(), "defaults (corrupt)", str(exc))


def save_state(folder: Path, state: State) -> None:
    """Write atomically: temp file, fsync, rename, fsync of the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / STATE_FILE
    tmp = path.with_name(f".{STATE_FILE}.{os.getpid()}.tmp")
    fields = asdict(state)
    fields["packs"] = {k: asdict(p) for k, p in state.packs.items()}
    payload = json.dumps({"version": VERSION, **fields}, indent=1, sort_keys=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            os.write(fd, payload.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a 0-byte file behind
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def day_of_year_to_time(day: int, now: float) -> float:
    """The reference stored the day of the year of the last balancing: the latest such day
    not after ``now``, as a Unix time at local midnight (day 366 is in the last leap year)."""
    today = dt.datetime.fromtimestamp(now).date()
    for year in range(today.year, today.year - 9, -1):
        days = 366 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 365
        if 1 <= day <= days:
            date = dt.date(year, 1, 1) + dt.timedelta(days=day - 1)
            if date <= today:
                return dt.datetime.combine(date, dt.time()).timestamp()
    raise ValueError(f"day of year {day} is not a day")


def read_reference_files(folder: Path, now: float) -> State | None:
    """The reference project's charge (Ah) and last-balancing (day of year) files, if any."""
    for charge_name, balancing_name in REFERENCE_FILES:
        charge_path, balancing_path = folder / charge_name, folder / balancing_name
        if not charge_path.exists() and not balancing_path.exists():
            continue
        charge: float | None = None
        last: float | None = None
        try:  # each file on its own: an unusable one never drops the other
            if charge_path.exists():
                charge = _finite(float(charge_path.read_text().strip()), charge_name, 0.0)
        except (OSError, ValueError) as exc:
            log.error("%s is unusable (%s): the counter starts from the BMS SoC", charge_path, exc)
        try:
            if balancing_path.exists():
                day = int(float(balancing_path.read_text().strip()))
                if day > 0:  # the reference wrote 0 for "never"
                    last = day_of_year_to_time(day, now)
        except (OSError, ValueError) as exc:
            log.error("%s is unusable (%s): balancing is due at once", balancing_path, exc)
        return State(charge_ah=charge, last_balancing=last)
    return None
