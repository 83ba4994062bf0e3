"""Python values <-> D-Bus variants, exactly as velib_python wraps and unwraps them.

velib (ve_utils.py ``wrap_dbus_value``/``unwrap_dbus_value``) is the reference every Venus
consumer is written against:

* ``None`` (an invalid value) travels as an empty ``ai`` array; *any* empty array reads as None.
* ``bool`` is ``b`` (tested before ``int``, since bool is an int in Python), ``int`` is ``i`` or
  ``x`` when it does not fit 32 bits, ``float`` is ``d``, ``str`` is ``s``.
* a non-empty list is ``av``, an empty list ``au`` (velib keeps it distinct from invalid, although
  readers treat it as None all the same), a dict is ``a{sv}``.

GetText follows velib too: ``---`` for an invalid value, ``0x%X`` for ``/ProductId``, a per-path
formatter when one is given, ``str(value)`` otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from dbus_fast import Variant

INVALID_TEXT = "---"
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1

# Integer D-Bus types and the ranges that keep a value in its recorded type.
INTEGER_SIGNATURES = frozenset("ynqiuxt")

Value = Any
"""A BusItem value: None, bool, int, float, str, or a list/dict of those."""

TextFormatter = Callable[[Value], str]


def wrap(value: Value, signature: str | None = None) -> Variant:
    """Wrap a Python value in the variant velib would send.

    ``signature`` forces a basic type (``u``, ``q``, ``y`` ...), used where a recorded
    service must be replayed with its real types; None for an invalid value still wins.
    """
    if value is None:
        return Variant("ai", [])
    if signature is not None:
        if signature == "av" and isinstance(value, list | tuple):
            return Variant("av", [wrap(v) for v in value])
        if signature[0] == "a" and isinstance(value, list | tuple):
            return Variant(signature, list(value))
        if signature in INTEGER_SIGNATURES:
            return Variant(signature, int(value))
        if signature == "d":
            return Variant("d", float(value))
        if signature == "b":
            return Variant("b", bool(value))
        if signature == "s":
            return Variant("s", str(value))
    if isinstance(value, bool):
        return Variant("b", value)
    if isinstance(value, int):
        if _INT32[0] <= value <= _INT32[1]:
            return Variant("i", value)
        if _INT64[0] <= value <= _INT64[1]:
            return Variant("x", value)
        if 0 <= value <= _UINT64_MAX:
            return Variant("t", value)
        raise ValueError(f"integer {value} does not fit a D-Bus integer type")
    if isinstance(value, float):
        return Variant("d", value)
    if isinstance(value, str):
        return Variant("s", value)
    if isinstance(value, list | tuple):
        if not value:
            return Variant("au", [])
        return Variant("av", [wrap(v) for v in value])
    if isinstance(value, Mapping):
        return Variant("a{sv}", {str(k): wrap(v) for k, v in value.items()})
    raise TypeError(f"cannot put a {type(value).__name__} on the bus: {value!r}")


_SCALARS = frozenset("dinqutxsby")
"""Signatures whose Variant value is already the plain value."""


def unwrap(value: Any) -> Value:
    """Turn a received D-Bus value (Variant or already unpacked body) into a plain Python value."""
    if value.__class__ is Variant and value.signature in _SCALARS:
        return value.value  # the hot path: a number or a string is already plain
    if isinstance(value, Variant):
        signature = value.signature
        inner = value.value
        if signature[0] == "a" and not inner:
            return None
        if signature == "ay":
            return list(inner)
        return unwrap(inner)
    if isinstance(value, dict):
        if not value:
            return None
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        if not value:
            return None
        return [unwrap(v) for v in value]
    if isinstance(value, bytes):
        return list(value) if value else None
    return value


def text(path: str, value: Value, formatter: TextFormatter | None = None) -> str:
    """GetText of one leaf, as velib computes it."""
    if value is None:
        return INVALID_TEXT
    if formatter is not None:
        return formatter(value)
    if path == "/ProductId" and isinstance(value, int) and not isinstance(value, bool):
        return f"0x{value:X}"
    return str(value)


def unit_formatter(unit: str, decimals: int) -> TextFormatter:
    """A formatter such as ``52.41V`` / ``-75.3A`` / ``83.5%``; non-numbers fall back to str()."""

    def fmt(value: Value) -> str:
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return f"{value:.{decimals}f}{unit}"
        return str(value)

    return fmt


def same_value(a: Value, b: Value) -> bool:
    """True when publishing ``b`` over ``a`` would change nothing on the wire.

    Plain ``==`` is not enough: ``1 == 1.0 == True`` would hide a change of wire type.
    """
    return type(a) is type(b) and a == b
