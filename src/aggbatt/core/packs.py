"""Which packs the bank has, across restarts and renamed ports (rules 15 and 16, pure).

A pack is known from the first cycle it is merged until it is forgotten (``aggbatt forget``):
a known pack that is not seen is *unseen*, and charging stops for it (rule 15, enforced in
:mod:`aggbatt.core.safety`). Its key is the D-Bus service name it was last seen under. A USB
re-plug renames ``ttyUSB1`` to ``ttyUSB4``; a new service is therefore matched to an absent
known pack before it counts as new (rule 16, :func:`recognise`):

1. the same ``/Serial``, capacity (within 1 %) and cell count: the first such absent pack
   (serialbattery's ``<hardware>_<capacity>Ah`` is the same for identical packs, so two of them
   may swap names; they are alike in everything the core uses);
2. else the only absent pack of that capacity and cell count whose serial does not differ.

What is known is stored (:class:`aggbatt.core.stored.KnownPack`), so a restart with a pack
missing still stops charging and still scales the discharge to the packs online.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aggbatt.core.stored import KnownPack

CAPACITY_MATCH = 0.01
"""Two capacities within 1 % are the same pack's (BMSes round differently)."""


@dataclass(frozen=True, slots=True)
class Shape:
    """What identifies a pack besides its service name."""

    serial: str | None
    capacity_ah: float | None
    cells: int | None

    def same_size(self, other: Shape) -> bool:
        if self.capacity_ah is None or other.capacity_ah is None:
            return False
        if abs(self.capacity_ah - other.capacity_ah) > CAPACITY_MATCH * other.capacity_ah:
            return False
        return self.cells is None or other.cells is None or self.cells == other.cells


def _number(value: Any) -> float | None:
    if type(value) in (int, float) and value > 0:
        return float(value)
    return None


def shape_of(values: Mapping[str, Any]) -> Shape:
    """A service's serial, capacity and cell count, as published."""
    serial = values.get("/Serial")
    capacity = _number(values.get("/InstalledCapacity"))
    if capacity is None and "/InstalledCapacity" not in values:
        capacity = _number(values.get("/Capacity"))  # Victron BMSes: /Capacity is installed
    count = _number(values.get("/System/NrOfCellsPerBattery"))
    return Shape(
        serial.strip() if isinstance(serial, str) and serial.strip() else None,
        capacity,
        int(count) if count is not None else None,
    )


def known_shape(pack: KnownPack) -> Shape:
    return Shape(pack.serial, pack.installed_ah, pack.cells)


@dataclass(frozen=True, slots=True)
class Recognised:
    """A known pack back under another service name (rule 16): one log line."""

    old: str
    new: str
    how: str

    @property
    def text(self) -> str:
        old, new = self.old.rsplit(".", 1)[-1], self.new.rsplit(".", 1)[-1]
        return f"pack {old} is back as {new} ({self.how}): it keeps what was known of it"


def recognise(
    snapshots: Mapping[str, Mapping[str, Any]], known: Mapping[str, KnownPack]
) -> list[Recognised]:
    """The new services that are known packs under a new name."""
    absent = sorted(k for k in known if k not in snapshots)
    found: list[Recognised] = []
    for key in sorted(snapshots):
        if key in known or not absent:
            continue
        shape = shape_of(snapshots[key])
        by_serial = [
            k
            for k in absent
            if shape.serial is not None
            and known[k].serial == shape.serial
            and shape.same_size(known_shape(known[k]))
        ]
        if by_serial:
            found.append(Recognised(by_serial[0], key, "same serial, capacity and cells"))
            absent.remove(by_serial[0])
            continue
        alike = [
            k
            for k in absent
            if shape.same_size(known_shape(known[k]))
            and (shape.serial is None or known[k].serial in (None, shape.serial))
        ]
        if len(alike) == 1:
            found.append(
                Recognised(alike[0], key, "the only absent pack of its capacity and cells")
            )
            absent.remove(alike[0])
    return found


def matches(key: str, pack: KnownPack, who: str) -> bool:
    """Whether ``who`` (a service name, its last part, or the pack's name) names this pack."""
    return who in (key, key.rsplit(".", 1)[-1], pack.name)


def to_forget(known: Mapping[str, KnownPack], who: str) -> tuple[list[str], str]:
    """The keys ``who`` names (``aggbatt forget``), or none and why not."""
    keys = [k for k, p in known.items() if matches(k, p, who)]
    if not keys:
        names = ", ".join(sorted(p.name or k.rsplit(".", 1)[-1] for k, p in known.items()))
        return [], f"no pack {who!r} is known (known: {names or 'none'})"
    return keys, ""
