from __future__ import annotations

from typing import Any

import pytest

from destination.mapping.coercions import NotCoercible, json_text_if_object, to_number


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (7, 7),
        ("7", 7),
        (" 7 ", 7),
        (7.0, 7),
        ("7.0", 7),
        ("7.25", 7.25),
        ("-3", -3),
        ("1e3", 1000),
        (".5", 0.5),
        ("12345678901234567890", 1.2345678901234567e19),
    ],
)
def test_to_number(value: Any, number: Any) -> None:
    result = to_number(value)
    assert result == number and type(result) is type(number)


@pytest.mark.parametrize(
    "value", ["seven", "", "0x10", "1,000", True, {"a": 1}, [1], "NaN", "Infinity", "1e999"]
)
def test_to_number_refuses(value: Any) -> None:
    with pytest.raises(NotCoercible, match="expected a number"):
        to_number(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ({"a": 1, "b": [1.0, "é"]}, '{"a":1,"b":[1,"é"]}'),
        ([], "[]"),
        ({}, "{}"),
        ("plain", "plain"),
        (5, 5),
        (True, True),
    ],
)
def test_json_text_if_object(value: Any, text: Any) -> None:
    assert json_text_if_object(value) == text
