"""Cells, packs and a parallel bank: the physics of the closed-loop simulator (pure, no I/O).

A cell is an open-circuit voltage curve over its state of charge plus an internal resistance:
``v = ocv(soc) + i * r``. A pack is cells in series with one current; a bank is packs in
parallel on one bus bar, so the bank current divides between the connected packs by their
open-circuit voltages and resistances (:meth:`Bank.share`): a pack of half the resistance
takes about twice the current, the normal case in the field. A pack whose BMS has opened its
FET for a direction carries no current in that direction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from aggbatt.core.curve import interpolate

Chemistry = Literal["LFP", "LTO"]

# open-circuit voltage over state of charge: the steep knees and the flat middle
OCV: dict[str, tuple[tuple[float, float], ...]] = {
    "LFP": (
        (0.00, 2.50), (0.02, 2.90), (0.05, 3.10), (0.10, 3.20), (0.20, 3.25), (0.40, 3.28),
        (0.60, 3.30), (0.80, 3.32), (0.90, 3.34), (0.95, 3.36), (0.98, 3.40), (0.995, 3.50),
        (1.00, 3.65),
    ),
    "LTO": (
        (0.00, 1.70), (0.03, 2.05), (0.10, 2.20), (0.50, 2.30), (0.90, 2.40), (0.97, 2.50),
        (1.00, 2.75),
    ),
}  # fmt: skip


COULOMBIC_EFFICIENCY = 0.99
"""Charge that a cell stores of the charge that flows in (LFP: 0.99 and better)."""

_CURVES = {chem: ([p[0] for p in table], [p[1] for p in table]) for chem, table in OCV.items()}


def ocv(chemistry: str, soc: float) -> float:
    """Open-circuit cell voltage at a state of charge (flat beyond 0 and 1)."""
    return interpolate(soc, *_CURVES[chemistry])


@dataclass
class Cell:
    capacity_ah: float
    soc: float
    r_ohm: float = 0.0003
    self_discharge_per_day: float = 0.0005
    """Fraction of capacity lost per day; a spread between cells builds imbalance."""


@dataclass
class Pack:
    """Cells in series; ``connected`` per direction is what the pack's BMS FETs allow."""

    name: str
    cells: list[Cell]
    chemistry: Chemistry = "LFP"
    wiring_ohm: float = 0.002
    temperature_c: float = 20.0
    charge_fet: bool = True
    discharge_fet: bool = True
    current_a: float = 0.0
    offset_v: list[float] = field(default_factory=list)
    """Added to each cell's voltage: a fault injected (a cell peaking or sagging)."""
    _ocv: list[float] | None = field(default=None, repr=False)
    _capacity: float | None = field(default=None, repr=False)
    """Each cell's open-circuit voltage, kept until the cells' charge changes."""

    def cell_ocv(self) -> list[float]:
        if self._ocv is None:
            self._ocv = [ocv(self.chemistry, c.soc) for c in self.cells]
        return self._ocv

    @property
    def capacity_ah(self) -> float:
        """The weakest cell's (cells keep their capacity: computed once)."""
        if self._capacity is None:
            self._capacity = min(c.capacity_ah for c in self.cells)
        return self._capacity

    @property
    def resistance(self) -> float:
        return self.wiring_ohm + sum(c.r_ohm for c in self.cells)

    def open_voltage(self) -> float:
        return sum(self.cell_ocv())

    def cell_voltages(self) -> list[float]:
        i = self.current_a
        volts = [v + i * c.r_ohm for v, c in zip(self.cell_ocv(), self.cells, strict=True)]
        if self.offset_v:
            volts = [v + o for v, o in zip(volts, self.offset_v, strict=False)]
        return volts

    def true_soc(self) -> float:
        """The pack's usable charge: its emptiest cell's, relative to the weakest capacity."""
        return min(c.soc * c.capacity_ah for c in self.cells) / self.capacity_ah

    def mean_soc(self) -> float:
        """What the BMS's own counter of the pack current shows: the cells' mean charge."""
        return sum(c.soc * c.capacity_ah for c in self.cells) / self.capacity_ah / len(self.cells)

    def fullest_soc(self) -> float:
        """Its fullest cell's charge on the same scale: with the emptiest cell's, the band in
        which any counter of the pack's current must lie (the imbalance is invisible to it)."""
        return max(c.soc * c.capacity_ah for c in self.cells) / self.capacity_ah

    def step(self, dt_s: float) -> None:
        self._ocv = None
        current = self.current_a * (COULOMBIC_EFFICIENCY if self.current_a > 0 else 1.0)
        for c in self.cells:
            drain = c.self_discharge_per_day * dt_s / 86400.0
            c.soc = min(max(c.soc + current * dt_s / 3600.0 / c.capacity_ah - drain, 0.0), 1.0)


@dataclass
class Bank:
    packs: list[Pack]

    def carriers(self, charging: bool) -> list[Pack]:
        return [p for p in self.packs if (p.charge_fet if charging else p.discharge_fet)]

    def share(self, total_a: float) -> float:
        """Divide ``total_a`` (+ charging) between the connected packs; returns the bus voltage
        (the mean open voltage when no pack carries current)."""
        packs = self.carriers(total_a >= 0)
        for p in self.packs:
            p.current_a = 0.0
        if not packs:
            return sum(p.open_voltage() for p in self.packs) / len(self.packs)
        g = [1.0 / p.resistance for p in packs]
        v = (total_a + sum(p.open_voltage() * gi for p, gi in zip(packs, g, strict=True))) / sum(g)
        for p, gi in zip(packs, g, strict=True):
            p.current_a = (v - p.open_voltage()) * gi
        return v

    def current_for_voltage(self, volts: float, charging: bool = True) -> float:
        """The bank current that holds the bus at ``volts`` (a charger in constant voltage)."""
        packs = self.carriers(charging)
        if not packs:
            return 0.0
        return sum((volts - p.open_voltage()) / p.resistance for p in packs)

    def step(self, dt_s: float) -> None:
        for p in self.packs:
            p.step(dt_s)

    def true_soc(self) -> float:
        """The bank's usable charge, %: its packs' (emptiest cells'), capacity-weighted."""
        return 100.0 * sum(p.true_soc() * p.capacity_ah for p in self.packs) / self._capacity()

    def fullest_soc(self) -> float:
        """The bank's charge by its fullest cells, % (see :meth:`Pack.fullest_soc`)."""
        return 100.0 * sum(p.fullest_soc() * p.capacity_ah for p in self.packs) / self._capacity()

    def _capacity(self) -> float:
        return sum(p.capacity_ah for p in self.packs)


def make_pack(
    name: str,
    cells: int = 16,
    capacity_ah: float = 280.0,
    soc: float = 0.5,
    *,
    chemistry: Chemistry = "LFP",
    spread: float = 0.02,
    resistance_factor: float = 1.0,
    seed: int = 1,
    temperature_c: float = 20.0,
) -> Pack:
    """A pack whose cells spread in capacity (±``spread``), SoC and self-discharge."""
    rng = random.Random(seed)
    made = [
        Cell(
            capacity_ah=capacity_ah * (1.0 + rng.uniform(-spread, spread)),
            soc=min(max(soc + rng.uniform(-0.01, 0.01), 0.0), 1.0),
            r_ohm=0.0003 * resistance_factor * (1.0 + rng.uniform(-0.1, 0.1)),
            self_discharge_per_day=0.0005 * (1.0 + rng.uniform(-0.5, 0.5)),
        )
        for _ in range(cells)
    ]
    return Pack(name, made, chemistry, wiring_ohm=0.002 * resistance_factor,
                temperature_c=temperature_c)  # fmt: skip


def total_current(packs: Sequence[Pack]) -> float:
    return sum(p.current_a for p in packs)


__all__ = ["OCV", "Bank", "Cell", "Chemistry", "Pack", "make_pack", "ocv", "total_current"]
