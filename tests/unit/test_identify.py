"""identify → Person upsert (DESIGN §3.2): one test per field-table row and per rule."""

from __future__ import annotations

from typing import Any

import pytest

from destination.errors import ConfigError, EventError
from destination.gainsight.plan import IdentifyPlan, plan_event
from tests.conftest import DOMAIN, make_config

EMAIL = "ada@example.com"


def identify(
    specs: Any,
    traits: dict[str, Any] | None = None,
    context_traits: dict[str, Any] | None = None,
    **config: Any,
) -> IdentifyPlan:
    event: dict[str, Any] = {"type": "identify", "userId": "u1"}
    if traits is not None:
        event["traits"] = traits
    if context_traits is not None:
        event["context"] = {"traits": context_traits}
    plan = plan_event(event, make_config(**config), specs)
    assert isinstance(plan, IdentifyPlan)
    return plan


def body(specs: Any, traits: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return dict(identify(specs, {"email": EMAIL, **traits}, **kw).request.body)


# (trait key, value, Person field, value sent) — every row of the §3.2 table, every synonym.
ROWS = [
    ("name", "Ada L", "Name", "Ada L"),
    ("firstName", "Ada", "FirstName", "Ada"),
    ("firstname", "Ada", "FirstName", "Ada"),
    ("first_name", "Ada", "FirstName", "Ada"),
    ("middleName", "King", "MiddleName", "King"),
    ("middle_name", "King", "MiddleName", "King"),
    ("lastName", "Lovelace", "LastName", "Lovelace"),
    ("lastname", "Lovelace", "LastName", "Lovelace"),
    ("last_name", "Lovelace", "LastName", "Lovelace"),
    ("linkedinUrl", "https://linkedin.com/in/ada", "LinkedinUrl", "https://linkedin.com/in/ada"),
    ("location", "London", "Location", "London"),
    ("location", {"city": "London", "n": 1.0}, "Location", '{"city":"London","n":1}'),
    ("externalRecordId", "X-1", "ExternalRecordID__gc", "X-1"),
    ("externalRecordId", {"id": 7}, "ExternalRecordID__gc", '{"id":7}'),
    ("emailOptOut", True, "EmailOptOut", True),
    ("dynamicResolutionKey", "k1", "DynamicResolutionKey", "k1"),
    ("dynamicResolutionKey", ["a", "é"], "DynamicResolutionKey", '["a","é"]'),
    ("comments", "hello", "Comments", "hello"),
    ("comments", {"note": "x"}, "Comments", '{"note":"x"}'),
    ("timezone", "Europe/London", "Timezone", "Europe/London"),
    ("masterRecordID", "M1", "MasterRecordID", "M1"),
    ("masterRecordId", "M2", "MasterRecordID", "M2"),
    ("masterAvatarTypeCode", 7, "MasterAvatarTypeCode", 7),
    ("masterAvatarTypeCode", "7", "MasterAvatarTypeCode", 7),
    ("masterAvatarTypeCode", 7.0, "MasterAvatarTypeCode", 7),
    ("masterAvatarTypeCode", "7.5", "MasterAvatarTypeCode", 7.5),
]


@pytest.mark.parametrize(("trait", "value", "field", "sent"), ROWS, ids=[f"{r[0]}->{r[2]}" for r in ROWS])
def test_standard_field_from_traits(specs: Any, trait: str, value: Any, field: str, sent: Any) -> None:
    result = body(specs, {trait: value})
    assert result[field] == sent
    assert type(result[field]) is type(sent)


@pytest.mark.parametrize(("trait", "value", "field", "sent"), ROWS, ids=[f"{r[0]}->{r[2]}" for r in ROWS])
def test_standard_field_from_context_traits(
    specs: Any, trait: str, value: Any, field: str, sent: Any
) -> None:
    plan = identify(specs, None, {"email": EMAIL, trait: value})
    assert plan.request.body[field] == sent


def test_email_from_traits_wins_over_context_traits(specs: Any) -> None:
    plan = identify(specs, {"email": "t@example.com"}, {"email": "c@example.com"})
    assert plan.request.body["Email"] == "t@example.com"


def test_email_from_context_traits_when_traits_lack_it(specs: Any) -> None:
    assert identify(specs, {}, {"email": EMAIL}).request.body["Email"] == EMAIL


def test_traits_value_wins_over_context_value_for_every_field(specs: Any) -> None:
    plan = identify(specs, {"email": EMAIL, "timezone": "UTC"}, {"timezone": "CET"})
    assert plan.request.body["Timezone"] == "UTC"


def test_synonyms_are_tried_in_order(specs: Any) -> None:
    assert body(specs, {"firstname": "b", "firstName": "a", "first_name": "c"})["FirstName"] == "a"


def test_exact_request(specs: Any) -> None:
    plan = identify(specs, {"email": EMAIL, "firstName": "Ada"})
    request = plan.request
    assert (request.method, request.endpoint) == ("PUT", f"https://{DOMAIN}/v1.0/api/people")
    assert dict(request.headers) == {"Content-Type": "application/json"}  # no secret in a plan
    assert request.step == "person upsert"
    assert request.body == {"Email": EMAIL, "FirstName": "Ada", "Name": "Ada"}
    assert dict(request.params) == {}


@pytest.mark.parametrize("empty", [None, ""])
def test_null_and_empty_values_are_left_out(specs: Any, empty: Any) -> None:
    result = body(specs, {"timezone": empty, "comments": empty, "seats": empty})
    assert "Timezone" not in result and "Comments" not in result and "Seats__gc" not in result


def test_empty_traits_value_falls_back_to_context_traits(specs: Any) -> None:
    assert (
        identify(specs, {"email": EMAIL, "timezone": ""}, {"timezone": "CET"}).request.body["Timezone"]
        == "CET"
    )


def test_name_composed_from_first_middle_last(specs: Any) -> None:
    assert (
        body(specs, {"firstName": "Ada", "middleName": "King", "lastName": "Lovelace"})["Name"]
        == "Ada King Lovelace"
    )


@pytest.mark.parametrize(
    ("traits", "name"),
    [
        ({"firstName": "Ada"}, "Ada"),
        ({"lastName": "Lovelace"}, "Lovelace"),
        ({"middleName": "King", "lastName": "Lovelace"}, "King Lovelace"),
        ({"firstName": " Ada ", "lastName": "Lovelace "}, "Ada Lovelace"),
    ],
)
def test_name_composition_uses_single_spaces_and_trims(specs: Any, traits: dict[str, Any], name: str) -> None:
    assert body(specs, traits)["Name"] == name


def test_explicit_name_is_not_recomposed(specs: Any) -> None:
    assert body(specs, {"name": "A. L.", "firstName": "Ada", "lastName": "Lovelace"})["Name"] == "A. L."


def test_name_left_out_when_no_parts(specs: Any) -> None:
    assert "Name" not in body(specs, {})


def test_custom_field_renamed_by_person_map(specs: Any) -> None:
    assert body(specs, {"seats": 5})["Seats__gc"] == 5


def test_custom_field_from_context_traits(specs: Any) -> None:
    assert identify(specs, {"email": EMAIL}, {"seats": 9}).request.body["Seats__gc"] == 9


def test_custom_field_object_value_sent_as_is(specs: Any) -> None:
    assert body(specs, {"seats": {"n": 1}})["Seats__gc"] == {"n": 1}


def test_unmapped_trait_dropped_and_reported(specs: Any) -> None:
    plan = identify(specs, {"email": EMAIL, "plan": "gold"})
    assert "plan" not in plan.request.body and "Plan__gc" not in plan.request.body
    assert [(d.field, d.problem) for d in plan.diagnostics] == [("traits.plan", "dropped: not in personMap")]


def test_dotted_trait_key_is_literal_not_nested(specs: Any) -> None:
    result = body(specs, {"a.b": "x"})
    assert result["Dotted__gc"] == "x"
    assert "a" not in result


def test_dotted_key_not_read_as_path(specs: Any) -> None:
    # {"a": {"b": ...}} is not the trait "a.b"
    result = body(specs, {"a": {"b": "nested"}})
    assert "Dotted__gc" not in result


def test_non_number_left_out_and_reported(specs: Any) -> None:
    plan = identify(specs, {"email": EMAIL, "masterAvatarTypeCode": "seven"})
    assert "MasterAvatarTypeCode" not in plan.request.body
    assert plan.diagnostics[0].field == "MasterAvatarTypeCode"
    assert "expected a number" in plan.diagnostics[0].problem


def test_system_field_traits_are_never_sent(specs: Any) -> None:
    result = body(
        specs, {"Gsid": "x", "CreatedDate": "y", "companies": []}, personMap=[{"from": "Gsid", "to": "G__gc"}]
    )
    assert "G__gc" not in result and "Gsid" not in result


def test_person_map_may_target_a_standard_field(specs: Any) -> None:
    result = body(specs, {"fullName": "Ada L."}, personMap=[{"from": "fullName", "to": "Name"}])
    assert result["Name"] == "Ada L."


def test_email_required(specs: Any) -> None:
    with pytest.raises(EventError, match=r"^email is required for identify$"):
        identify(specs, {"firstName": "Ada"})


def test_access_key_required(specs: Any) -> None:
    with pytest.raises(ConfigError, match=r"^accessKey is required for identify$"):
        identify(specs, {"email": EMAIL}, accessKey="")


def test_traits_not_an_object_is_treated_as_absent(specs: Any) -> None:
    with pytest.raises(EventError, match="email is required"):
        plan_event({"type": "identify", "traits": "x"}, make_config(), specs)
