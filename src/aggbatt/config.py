"""The configuration: a strict pydantic model loaded from TOML, with errors a user can act on.

Every option is documented in place in the top-level ``config.toml`` (the default config). An
error names the key, the bad value and the fix; an unknown key is an error with a did-you-mean.
"""

from __future__ import annotations

import difflib
import itertools
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from aggbatt.files import read_bounded

PLAUSIBLE_CELL_V = (1.5, 4.5)
"""Per-cell voltages outside this range fit no lithium chemistry (LTO 1.5..2.9, LFP 2.5..3.65,
NMC 3.0..4.35): a value outside it is a typo, or a bank voltage where a cell voltage belongs."""

CellVoltage = Annotated[float, Field(ge=PLAUSIBLE_CELL_V[0], le=PLAUSIBLE_CELL_V[1])]
TEXT_MAX = 64
Text = Annotated[str, Field(max_length=TEXT_MAX, pattern=r"^[^\x00-\x1f\x7f]*$")]
"""A name: at most 64 characters, no NUL or other control characters (it ends up in every
GetItems reply; a NUL there breaks the reply for every client)."""
Factor = Annotated[float, Field(ge=0.0, le=1.0)]

Chemistry = Literal["LFP", "LTO", "NMC"]
CELL_WINDOWS: dict[str, tuple[float, float]] = {
    "LFP": (2.5, 3.65),
    "LTO": (1.5, 2.9),
    "NMC": (2.8, 4.25),
}
"""Per chemistry, the cell voltages a config may name (min_cell_voltage .. max_cell_voltage and
every charge voltage): outside them a value is a typo or meant for another chemistry."""
MEASURED_MARGIN_V = 0.5
"""A pack whose mean cell voltage is more than this outside its chemistry window does not have
the configured cell count (or is not of that chemistry): rule 5 of core/safety.py."""

CHARGED_MARGIN_V = 0.02
"""The default charged voltage of the own counter lies this far below the lowest month's."""
LFP_MONTHS = [3.43, 3.43, 3.42, 3.40, 3.40, 3.40, 3.40, 3.40, 3.40, 3.42, 3.43, 3.43]
"""Per-cell charge voltages, January to December (LFP). Each month can complete a balancing
with the default max_cell_voltage and cell_diff_goal (rule 7 of core/safety.py), and none is
above serialbattery's own bulk voltage (3.45 V a cell, docs/serialbattery.md)."""
SERIALBATTERY_PRODUCT_ID = 0xBA77


GOAL_MARGIN_V = 0.01
"""Per cell: the bank counts as at the balancing voltage within this margin of it (the
balancing scheduler's goal, core/balancing.py; rule 7 checks that it can be reached)."""


def balancing_reach(max_cell_voltage: float, cell_diff_goal: float) -> float:
    """The highest balancing voltage a cell can reach: the cut at ``max_cell_voltage`` stops
    the bank before its cells are within ``cell_diff_goal`` of anything higher (rule 7)."""
    return round(max_cell_voltage + GOAL_MARGIN_V - cell_diff_goal, 4)


class ConfigError(ValueError):
    """A config that cannot be used; the message names each bad key, its value and the fix."""


class _Section(BaseModel):
    """Strict: a quoted number or 0/1 for a boolean is a typo in TOML, not something to guess."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, strict=True, allow_inf_nan=False
    )


def _ascending(name: str, values: list[float]) -> list[float]:
    """Curve points in ascending order; two equal points make a step (the reference accepted
    them, e.g. BALANCING_VOLTAGE = MAX_CELL_VOLTAGE, and the interpolation never divides by
    their zero distance)."""
    if any(b < a for a, b in itertools.pairwise(values)):
        raise ValueError(f"{name} must be in ascending order, got {values}")
    return values


class BatteriesConfig(_Section):
    expected: int = Field(0, ge=0, le=64, json_schema_extra={"fix": "the number of packs, 0 = any"})
    cells_per_battery: int = Field(
        16, ge=1, le=64, json_schema_extra={"fix": "cells in series in one pack, e.g. 16 or 24"}
    )
    service_class: str = Field("battery", pattern=r"^[a-z0-9_]+$")
    product_ids: list[Annotated[int, Field(ge=0, le=0xFFFF)]] = [SERIALBATTERY_PRODUCT_ID]
    product_names: list[Text] = ["SerialBattery"]
    include: list[int | Text] = []
    exclude: list[int | Text] = []
    name_path: str = Field("/Serial", pattern=r"^/[A-Za-z0-9_/]+$")
    stale_after: float = Field(60.0, ge=5.0, le=3600.0)
    frozen_after: float = Field(
        60.0, ge=5.0, le=3600.0,
        json_schema_extra={"fix": "seconds; cells and current unchanged while current flows"},
    )  # fmt: skip
    block_policy: Literal["any", "all"] = "any"
    chemistry: Chemistry = "LFP"
    lost_pack_charge_after: float | None = Field(
        None, ge=60.0, le=86400.0,
        json_schema_extra={"fix": "seconds (at least 60), or leave it unset: charging stops"},
    )  # fmt: skip


class CurrentConfig(_Section):
    source: Literal["bms", "victron", "smartshunt"] = "bms"
    vebus: bool = True
    solar_chargers: bool = True
    expected_solar_chargers: int = Field(0, ge=0, le=64)
    smartshunts: bool | list[int | Text] = False
    smartshunt_product: Text = "SmartShunt"
    smartshunt_name_path: str = Field("/CustomName", pattern=r"^/[A-Za-z0-9_/]+$")
    invert_smartshunts: bool = False
    ignore_smartshunt_absence: bool = False


class SocConfig(_Section):
    own: bool = False
    efficiency: float = Field(0.98, ge=0.5, le=1.0)
    save_precision: float = Field(0.0025, ge=0.0001, le=0.1)
    sync: Literal["monitor", "reference"] = "monitor"
    full_cell_voltage: CellVoltage | None = None
    tail_current: float = Field(
        0.04, ge=0.005, le=0.2, json_schema_extra={"fix": "a fraction of the capacity, e.g. 0.04"}
    )
    charged_time: float = Field(
        180.0, ge=0.0, le=3600.0, json_schema_extra={"fix": "seconds, e.g. 180"}
    )
    sync_cell_diff: float = Field(0.1, ge=0.0, le=1.0)
    current_deadband: float = Field(0.0, ge=0.0, le=5.0)
    current_offset: float = Field(0.0, ge=-5.0, le=5.0)
    empty_cell_voltage: CellVoltage | None = None
    zero_reset: bool = False


class OwnControlConfig(_Section):
    charge_voltage_per_month: list[CellVoltage] = Field(
        default_factory=lambda: list(LFP_MONTHS),
        json_schema_extra={"fix": "give 12 per-cell voltages, January to December"},
    )
    balancing: bool = True
    balancing_voltage: CellVoltage = 3.43
    balancing_repetition_days: float = Field(10.0, ge=1.0, le=365.0)
    balancing_max_hours: float = Field(
        4.0, ge=0.25, le=48.0, json_schema_extra={"fix": "hours at the balancing voltage"}
    )
    cell_diff_goal: float = Field(0.025, gt=0.0, le=0.5)
    max_cell_voltage: CellVoltage = 3.45
    min_cell_voltage: CellVoltage = 2.90
    min_cell_hysteresis: float = Field(0.1, ge=0.0, le=1.0)
    max_charge_current: float | None = Field(
        None, ge=0.0, le=10000.0,
        json_schema_extra={"fix": "amperes for the bank, or leave it unset: the packs' rating"},
    )  # fmt: skip
    max_discharge_current: float | None = Field(
        None, ge=0.0, le=10000.0,
        json_schema_extra={"fix": "amperes for the bank, or leave it unset: the packs' rating"},
    )  # fmt: skip
    charge_curve_voltages: list[CellVoltage] = []
    charge_curve_factors: list[Factor] = [0.2, 1.0, 1.0, 0.1, 0.0]
    discharge_curve_voltages: list[CellVoltage] = []
    discharge_curve_factors: list[Factor] = [0.0, 0.05, 1.0]
    respect_bms_limits: bool = True

    @field_validator("charge_voltage_per_month")
    @classmethod
    def _twelve_months(cls, v: list[float]) -> list[float]:
        if len(v) != 12:
            raise ValueError(f"needs 12 values (January to December), got {len(v)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> OwnControlConfig:
        if not self.respect_bms_limits and None in (
            self.max_charge_current,
            self.max_discharge_current,
        ):
            raise ValueError(
                "respect_bms_limits = false needs max_charge_current and max_discharge_current: "
                "unset, they are the packs' own rating, which this switch ignores; fix: set both"
            )
        if self.min_cell_voltage >= self.max_cell_voltage:
            raise ValueError(
                f"min_cell_voltage ({self.min_cell_voltage}) must be below max_cell_voltage "
                f"({self.max_cell_voltage})"
            )
        self._reachable()
        for kind in ("charge", "discharge"):
            volts = getattr(self, f"{kind}_curve_voltages")
            factors = getattr(self, f"{kind}_curve_factors")
            if volts and len(volts) != len(factors):
                raise ValueError(
                    f"{kind}_curve_voltages has {len(volts)} points but {kind}_curve_factors "
                    f"has {len(factors)}; give both lists the same length"
                )
            if not volts and len(factors) != len(self._derived(kind)):
                raise ValueError(
                    f"{kind}_curve_voltages is empty, so it is derived with "
                    f"{len(self._derived(kind))} points; {kind}_curve_factors has {len(factors)}:"
                    f" give {kind}_curve_voltages explicitly"
                )
            try:
                _ascending(f"{kind}_curve_voltages", volts or self._derived(kind))
            except ValueError as exc:
                derived = "" if volts else " (derived from min/balancing/max cell voltage)"
                raise ValueError(f"{exc}{derived}; give the curve explicitly") from None
        return self

    def _reachable(self) -> None:
        """Rule 7 of core/safety.py: no charge voltage above the max, a balancing that ends."""
        named = {
            "control.own.balancing_voltage": self.balancing_voltage,
            **{
                f"control.own.charge_voltage_per_month[{i}]": v
                for i, v in enumerate(self.charge_voltage_per_month)
            },
        }
        for key, value in named.items():
            if value > self.max_cell_voltage:
                raise ValueError(
                    f"{key} = {value} is above control.own.max_cell_voltage "
                    f"({self.max_cell_voltage}): the cut would hold the bank below it; fix: lower "
                    f"it to at most {self.max_cell_voltage}"
                )
        reach = balancing_reach(self.max_cell_voltage, self.cell_diff_goal)
        months = self.charge_voltage_per_month
        target = max(self.balancing_voltage, *months)
        if target > reach:
            which = (
                "control.own.balancing_voltage"
                if self.balancing_voltage >= max(months)
                else f"control.own.charge_voltage_per_month[{months.index(max(months))}]"
            )
            raise ValueError(
                f"{which} = {target}: a balancing at {target} V can never complete, because "
                f"the cut at max_cell_voltage ({self.max_cell_voltage}) stops the bank before "
                f"its cells are within cell_diff_goal ({self.cell_diff_goal}) of it; fix: lower "
                f"it to at most {reach}, or raise control.own.max_cell_voltage"
            )

    def _derived(self, kind: str) -> list[float]:
        lo, bal, hi = self.min_cell_voltage, self.balancing_voltage, self.max_cell_voltage
        if kind == "charge":
            return [round(v, 4) for v in (lo, lo + 0.05, bal - 0.1, bal, hi)]
        return [round(v, 4) for v in (lo, lo + 0.1, lo + 0.2)]

    @property
    def charge_curve(self) -> tuple[list[float], list[float]]:
        """(max-cell voltages, CCL factors), derived from the cell voltages when not given."""
        return (self.charge_curve_voltages or self._derived("charge"), self.charge_curve_factors)

    @property
    def discharge_curve(self) -> tuple[list[float], list[float]]:
        """(min-cell voltages, DCL factors), derived from min_cell_voltage when not given."""
        volts = self.discharge_curve_voltages or self._derived("discharge")
        return volts, self.discharge_curve_factors


class PassthroughConfig(_Section):
    cvl: Literal["min", "max_until_all_float"] = "min"
    current_policy: Literal["share", "min_times_n", "sum"] = "share"
    max_charge_current: float | None = Field(None, ge=0.0, le=10000.0)
    max_discharge_current: float | None = Field(None, ge=0.0, le=10000.0)


class ControlConfig(_Section):
    mode: Literal["own", "passthrough"] = "own"
    respect_bms_cvl: bool = True
    own: OwnControlConfig = OwnControlConfig()
    passthrough: PassthroughConfig = PassthroughConfig()


class TemperatureConfig(_Section):
    enabled: bool = True
    charge_min: float = Field(0.0, ge=-40.0, le=40.0)
    charge_temperatures: list[float] = [0.0, 2.0, 5.0, 10.0, 40.0, 45.0, 50.0, 55.0]
    charge_factors: list[Factor] = [0.0, 0.1, 0.3, 1.0, 1.0, 0.5, 0.2, 0.0]
    discharge_temperatures: list[float] = [-20.0, -10.0, 0.0, 5.0, 45.0, 50.0, 55.0, 60.0]
    discharge_factors: list[Factor] = [0.0, 0.2, 0.5, 1.0, 1.0, 0.5, 0.2, 0.0]

    @model_validator(mode="after")
    def _curves(self) -> TemperatureConfig:
        for kind in ("charge", "discharge"):
            temps = getattr(self, f"{kind}_temperatures")
            factors = getattr(self, f"{kind}_factors")
            if len(temps) != len(factors) or not temps:
                raise ValueError(
                    f"{kind}_temperatures ({len(temps)} points) and {kind}_factors "
                    f"({len(factors)}) must be non-empty and of equal length"
                )
            _ascending(f"{kind}_temperatures", temps)
        return self


class ServiceConfig(_Section):
    name: str = Field(
        "com.victronenergy.battery.aggbatt", pattern=r"^com\.victronenergy\.battery\.[A-Za-z0-9_]+$"
    )
    unique_id: str = Field("aggbatt", pattern=r"^[A-Za-z0-9]+$")
    device_instance: int = Field(100, ge=0, le=999)
    product_id: int = Field(0xBA44, ge=0, le=0xFFFF)
    product_name: Text = "aggbatt"
    custom_name: Text = ""
    publish_cell_voltages: bool = False


class DaemonConfig(_Section):
    update_interval: float = Field(1.0, ge=0.1, le=60.0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_period: float = Field(300.0, ge=0.0, le=86400.0)


LTO_TEMPERATURE: dict[str, Any] = {
    "charge_min": -20.0,
    "charge_temperatures": [-30.0, -20.0, -10.0, 45.0, 55.0, 60.0],
    "charge_factors": [0.0, 0.3, 1.0, 1.0, 0.3, 0.0],
    "discharge_temperatures": [-40.0, -30.0, -20.0, 50.0, 55.0, 65.0],
    "discharge_factors": [0.0, 0.3, 1.0, 1.0, 0.3, 0.0],
}
"""[temperature] defaults for LTO (it charges down to about -20 °C); LFP's are the model's."""


class Config(_Section):
    batteries: BatteriesConfig = BatteriesConfig()
    current: CurrentConfig = CurrentConfig()
    soc: SocConfig = SocConfig()
    control: ControlConfig = ControlConfig()
    temperature: TemperatureConfig = TemperatureConfig()
    service: ServiceConfig = ServiceConfig()
    daemon: DaemonConfig = DaemonConfig()

    @model_validator(mode="before")
    @classmethod
    def _chemistry_defaults(cls, data: Any) -> Any:
        """The temperature thresholds of the chemistry, where the user gave none."""
        if not isinstance(data, dict):
            return data
        batteries = data.get("batteries")
        if isinstance(batteries, dict) and batteries.get("chemistry") == "LTO":
            given = data.get("temperature")
            temperature = dict(given) if isinstance(given, dict) else {}
            for key, value in LTO_TEMPERATURE.items():
                temperature.setdefault(key, value)
            data = {**data, "temperature": temperature}
        return data

    @model_validator(mode="after")
    def _safe_voltages(self) -> Config:
        """Rule 7 of core/safety.py: voltages that fit the chemistry and a reachable balancing."""
        own, chem = self.control.own, self.batteries.chemistry
        lo, hi = CELL_WINDOWS[chem]
        named = {
            "control.own.max_cell_voltage": own.max_cell_voltage,
            "control.own.min_cell_voltage": own.min_cell_voltage,
            "control.own.balancing_voltage": own.balancing_voltage,
            **{
                f"control.own.charge_voltage_per_month[{i}]": v
                for i, v in enumerate(own.charge_voltage_per_month)
            },
        }
        for key, value in named.items():
            if not lo <= value <= hi:
                raise ValueError(
                    f"{key} = {value}: not a {chem} cell voltage ({lo}..{hi} V); fix: give a "
                    f"per-cell voltage for {chem}, or set batteries.chemistry"
                )
        return self

    @model_validator(mode="after")
    def _soc_thresholds(self) -> Config:
        if (
            self.soc.own
            and self.control.mode == "passthrough"
            and self.soc.full_cell_voltage is None
        ):
            raise ValueError(
                "soc.own is on without own charge control, so soc.full_cell_voltage must be set "
                "(the max cell voltage at which the counter is set to 100 %)"
            )
        if (
            self.soc.zero_reset
            and self.soc.empty_cell_voltage is None
            and (self.control.mode == "passthrough")
        ):
            raise ValueError("soc.zero_reset needs soc.empty_cell_voltage in passthrough mode")
        own = self.control.own
        top = max(own.charge_voltage_per_month + ([own.balancing_voltage] * own.balancing))
        full = self.soc.full_cell_voltage
        if self.soc.own and self.control.mode == "own" and full is not None and full > top:
            raise ValueError(
                f"soc.full_cell_voltage = {full}: never reached, the highest charge voltage is "
                f"{top} V per cell; fix: set it at or below {top}, or leave it unset"
            )
        return self

    @property
    def full_cell_voltage(self) -> float:
        """Per cell: the bank counts as charged at cells x this (the own counter's sync).

        Unset in own mode: the lowest monthly charge voltage less ``CHARGED_MARGIN_V`` (the
        monitor rule), or the balancing voltage (the reference's rule).
        """
        if self.soc.full_cell_voltage is not None:
            return self.soc.full_cell_voltage
        own = self.control.own
        if self.soc.sync == "reference":
            return own.balancing_voltage
        return round(min(own.charge_voltage_per_month) - CHARGED_MARGIN_V, 3)

    @property
    def empty_cell_voltage(self) -> float:
        """Min cell voltage at which the own counter may be reset to 0 %."""
        return self.soc.empty_cell_voltage or self.control.own.min_cell_voltage


# --- loading and error messages -------------------------------------------------------------

_GENERIC_FIX = {
    "extra_forbidden": "remove it or correct its spelling",
    "missing": "add it",
    "literal_error": "use one of the listed values",
    "bool_type": "write true or false (no quotes)",
    "bool_parsing": "write true or false (no quotes)",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "int_from_float": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a number",
    "list_type": "write a list in brackets, e.g. [1, 2]",
    "string_type": 'write text in quotes, e.g. "x"',
    "greater_than_equal": "raise it to the minimum",
    "greater_than": "raise it above the minimum",
    "less_than_equal": "lower it to the maximum",
    "less_than": "lower it below the maximum",
    "string_pattern_mismatch": "use the documented form (see config.toml), no control characters",
    "string_too_long": f"at most {TEXT_MAX} characters",
    "finite_number": "write a finite number (no nan or inf)",
}


_RANGE_ERRORS = {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}


def _model_at(loc: tuple[int | str, ...]) -> tuple[type[BaseModel] | None, str | None]:
    """The section model holding the last key of ``loc``, and that key."""
    model: type[BaseModel] = Config
    key: str | None = None
    for part in loc:
        if not isinstance(part, str):
            break
        field = model.model_fields.get(part)
        key = part
        if field is None:
            return model, part
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
            key = None
        else:
            return model, part
    return model, key


def _describe(error: dict[str, Any]) -> str:
    loc = tuple(error["loc"])
    key = ".".join(str(p) for p in loc) or "(top level)"
    kind = error["type"]
    message = error["msg"].removeprefix("Value error, ")
    model, last = _model_at(loc)
    fix = _GENERIC_FIX.get(kind, "see the comment of this key in config.toml")
    if kind == "extra_forbidden" and model is not None and last is not None:
        close = difflib.get_close_matches(last, list(model.model_fields), n=1, cutoff=0.6)
        if close:
            fix = f"did you mean {'.'.join([*(str(p) for p in loc[:-1]), close[0]])}?"
        else:
            fix = f"known keys here: {', '.join(model.model_fields)}"
        return f"{key}: unknown key; {fix}"
    if model is not None and last is not None and last in model.model_fields:
        extra = model.model_fields[last].json_schema_extra
        if isinstance(extra, dict) and isinstance(extra.get("fix"), str):
            fix = str(extra["fix"])
    value = error.get("input")
    is_field = model is not None and last is not None and last in model.model_fields
    if kind in ("value_error", "assertion_error"):
        if message.startswith(tuple(f"{name}." for name in Config.model_fields)):
            return str(message)  # a cross-field rule names its key itself
        return f"{key} = {value!r}: {message}" if is_field else f"{key}: {message}"
    if kind in _RANGE_ERRORS and last is not None and "voltage" in last:
        fix = "give a per-cell voltage between 1.5 and 4.5 V, not a bank voltage"
    shown = "" if kind == "missing" else f" = {value!r}"
    return f"{key}{shown}: {message}; fix: {fix}"


def validate_config(data: dict[str, Any], source: str = "config") -> Config:
    """Build the Config from parsed TOML; raise ConfigError naming every problem."""
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = [_describe(dict(e)) for e in exc.errors()]
        raise ConfigError(f"{source} is not valid:\n  " + "\n  ".join(lines)) from None


MAX_CONFIG_BYTES = 1024 * 1024


def load_config(path: Path) -> Config:
    """Read and validate a config file; every problem is a one-line ConfigError naming it."""
    try:
        raw = read_bounded(path, MAX_CONFIG_BYTES)
    except OSError as exc:
        raise ConfigError(f"cannot read the config {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"cannot read the config {path}: {exc}") from None
    try:
        text = raw.decode("utf-8-sig")  # a BOM, as some Windows editors write, is fine
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path} is not UTF-8 text (byte {exc.start}): save it as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return validate_config(data, str(path))
