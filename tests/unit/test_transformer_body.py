"""A transformer request's items repeat one destination: it is parsed once and shared, and the
document is always exactly what a plain parse gives."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from fastapi import HTTPException
from hypothesis import given, settings
from hypothesis import strategies as st

from destination.api.transformer_body import parse_items
from tests.conftest import BASE_CONFIG

DESTINATION = {"ID": "d1", "Config": BASE_CONFIG}


def items(n: int, destination: Any = DESTINATION, **message: Any) -> list[dict[str, Any]]:
    return [
        {
            "message": {"type": "track", "messageId": f"m{i}", **message},
            "destination": destination,
            "metadata": {"i": i},
        }
        for i in range(n)
    ]


def test_items_repeating_one_destination_share_one_parse() -> None:
    document = items(5)
    parsed = parse_items(orjson.dumps(document), None)
    assert parsed == document
    assert all(item["destination"] is parsed[0]["destination"] for item in parsed)


def test_the_router_body_shares_its_input_destination() -> None:
    body = {"destType": "gainsight", "input": items(3)}
    parsed = parse_items(orjson.dumps(body), "input")
    assert parsed == body
    assert parsed["input"][1]["destination"] is parsed["input"][2]["destination"]


def test_a_copy_of_the_destination_inside_a_message_is_not_shared() -> None:
    document = items(3, properties={"destination": DESTINATION})
    parsed = parse_items(orjson.dumps(document), None)
    assert parsed == document
    assert parsed[0]["message"]["properties"]["destination"] is not parsed[0]["destination"]


def test_a_body_naming_the_marker_is_parsed_plainly() -> None:
    document = items(3, event="\x00gsd:repeated-destination")
    document[2]["destination"] = "\x00gsd:repeated-destination"
    assert parse_items(orjson.dumps(document), None) == document


def test_braces_inside_the_destinations_strings() -> None:
    destination = {"ID": "{d}", "Config": {**BASE_CONFIG, "topicName": "}}{"}}
    document = items(3, destination)
    assert parse_items(orjson.dumps(document), None) == document


def test_destinations_that_differ_keep_their_own_values() -> None:
    document = items(4)
    document[1]["destination"] = {"ID": "d2", "Config": {**BASE_CONFIG, "topicName": "Other"}}
    document[3]["destination"] = {"ID": "d1", "Config": {**BASE_CONFIG, "domain": "x.gainsightcloud.com"}}
    assert parse_items(orjson.dumps(document), None) == document


def test_not_json_is_refused_naming_the_problem() -> None:
    body = orjson.dumps(items(3))[:-5]
    with pytest.raises(HTTPException) as caught:
        parse_items(body, None)
    assert caught.value.status_code == 400 and "not valid JSON" in caught.value.detail


def test_a_shared_destination_nesting_too_deep_is_refused() -> None:
    deep: Any = 1
    for _ in range(260):
        deep = [deep]
    with pytest.raises(HTTPException) as caught:
        body = json.dumps(items(3, {"ID": "d1", "Config": {"x": deep}}), separators=(",", ":"))
        parse_items(body.encode(), None)
    assert caught.value.status_code == 400 and "254 levels" in caught.value.detail


scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.text(alphabet='{}":,\\ ad', max_size=6)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["destination", "a", "{"]), inner)
    ),
    max_leaves=8,
)
destinations = st.sampled_from([DESTINATION, {"ID": "}{", "Config": {"a": '"}'}}, {}]) | values


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"destination": destinations},
            optional={
                "message": st.dictionaries(
                    st.sampled_from(["destination", "type", "x"]), destinations | values
                )
            },
        ),
        max_size=5,
    ),
    st.booleans(),
    st.booleans(),
)
def test_any_body_parses_as_a_plain_parse(document: list[Any], router: bool, spaced: bool) -> None:
    body: Any = {"input": document} if router else document
    raw = json.dumps(body).encode() if spaced else orjson.dumps(body)
    assert parse_items(raw, "input" if router else None) == orjson.loads(raw)
