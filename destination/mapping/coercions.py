"""Named coercions a mapping rule may apply to a source value.

Each takes a JSON value and returns the value to send, or raises NotCoercible with the reason;
the engine then leaves the field out and reports it in the diagnostics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from destination.jsonutil import js_json_text

Coercion = Callable[[Any], Any]

_INTEGER = re.compile(r"[+-]?\d+")
_DECIMAL = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_SAFE_INTEGER = 2**53


class NotCoercible(ValueError):
    """The value cannot take the form the field needs."""


def as_is(value: Any) -> Any:
    return value


def to_number(value: Any) -> int | float:
    """A JSON number, or a string holding a decimal number; integral values become ints ("7" -> 7).

    Beyond 2**53 a number is a float, as JavaScript's Number() makes it."""
    if isinstance(value, bool):
        raise NotCoercible("expected a number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return _integral_as_int(value)
    if isinstance(value, str):
        text = value.strip()
        if _INTEGER.fullmatch(text) and abs(whole := int(text)) < _SAFE_INTEGER:
            return whole
        if _DECIMAL.fullmatch(text):
            number = float(text)
            if math.isfinite(number):
                return _integral_as_int(number)
    raise NotCoercible(f"expected a number, got {_describe(value)}")


def json_text_if_object(value: Any) -> Any:
    """Objects and arrays become their compact JSON text, as JSON.stringify writes it."""
    if isinstance(value, dict | list):
        return js_json_text(value)
    return value


def _integral_as_int(number: float) -> int | float:
    if number.is_integer() and abs(number) < _SAFE_INTEGER:
        return int(number)
    return number


def _describe(value: Any) -> str:
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"the string {shown!r}"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


COERCIONS: dict[str, Coercion] = {
    "as_is": as_is,
    "to_number": to_number,
    "json_text_if_object": json_text_if_object,
}
