"""DESIGN §3.5: message types, matched case-insensitively; the errors for the others."""

from __future__ import annotations

from typing import Any

import pytest

from destination.errors import EventError
from destination.gainsight.plan import plan_event
from tests.conftest import make_config


@pytest.mark.parametrize("kind", ["IDENTIFY", "Identify", "identify"])
def test_type_matched_case_insensitively(specs: Any, kind: str) -> None:
    plan = plan_event({"type": kind, "traits": {"email": "a@b.co"}}, make_config(), specs)
    assert plan.kind == "identify"


@pytest.mark.parametrize("event", [{}, {"type": None}, {"type": ""}])
def test_missing_type(specs: Any, event: dict[str, Any]) -> None:
    with pytest.raises(EventError, match=r"^Message Type is not present\. Aborting message\.$"):
        plan_event(event, make_config(), specs)


@pytest.mark.parametrize("kind", ["page", "screen", "alias", "Page"])
def test_unsupported_type(specs: Any, kind: str) -> None:
    with pytest.raises(EventError, match=f"^message type {kind.lower()} not supported$"):
        plan_event({"type": kind}, make_config(), specs)


def test_non_string_type_is_a_clear_400(specs: Any) -> None:
    with pytest.raises(EventError, match="message type must be a string"):
        plan_event({"type": 5}, make_config(), specs)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"type": "identify", "traits": {"email": False}}, "email is required for identify"),
        ({"type": "identify", "traits": {"email": 0}}, "email is required for identify"),
        (
            {"type": "group", "traits": {"name": 0}, "context": {"traits": {"email": "a@b.co"}}},
            "company name is required for group",
        ),
        (
            {"type": "group", "traits": {"name": "A"}, "context": {"traits": {"email": False}}},
            "user email is required for group",
        ),
        ({"type": "track", "event": 0}, "event name is required for track"),
        ({"type": "track", "event": False}, "event name is required for track"),
    ],
)
def test_falsy_required_values_count_as_missing_like_the_reference(
    specs: Any, event: dict[str, Any], message: str
) -> None:
    with pytest.raises(EventError, match=f"^{message}$"):
        plan_event(event, make_config(), specs)
