"""``aggbatt import-ini``: a dbus-aggregate-batteries config as an aggbatt config.toml.

It reads every released format: the v4 ``config.ini`` (over ``config.default.ini``) and the
v2.x/v3.x ``settings.py``, whose assignments are parsed (:mod:`ast`), never executed: literal
values, earlier options by name and arithmetic on them; anything else is refused naming its
line. Python quoting inside values (``"'/ProductName'"``) is taken off.

Every option of the reference (v4.x names and the older v2/v3 ones) is either mapped, or
dropped with a comment saying why it is not needed, or refused with an error naming it and
its value. Where the meaning changed the TOML says so beside the key. The reference's
semantics are kept where aggbatt can express them (CCL/DCL min x N or sum in pass-through),
with a pointer to the better setting.
"""

from __future__ import annotations

import ast
import configparser
import itertools
import math
import operator
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggbatt.config import (
    CELL_WINDOWS,
    LFP_MONTHS,
    Config,
    ConfigError,
    OwnControlConfig,
    balancing_reach,
    validate_config,
)


class IniImportError(ValueError):
    """An option whose value aggbatt cannot express; the message names both."""


ALIASES = {
    # older names (v2.x constants, early v3) -> v4 names
    "NR_OF_CELLS_PER_BATTERIE": "NR_OF_CELLS_PER_BATTERY",
    "BATTERY_KEY_WORD": "BATTERY_SERVICE_NAME",
    "BATTERY_NAME_KEY_WORD": "BATTERY_PRODUCT_NAME",
    "BATTERY_NAME_PATH": "BATTERY_INSTANCE_NAME_PATH",
    "MULTI_KEY_WORD": "MULTI_KEYWORD",
    "MPPT_KEY_WORD": "MPPT_KEYWORD",
    "SMARTSHUNT_NAME_KEY_WORD": "SMARTSHUNT_NAME_KEYWORD",
    "INVERT_SMARTSHUNT": "INVERT_SMARTSHUNTS",
    "CELL_FULL_LIMITING_VOLTAGE": "CELL_CHARGE_LIMITING_VOLTAGE",
    "CELL_FULL_LIMITED_CURRENT": "CELL_CHARGE_LIMITED_CURRENT",
    "CELL_EMPTY_LIMITING_VOLTAGE": "CELL_DISCHARGE_LIMITING_VOLTAGE",
    "CELL_EMPTY_LIMITED_CURRENT": "CELL_DISCHARGE_LIMITED_CURRENT",
}

NOT_NEEDED = {
    "SEARCH_TRIALS": "aggbatt never exits when batteries are missing: it runs degraded",
    "READ_TRIALS": "aggbatt never exits on bad data: the battery is left out instead",
    "TIME_BEFORE_RESTART": "aggbatt does not restart itself on errors",
    "UPDATE_INTERVAL_FIND_DEVICES": "services are tracked live from D-Bus signals",
    "LOG_VOLTAGE_CHANGE": "every change of mode or limit reason is logged",
    "LOG_CURRENT_CHANGE": "every change of mode or limit reason is logged",
    "VOLTAGE_SET_PRECISION": "the CVL cut is the sum of the cells minus their over-voltage",
    "DYNAMIC_CVL_PRECISION": "the CVL cut is the sum of the cells minus their over-voltage",
    "DISCHARGE_VOLTAGE": "the discharge curve is [control.own] discharge_curve_voltages",
    "FLOAT_MODE": "float handling is the BMSes' in pass-through mode",
    "FLOAT_CELL_VOLTARE": "float handling is the BMSes' in pass-through mode",
}
FIXED = {
    "DCLOAD_SERVICE_NAME": "com.victronenergy.dcload",
    "BATTERY_PRODUCT_NAME_PATH": "/ProductName",
}
UNSUPPORTED_UNLESS_ZERO = ("OWN_SOC_FULL_VOLTAGE", "OWN_SOC_FULL_CELL_MEDIAN_VOLTAGE")


@dataclass
class Converted:
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    comments: dict[tuple[str, str], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    option: str = ""
    """The INI option being converted (its name goes with the keys it sets)."""
    origins: dict[str, str] = field(default_factory=dict)
    """TOML key ("section.key") -> the INI option it came from, for error messages."""

    def set(self, section: str, key: str, value: Any, comment: str = "") -> None:
        self.data.setdefault(section, {})[key] = value
        if self.option:
            self.origins[f"{section}.{key}"] = self.option
        if comment:
            self.comments[(section, key)] = comment


def read_ini(path: Path, defaults: Path | None = None) -> dict[str, str]:
    """The effective options: the defaults file, then the user's file over it (as the reference)."""
    parser = configparser.ConfigParser(inline_comment_prefixes=(";", "#"), interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    files = [p for p in (defaults, path) if p is not None]
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except OSError as exc:
            raise IniImportError(f"cannot read {f}: {exc.strerror}") from None
        if not text.lstrip().startswith("["):
            text = "[DEFAULT]\n" + text
        try:
            parser.read_string(text, str(f))
        except configparser.Error as exc:
            raise IniImportError(f"{f} is not a valid INI file: {exc}") from None
    options = dict(parser.defaults())
    for section in parser.sections():
        options.update(parser[section])
    return {ALIASES.get(k, k): _unquote(v) for k, v in options.items()}


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv}  # fmt: skip


def _python_value(node: ast.expr, known: dict[str, Any]) -> Any:
    """A value of settings.py without running it: literals, earlier names, arithmetic."""
    if isinstance(node, ast.Constant) and isinstance(node.value, bool | int | float | str):
        return node.value
    if isinstance(node, ast.List | ast.Tuple):
        return [_python_value(e, known) for e in node.elts]
    if isinstance(node, ast.Name) and node.id in known:
        return known[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        value = _python_value(node.operand, known)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        a, b = _python_value(node.left, known), _python_value(node.right, known)
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in (a, b)):
            return round(_BINARY[type(node.op)](a, b), 6)
    raise ValueError(ast.dump(node)[:60])


def _as_text(value: Any) -> str:
    """A settings.py value as the INI text the option handlers read."""
    if isinstance(value, list):
        return "[" + ", ".join(_as_text(v) for v in value) + "]"
    return _unquote(str(value))


def _unquote(text: str) -> str:
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1].strip()
    return text


def read_settings_py(path: Path) -> tuple[dict[str, str], list[str]]:
    """(options, notes) of a v2.x/v3.x settings.py; names that are no option are noted."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        raise IniImportError(f"cannot read {path} as the reference's settings.py: {exc}") from None
    known: dict[str, Any] = {}
    options: dict[str, str] = {}
    ignored: list[str] = []
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue  # imports, functions, comments: not settings
        target = node.targets[0]
        if not isinstance(target, ast.Name) or not target.id.isupper():
            continue
        try:
            value = _python_value(node.value, known)
        except ValueError:
            raise IniImportError(
                f"{path}:{node.lineno}: {target.id} is not a plain value (aggbatt never runs the "
                "file); write the value it has, e.g. 3.45 or [1, 0.5]"
            ) from None
        known[target.id] = value
        name = ALIASES.get(target.id, target.id)
        if name in _known_options():
            options[name] = _as_text(value)
        else:
            ignored.append(target.id)
    notes = [f"{', '.join(ignored)} in {path.name}: not options of the reference; ignored"]
    return options, notes if ignored else []


def _known_options() -> set[str]:
    return {*NOT_NEEDED, *FIXED, *UNSUPPORTED_UNLESS_ZERO, *_HANDLERS, "CHARGE_VOLTAGE"}


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().strip("\"'").lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise IniImportError(f"{name} = {raw!r}: expected True or False")


def _number(name: str, raw: str) -> float:
    try:
        value = float(raw.strip().strip("\"'"))
    except ValueError:
        raise IniImportError(f"{name} = {raw!r}: expected a number") from None
    if not math.isfinite(value):
        raise IniImportError(f"{name} = {raw!r}: expected a finite number")
    return value


def _int(name: str, raw: str) -> int:
    value = _number(name, raw)
    if value != int(value):
        raise IniImportError(f"{name} = {raw!r}: expected a whole number")
    return int(value)


def _numbers(name: str, raw: str) -> list[float]:
    parts = [p for p in re.split(r"[\s,\[\]]+", raw) if p]
    return [_number(name, p) for p in parts]


def _shunts(raw: str) -> bool | list[int | str]:
    text = raw.strip()
    if not text.startswith("["):
        return _bool("USE_SMARTSHUNTS", text)
    items = [p.strip().strip("\"'") for p in text.strip("[]").split(",") if p.strip()]
    out: list[int | str] = []
    for item in items:
        out.append(int(item) if item.isdigit() else item)
    return out


def convert(options: dict[str, str]) -> Converted:
    out = Converted()
    known = {*NOT_NEEDED, *FIXED, *UNSUPPORTED_UNLESS_ZERO, *_HANDLERS, "CHARGE_VOLTAGE"}
    for name in sorted(options):
        if name not in known:
            raise IniImportError(f"{name} is not an option of dbus-aggregate-batteries v2.4..v4.3")
    for name, why in NOT_NEEDED.items():
        if name in options:
            out.notes.append(f"{name} dropped: {why}")
    for name, expected in FIXED.items():
        if name in options and options[name].rstrip(".") != expected:
            raise IniImportError(f"{name} = {options[name]!r}: aggbatt always uses {expected}")
    for name in UNSUPPORTED_UNLESS_ZERO:
        if name in options and _number(name, options[name]) != 0:
            raise IniImportError(
                f"{name} = {options[name]}: aggbatt has no such full-charge signal; it resets "
                "the counter at soc.full_cell_voltage"
            )
    own = _bool("OWN_CHARGE_PARAMETERS", options.get("OWN_CHARGE_PARAMETERS", "False"))
    out.set("control", "mode", "own" if own else "passthrough")
    for name, handler in _HANDLERS.items():
        if name in options:
            out.option = name
            handler(out, name, options[name], options, own)
    out.option = ""
    if "CHARGE_VOLTAGE" in options and "CHARGE_VOLTAGE_LIST" not in options:
        v = _number("CHARGE_VOLTAGE", options["CHARGE_VOLTAGE"])
        out.set(
            "control.own",
            "charge_voltage_per_month",
            [v] * 12,
            "CHARGE_VOLTAGE (v2) for every month",
        )
    keep = "the reference's fixed instance, kept for VRM history; localsettings may grant another"
    out.set("service", "device_instance", 99, keep)
    off = (
        "the reference did not limit by temperature; true turns on aggbatt's cold and hot "
        "limits, with the thresholds of batteries.chemistry (LFP: no charge at 0 °C)"
    )
    out.set("temperature", "enabled", False, off)
    for kind in ("charge", "discharge"):
        _reference_curve(out, kind)
    _fit_safety_rules(out)
    return out


_CURVE_OPTIONS = {
    "charge": "CELL_CHARGE_LIMITING_VOLTAGE (v3: CELL_FULL_LIMITING_VOLTAGE)",
    "discharge": "CELL_DISCHARGE_LIMITING_VOLTAGE (v3: CELL_EMPTY_LIMITING_VOLTAGE)",
}


def reference_interpolation(xs: list[float], ys: list[float], x: float) -> float:
    """The reference's ``_interpolate`` (functions.py) for any order of ``xs``: the first
    value at or below the first point, the last at or above the last, else the first segment
    whose end is not below ``x``."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    for i in range(len(xs) - 1):
        if x <= xs[i + 1]:
            if xs[i + 1] == xs[i]:
                return ys[i + 1]
            return ys[i] + (ys[i + 1] - ys[i]) / (xs[i + 1] - xs[i]) * (x - xs[i])
    return ys[-1]


def ascending_equivalent(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """An ascending curve that gives what the reference's interpolation gave for these points:
    linear between the sorted points, a step (two equal points) where it jumped."""
    eps = 1e-7
    out_x: list[float] = []
    out_y: list[float] = []
    for b in sorted(set(xs)):
        left = round(reference_interpolation(xs, ys, b - eps), 4)
        right = round(reference_interpolation(xs, ys, b + eps), 4)
        for y in (left, right) if left != right else (left,):
            if not (out_y and out_x[-1] == b and out_y[-1] == y):
                out_x.append(round(b, 4))
                out_y.append(y)
    while len(out_y) > 2 and out_y[-1] == out_y[-2]:  # a flat end adds nothing
        out_x.pop()
        out_y.pop()
    return out_x, out_y


def _reference_curve(out: Converted, kind: str) -> None:
    """The reference accepted curve points in any order (its v3.0 LTO example:
    CELL_EMPTY_LIMITING_VOLTAGE = [1.9, 2.0, 1.9]); import what its interpolation did."""
    own = out.data.get("control.own", {})
    xs, ys = own.get(f"{kind}_curve_voltages"), own.get(f"{kind}_curve_factors")
    if not xs or not ys or len(xs) != len(ys):
        return
    if all(b >= a for a, b in itertools.pairwise(xs)):
        return
    new_x, new_y = ascending_equivalent([float(x) for x in xs], [float(y) for y in ys])
    made = (
        f"a step at {new_x[0]:g} V: {new_y[0]:g} at or below, {new_y[1]:g} above"
        if len(new_x) == 2 and new_x[0] == new_x[1]
        else f"the points {list(zip(new_x, new_y, strict=True))} (voltage, factor)"
    )
    why = (
        f"{_CURVE_OPTIONS[kind]} = {xs} is not in ascending order; the reference's "
        f"interpolation made it {made}: imported as that"
    )
    out.set("control.own", f"{kind}_curve_voltages", new_x, why)
    out.set("control.own", f"{kind}_curve_factors", new_y)
    out.notes.append(why)


def _fit_safety_rules(out: Converted) -> None:
    """Rule 7 of core/safety.py on the reference's voltages: the chemistry they imply, and
    charge voltages lowered to what the cut at MAX_CELL_VOLTAGE lets a balancing reach (the
    reference accepted higher ones, which its cut then made unreachable)."""
    own = out.data.setdefault("control.own", {})
    defaults = OwnControlConfig.model_fields
    vmax = float(own.get("max_cell_voltage", 3.45))
    goal = float(own.get("cell_diff_goal", defaults["cell_diff_goal"].default))
    chemistry = "LTO" if vmax <= CELL_WINDOWS["LTO"][1] else "LFP"
    if vmax > CELL_WINDOWS["LFP"][1]:
        chemistry = "NMC"
    out.set("batteries", "chemistry", chemistry, "from MAX_CELL_VOLTAGE")
    reach = balancing_reach(vmax, goal)
    months = own.get("charge_voltage_per_month", list(LFP_MONTHS))
    if "max_cell_voltage" not in own and chemistry == "LFP":
        own["max_cell_voltage"] = vmax
    lowered = [min(v, reach) for v in months]
    if lowered != months:
        why = (
            f"lowered to at most {reach} V: with the cut at max_cell_voltage {vmax} V and "
            f"cell_diff_goal {goal} V a higher charge voltage can never complete a balancing "
            f"(the reference's values: {months})"
        )
        out.set("control.own", "charge_voltage_per_month", lowered, why)
        out.notes.append(f"CHARGE_VOLTAGE_LIST {why}")
    balancing = float(own.get("balancing_voltage", 3.40))  # the reference's default
    if balancing > reach:
        why = f"lowered from {balancing} to {reach} V for the same reason"
        out.set("control.own", "balancing_voltage", reach, why)
        out.notes.append(f"BALANCING_VOLTAGE {why}")
    else:
        own["balancing_voltage"] = balancing


def _h_count(section: str, key: str, what: str) -> Any:
    def handle(out: Converted, name: str, raw: str, _o: dict[str, str], _own: bool) -> None:
        n = _int(name, raw)
        if n < 0:
            out.set(
                section,
                key,
                0 if key != "cells_per_battery" else 16,
                f"{name} was {n} (unset): set {what}",
            )
            out.notes.append(f"{name} is {n} (unset): set {section}.{key}")
        else:
            out.set(section, key, n)

    return handle


def _h_service(out: Converted, name: str, raw: str, _o: dict[str, str], _own: bool) -> None:
    cls = raw.strip().removeprefix("com.victronenergy.").split(".")[0]
    out.set("batteries", "service_class", cls)


def _h_simple(section: str, key: str, kind: str, comment: str = "") -> Any:
    def handle(out: Converted, name: str, raw: str, _o: dict[str, str], _own: bool) -> None:
        value: Any
        if kind == "bool":
            value = _bool(name, raw)
        elif kind == "float":
            value = _number(name, raw)
        elif kind == "int":
            value = _int(name, raw)
        elif kind == "list":
            value = _numbers(name, raw)
            if not value:
                return  # empty: derived, as in the reference
        else:
            value = raw.strip().strip("\"'")
        out.set(section, key, value, comment)

    return handle


def _h_current(out: Converted, name: str, raw: str, o: dict[str, str], _own: bool) -> None:
    if _bool(name, raw):
        source = (
            "smartshunt"
            if _bool("X", o.get("SMARTSHUNT_AS_BATTERY_CURRENT", "False"))
            else "victron"
        )
        out.set("current", "source", source)
    else:
        out.set("current", "source", "bms")


def _h_keyword(key: str) -> Any:
    def handle(out: Converted, name: str, raw: str, _o: dict[str, str], _own: bool) -> None:
        value = raw.strip().strip("\"'")
        out.set("current", key, bool(value), f"{name} = {value or '(empty)'}")
        standard = {
            "vebus": "com.victronenergy.vebus",
            "solar_chargers": "com.victronenergy.solarcharger",
        }[key]
        if value and value.rstrip(".") != standard:
            out.notes.append(
                f"{name} = {value}: aggbatt takes every {standard} service; another name is "
                f"not supported (current.{key} = true)"
            )

    return handle


def _h_shunt_absence(out: Converted, name: str, raw: str, _o: dict[str, str], _own: bool) -> None:
    """The reference: a missing shunt makes the cycle use the BMS current. That is what aggbatt
    always does, so the reference's true is aggbatt's false (its true would ignore the shunt)."""
    if _bool(name, raw):
        out.notes.append(
            f"{name} = True: aggbatt falls back to the BMS current by itself (with an alarm), "
            "as the reference did; current.ignore_smartshunt_absence stays false"
        )
    out.set(
        "current", "ignore_smartshunt_absence", False,
        f"{name} = {raw.strip()}: a missing shunt means the BMS current, as in the reference",
    )  # fmt: skip


def _h_logging(out: Converted, name: str, raw: str, _o: dict[str, str], _own: bool) -> None:
    level = raw.strip().upper()
    if level.isdigit():
        level = "INFO"  # v2: 0/1/2 chose the output, not the level
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise IniImportError(f"{name} = {raw!r}: expected ERROR, WARNING, INFO or DEBUG")
    out.set("daemon", "log_level", level)


def _h_own_soc(out: Converted, name: str, raw: str, _o: dict[str, str], own: bool) -> None:
    """The reference's sync rule, so an imported counter reaches 100 % when it did before."""
    out.set("soc", "own", _bool(name, raw))
    if not _bool(name, raw):
        return
    where = "cells x balancing voltage" if own else "cells x soc.full_cell_voltage"
    out.set(
        "soc", "sync", "reference",
        f"{name}: the reference's rule, 100 % at a bank voltage of {where}; \"monitor\" "
        "adds a tail current and a detection time, as Victron's battery monitors",
    )  # fmt: skip
    out.notes.append(
        f'{name} = True: soc.sync = "reference" keeps the reference\'s 100 % rule; consider '
        '"monitor" (charged voltage, tail current and detection time, as a battery monitor)'
    )


def _h_soc_threshold(key: str) -> Any:
    def handle(out: Converted, name: str, raw: str, _o: dict[str, str], own: bool) -> None:
        if own:  # with own charge parameters the reference used the balancing/min cell voltage
            return
        changed = key == "full_cell_voltage" and _bool("OWN_SOC", _o.get("OWN_SOC", "False"))
        comment = (
            f"{name}: the reference set 100 % when the highest cell reached it, so one "
            "runner cell did it; aggbatt takes the bank voltage, cells x this"
        ) if changed else ""  # fmt: skip
        out.set("soc", key, _number(name, raw), comment)
        if comment:
            out.notes.append(comment)

    return handle


def _h_can(out: Converted, name: str, raw: str, _o: dict[str, str], _own: bool) -> None:
    if _bool(name, raw):
        out.set(
            "control.passthrough",
            "current_policy",
            "sum",
            "CAN_batteries: the sum of the BMS limits, as the reference; 'share' never lets "
            "one pack exceed its own limit",
        )
        out.notes.append("CAN_batteries: not needed, a battery without cell paths takes part")


def _h_keep_max(out: Converted, name: str, raw: str, _o: dict[str, str], _own: bool) -> None:
    if _bool(name, raw):
        out.set(
            "control.passthrough",
            "cvl",
            "max_until_all_float",
            "KEEP_MAX_CVL as documented; the reference's code did the opposite (took the "
            "max only while a battery was in float)",
        )


_HANDLERS: dict[str, Any] = {
    "NR_OF_BATTERIES": _h_count("batteries", "expected", "the number of packs"),
    "NR_OF_CELLS_PER_BATTERY": _h_count("batteries", "cells_per_battery", "the cells per pack"),
    "NR_OF_MPPTS": _h_count("current", "expected_solar_chargers", "the number of MPPTs"),
    "BATTERY_SERVICE_NAME": _h_service,
    "BATTERY_PRODUCT_NAME": lambda out, n, raw, o, own: out.set(
        "batteries", "product_names", [raw.strip()]
    ),
    "BATTERY_INSTANCE_NAME_PATH": _h_simple("batteries", "name_path", "str"),
    "MULTI_KEYWORD": _h_keyword("vebus"),
    "MPPT_KEYWORD": _h_keyword("solar_chargers"),
    "SMARTSHUNT_NAME_KEYWORD": _h_simple("current", "smartshunt_product", "str"),
    "SMARTSHUNT_INSTANCE_NAME_PATH": _h_simple("current", "smartshunt_name_path", "str"),
    "UPDATE_INTERVAL_DATA": _h_simple(
        "daemon", "update_interval", "float", "a cell near a limit is handled at once anyway"
    ),
    "CURRENT_FROM_VICTRON": _h_current,
    "SMARTSHUNT_AS_BATTERY_CURRENT": lambda *a: None,  # read by _h_current
    "DC_LOADS": lambda out, n, raw, o, own: out.set("current", "smartshunts", _bool(n, raw)),
    "USE_SMARTSHUNTS": lambda out, n, raw, o, own: out.set("current", "smartshunts", _shunts(raw)),
    "INVERT_SMARTSHUNTS": _h_simple("current", "invert_smartshunts", "bool"),
    "IGNORE_SMARTSHUNT_ABSENCE": _h_shunt_absence,
    "CAN_batteries": _h_can,
    "OWN_SOC": _h_own_soc,
    "ZERO_SOC": _h_simple("soc", "zero_reset", "bool"),
    "MAX_CELL_VOLTAGE_SOC_FULL": _h_soc_threshold("full_cell_voltage"),
    "MIN_CELL_VOLTAGE_SOC_EMPTY": _h_soc_threshold("empty_cell_voltage"),
    "CHARGE_SAVE_PRECISION": _h_simple("soc", "save_precision", "float"),
    "BATTERY_EFFICIENCY": _h_simple("soc", "efficiency", "float"),
    "OWN_CHARGE_PARAMETERS": lambda *a: None,  # read first, sets control.mode
    "BALANCING_VOLTAGE": _h_simple("control.own", "balancing_voltage", "float"),
    "BALANCING_CVL_ENABLED": _h_simple("control.own", "balancing", "bool"),
    "BALANCING_REPETITION": _h_simple(
        "control.own",
        "balancing_repetition_days",
        "float",
        "elapsed days since the last balancing, exact across years",
    ),
    "CHARGE_VOLTAGE_LIST": _h_simple("control.own", "charge_voltage_per_month", "list"),
    "MAX_CELL_VOLTAGE": _h_simple("control.own", "max_cell_voltage", "float"),
    "MIN_CELL_VOLTAGE": _h_simple("control.own", "min_cell_voltage", "float"),
    "MIN_CELL_HYSTERESIS": _h_simple("control.own", "min_cell_hysteresis", "float"),
    "CELL_DIFF_MAX": _h_simple("control.own", "cell_diff_goal", "float"),
    "MAX_CHARGE_CURRENT": _h_simple(
        "control.own",
        "max_charge_current",
        "float",
        "now also capped by the packs' own BMS limits (share)",
    ),
    "MAX_DISCHARGE_CURRENT": _h_simple(
        "control.own",
        "max_discharge_current",
        "float",
        "now also capped by the packs' own BMS limits (share)",
    ),
    "CELL_CHARGE_LIMITING_VOLTAGE": _h_simple("control.own", "charge_curve_voltages", "list"),
    "CELL_CHARGE_LIMITED_CURRENT": _h_simple("control.own", "charge_curve_factors", "list"),
    "CELL_DISCHARGE_LIMITING_VOLTAGE": _h_simple("control.own", "discharge_curve_voltages", "list"),
    "CELL_DISCHARGE_LIMITED_CURRENT": _h_simple("control.own", "discharge_curve_factors", "list"),
    "KEEP_MAX_CVL": _h_keep_max,
    "SEND_CELL_VOLTAGES": lambda out, n, raw, o, own: out.set(
        "service", "publish_cell_voltages", _bool(n, raw)
    ),
    "LOGGING": _h_logging,
    "LOG_PERIOD": _h_simple("daemon", "log_period", "float"),
}


def _with_options(line: str, origins: dict[str, str]) -> str:
    """An error line with the INI options behind the keys it names."""
    text = line.strip()
    named = []
    for key, option in origins.items():
        section, _, field_name = key.rpartition(".")
        if key in text or (text.startswith(f"{section}:") and field_name in text):
            named.append(option)
    return f"{line} (INI option {', '.join(sorted(set(named)))})" if named else line


def _passthrough_policy(out: Converted) -> None:
    pt = out.data.setdefault("control.passthrough", {})
    if "current_policy" not in pt:
        out.set(
            "control.passthrough",
            "current_policy",
            "min_times_n",
            "the reference's lowest BMS limit x number of packs; 'share' divides each pack's "
            "limit by its capacity share instead (better for unequal packs)",
        )


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


def to_toml(out: Converted, source: str) -> str:
    lines = [
        f"# aggbatt config imported from {source} by aggbatt import-ini.",
        "# Options not listed keep aggbatt's defaults (see config.toml).",
    ]
    lines += [f"# {note}" for note in out.notes]
    order = [
        "batteries",
        "current",
        "soc",
        "control",
        "control.own",
        "control.passthrough",
        "temperature",
        "service",
        "daemon",
    ]
    for section in order:
        values = out.data.get(section)
        if not values:
            continue
        lines += ["", f"[{section}]"]
        for key, value in values.items():
            comment = out.comments.get((section, key))
            if comment:
                lines.append(f"# {comment}")
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def import_ini(
    path: Path, defaults: Path | None = None, notes: list[str] | None = None
) -> tuple[str, Config]:
    """(TOML text, the validated config) for a reference config.ini; raises IniImportError.

    ``notes`` receives every dropped option and changed meaning (the TOML has them too)."""
    if path.suffix == ".py":
        options, ignored = read_settings_py(path)
    else:
        options, ignored = read_ini(path, defaults), []
    out = convert(options)
    out.notes[:0] = ignored
    if notes is not None:
        notes.extend(out.notes)
    _passthrough_policy(out)
    nested: dict[str, Any] = {}
    for section, values in out.data.items():
        target = nested
        for part in section.split("."):
            target = target.setdefault(part, {})
        target.update(values)
    try:
        config = validate_config(nested, f"the config imported from {path}")
    except ConfigError as exc:  # name the INI option behind each key, the user knows those
        raise ConfigError(
            "\n".join(_with_options(line, out.origins) for line in str(exc).split("\n"))
        ) from None
    return to_toml(out, path.name), config
