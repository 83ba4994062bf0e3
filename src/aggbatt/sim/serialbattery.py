"""A double of dbus-serialbattery as released (v2.0.20250729): what one pack's driver
publishes on D-Bus, and when.

Written from the driver's code (mr-manuel/venus-os_dbus-serialbattery at that tag; AGPL-3.0,
read for its facts, nothing of it copied). Each behaviour below names the driver's file and
function it follows; ``docs/serialbattery.md`` lists them with the tests that show aggbatt's
answer. Three parts, as on a real system:

* :class:`Board`: the BMS hardware. Its FETs open at its hard cut-offs (with hysteresis) or
  when told to; a poll gets a :class:`Reading`, or nothing while its link is down.
* :class:`Driver`: the driver's logic around the board (``dbushelper.py``, ``battery.py``): the
  state 0 -> 9 <-> 14 and 10; the lost-link phase and the exit; the CVL (bulk, absorption,
  float transition, float, the cell-OVP controller, the SoC reset); CCL and DCL from its
  default curves with the 60 s / 33 % hold and the 1.5 % release after a 0; and every value
  it holds on D-Bus (:meth:`Driver.values`).
* :class:`SerialBatteryPack`: a pack's cells (:mod:`aggbatt.sim.bank.cells`), its board and its
  driver, stepped on a clock the caller sets; a driver that exits is restarted as daemontools
  does, 16 s plus a poll later, if its BMS answers the probe.

Time is always passed in (seconds, any origin), so a simulated week runs in seconds.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aggbatt.core.curve import interpolate
from aggbatt.sim.bank.cells import Pack
from aggbatt.venus.wire import Value

PRODUCT_ID = 0xBA77
"""Reserved by Victron for dbus-serialbattery; every driver publishes it (dbushelper.py
``setup_vedbus``)."""

Curve = tuple[tuple[float, ...], tuple[float, ...]]
"""Ascending x, then the factor at each x (the driver reverses descending arrays itself:
utils.py ``calc_linear_relationship``)."""

ALARMS = (
    "LowVoltage", "HighVoltage", "LowCellVoltage", "HighCellVoltage", "LowSoc",
    "StateOfHealth", "HighChargeCurrent", "HighDischargeCurrent", "CellImbalance",
    "InternalFailure", "HighChargeTemperature", "LowChargeTemperature", "HighTemperature",
    "LowTemperature", "BmsCable", "HighInternalTemperature", "FuseBlown",
)  # fmt: skip
"""The alarm paths ``setup_vedbus`` adds, in its order."""


@dataclass(frozen=True)
class DriverConfig:
    """The driver's ``config.default.ini`` values that decide what it publishes."""

    max_charge_a: float = 50.0
    """MAX_BATTERY_CHARGE_CURRENT."""
    max_discharge_a: float = 60.0
    min_cell_v: float = 2.90
    max_cell_v: float = 3.45
    """MAX_CELL_VOLTAGE: the bulk/absorption target and where the cell-OVP controller acts."""
    float_cell_v: float = 3.375
    soc_reset_cell_v: float = 3.65
    soc_reset_after_days: float | None = None
    """SOC_RESET_AFTER_DAYS (empty = off)."""
    block_on_disconnect: bool = False
    disconnect_timeout_min: float = 20.0
    safe_cells: tuple[float, float] = (3.25, 3.35)
    """BLOCK_ON_DISCONNECT_VOLTAGE_MIN/MAX: outside them a lost driver exits after 60 s."""
    recalc_every_s: float = 60.0
    """CVL_RECALCULATION_EVERY: CCL/DCL change at most this often ..."""
    recalc_change: float = 0.33
    """... unless they move by this fraction, or go to 0."""
    recovery: float = 0.015
    """CHARGE_CURRENT_RECOVERY_THRESHOLD_PERCENT: from 0 only back above this x max."""
    cvcm: bool = True
    """CVCM_ENABLE: bulk/float switching; False publishes "Keep always max voltage"."""
    float_after_s: float = 900.0
    float_cell_diff: float = 0.010
    float_deviation: float = 0.003
    bulk_soc: float = 80.0
    bulk_cell_diff: float = 0.080
    charge_cv: Curve = ((3.375, 3.400, 3.425, 3.450, 3.500), (1.0, 0.25, 0.05, 0.005, 0.0))
    discharge_cv: Curve = ((2.800, 2.900, 3.000, 3.100, 3.190), (0.0, 0.005, 0.05, 0.25, 1.0))
    charge_t: Curve = ((0, 2, 5, 10, 40, 45, 50, 55), (0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.0))
    discharge_t: Curve = (
        (-10, 0, 5, 10, 40, 45, 50, 55),
        (0.0, 0.25, 0.5, 1.0, 1.0, 0.5, 0.25, 0.0),
    )
    mosfet_t: Curve = ((70, 80, 90), (1.0, 0.25, 0.0))
    poll_s: float = 1.0
    """POLL_INTERVAL: 1 s for most BMSes, 2 s Sinowealth, 5 s Pace and Seplos, 10 s HLPdata."""
    cell_format: int = 1
    """BATTERY_CELL_DATA_FORMAT: 0 no cells, 1 ``/Voltages/CellN``, 2 ``/Cell/N/Volts``."""
    valid: bool = True
    """False: ``validate_config_values`` failed: ``/State 10``, ``/ErrorCode 119`` for good."""
    voltage_drop: float = 0.0
    soc_low_warning: float = 20.0
    history: bool = True


@dataclass(frozen=True)
class BoardSettings:
    """The BMS hardware's own protections (not serialbattery's): where its FETs open."""

    cell_over_v: float = 3.65
    cell_over_release_v: float = 3.40
    cell_under_v: float = 2.50
    cell_under_release_v: float = 2.90
    charge_cold_c: float = -15.0
    """The hardware's low-temperature charge cut-off: usually well below serialbattery's soft
    0 °C, so at -12 °C its FETs are still closed while the driver publishes standby."""
    hot_c: float = 65.0
    """Over-temperature: both FETs open (JK/JBD OTP is typically 60-70 °C)."""
    current_resolution_a: float = 0.01
    """What the board reports the current in (JK, JBD: 10 mA; Daly: 100 mA)."""


LTO_BOARD = BoardSettings(
    cell_over_v=2.80, cell_over_release_v=2.55, cell_under_v=1.70, cell_under_release_v=1.95,
    charge_cold_c=-30.0,
)  # fmt: skip
LTO_DRIVER = DriverConfig(
    max_cell_v=2.55, float_cell_v=2.45, min_cell_v=1.90,
    charge_cv=((2.45, 2.50, 2.55, 2.60), (1.0, 0.25, 0.05, 0.0)),
    discharge_cv=((1.80, 1.90, 2.00), (0.0, 0.05, 1.0)),
    charge_t=((-30, -20, 45, 55), (0.0, 1.0, 1.0, 0.0)),
    discharge_t=((-40, -30, 50, 60), (0.0, 1.0, 1.0, 0.0)),
)  # fmt: skip


@dataclass(frozen=True)
class Reading:
    """What the board answers to one poll (the driver's ``refresh_data``)."""

    cells: tuple[float, ...]
    current: float
    soc: float
    capacity_ah: float
    temperatures: tuple[float | None, float | None, float | None, float | None]
    mosfet_c: float | None
    charge_fet: bool
    discharge_fet: bool
    balancing: bool = False


@dataclass
class Board:
    """The BMS hardware of one pack: FETs, cut-offs and the link to its driver."""

    settings: BoardSettings = field(default_factory=BoardSettings)
    link_up: bool = True
    """False: the BMS does not answer (a cable pulled, a hung BMS)."""
    charge_off: bool = False
    """Forced open (a fault, a user's switch): the driver publishes "BMS" as the reason."""
    discharge_off: bool = False
    disconnects: int = 0
    """How often a FET opened at a cut-off."""
    dead_sensors: frozenset[int] = frozenset()
    """Temperature sensors (1..4) that read nothing: the driver averages the others."""

    def update(self, pack: Pack) -> None:
        """Open or close the FETs at the hard cut-offs, with hysteresis (the pack's own)."""
        s = self.settings
        cells = pack.cell_voltages()
        hi, lo, t = max(cells), min(cells), pack.temperature_c
        charge_ok, discharge_ok = pack.charge_fet, pack.discharge_fet
        if hi >= s.cell_over_v or t <= s.charge_cold_c or t >= s.hot_c:
            charge_ok = False
        elif hi < s.cell_over_release_v and s.charge_cold_c + 2.0 < t < s.hot_c - 5.0:
            charge_ok = True
        if lo <= s.cell_under_v or t >= s.hot_c:
            discharge_ok = False
        elif lo > s.cell_under_release_v and t < s.hot_c - 5.0:
            discharge_ok = True
        charge_ok = charge_ok and not self.charge_off
        discharge_ok = discharge_ok and not self.discharge_off
        self.disconnects += (pack.charge_fet and not charge_ok) + (
            pack.discharge_fet and not discharge_ok
        )
        pack.charge_fet, pack.discharge_fet = charge_ok, discharge_ok

    def reading(self, pack: Pack) -> Reading | None:
        """One poll's answer; None while the link is down."""
        if not self.link_up:
            return None
        res = self.settings.current_resolution_a
        t = round(pack.temperature_c, 1)
        sensors = [t, round(t + 0.5, 1), None, None]
        for dead in self.dead_sensors:
            sensors[dead - 1] = None
        return Reading(
            cells=tuple(round(v, 3) for v in pack.cell_voltages()),
            current=round(round(pack.current_a / res) * res, 3),
            soc=round(100.0 * pack.mean_soc(), 1),
            capacity_ah=float(round(pack.capacity_ah, 1)),
            temperatures=(sensors[0], sensors[1], sensors[2], sensors[3]),
            mosfet_c=round(t + 3.0 + abs(pack.current_a) * 0.02, 1),
            charge_fet=pack.charge_fet,
            discharge_fet=pack.discharge_fet,
        )


class _Limits:
    """The driver's dict of candidate limits keyed by value, with the reasons joined for equal
    values (battery.py ``manage_charge_and_discharge_current``)."""

    def __init__(self, maximum: float, label: str) -> None:
        self.maximum = maximum
        self.by_value: dict[float, str] = {maximum: label}

    def add(self, value: float, label: str) -> None:
        if value == self.maximum:
            return  # "if self.max_battery_charge_current != tmp"
        known = self.by_value.get(value)
        if known is None:
            self.by_value[value] = label
        elif not known.startswith("Max Battery"):
            self.by_value[value] = f"{known}, {label}"

    def block(self) -> None:
        known = self.by_value.get(0)
        self.by_value[0] = "BMS" if known is None else f"{known}, BMS"

    def lowest(self) -> tuple[float, str]:
        value = min(self.by_value)
        return round(value, 3), self.by_value[value]


@dataclass
class _Hold:
    """One direction's published limit with its hold (the 60 s / 33 % rule) and release."""

    control: float | None = None
    last_set: float = -1e18
    limitation: str | None = None

    def step(self, ccl: float, label: str, now: float, cfg: DriverConfig, maximum: float) -> None:
        diff = abs(self.control - ccl) if self.control is not None else 0.0
        due = now - self.last_set >= cfg.recalc_every_s
        if (
            due
            or (self.control is not None and diff >= self.control * cfg.recalc_change)
            or (ccl == 0 and self.control != 0)
        ):
            self.last_set = now
            if ccl == 0:
                self.control, self.limitation = 0.0, label
            elif self.control == 0 and ccl < maximum * cfg.recovery:
                self.limitation = label + " *"  # held at 0 until 1.5 % of the maximum
            else:
                self.control, self.limitation = ccl, label


class Driver:
    """dbus-serialbattery's logic for one pack, from registration to exit."""

    def __init__(
        self,
        config: DriverConfig,
        *,
        cells: int,
        capacity_ah: float,
        product_name: str,
        serial: str,
        port: str,
        now: float,
        soc_reset_last_reached: float = 0.0,
        last_full_charge: float | None = None,
    ) -> None:
        self.cfg = config
        self.cell_count = cells
        self.capacity = capacity_ah
        self.product_name = product_name
        self.serial = serial
        self.port = port
        # battery.py Battery.__init__ and init_values: what setup_vedbus registers with
        self.state = 0
        self.error_code: int | None = None
        self.online: bool | None = None
        self.connection_info = "Initializing..."
        self.voltage: float | None = None
        self.current: float | None = None
        self.soc: float | None = None
        self.cells: tuple[float | None, ...] = (None,) * cells
        self.temps: tuple[float | None, ...] = (None, None, None, None)
        self.mosfet: float | None = None
        self.charge_fet: bool | None = None
        self.discharge_fet: bool | None = None
        self.balancing = False
        self.block_because_disconnect = False
        self.charge = _Hold()
        self.discharge = _Hold()
        self.control_voltage: float | None = None
        self.control_voltage_last_limit: float | None = None
        self.max_voltage_start: float | None = None
        self.allow_max_voltage = True
        self.transition_start: float | None = None
        self.initial_control_voltage = 0.0
        self.charge_mode: str | None = None
        self.soc_reset_requested = False
        self.soc_reset_last_reached = soc_reset_last_reached
        self.max_battery_voltage = round(config.max_cell_v * cells, 2)
        self.min_battery_voltage = round(config.min_cell_v * cells, 2)
        self.last_full_charge = last_full_charge
        self.errors = 0
        self.first_error = 0.0
        self.last_error = 0.0
        self.cell_voltages_good: bool | None = None
        self.exited = False
        self.exit_reason = ""
        self.current_history: deque[float] = deque(maxlen=300)
        self.time_to_go: int | None = None
        self.time_to_go_at = -1e18
        self._static: tuple[tuple[int, str], dict[str, Value]] | None = None
        if not config.valid:  # dbus-serialbattery.py main: validate_config_values() failed
            self.state, self.error_code = 10, 119

    # --- one poll (dbushelper.py publish_battery) ---------------------------------------------

    def poll(self, now: float, reading: Reading | None) -> None:
        if self.exited:
            return
        if reading is not None:
            self._refreshed(now, reading)
        else:
            self._no_answer(now)
        self._averages(now)

    def _refreshed(self, now: float, r: Reading) -> None:
        if self.errors > 0 and self.last_error < now - 60:
            self.errors = 0  # only after a minute without errors (publish_battery)
        self.online = True
        self.connection_info = "Connected"
        self.block_because_disconnect = False
        self.cell_voltages_good = None
        self.cells = r.cells
        self.voltage = round(sum(r.cells), 3)
        self.current = r.current
        self.soc = r.soc
        self.capacity = r.capacity_ah
        self.temps = r.temperatures
        self.mosfet = r.mosfet_c
        self.charge_fet, self.discharge_fet = r.charge_fet, r.discharge_fet
        self.balancing = r.balancing
        self._charge_voltage(now)
        self._currents(now)
        if self.state == 0:
            self.state = 9
        if self.state == 9 and not self.allow_charge and not self.allow_discharge:
            self.state = 14  # standby: both soft limits 0, whatever the FETs
        if self.state == 14 and (self.allow_charge or self.allow_discharge):
            self.state = 9

    def _no_answer(self, now: float) -> None:
        """The lost-link phase: after 10 s V, I and P go None (init_values), the rest keeps
        its last value; the driver exits after 60 s or after the disconnect timeout."""
        if self.errors == 0:
            self.first_error = now
        self.errors += 1
        self.last_error = now
        if self.errors <= 1:
            return
        since = self.last_error - self.first_error
        if since >= 10 and self.online:
            self.online = False
            lo, hi = self.cfg.safe_cells
            known = [v for v in self.cells if v is not None]
            self.cell_voltages_good = bool(known) and lo < min(known) and max(known) < hi
            self.voltage = self.current = None
            if self.cfg.block_on_disconnect:
                self.block_because_disconnect = True
        short = not self.cell_voltages_good
        limit = 60.0 if short else 60.0 * self.cfg.disconnect_timeout_min
        self.connection_info = f"Connection lost since {since:.0f} s, disconnect at {limit:.0f} s"
        if (since >= 60 and (self.cfg.block_on_disconnect or short)) or (
            since >= 60 * self.cfg.disconnect_timeout_min and not self.cfg.block_on_disconnect
        ):
            self._exit(f"no answer for {since:.0f} s")

    def _exit(self, why: str) -> None:
        self.exited, self.exit_reason = True, why

    # --- charge voltage (battery.py manage_charge_voltage, manage_charge_voltage_limit) --------

    def _charge_voltage(self, now: float) -> None:
        cfg = self.cfg
        if cfg.soc_reset_after_days is not None:
            self._soc_reset(now)
        if not cfg.cvcm:
            self.control_voltage = self.max_battery_voltage
            self.charge_mode = "Keep always max voltage"
            return
        known = [v for v in self.cells if v is not None]
        if not known:
            return
        vsum, diff = sum(known), max(known) - min(known)
        soc = self.soc if self.soc is not None else 0.0
        if self.max_voltage_start is None:
            if (
                self.allow_max_voltage
                and self.max_battery_voltage <= vsum
                and diff <= cfg.float_cell_diff
            ):
                self.max_voltage_start = now
            elif (
                cfg.bulk_soc > soc or diff >= cfg.bulk_cell_diff or self.soc_reset_requested
            ) and not self.allow_max_voltage:
                self.allow_max_voltage = True
        else:
            if diff > cfg.float_cell_diff + cfg.float_deviation:
                self.max_voltage_start = now
            if cfg.float_after_s < now - self.max_voltage_start:
                self.allow_max_voltage = False
                self.max_voltage_start = None
            if vsum < self.max_battery_voltage - 0.5:
                self.max_voltage_start = None
        if self.allow_max_voltage:
            self._bulk(now, known, vsum)
        else:
            self._float(now)
        self.charge_mode = (self.charge_mode or "") + " │ Linear Mode"

    def _bulk(self, now: float, cells: list[float], vsum: float) -> None:
        cfg = self.cfg
        allowed = cfg.soc_reset_cell_v if self.soc_reset_requested else cfg.max_cell_v
        target = self.max_battery_voltage
        if max(cells) > allowed:  # the P-controller (CVL_CONTROLLER_MODE 1): a penalty sum
            penalty = sum(v - allowed for v in cells if v > allowed)
            target = min(max(vsum - penalty, self.min_battery_voltage), self.max_battery_voltage)
        mode = "Bulk" if self.max_voltage_start is None else "Absorption"
        if target >= self.max_battery_voltage and self.control_voltage_last_limit is None:
            self.control_voltage = round(self.max_battery_voltage, 6)
        elif self.control_voltage is None or target <= self.control_voltage:
            # The driver never clears the limit time once set (its ``... is None`` after the
            # ramp is a comparison, not an assignment), so every later poll at the maximum
            # lands here too: "(Cell OVP)" stays in its charge mode until the driver restarts.
            self.control_voltage_last_limit = now
            self.control_voltage = round(target, 6)
            mode += " (Cell OVP)"
        else:
            if self.control_voltage_last_limit is None:
                self.control_voltage_last_limit = now
            since = now - self.control_voltage_last_limit
            if since < 60:
                mode += " (Cell OVP)"
                recovered = self.control_voltage
            else:
                recovered = min(
                    self.control_voltage + 0.001 * (since - 60), self.max_battery_voltage
                )
                mode += " (Cell OVP*)"
            self.control_voltage = round(recovered, 6)
        if self.soc_reset_requested:
            mode += " & SoC Reset"
        if self.balancing:
            mode += " + Balancing"
        self.charge_mode = mode

    def _float(self, now: float) -> None:
        float_v = round(self.cfg.float_cell_v * self.cell_count, 2)
        mode = "Float"
        if self.soc_reset_requested:
            self.soc_reset_requested = False
            self.soc_reset_last_reached = now
        if self.control_voltage:
            if self.charge_mode is not None and not self.charge_mode.startswith("Float"):
                self.transition_start = now
                self.initial_control_voltage = self.control_voltage
                mode = "Float Transition"
                if self.cfg.history:
                    self.last_full_charge = now
            elif self.charge_mode is not None and self.charge_mode.startswith("Float Transition"):
                start = self.transition_start if self.transition_start is not None else now
                drop = min(0.001 * (now - start), self.initial_control_voltage - float_v)
                self.control_voltage = self.initial_control_voltage - drop
                if self.control_voltage <= float_v:
                    self.control_voltage = float_v
                else:
                    mode = "Float Transition"
        else:
            self.control_voltage = float_v
        self.charge_mode = mode

    def _soc_reset(self, now: float) -> None:
        """battery.py ``soc_reset_voltage_management``: 3.65 V a cell every N days."""
        cfg = self.cfg
        assert cfg.soc_reset_after_days is not None
        last = self.soc_reset_last_reached
        days = 0.0 if last == 0 else (now - last) / 86400.0
        if (
            not self.soc_reset_requested
            and self.allow_max_voltage
            and (last == 0 or cfg.soc_reset_after_days < days)
        ):
            self.soc_reset_requested = True
        n = self.cell_count
        reset = round(cfg.soc_reset_cell_v * n, 2)
        self.max_battery_voltage = (
            reset if self.soc_reset_requested else round(cfg.max_cell_v * n, 2)
        )

    # --- currents (battery.py manage_charge_and_discharge_current) ----------------------------

    def _temperatures(self) -> list[float]:
        return [t for t in self.temps if t is not None]

    def _currents(self, now: float) -> None:
        cfg = self.cfg
        known = [v for v in self.cells if v is not None]
        temps = self._temperatures()
        for kind in ("charge", "discharge"):
            charge = kind == "charge"
            maximum = cfg.max_charge_a if charge else cfg.max_discharge_a
            label = "Max Battery Charge Current" if charge else "Max Battery Discharge Current"
            limits = _Limits(maximum, label)
            curve = cfg.charge_cv if charge else cfg.discharge_cv
            if known:
                cell = max(known) if charge else min(known)
                limits.add(maximum * interpolate(cell, *curve), "Cell Voltage")
            if temps:
                t_curve = cfg.charge_t if charge else cfg.discharge_t
                factor = min(interpolate(t, *t_curve) for t in (max(temps), min(temps)))
                limits.add(maximum * factor, "Temp")
            if self.mosfet is not None:
                limits.add(maximum * interpolate(self.mosfet, *cfg.mosfet_t), "MOSFET")
            fet = self.charge_fet if charge else self.discharge_fet
            if fet is False or self.block_because_disconnect:
                limits.block()
            value, why = limits.lowest()
            (self.charge if charge else self.discharge).step(value, why, now, cfg, maximum)

    @property
    def allow_charge(self) -> bool:
        """``get_allow_to_charge``: the FET on *and* the driver's own CCL above 0."""
        return (
            bool(self.charge_fet)
            and bool(self.charge.control)
            and not (self.block_because_disconnect)
        )

    @property
    def allow_discharge(self) -> bool:
        return (
            bool(self.discharge_fet)
            and bool(self.discharge.control)
            and not (self.block_because_disconnect)
        )

    # --- what publish_dbus sets ---------------------------------------------------------------

    def _averages(self, now: float) -> None:
        """``/CurrentAvg`` over 300 polls and ``/TimeToGo`` every 60 s (publish_dbus)."""
        if self.current is None:
            self.current_history.clear()
            return
        self.current_history.append(self.current)
        avg = sum(self.current_history) / len(self.current_history)
        if now - self.time_to_go_at < 60.0 or self.soc is None or not self.capacity:
            return
        self.time_to_go_at = now
        per_s = abs(avg / (self.capacity / 100.0)) / 3600.0
        target = self.cfg.soc_low_warning if avg < 0 else 100.0
        seconds = abs(self.soc - target) / per_s if per_s else None
        self.time_to_go = int(seconds) if seconds is not None and abs(avg) > 0.1 else None

    def values(self, now: float) -> dict[str, Value]:
        """Every dynamic path's value now (the static ones are :meth:`static_values`)."""
        cfg = self.cfg
        known = [v for v in self.cells if v is not None]
        lo = min(known) if known else None
        hi = max(known) if known else None
        temps = {i + 1: t for i, t in enumerate(self.temps) if t is not None}
        charge_ok, discharge_ok = self.allow_charge, self.allow_discharge
        power = (
            round(self.voltage * self.current, 2)
            if self.voltage is not None and self.current is not None
            else None
        )
        remain = self.capacity * self.soc / 100.0 if self.soc is not None else None
        reset_quiet = self.soc_reset_requested or now - self.soc_reset_last_reached < 1800
        values: dict[str, Value] = {
            "/State": self.state,
            "/ErrorCode": self.error_code,
            "/ConnectionInformation": self.connection_info,
            "/System/NrOfCellsPerBattery": self.cell_count,
            "/Soc": None if self.soc is None else round(self.soc, 2),
            "/Soh": 100.0 if self.online is not None else None,
            "/Dc/0/Voltage": None if self.voltage is None else round(self.voltage, 2),
            "/Dc/0/Current": None if self.current is None else round(self.current, 2),
            "/Dc/0/Power": power,
            "/Dc/0/Temperature": (round(sum(temps.values()) / len(temps), 1) if temps else None),
            "/Capacity": None if remain is None else round(remain, 3),
            "/InstalledCapacity": self.capacity,
            "/ConsumedAmphours": None if remain is None else -abs(self.capacity - remain),
            "/History/TimeSinceLastFullCharge": (
                int(now - self.last_full_charge)
                if cfg.history and self.last_full_charge is not None
                else None
            ),
            "/History/ChargeCycles": 12 if cfg.history else None,
            "/Io/AllowToCharge": int(charge_ok),
            "/Io/AllowToDischarge": int(discharge_ok),
            "/Io/AllowToBalance": 1 if self.online is not None else None,
            "/System/NrOfModulesBlockingCharge": 0 if charge_ok else 1,
            "/System/NrOfModulesBlockingDischarge": 0 if discharge_ok else 1,
            "/System/NrOfModulesOnline": 1 if self.online else 0,
            "/System/NrOfModulesOffline": 0 if self.online else 1,
            "/System/MinCellTemperature": min(temps.values()) if temps else None,
            "/System/MinTemperatureCellId": (
                f"Temp {min((t, i) for i, t in temps.items())[1]}" if temps else None
            ),
            "/System/MaxCellTemperature": max(temps.values()) if temps else None,
            "/System/MaxTemperatureCellId": (
                f"Temp {max((t, i) for i, t in temps.items())[1]}" if temps else None
            ),
            "/System/MOSTemperature": self.mosfet,
            "/System/Temperature1": self.temps[0],
            "/System/Temperature2": self.temps[1],
            "/System/Temperature3": self.temps[2],
            "/System/Temperature4": self.temps[3],
            "/Info/BatteryLowVoltage": self.min_battery_voltage,
            "/Info/MaxChargeVoltage": (
                None
                if self.control_voltage is None
                else round(self.control_voltage + cfg.voltage_drop, 2)
            ),
            "/Info/MaxChargeCellVoltage": round(self.max_battery_voltage / self.cell_count, 3),
            "/Info/MaxChargeCurrent": self.charge.control,
            "/Info/MaxDischargeCurrent": self.discharge.control,
            "/Info/ChargeMode": self.charge_mode,
            "/Info/ChargeLimitation": self.charge.limitation,
            "/Info/DischargeLimitation": self.discharge.limitation,
            "/System/MinVoltageCellId": None if lo is None else f"C{self.cells.index(lo) + 1}",
            "/System/MaxVoltageCellId": None if hi is None else f"C{self.cells.index(hi) + 1}",
            "/System/MinCellVoltage": lo,
            "/System/MaxCellVoltage": hi,
            "/Balancing": int(self.balancing) if self.online is not None else None,
            "/CurrentAvg": (
                round(sum(self.current_history) / len(self.current_history), 2)
                if self.current_history
                else None
            ),
            "/TimeToGo": self.time_to_go,
        }
        alarms = self._alarms(lo, hi, reset_quiet)
        for name in ALARMS:
            values[f"/Alarms/{name}"] = alarms.get(name, 0) if self.online is not None else None
        if cfg.cell_format:
            path = "/Cell/{}/Volts" if cfg.cell_format & 2 else "/Voltages/Cell{}"
            base = "/Cell" if cfg.cell_format & 2 else "/Voltages"
            for i, v in enumerate(self.cells, start=1):
                values[path.format(i)] = v
                if cfg.cell_format & 1:
                    values[f"/Balances/Cell{i}"] = 0 if self.online is not None else None
            values[f"{base}/Sum"] = round(sum(known), 2) if self.online is not None else None
            values[f"{base}/Diff"] = (
                round(hi - lo, 3) if lo is not None and hi is not None else None
            )
        return values

    def _alarms(self, lo: float | None, hi: float | None, reset_quiet: bool) -> dict[str, int]:
        """The BMS's protection flags as serialbattery publishes them; the high-voltage ones
        are forced to 0 while a SoC reset is pending and for 30 min after (publish_dbus)."""
        alarms: dict[str, int] = {}
        if hi is not None and not reset_quiet:
            level = 2 if hi >= 3.65 else 1 if hi >= 3.60 else 0
            alarms["HighCellVoltage"] = alarms["HighVoltage"] = level
        if lo is not None:
            alarms["LowCellVoltage"] = 2 if lo <= 2.80 else 1 if lo <= 2.90 else 0
        temps = self._temperatures()
        if temps:
            alarms["LowChargeTemperature"] = 1 if min(temps) <= 0.0 else 0
            alarms["HighTemperature"] = 1 if max(temps) >= 55.0 else 0
        alarms["BmsCable"] = 2 if self.block_because_disconnect else 1 if not self.online else 0
        if self.online is None:
            alarms["BmsCable"] = 0
        return alarms

    def static_values(self, device_instance: int, custom_name: str = "") -> dict[str, Value]:
        """The identity paths setup_vedbus adds once (``/Serial`` is the unique identifier)."""
        key = (device_instance, custom_name)
        if self._static is not None and self._static[0] == key:
            return self._static[1]
        values: dict[str, Value] = {
            "/Mgmt/ProcessName": "/opt/victronenergy/dbus-serialbattery/dbus-serialbattery.py",
            "/Mgmt/ProcessVersion": "Python 3.12.4",
            "/Mgmt/Connection": f"Serial /dev/{self.port}",
            "/DeviceInstance": device_instance,
            "/ProductId": PRODUCT_ID,
            "/ProductName": self.product_name,
            "/FirmwareVersion": "2.0.20250729",
            "/HardwareVersion": None,
            "/Connected": 1,
            "/CustomName": custom_name,
            "/Serial": self.serial,
            "/DeviceName": None,
            "/Settings/HasTemperature": 1,
            "/JsonData": None,
            "/Io/ForceChargingOff": None,
            "/Io/ForceDischargingOff": None,
            "/Io/TurnBalancingOff": None,
        }
        self._static = (key, values)
        return values


PRODUCTS: dict[str, tuple[str, str]] = {
    "Jkbms": ("SerialBattery(Jkbms)", "JK_B2A24S15P_{instance:04d}"),
    "LltJbd": ("JBD-SP16S020-L16S-200A-B-U", "JBD_SP16S020_{capacity:g}Ah"),
    "Seplos": ("SerialBattery(Seplos)", "Seplos_{capacity:g}Ah"),
}
"""(``/ProductName``, ``/Serial`` pattern) per BMS type. Most drivers name the product
"SerialBattery(<type>)"; the JBD/LLT driver publishes the BMS's own hardware name
(bms/lltjbd.py ``product_name``). JK's serial is the BMS's own; JBD's and Seplos's are
``<hardware>_<capacity>Ah`` (battery.py ``unique_identifier``): the same for identical packs."""


@dataclass
class SerialBatteryPack:
    """A pack, its BMS board and its serialbattery driver, on a clock the caller passes in.

    :meth:`step` runs the board's cut-offs and, when a poll is due, one poll of the driver;
    :meth:`values` is what its D-Bus service holds (None while no driver is registered).
    ``forced`` overrides paths (fault injection: a dead sensor publishes None).
    """

    pack: Pack
    board: Board = field(default_factory=Board)
    config: DriverConfig = field(default_factory=DriverConfig)
    port: str = "ttyUSB0"
    instance: int = 1
    bms: str = "Jkbms"
    serial: str | None = None
    custom_name: str = ""
    forced: dict[str, Any] = field(default_factory=dict)
    driver: Driver | None = None
    restart_at: float | None = None
    """After an exit: when daemontools' restart probes the BMS again (16 s + a poll)."""
    exits: int = 0
    _next_poll: float = 0.0

    def __post_init__(self) -> None:
        if self.driver is None:
            self.driver = self.new_driver(0.0)
            self._next_poll = 0.0  # registered one interval before the clock starts

    @property
    def name(self) -> str:
        return self.pack.name

    def new_driver(self, now: float) -> Driver:
        product, serial = PRODUCTS.get(self.bms, (f"SerialBattery({self.bms})", "{port}"))
        ident = self.serial or serial.format(
            instance=self.instance, capacity=round(self.pack.capacity_ah), port=self.port
        )
        self._next_poll = now + self.config.poll_s
        return Driver(
            self.config,
            cells=len(self.pack.cells),
            capacity_ah=float(round(self.pack.capacity_ah, 1)),
            product_name=product,
            serial=ident,
            port=self.port,
            now=now,
        )

    @property
    def on_bus(self) -> bool:
        return self.driver is not None

    def step(self, now: float) -> None:
        """Advance to ``now``: the board acts at once, the driver polls when it is due (one
        poll per step at most, as a slow loop would), exits, or is restarted."""
        self.board.update(self.pack)
        if self.driver is None:
            if self.restart_at is not None and now >= self.restart_at and self.board.link_up:
                self.driver, self.restart_at = self.new_driver(now), None
            return
        if now < self._next_poll:
            return
        self._next_poll = now + self.config.poll_s
        self.driver.poll(now, self.board.reading(self.pack))
        if self.driver.exited:
            self.driver, self.exits = None, self.exits + 1
            self.restart_at = now + 16.0 + self.config.poll_s

    def first_poll(self, now: float) -> None:
        """Poll at once (a caller that does not want to wait out the first interval)."""
        self._next_poll = now
        self.step(now)

    @property
    def service(self) -> str:
        """Its D-Bus service name: the port it is plugged into (dbushelper.py ``__init__``)."""
        return f"com.victronenergy.battery.{self.port}"

    def values(self, now: float) -> dict[str, Value] | None:
        """What its service holds now (GetItems), or None while no driver is registered."""
        if self.driver is None:
            return None
        values = {**self.driver.static_values(self.instance, self.custom_name)}
        values.update(self.driver.values(now))
        values.update(self.forced)
        return values

    def kill(self, now: float) -> None:
        """The driver's process ends at once (a crash); daemontools restarts it."""
        if self.driver is not None:
            self.driver, self.exits = None, self.exits + 1
            self.restart_at = now + 16.0 + self.config.poll_s

    def replug(self, port: str, now: float) -> None:
        """A USB re-plug that renames the port: the driver restarts under the new name."""
        self.kill(now)
        self.port = port

    def ccl(self) -> float:
        """The charge limit this pack's driver publishes (0 while it has none)."""
        return (self.driver.charge.control or 0.0) if self.driver else 0.0

    def dcl(self) -> float:
        return (self.driver.discharge.control or 0.0) if self.driver else 0.0
