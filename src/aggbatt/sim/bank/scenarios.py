"""The named scenarios: a bank, its BMSes, the weather and what goes wrong, with a verdict.

Each scenario builds its world afresh for each controller, so aggbatt and the reference meet
the same sun, the same cells and the same faults. ``fast_days`` is the length CI runs.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aggbatt.config import Config, validate_config
from aggbatt.sim.bank.bms import REMOVED, BmsSettings, SimBms
from aggbatt.sim.bank.cells import COULOMBIC_EFFICIENCY, Bank, make_pack
from aggbatt.sim.bank.controllers import AggbattController, Controller, ReferenceController
from aggbatt.sim.bank.run import Event, Result, World, run
from aggbatt.sim.bank.venus import SolarSite, Weather

HOUR = 3600.0
DAY = 86400.0


def make_bank(
    packs: int = 2,
    cells: int = 16,
    capacity_ah: float = 280.0,
    soc: float = 0.5,
    *,
    resistance: tuple[float, ...] = (),
    bms: BmsSettings | None = None,
    spread: float = 0.03,
) -> tuple[Bank, list[SimBms]]:
    """A bank in one line: ``packs`` x ``cells`` LFP cells with their BMSes."""
    made = [
        make_pack(
            f"pack{i + 1}",
            cells,
            capacity_ah,
            soc + 0.02 * i,
            spread=spread,
            seed=i + 1,
            resistance_factor=resistance[i] if i < len(resistance) else 1.0,
        )
        for i in range(packs)
    ]
    return Bank(made), [SimBms(p, bms or BmsSettings()) for p in made]


def world(
    packs: int = 2,
    weather: Weather = "clear",
    peak_w: float = 12000.0,
    ambient: Callable[[float], float] | None = None,
    **bank: Any,
) -> World:
    b, bmses = make_bank(packs, **bank)
    return World(b, bmses, SolarSite(peak_w=peak_w, weather=weather), ambient)


def aggbatt_config(packs: int, **own: Any) -> Config:
    """aggbatt's defaults for the simulated bank: the own SoC, the packs' BMS maxima."""
    return validate_config(
        {
            "batteries": {"expected": packs},
            "soc": {"own": True, "efficiency": COULOMBIC_EFFICIENCY},
            "control": {
                "own": {
                    "max_charge_current": 150.0 * packs,
                    "max_discharge_current": 200.0 * packs,
                    **own,
                }
            },
            "daemon": {"log_period": 0},
        }
    )


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    days: float
    fast_days: float
    make_world: Callable[[], World]
    start: dt.datetime
    events: tuple[Event, ...] = ()
    healthy: bool = True
    packs: int = 2
    own: dict[str, Any] = field(default_factory=dict)
    found: str = ""
    """What the scenario is there to show (for the report)."""

    def controllers(self) -> list[Controller]:
        return [
            AggbattController(aggbatt_config(self.packs, **self.own)),
            ReferenceController(
                cells=16,
                expected=self.packs,
                max_charge_a=150.0 * self.packs,
                max_discharge_a=200.0 * self.packs,
            ),
        ]

    def run(self, controller: Controller, fast: bool = False, days: float = 0.0) -> Result:
        length = days or (self.fast_days if fast else self.days)
        return run(
            self.make_world(), controller, days=length,
            start=self.start, events=self.events, healthy=self.healthy, scenario=self.name,
        )  # fmt: skip


def _at(day: float, hour: float) -> float:
    return day * DAY + hour * HOUR


def _cold_morning(t: float) -> float:
    """-4 °C before dawn, +8 °C in the afternoon."""
    hour = (t / HOUR) % 24.0
    return 2.0 - 6.0 * math.cos(2 * math.pi * (hour - 3.0) / 24.0)


def _lose_sensor(w: World) -> None:
    w.bms[0].forced.update({"/Dc/0/Temperature": None, "/System/MinCellTemperature": None})


def _set_cells_15(w: World) -> None:
    w.bms[1].forced.update({"/System/NrOfCellsPerBattery": 15, "/Voltages/Cell16": REMOVED})


def _all_gone(w: World) -> None:
    for b in w.bms:
        b.on_bus = False


def _all_back(w: World) -> None:
    for b in w.bms:
        b.on_bus = True


def _jump(seconds: float) -> Callable[[World], None]:
    def act(w: World) -> None:
        w.wall_offset_s += seconds

    return act


def _restart(w: World) -> None:
    w.restart = True


JUNE = dt.datetime(2026, 6, 1)
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "sunny-week",
        "A sunny week with imbalanced packs",
        7,
        2,
        lambda: world(2, "clear", spread=0.05),
        JUNE,
        found="the daily top of charge: the CVL cut holds the highest cell, feed-in per episode",
    ),
    Scenario(
        "winter-month",
        "A winter month: balancing due, short days",
        30,
        4,
        lambda: world(2, "winter", peak_w=24000.0, soc=0.35, spread=0.05),
        dt.datetime(2027, 1, 1),
        found="a balancing that is due must complete on short days, or end with a warning",
    ),
    Scenario(
        "cold-morning",
        "A cold morning with feed-in on",
        2,
        2,
        lambda: world(2, "clear", soc=0.6, ambient=_cold_morning),
        dt.datetime(2026, 3, 10),
        found="no charge below 0 °C (the packs' own AllowToCharge 0 stops both controllers); "
        "above it, with feed-in on, only rule 1 makes the derated CCL hold",
    ),
    Scenario(
        "bms-disconnect-at-top",
        "One pack's BMS disconnects at the top of charge",
        3,
        2,
        lambda: world(
            2, "clear", soc=0.7, bms=BmsSettings(cell_over_v=3.47, cell_over_release_v=3.38)
        ),
        JUNE,
        healthy=False,
        found="a BMS that opens its FET at 3.47 V: its block holds the bank, the other pack is "
        "never left to take it all",
    ),
    Scenario(
        "sensor-fails-at-noon",
        "A pack's temperature sensor fails at noon",
        2,
        2,
        lambda: world(2, "clear", soc=0.6, ambient=_cold_morning),
        dt.datetime(2026, 3, 10),
        events=(Event(_at(0, 12), "pack1's temperature sensor fails", _lose_sensor),),
        found="the dead sensor keeps its last limit, the other pack's sensor still counts",
    ),
    Scenario(
        "cell-count-mismatch",
        "A pack reporting another cell count joins",
        2,
        2,
        lambda: world(2, "clear"),
        JUNE,
        events=(Event(_at(0, 11), "pack2 reports 15 cells", _set_cells_15),),
        found="a pack that does not match stops charging while it is on the bus (rule 5)",
    ),
    Scenario(
        "all-packs-lost",
        "All packs lost at noon for ten minutes",
        2,
        2,
        lambda: world(2, "clear"),
        JUNE,
        events=(
            Event(_at(0, 12), "every pack leaves the bus", _all_gone),
            Event(_at(0, 12.17), "every pack is back", _all_back),
        ),
        found="no battery: CCL 0 with feed-in off, and the service stays on the bus",
    ),
    Scenario(
        "unequal-resistance",
        "A pack with twice the resistance of the other",
        3,
        2,
        lambda: world(2, "clear", peak_w=18000.0, soc=0.3, resistance=(2.0, 1.0)),
        JUNE,
        found="the low-resistance pack takes two thirds of the current: the per-pack loop "
        "(rule 14) keeps it within its own BMS limit",
    ),
    Scenario(
        "clock-jump",
        "The clock jumps a year forward, then back",
        3,
        3,
        lambda: world(2, "clear"),
        JUNE,
        events=(
            Event(_at(0, 13), "the wall clock jumps a year ahead", _jump(365 * DAY)),
            Event(_at(1, 13), "the wall clock is set back", _jump(-365 * DAY)),
        ),
        found="balancing dates survive a clock set wrong; the counter runs on monotonic time",
    ),
    Scenario(
        "restart-mid-cut",
        "A restart in the middle of a cut",
        2,
        2,
        lambda: world(2, "clear", soc=0.8),
        JUNE,
        events=(Event(_at(0, 14), "the controller restarts", _restart),),
        found="after a restart in an episode the cut resumes and feed-in is restored later",
    ),
)
BY_NAME = {s.name: s for s in SCENARIOS}
BUS_DAYS = 0.6
"""The bus mode's length: through noon of the first day, where the scripted faults are."""
