"""Value encoding: velib's wrap/unwrap and GetText rules."""

from __future__ import annotations

import math

import pytest
from dbus_fast import Variant

from aggbatt.venus.wire import same_value, text, unit_formatter, unwrap, wrap


@pytest.mark.parametrize(
    ("value", "signature"),
    [
        (None, "ai"),
        (True, "b"),
        (False, "b"),
        (0, "i"),
        (2**31 - 1, "i"),
        (-(2**31), "i"),
        (2**31, "x"),
        (-(2**31) - 1, "x"),
        (2**63, "t"),
        (52.41, "d"),
        ("C3", "s"),
        ([], "au"),
        ([1, "a"], "av"),
        ({"a": 1}, "a{sv}"),
    ],
)
def test_wrap_uses_velib_types(value: object, signature: str) -> None:
    assert wrap(value).signature == signature


def test_wrap_invalid_is_empty_int_array() -> None:
    variant = wrap(None)
    assert (variant.signature, variant.value) == ("ai", [])


def test_wrap_forced_signature_keeps_recorded_type() -> None:
    assert wrap(41957, "q").signature == "q"
    assert wrap(1, "u").signature == "u"
    assert wrap(None, "u").signature == "ai"
    assert wrap([0, 0], "au").signature == "au"


def test_wrap_refuses_what_the_bus_cannot_carry() -> None:
    with pytest.raises(TypeError):
        wrap(object())
    with pytest.raises(ValueError):
        wrap(2**64)


@pytest.mark.parametrize("signature", ["ai", "au", "as", "ad", "av", "a{sv}", "ay"])
def test_any_empty_array_reads_as_none(signature: str) -> None:
    empty: object = {} if signature.startswith("a{") else []
    if signature == "ay":
        empty = b""
    assert unwrap(Variant(signature, empty)) is None


def test_unwrap_nested() -> None:
    nested = Variant("a{sv}", {"x": Variant("d", 1.5), "y": Variant("ai", [])})
    assert unwrap(nested) == {"x": 1.5, "y": None}
    assert unwrap(Variant("av", [Variant("i", 1), Variant("s", "a")])) == [1, "a"]
    assert unwrap(Variant("u", 7)) == 7


def test_text_rules() -> None:
    assert text("/TimeToGo", None) == "---"
    assert text("/ProductId", 0xB00B) == "0xB00B"
    assert text("/Dc/0/Voltage", 56.0) == "56.0"
    assert text("/Dc/0/Voltage", 52.414, unit_formatter("V", 2)) == "52.41V"
    assert text("/Dc/0/Current", -75.3, unit_formatter("A", 1)) == "-75.3A"
    assert text("/Soc", 83.51, unit_formatter("%", 1)) == "83.5%"
    assert unit_formatter("V", 2)("x") == "x"
    assert unit_formatter("V", 2)(math.nan) == "nan"


def test_same_value_sees_type_changes() -> None:
    assert same_value(1.0, 1.0)
    assert not same_value(1, 1.0)
    assert not same_value(True, 1)
    assert not same_value(None, 0)
    assert same_value(None, None)
