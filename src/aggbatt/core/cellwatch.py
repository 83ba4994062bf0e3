"""Rule 4: where a pack's cells are read, and the check that its summary tells the truth.

A pack publishes each cell (``/Voltages/Cell1`` .., or serialbattery's ``/Cell/1/Volts`` ..)
and a summary of them (``/System/MaxCellVoltage``, ``/System/MinCellVoltage`` with their cell
ids), which its driver computes from the same cells in the same poll: reading both is a
cross-check, not a second measurement. Receiving every cell signal is the largest cost of
running on a GX (docs/benchmarks.md: 24 signals a second a pack of 24 cells). So the paths the
core reads (:data:`READ_NAMESPACES`) are received from every pack, and a pack's cells are
*watched* (received live) only while they can matter (:class:`Why`):

- its summary is near a threshold (:class:`CellBand`): within :data:`BAND_V` of the balancing
  target and above (the taper's end, the cut), or of the empty end (the discharge curve's full
  point, ``min_cell_voltage`` + hysteresis) and below. The charge curve's knee has no band of
  its own: it sits in LFP's plateau (3.33 V by default), where a charged pack rests and a
  charging one sits for hours; a band around it had the cells watched 75 % of a simulated
  sunny week (35 % without it; ``python -m bench cellband``, docs/benchmarks.md). Between the
  knee and the target the curve depends on the highest cell only, which the summary gives
  and the cross-check verifies;
- a cut, a block, a stop or the discharge latch is in force: every pack's cells (the cut's
  per-cell sum reads them);
- it publishes no summary: its cells are its only extremes;
- its summary disagreed with its cells at the last cross-check.

Theory of operation
-------------------
:func:`plan` decides the watched packs once a cycle; a summary that *enters* the band between
two cycles is caught on its own signal (:meth:`CellBand.enters`), and the shell then watches
and reads that pack's cells at once, so a cell rising into the band is seen within one summary
update. A pack leaves the watch only when its summary is outside the band widened by
:data:`LEAVE_MARGIN_V` (no flapping), and its cells are read once more as it leaves, so no
stale cell is left in the snapshot worse than its summary.

Every :func:`check_interval` a pack that is not watched live has its cells read once (one
``GetValue`` of its cell subtree): its driver answers between two polls, and every signal of
the poll it answers from arrives before the reply, so the cells read and the summary in the
snapshot are of the same poll. :func:`checked` compares them: beyond
:data:`CROSS_CHECK_TOLERANCE_V` the summary is a fault (an ``InternalFailure`` warning, one
log line per episode) and the pack's cells are watched until a check agrees again. The cells
read also refresh the published per-cell paths, which therefore move at the cross-check rate
outside the band (docs/configuration.md). ``read_battery`` is unchanged: the worse of the
summary and the cells in the snapshot wins.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from aggbatt.config import Config
from aggbatt.core.battery import (
    ALARMS,
    CELL_VOLTAGE_RANGE,
    PATHS,
    Fault,
    has_cells,
    is_cell,
    plain,
)

BAND_V = 0.03
"""A summary within this of a threshold has its pack's cells watched."""
LEAVE_MARGIN_V = 0.01
"""... and they stay watched until it is this much further away (hysteresis)."""
CROSS_CHECK_S = 30.0
"""How often the cells of a pack that is not watched are read and compared with its summary
(at most half of ``batteries.frozen_after``: a cell read is a sign of life, rule 10)."""
CROSS_CHECK_TOLERANCE_V = 0.01
"""Summary and cells of one poll may differ by this (rounding); more is a fault."""
CELL_NAMESPACES = ("/Voltages", "/Cell")
"""Where packs publish their cells: watched per pack."""
MAX_PATH, MIN_PATH = "/System/MaxCellVoltage", "/System/MinCellVoltage"
_GROUPS = ("/Dc/", "/System/", "/Info/", "/Io/", "/Alarms/")
_ALSO_READ = (
    "/DeviceInstance", "/ProductId", "/ProductName", "/CustomName", "/Serial", "/Connected",
    "/ErrorCode",
)  # fmt: skip
"""Identity and selection paths the core reads besides :data:`PATHS`."""


def _namespaces(paths: Iterable[str]) -> tuple[str, ...]:
    """Each path's group (``/Dc``, ``/System`` ...) or the path itself; sorted, unique."""
    out = {next((g[:-1] for g in _GROUPS if p.startswith(g)), p) for p in paths}
    return tuple(sorted(out))


READ_NAMESPACES = _namespaces(
    [r.path for r in PATHS if r.path != "/TimeToGo"]
    + [f"/Alarms/{a}" for a in ALARMS]
    + list(_ALSO_READ)
)
"""What the core reads of a battery service, as D-Bus path namespaces (``/Dc`` covers
``/Dc/0/Voltage``): received from every pack; the cells (:data:`CELL_NAMESPACES`) are not."""


def read_namespaces(config: Config) -> tuple[str, ...]:
    """:data:`READ_NAMESPACES` and the configured name path."""
    return _namespaces([*READ_NAMESPACES, config.batteries.name_path])


class Why(enum.Enum):
    """Why a pack's cells are watched."""

    BAND = "its summary is near a threshold"
    ATTENTIVE = "a cut, block, stop or latch is in force"
    NO_SUMMARY = "it publishes no summary of its cells"
    DISAGREES = "its summary disagreed with its cells"


@dataclass(frozen=True, slots=True)
class CellBand:
    """The thresholds of one cycle: where a pack's summary has its cells watched."""

    high: float
    """A summary maximum at or above this (the balancing target, the cut)."""
    low: float
    """A summary minimum at or below this (the empty end)."""
    everything: bool = False
    """A cut, block, stop or latch: every pack is watched."""

    def near(self, high: Any, low: Any, margin: float = 0.0) -> bool:
        """Whether a summary (max, min) is in the band (widened by ``margin``); a value that
        is not a number is taken as in it."""
        return self.everything or self.high_near(high, margin) or self.low_near(low, margin)

    def high_near(self, high: Any, margin: float = 0.0) -> bool:
        if type(high) is not float and type(high) is not int:
            return True
        return not high < self.high - margin  # NaN: near

    def low_near(self, low: Any, margin: float = 0.0) -> bool:
        if type(low) is not float and type(low) is not int:
            return True
        return not low > self.low + margin  # NaN: near

    def enters(self, changes: Mapping[str, Any]) -> bool:
        """A signal of a pack that is not watched: does its summary enter the band?"""
        if MAX_PATH in changes and self.high_near(changes[MAX_PATH]):
            return True
        return MIN_PATH in changes and self.low_near(changes[MIN_PATH])


def cell_band(config: Config, attentive: bool) -> CellBand:
    """The band for the configured curves; ``attentive``: a cut, block, stop or latch."""
    own = config.control.own
    dvolts, dfactors = own.discharge_curve
    full = min(
        (v for v, f in zip(dvolts, dfactors, strict=True) if f == max(dfactors)), default=dvolts[-1]
    )
    empty = max(full, own.min_cell_voltage + own.min_cell_hysteresis)
    target = min(own.balancing_voltage, own.max_cell_voltage)
    return CellBand(
        high=target - BAND_V,
        low=empty + BAND_V,
        everything=attentive,
    )


@dataclass(frozen=True, slots=True)
class CellWatch:
    """Which packs' cells are watched, and the state of their cross-checks."""

    band: CellBand
    watched: Mapping[str, Why] = field(default_factory=dict)
    checked_at: Mapping[str, float] = field(default_factory=dict)
    """Monotonic time of each pack's last cell read."""
    disagree: Mapping[str, Fault] = field(default_factory=dict)
    """Packs whose summary disagreed with their cells at the last check, and the fault."""

    def due(self, now: float, interval: float) -> list[str]:
        """Packs whose cells should be read now: not watched live (or watched because they
        disagreed, to clear it), and not read for ``interval``."""
        return sorted(
            key
            for key in self.checked_at
            if (key not in self.watched or key in self.disagree)
            and now - self.checked_at[key] >= interval
        )


def check_interval(config: Config) -> float:
    return min(CROSS_CHECK_S, config.batteries.frozen_after / 2)


def _why(values: Mapping[str, Any], band: CellBand, was: Why | None, disagree: bool) -> Why | None:
    if disagree:
        return Why.DISAGREES
    if values.get(MAX_PATH) is None or values.get(MIN_PATH) is None:
        return Why.NO_SUMMARY
    if band.everything:
        return Why.ATTENTIVE
    margin = LEAVE_MARGIN_V if was is not None else 0.0
    if band.near(values[MAX_PATH], values[MIN_PATH], margin):
        return Why.BAND
    return None


def plan(
    watch: CellWatch, bank: Mapping[str, Mapping[str, Any]], band: CellBand, now: float
) -> CellWatch:
    """Once a cycle: the watched packs of the bank (``bank``: their snapshots) under ``band``.

    Only packs that publish cells are planned (a Lynx BMS has none). A pack new to the bank
    is due for a read at once; a pack that left is forgotten."""
    watched: dict[str, Why] = {}
    checked_at: dict[str, float] = {}
    for key, values in bank.items():
        if not has_cells(values):
            continue
        checked_at[key] = watch.checked_at.get(key, -math.inf)
        why = _why(values, band, watch.watched.get(key), key in watch.disagree)
        if why is not None:
            watched[key] = why
    disagree = {k: f for k, f in watch.disagree.items() if k in checked_at}
    return CellWatch(band, watched, checked_at, disagree)


def watch_now(watch: CellWatch, key: str) -> CellWatch:
    """A summary entered the band between cycles (:meth:`CellBand.enters`)."""
    return replace(watch, watched={**watch.watched, key: Why.BAND})


def cross_check(values: Mapping[str, Any], cells: Mapping[str, Any]) -> Fault | None:
    """Cells read in one call against the summary of the same poll in ``values``."""
    low, high = CELL_VOLTAGE_RANGE
    volts = [float(v) for p, v in cells.items() if is_cell(p) and plain(v, low, high)]
    raw_max: Any = values.get(MAX_PATH)
    raw_min: Any = values.get(MIN_PATH)
    if not volts or not (plain(raw_max, low, high) and plain(raw_min, low, high)):
        return None  # nothing to compare: read_battery reports bad values as they are
    s_max, s_min = float(raw_max), float(raw_min)
    c_max, c_min = max(volts), min(volts)
    tol = CROSS_CHECK_TOLERANCE_V
    if abs(s_max - c_max) <= tol and abs(s_min - c_min) <= tol:
        return None
    return Fault(
        MAX_PATH,
        f"{s_max:g}/{s_min:g}",
        f"the summary (max/min) disagrees with its cells ({c_max:g}/{c_min:g} V): its cells are "
        "read live and the worse of both counts",
    )


def checked(
    watch: CellWatch, key: str, values: Mapping[str, Any], cells: Mapping[str, Any], now: float
) -> CellWatch:
    """A pack's cells were read (``cells``; ``values`` its snapshot before they are applied)."""
    fault = cross_check(values, cells)
    disagree = dict(watch.disagree)
    watched = dict(watch.watched)
    if fault is not None:
        disagree[key] = fault
        watched[key] = Why.DISAGREES
    elif disagree.pop(key, None) is not None and watched.get(key) is Why.DISAGREES:
        del watched[key]  # the next plan decides whether the band keeps it
    return CellWatch(watch.band, watched, {**watch.checked_at, key: now}, disagree)
