"""The controllers in the loop: aggbatt's own core, and the reference's own mode beside it.

:class:`AggbattController` calls the same :func:`aggbatt.core.engine.run_cycle` the daemon
calls, at simulated time; a restart goes through the state file's content as the daemon's
does. :class:`ReferenceController` is dbus-aggregate-batteries' own-mode algorithm written
from its documented options and formulas (``docs/comparison.md``): CVL from the month's
voltage with the penalty-sum cut, CCL/DCL from the cell-voltage curves only (no temperature,
no BMS limits), feed-in off while the CVL is cut and restored only at the instant the cut
ends, and an exit (for Venus: BMS lost) when a pack's value is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aggbatt.config import Config
from aggbatt.core.coulomb import Event
from aggbatt.core.curve import interpolate
from aggbatt.core.engine import CycleResult, EngineState, initial_state, run_cycle, to_state
from aggbatt.core.stored import State
from aggbatt.sim.bank.venus import Limits

Snapshots = Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Decision:
    limits: Limits
    feed_in_off: bool
    soc: float | None
    reason: str
    """Why the CCL is what it is (the controller's own words)."""
    event: str = ""
    """Something worth a line in the run's log (balancing, counter resets)."""


class Controller(Protocol):
    name: str

    def decide(
        self, snapshots: Snapshots, now_mono: float, now_wall: float, month: int
    ) -> Decision: ...

    def restart(self) -> None: ...


class AggbattController:
    name = "aggbatt"

    def __init__(
        self, config: Config, stored: State | None = None, ccl_honoured: bool = False
    ) -> None:
        self.config = config
        self.state: EngineState = initial_state(stored or State())
        self.last: CycleResult | None = None
        self.ccl_honoured = ccl_honoured
        """A Multi-RS on the bus (the daemon finds its acsystem service)."""

    def decide(
        self, snapshots: Snapshots, now_mono: float, now_wall: float, month: int
    ) -> Decision:
        names = {key: key.rsplit(".", 1)[-1] for key in snapshots}
        result = run_cycle(
            snapshots, names, self.config, self.state,
            now_mono=now_mono, now_wall=now_wall, month=month, ccl_honoured=self.ccl_honoured,
        )  # fmt: skip
        self.state, self.last = result.state, result
        lim, agg = result.limits, result.aggregate
        events = [result.state.balancing.event]
        counter = result.state.counter
        if counter is not None and counter.kind in (Event.RESET, Event.SYNCHRONISED):
            events.append(counter.event)
        return Decision(
            Limits(
                cvl=lim.cvl.value,
                ccl=lim.ccl.value,
                dcl=lim.dcl.value,
                allow_charge=agg.allow_charge is not False and lim.ccl.value > 0,
                allow_discharge=agg.allow_discharge is not False and lim.dcl.value > 0,
            ),
            feed_in_off=lim.feed_in_off,
            soc=result.soc,
            reason=lim.ccl.reason,
            event="; ".join(e for e in events if e),
        )

    def restart(self) -> None:
        """As the daemon after a restart: only what the state file holds survives."""
        self.state = initial_state(to_state(self.state, None))


REFERENCE_LFP_MONTHS = [3.55, 3.50, 3.50, 3.45, 3.40, 3.40, 3.40, 3.40, 3.45, 3.50, 3.50, 3.55]


@dataclass
class ReferenceController:
    """dbus-aggregate-batteries v4.3 own mode, its LFP example values."""

    cells: int = 16
    expected: int = 0
    months: tuple[float, ...] = tuple(REFERENCE_LFP_MONTHS)
    balancing_v: float = 3.40
    max_v: float = 3.45
    min_v: float = 2.90
    hysteresis_v: float = 0.1
    max_charge_a: float = 200.0
    max_discharge_a: float = 200.0
    cell_diff_max: float = 0.025
    restart_s: float = 15.0
    name: str = "reference"

    def __post_init__(self) -> None:
        self._reduced = False
        self._feed_in_off = False
        self._latched = False
        self._down_until = -1.0
        self._last_cvl = self.cells * self.months[0]

    def restart(self) -> None:
        self._reduced = self._latched = False  # its state lived in RAM
        self._feed_in_off = False  # and it re-read the already-disabled setting (§4.11)

    def decide(
        self, snapshots: Snapshots, now_mono: float, now_wall: float, month: int
    ) -> Decision:
        if now_mono < self._down_until:
            return self._gone("restarting after an exit")
        packs = list(snapshots.values())
        required = ("/Dc/0/Voltage", "/Dc/0/Current", "/Soc")
        if not packs or len(packs) < self.expected:
            return self._exit(now_mono, "fewer batteries than NR_OF_BATTERIES")
        cells_of: list[list[float]] = []
        for values in packs:
            cells = [values.get(f"/Voltages/Cell{i}") for i in range(1, self.cells + 1)]
            if any(values.get(p) is None for p in required) or any(
                not isinstance(c, int | float) for c in cells
            ):
                return self._exit(now_mono, "a value is None")
            cells_of.append([float(c) for c in cells])  # type: ignore[arg-type]
        hi = max(max(c) for c in cells_of)
        lo = min(min(c) for c in cells_of)
        cvl = self.cells * self.months[month - 1]
        reduced = hi >= self.max_v
        if reduced:
            cvl = min(cvl, *(sum(c) - sum(max(0.0, v - self.max_v) for v in c) for c in cells_of))
        if reduced:
            self._feed_in_off = True
        elif self._reduced and hi - lo < self.cell_diff_max:
            self._feed_in_off = False  # only at the instant the episode ends (§4.11)
        self._reduced = reduced
        vmin, bal = self.min_v, self.balancing_v
        ccl = self.max_charge_a * interpolate(
            hi, [vmin, vmin + 0.05, bal - 0.1, bal, self.max_v], [0.2, 1, 1, 0.1, 0]
        )
        if lo <= vmin:
            self._latched = True
        elif lo > vmin + self.hysteresis_v:
            self._latched = False
        dcl = 0.0 if self._latched else self.max_discharge_a * interpolate(
            lo, [vmin, vmin + 0.1, vmin + 0.2], [0, 0.05, 1]
        )  # fmt: skip
        if any(v.get("/System/NrOfModulesBlockingCharge") for v in packs):
            ccl = 0.0
        caps = [float(v["/InstalledCapacity"]) for v in packs]
        soc = sum(float(v["/Soc"]) * c for v, c in zip(packs, caps, strict=True)) / sum(caps)
        self._last_cvl = cvl
        allow_c = all(v.get("/Io/AllowToCharge", 1) for v in packs)
        allow_d = all(v.get("/Io/AllowToDischarge", 1) for v in packs)
        return Decision(
            Limits(cvl, ccl, dcl, allow_c, allow_d),
            feed_in_off=self._feed_in_off,
            soc=soc,
            reason="cell voltage curve" if ccl > 0 else "blocked or at the top",
        )

    def _exit(self, now: float, why: str) -> Decision:
        self._down_until = now + self.restart_s
        self.restart()
        return self._gone(f"exited: {why}")

    def _gone(self, why: str) -> Decision:
        limits = Limits(self._last_cvl, 0.0, 0.0, present=False)
        return Decision(limits, feed_in_off=self._feed_in_off, soc=None, reason=why)
