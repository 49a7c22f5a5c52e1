"""Every outcome log line names the event's person (userId, anonymousId), never an email unless
GSD_LOG_PII=true."""

from __future__ import annotations

import logging

import pytest

from destination.events import Person, person_of
from destination.logs import person_fields
from destination.settings import Settings
from tests.unit.test_worker import IDENTIFY, TRACK, World, ok


def outcome_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        {k: getattr(r, k, None) for k in ("messageId", "outcome", "userId", "anonymousId", "email", "reason")}
        for r in caplog.records
        if r.name == "destination.events"
    ]


def test_outcome_lines_carry_the_user_id_and_anonymous_id_and_no_email(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "destination.events")
    World(ok).run(
        {**IDENTIFY, "userId": "u1", "anonymousId": "a1"},
        {**TRACK, "anonymousId": "a2", "event": "Not Mapped", "person": "q"},
        {"type": "identify", "userId": "u3", "traits": {}, "person": "r"},  # no email: rejected
    )
    assert sorted(outcome_lines(caplog), key=lambda line: str(line["messageId"])) == [
        {
            "messageId": "m0",
            "outcome": "delivered",
            "userId": "u1",
            "anonymousId": "a1",
            "email": None,
            "reason": None,
        },
        {
            "messageId": "m1",
            "outcome": "filtered",
            "userId": None,
            "anonymousId": "a2",
            "email": None,
            "reason": "Event name mapping not provided for Not Mapped",
        },
        {
            "messageId": "m2",
            "outcome": "rejected",
            "userId": "u3",
            "anonymousId": None,
            "email": None,
            "reason": "email is required for identify",
        },
    ]
    assert "ada@example.com" not in caplog.text


def test_an_email_is_logged_only_with_log_pii(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "destination.events")
    World(ok).run({**IDENTIFY, "userId": "ada@example.com"})
    World(ok, log_pii=True).run({**IDENTIFY, "userId": "ada@example.com"})
    without, with_pii = outcome_lines(caplog)
    assert (without["userId"], without["email"]) == ("***", None)
    assert (with_pii["userId"], with_pii["email"]) == ("ada@example.com", "ada@example.com")
    assert Settings().log_pii is False
    assert Settings(log_pii="true").log_pii is True  # type: ignore[arg-type]


def test_the_person_of_an_event() -> None:
    group = {"type": "Group", "userId": 7, "traits": {"email": "billing@acme.com"}}
    assert person_of(group) == Person("7", None, ())  # a group's traits describe the company
    track = {"type": "track", "anonymousId": "a", "userId": "", "context": {"traits": {"email": "x@y.z"}}}
    assert person_of(track) == Person(None, "a", ("x@y.z",))
    assert person_of([1]) == Person(None, None, ())
    assert person_fields(Person("u1", None, ("x@y.z",)), pii=False) == {"userId": "u1"}
    assert person_fields(Person(None, "a@b.c", ("x@y.z",)), pii=True) == {
        "anonymousId": "a@b.c",
        "email": "x@y.z",
    }
