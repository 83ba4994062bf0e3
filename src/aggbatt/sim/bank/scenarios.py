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
from aggbatt.sim.bank.cells import COULOMBIC_EFFICIENCY, Bank, make_pack
from aggbatt.sim.bank.controllers import AggbattController, Controller, ReferenceController
from aggbatt.sim.bank.run import Event, Result, World, export_kept, run
from aggbatt.sim.bank.venus import SolarSite, Weather
from aggbatt.sim.serialbattery import (
    Board,
    BoardSettings,
    DriverConfig,
    SerialBatteryPack,
)

HOUR = 3600.0
DAY = 86400.0


def make_bank(
    packs: int = 2,
    cells: int = 16,
    capacity_ah: float = 280.0,
    soc: float = 0.5,
    *,
    resistance: tuple[float, ...] = (),
    board: BoardSettings | None = None,
    driver: DriverConfig | None = None,
    spread: float = 0.03,
    soc_step: float = 0.02,
) -> tuple[Bank, list[SerialBatteryPack]]:
    """A bank in one line: ``packs`` x ``cells`` LFP cells, each with its BMS board and its
    serialbattery driver (the driver's defaults unless ``driver`` says otherwise)."""
    made = [
        make_pack(
            f"pack{i + 1}",
            cells,
            capacity_ah,
            soc + soc_step * i,
            spread=spread,
            seed=i + 1,
            resistance_factor=resistance[i] if i < len(resistance) else 1.0,
        )
        for i in range(packs)
    ]
    batteries = [
        SerialBatteryPack(
            p, Board(board or BoardSettings()), driver or DriverConfig(), port=p.name,
            instance=i + 1,
        )
        for i, p in enumerate(made)
    ]  # fmt: skip
    return Bank(made), batteries


def world(
    packs: int = 2,
    weather: Weather = "clear",
    peak_w: float = 12000.0,
    ambient: Callable[[float], float] | None = None,
    warmer_c: tuple[float, ...] = (),
    offset_v: float = 0.0,
    multi_rs: bool = False,
    **bank: Any,
) -> World:
    b, bmses = make_bank(packs, **bank)
    site = SolarSite(
        peak_w=peak_w, weather=weather, feed_in_offset_v=offset_v, ccl_honoured=multi_rs
    )
    return World(b, bmses, site, ambient, warmer_c=warmer_c)


def aggbatt_config(packs: int, **own: Any) -> Config:
    """aggbatt's defaults for the simulated bank, with the own SoC (the maximum currents are
    the packs' rating: serialbattery's 50 A and 60 A each)."""
    return validate_config(
        {
            "batteries": {"expected": packs},
            "soc": {"own": True, "efficiency": COULOMBIC_EFFICIENCY},
            "control": {"own": own},
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
    export_kept: bool = False
    """Rule 1's measure: aggbatt exports at least 95 % of what feed-in left on exports."""
    multi_rs: bool = False
    """A Multi-RS: DVCC honours the CCL with feed-in on (the daemon finds it on the bus)."""

    def aggbatt(self) -> AggbattController:
        return AggbattController(aggbatt_config(self.packs, **self.own), ccl_honoured=self.multi_rs)

    def controllers(self) -> list[Controller]:
        return [
            self.aggbatt(),
            ReferenceController(
                cells=16,
                expected=self.packs,
                max_charge_a=50.0 * self.packs,
                max_discharge_a=60.0 * self.packs,
            ),
        ]

    def run(
        self, controller: Controller, fast: bool = False, days: float = 0.0, switching: bool = True
    ) -> Result:
        """One run; ``switching`` False is the baseline with feed-in left as the user set it.
        aggbatt's run of a scenario with :attr:`export_kept` is measured against it."""
        length = days or (self.fast_days if fast else self.days)
        result = run(
            self.make_world(), controller, days=length, start=self.start, events=self.events,
            healthy=self.healthy, scenario=self.name, switching=switching,
        )  # fmt: skip
        if self.export_kept and switching and isinstance(controller, AggbattController):
            left_on = run(
                self.make_world(), self.aggbatt(), days=length, start=self.start,
                events=self.events, healthy=self.healthy, scenario=self.name, switching=False,
            )  # fmt: skip
            export_kept(result, left_on)
        return result


def _at(day: float, hour: float) -> float:
    return day * DAY + hour * HOUR


def _cold_morning(t: float) -> float:
    """-4 °C before dawn, +8 °C in the afternoon."""
    hour = (t / HOUR) % 24.0
    return 2.0 - 6.0 * math.cos(2 * math.pi * (hour - 3.0) / 24.0)


def _lose_sensors(w: World) -> None:
    """Both of pack1's sensors: its driver averages none, so its temperatures go None."""
    w.packs[0].board.dead_sensors = frozenset({1, 2})


def _set_cells_15(w: World) -> None:
    w.packs[1].forced.update({"/System/NrOfCellsPerBattery": 15, "/Voltages/Cell16": None})


def _all_links_down(w: World) -> None:
    for b in w.packs:
        b.board.link_up = False


def _all_links_up(w: World) -> None:
    for b in w.packs:
        b.board.link_up = True


def _jump(seconds: float) -> Callable[[World], None]:
    def act(w: World) -> None:
        w.wall_offset_s += seconds

    return act


def _restart(w: World) -> None:
    w.restart = True


def _cold_night(t: float) -> float:
    """-10 °C at 4 in the morning, +2 °C in the afternoon: an unheated shed in January."""
    hour = (t / HOUR) % 24.0
    return -4.0 - 6.0 * math.cos(2 * math.pi * (hour - 4.0) / 24.0)


def _link(pack: int, up: bool) -> Callable[[World], None]:
    def act(w: World) -> None:
        w.packs[pack].board.link_up = up

    return act


def _replug(pack: int, port: str) -> Callable[[World], None]:
    def act(w: World) -> None:
        w.packs[pack].replug(port, w.clock)

    return act


JUNE = dt.datetime(2026, 6, 1)
SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "sunny-week",
        "A sunny week with imbalanced packs",
        7,
        2,
        lambda: world(2, "clear", spread=0.05),
        JUNE,
        export_kept=True,
        found="the daily top of charge: the packs' taper is held through the CVL with feed-in "
        "on, the highest cell stays below the cut and the surplus is exported",
    ),
    Scenario(
        "winter-month",
        "A winter month: balancing due, short days",
        30,
        3,
        lambda: world(2, "winter", peak_w=24000.0, soc=0.35, spread=0.05),
        dt.datetime(2027, 1, 1),
        export_kept=True,
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
            2, "clear", soc=0.7, board=BoardSettings(cell_over_v=3.47, cell_over_release_v=3.38)
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
        events=(Event(_at(0, 12), "pack1's temperature sensors fail", _lose_sensors),),
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
        "All packs' BMS links lost at noon for ten minutes",
        2,
        2,
        lambda: world(2, "clear"),
        JUNE,
        events=(
            Event(_at(0, 12), "every BMS stops answering (a USB hub)", _all_links_down),
            Event(_at(0, 12.17), "every BMS answers again", _all_links_up),
        ),
        found="the drivers go through serialbattery's lost phase and exit: charging stops at "
        "once, no battery leaves CCL 0 with feed-in off, and the service stays on the bus",
    ),
    Scenario(
        "unequal-resistance",
        "A pack with twice the resistance of the other",
        3,
        2,
        lambda: world(2, "clear", peak_w=18000.0, soc=0.3, resistance=(2.0, 1.0)),
        JUNE,
        export_kept=True,
        found="the low-resistance pack takes two thirds of the current: the per-pack loop "
        "(rule 14) keeps it within its own BMS limit",
    ),
    Scenario(
        "clock-jump",
        "The clock jumps a year forward, then back",
        3,
        2,
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
SCENARIOS += (
    Scenario(
        "cold-night-standby",
        "A winter night: one pack goes to standby at -12 °C",
        2,
        2,
        lambda: world(
            2,
            "winter",
            peak_w=20000.0,
            soc=0.5,
            ambient=_cold_night,
            warmer_c=(-2.0, 2.0),
            soc_step=0.0,
        ),
        dt.datetime(2027, 1, 10),
        found="serialbattery publishes /State 14 with both flags 0 at -12 °C while its FETs "
        "still conduct: the pack stays in the bank and its flags vote, so the bank neither "
        "charges nor discharges through it (the house runs from the grid until it warms up)",
    ),
    Scenario(
        "bms-link-lost-at-top",
        "One pack's BMS link is lost for 5 minutes at the top of charge",
        2,
        2,
        lambda: world(2, "clear", soc=0.55),
        JUNE,
        events=(
            Event(_at(0, 10.5), "pack1's BMS stops answering", _link(0, False)),
            Event(_at(0, 10.5 + 5 / 60), "pack1's BMS answers again", _link(0, True)),
        ),
        found="after 10 s its driver publishes no voltage and current, then exits (its cells "
        "are outside 3.25-3.35 V) and comes back when the BMS answers: charging stops at once "
        "and resumes with the pack",
    ),
    Scenario(
        "driver-exits-wired-in",
        "A pack's driver exits and its pack stays wired in for two hours",
        2,
        2,
        lambda: world(2, "clear", soc=0.5, driver=DriverConfig(block_on_disconnect=True)),
        JUNE,
        events=(
            Event(_at(0, 11), "pack1's BMS goes silent (BLOCK_ON_DISCONNECT)", _link(0, False)),
            Event(_at(0, 13), "pack1's BMS answers again", _link(0, True)),
        ),
        found='serialbattery\'s model is "driver gone, so Venus stops": aggbatt keeps the '
        "bank from charging the unmonitored pack until its driver is back, and discharges "
        "within the other pack's share",
    ),
    Scenario(
        "usb-replug",
        "A USB re-plug renames a pack's port",
        2,
        2,
        lambda: world(2, "clear", soc=0.5),
        JUNE,
        events=(Event(_at(0, 10), "pack2 is re-plugged as ttyUSB4", _replug(1, "ttyUSB4")),),
        found="the driver comes back 17 s later as com.victronenergy.battery.ttyUSB4: the same "
        "serial, capacity and cells, so it is the same pack; no phantom pack is left behind",
    ),
    Scenario(
        "float-and-soc-reset",
        "serialbattery's float and its SoC reset under aggbatt's own mode",
        3,
        2,
        lambda: world(
            2,
            "clear",
            soc=0.6,
            spread=0.005,
            driver=DriverConfig(max_cell_v=3.40, soc_reset_after_days=2.0),
        ),
        JUNE,
        found="drivers set to MAX_CELL_VOLTAGE 3.40 V float at 3.375 V a cell after 15 min: "
        "aggbatt keeps its own month's voltage, capped at their bulk 3.40 V; their SoC reset to "
        "3.65 V a cell never runs under max_cell_voltage 3.45 V and is reported",
    ),
)
SCENARIOS += (
    Scenario(
        "feed-in-voltage-offset",
        "A Multi that lets the bank 0.2 V above the CVL with feed-in on",
        2,
        2,
        lambda: world(2, "clear", soc=0.3, offset_v=0.2),
        JUNE,
        found="systemcalc lets the solar chargers run up to 0.4 V above the CVL with feed-in on: "
        "the hold corrects the offset from its last value and holds the current through the "
        "morning; at the top the offset lifts the highest cell to the max, and the cut switches "
        "feed-in off until the cells settle in the evening (one episode a day)",
    ),
    Scenario(
        "multi-rs",
        "A Multi-RS: the CCL holds with feed-in on",
        2,
        2,
        lambda: world(2, "clear", soc=0.3, multi_rs=True),
        JUNE,
        multi_rs=True,
        found="systemcalc's acsystem path makes PV give what the battery takes plus what the "
        "inverter exports: nothing is switched and no current is held",
    ),
)
BY_NAME = {s.name: s for s in SCENARIOS}
BUS_DAYS = 0.6
"""The bus mode's length: through noon of the first day, where the scripted faults are."""
