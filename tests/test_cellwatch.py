"""Rule 4 (core/cellwatch.py): where a pack's cells are read, and the summary's cross-check."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest

from aggbatt.config import Config, validate_config
from aggbatt.core import cellwatch
from aggbatt.core.battery import read_battery
from aggbatt.core.cellwatch import (
    CELL_NAMESPACES,
    LEAVE_MARGIN_V,
    MAX_PATH,
    MIN_PATH,
    CellBand,
    CellWatch,
    Why,
    cell_band,
    checked,
    cross_check,
    plan,
    read_namespaces,
)
from aggbatt.core.engine import initial_state, run_cycle
from aggbatt.core.packs import recognise
from aggbatt.core.selection import select_batteries
from aggbatt.core.stored import State
from tests.packs import pack

CONFIG = validate_config({})
BAND = cell_band(CONFIG, attentive=False)


def summary(high: Any, low: Any) -> dict[str, Any]:
    return {MAX_PATH: high, MIN_PATH: low, "/Voltages/Cell1": 3.3}


def test_the_band_follows_the_configured_thresholds() -> None:
    own = CONFIG.control.own  # defaults: balancing 3.43, cut 3.45, empty 2.9
    assert BAND.high == pytest.approx(min(own.balancing_voltage, own.max_cell_voltage) - 0.03)
    assert BAND.low == pytest.approx(own.min_cell_voltage + 0.2 + 0.03)  # the DCL's full point


@pytest.mark.parametrize(
    ("high", "low", "why"),
    [
        (3.25, 3.20, None),  # a pack at rest in the flat middle: summary only
        (3.28, 3.24, None),
        (3.34, 3.30, None),  # the charge curve's knee, in LFP's plateau: the summary decides
        (3.41, 3.30, Why.BAND),  # the balancing target and the cut
        (3.60, 3.30, Why.BAND),
        (3.25, 3.10, Why.BAND),  # the empty end
        (math.nan, 3.25, Why.BAND),  # not a number: taken as near
        ("3.3", 3.25, Why.BAND),
        (None, 3.25, Why.NO_SUMMARY),
    ],
)
def test_a_packs_cells_are_watched_only_near_a_threshold(high: Any, low: Any, why: Why) -> None:
    watch = plan(CellWatch(BAND), {"p": summary(high, low)}, BAND, now=0.0)
    assert watch.watched.get("p") is why


def test_every_packs_cells_are_watched_during_a_cut_block_or_latch() -> None:
    band = cell_band(CONFIG, attentive=True)
    watch = plan(CellWatch(band), {"p": summary(3.25, 3.20)}, band, now=0.0)
    assert watch.watched == {"p": Why.ATTENTIVE}


def test_a_pack_without_a_summary_is_watched_in_full_and_one_without_cells_not_at_all() -> None:
    watch = plan(CellWatch(BAND), {"p": {"/Cell/1/Volts": 3.2}}, BAND, now=0.0)
    assert watch.watched == {"p": Why.NO_SUMMARY}
    lynx = {MAX_PATH: None, MIN_PATH: None, "/Dc/0/Voltage": 52.4}  # no cells to read
    watch = plan(CellWatch(BAND), {"p": lynx}, BAND, now=0.0)
    assert watch.watched == {} and watch.due(0.0, 30.0) == []


def test_leaving_the_band_needs_a_margin_so_the_watch_does_not_flap() -> None:
    inside = plan(CellWatch(BAND), {"p": summary(BAND.high, 3.25)}, BAND, now=0.0)
    assert inside.watched == {"p": Why.BAND}
    just_below = BAND.high - LEAVE_MARGIN_V / 2
    assert plan(inside, {"p": summary(just_below, 3.25)}, BAND, now=1.0).watched == {"p": Why.BAND}
    # a fresh pack at that value is not watched, one that was stays until the margin is passed
    assert plan(CellWatch(BAND), {"p": summary(just_below, 3.25)}, BAND, 1.0).watched == {}
    away = BAND.high - 2 * LEAVE_MARGIN_V
    assert plan(inside, {"p": summary(away, 3.25)}, BAND, now=2.0).watched == {}


@pytest.mark.parametrize(
    ("changes", "enters"),
    [
        ({MAX_PATH: 3.41}, True),
        ({MAX_PATH: 3.33}, False),
        ({MAX_PATH: 3.25}, False),
        ({MIN_PATH: 3.10}, True),
        ({MIN_PATH: 3.25}, False),
        ({MAX_PATH: math.nan}, True),
        ({MAX_PATH: None}, True),
        ({"/Dc/0/Voltage": 53.2, "/Soc": 50.0}, False),
    ],
)
def test_a_summary_signal_that_enters_the_band_is_caught_on_its_own(
    changes: dict[str, Any], enters: bool
) -> None:
    assert BAND.enters(changes) is enters


def test_a_new_pack_is_read_at_once_then_every_interval_unless_watched() -> None:
    interval = cellwatch.check_interval(CONFIG)
    watch = plan(CellWatch(BAND), {"p": summary(3.25, 3.20), "q": summary(3.42, 3.3)}, BAND, 0.0)
    assert watch.due(0.0, interval) == ["p"]  # q is watched: its cells are read as that starts
    cells = {"/Voltages/Cell1": 3.25, "/Voltages/Cell2": 3.20}
    watch = checked(watch, "p", summary(3.25, 3.20), cells, now=0.0)
    assert watch.due(interval - 1, interval) == []
    assert watch.due(interval, interval) == ["p"]
    watch = plan(watch, {"p": summary(3.25, 3.20), "q": summary(3.25, 3.2)}, BAND, interval)
    assert watch.watched == {}
    assert watch.due(interval, interval) == ["p", "q"]  # q left the band: read as it leaves


def test_the_check_is_frequent_enough_to_be_a_sign_of_life() -> None:
    quick = validate_config({"batteries": {"frozen_after": 10}})
    assert cellwatch.check_interval(quick) == 5.0
    assert cellwatch.check_interval(CONFIG) == cellwatch.CROSS_CHECK_S


def test_cells_and_summary_of_one_poll_agree_within_rounding() -> None:
    cells = {f"/Voltages/Cell{i}": 3.300 + i / 1000 for i in range(1, 17)}
    cells["/Voltages/Sum"] = 53.0  # not a cell
    cells["/Voltages/Diff"] = 0.015
    assert cross_check(summary(3.316, 3.301), cells) is None
    assert cross_check(summary(3.316 + 0.009, 3.301), cells) is None


def test_a_summary_that_disagrees_with_its_cells_is_a_fault_and_watched_until_it_agrees() -> None:
    values = summary(3.30, 3.28)
    cells = {"/Voltages/Cell1": 3.29, "/Voltages/Cell2": 3.47}  # the summary misses C2
    fault = cross_check(values, cells)
    assert fault is not None and "disagrees" in fault.problem and "3.47" in fault.problem
    watch = plan(CellWatch(BAND), {"p": values}, BAND, 0.0)
    assert watch.watched == {}
    watch = checked(watch, "p", values, cells, now=1.0)
    assert watch.watched == {"p": Why.DISAGREES}
    assert watch.disagree["p"] == fault
    # watched live now, and still read at the interval so that agreement can end the episode
    watch = plan(watch, {"p": values}, BAND, 2.0)
    assert watch.watched == {"p": Why.DISAGREES}
    assert watch.due(1.0 + cellwatch.CROSS_CHECK_S, cellwatch.CROSS_CHECK_S) == ["p"]
    good = {"/Voltages/Cell1": 3.28, "/Voltages/Cell2": 3.30}
    watch = checked(watch, "p", values, good, now=40.0)
    assert watch.disagree == {} and watch.watched == {}


def test_a_disagreeing_summary_is_a_fault_of_the_pack_and_the_worse_cells_count() -> None:
    values = pack([3.30] * 15 + [3.60])
    values[MAX_PATH] = 3.30  # the summary lies
    fault = cross_check(values, {p: v for p, v in values.items() if p.startswith("/Voltages/")})
    assert fault is not None
    result = run_cycle(
        {"svc0": values}, {}, validate_config({"batteries": {"expected": 0}}),
        initial_state(State()), now_mono=0.0, now_wall=1.78e9, month=6,
        cell_faults={"svc0": fault},
    )  # fmt: skip
    assert fault in result.aggregate.faults["svc0"]
    assert result.aggregate.alarms["InternalFailure"] >= 1
    assert result.aggregate.max_cell is not None
    assert result.aggregate.max_cell.value == pytest.approx(3.60)
    assert result.limits.cvl.value < 16 * 3.45


class Recorder(dict[str, Any]):
    """A snapshot that records every path read of it."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)

    def items(self) -> Any:  # a reader that walks every path would defeat the test
        raise AssertionError("the core reads paths by name")

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("the core reads paths by name")


def covered(path: str, namespaces: tuple[str, ...]) -> bool:
    return any(path == ns or path.startswith(ns + "/") for ns in namespaces)


@pytest.mark.parametrize("name_path", ["/Serial", "/CustomName"])
def test_the_subscribed_namespaces_cover_every_path_the_core_reads(name_path: str) -> None:
    """Rule 4: what is not subscribed is never received; everything the core reads of a pack
    must be in a read namespace (or be a cell, which is watched near the thresholds)."""
    config: Config = validate_config({"batteries": {"name_path": name_path}})
    snapshot = Recorder(pack([3.3] * 15 + [3.31], ProductName="SerialBattery(Jkbms)"))
    snapshot.update({"/DeviceInstance": 1, "/Serial": "X1", "/CustomName": "A"})
    name = "com.victronenergy.battery.ttyUSB0"
    selected = select_batteries({name: snapshot}, config, "com.victronenergy.battery.aggbatt")
    assert list(selected) == [name]
    read_battery(name, "A", snapshot)
    recognise({name: snapshot}, {})
    snapshot.get(config.batteries.name_path)  # the daemon's display name
    namespaces = read_namespaces(config)
    missed = {p for p in snapshot.read if not covered(p, namespaces + CELL_NAMESPACES)}
    assert missed == set()
    assert len(namespaces) <= 24  # a handful of match rules, whatever the number of packs


def test_each_end_has_its_band() -> None:
    band = CellBand(high=3.40, low=3.13)
    assert band.near(3.40, 3.30) and band.near(3.2, 3.13) and band.near(3.5, 3.0)
    assert not band.near(3.39, 3.14) and not band.near(3.37, 3.20)
