"""events.ordering_key: the person an event belongs to is its userId, else its anonymousId, for
every event type (DESIGN §5); emails play no part."""

from __future__ import annotations

from typing import Any

import pytest

from destination.events import ordering_key


def test_an_identify_with_an_email_and_a_track_with_only_the_user_id_are_one_person() -> None:
    identify = {"type": "identify", "messageId": "m1", "userId": "u1", "traits": {"email": "ada@x.com"}}
    track = {"type": "track", "messageId": "m2", "userId": "u1", "event": "Ticket Closed"}
    assert ordering_key(identify) == ordering_key(track) == "userId:u1"


def test_a_group_whose_traits_email_is_the_company_s_address_is_ordered_with_its_person() -> None:
    group = {
        "type": "group",
        "messageId": "m1",
        "userId": "u1",
        "traits": {"name": "Acme", "email": "billing@acme.com"},
        "context": {"traits": {"email": "ada@x.com"}},
    }
    assert ordering_key(group) == "userId:u1"


def test_one_user_id_writing_two_emails_is_one_person_and_one_email_of_two_users_is_two() -> None:
    def identify(user: str, email: str) -> dict[str, Any]:
        return {"type": "identify", "messageId": "m", "userId": user, "traits": {"email": email}}

    assert ordering_key(identify("u1", "a@x.com")) == ordering_key(identify("u1", "b@x.com"))
    assert ordering_key(identify("u1", "a@x.com")) != ordering_key(identify("u2", "a@x.com"))


@pytest.mark.parametrize(
    ("ids", "key"),
    [
        ({"userId": "u1", "anonymousId": "a1"}, "userId:u1"),
        ({"userId": "", "anonymousId": "a1"}, "anonymousId:a1"),
        ({"userId": None, "anonymousId": "a1"}, "anonymousId:a1"),
        ({"anonymousId": "a1"}, "anonymousId:a1"),
        ({"userId": 42}, "userId:42"),  # as before: the text of the integer
        ({"userId": 0}, "userId:0"),
        ({"userId": 42.0}, "userId:42"),  # one number in JSON (and JavaScript), one person
        ({"userId": 1.5}, "userId:1.5"),
        ({"userId": -0.0}, "userId:0"),
        ({"anonymousId": 7}, "anonymousId:7"),
        ({"userId": True, "anonymousId": "a1"}, "anonymousId:a1"),  # not an id (ingest refuses it)
        ({"userId": "a\x00b"}, "userId:a\ufffdb"),  # PostgreSQL's text holds no U+0000
        ({}, "message:m9"),
    ],
)
def test_the_key_is_the_user_id_else_the_anonymous_id_else_the_message(ids: dict[str, Any], key: str) -> None:
    assert ordering_key({"type": "track", "messageId": "m9", **ids}) == key
