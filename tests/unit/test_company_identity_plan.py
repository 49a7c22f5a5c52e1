"""companyIdentity (DESIGN §3.3) in the plan, the settings and the dry run: the key's value, Name
required only to create and never written when creating is off, and clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from destination.cli import app
from destination.errors import EventError
from destination.gainsight.client import Credentials
from destination.gainsight.company_states import group_steps
from destination.gainsight.plan import GroupPlan, plan_event
from destination.gainsight.render import describe_plan
from destination.mapping.spec import default_specs
from tests.conftest import BASE_CONFIG, make_config

SFDC = {"field": "SfdcAccountId", "from": "groupId", "create": True}


def plan(traits: dict[str, Any], identity: dict[str, Any] | None = SFDC, **event: Any) -> GroupPlan:
    message = {"type": "group", "traits": traits, "context": {"traits": {"email": "ada@x.com"}}, **event}
    config = make_config(companyIdentity=identity) if identity is not None else make_config()
    result = plan_event(message, config, default_specs())
    assert isinstance(result, GroupPlan)
    return result


def test_without_it_companies_are_keyed_by_name_as_the_reference_does() -> None:
    keyed_by_name = plan({"name": "Acme"}, identity=None, groupId="001")
    assert (keyed_by_name.key_field, keyed_by_name.key_value) == ("Name", "Acme")
    assert keyed_by_name.update_request().params == {"keys": "Name"}


def test_the_key_comes_from_group_id_and_is_written_with_the_company() -> None:
    keyed = plan({"name": "Acme", "employees": 5}, groupId="001A")
    assert keyed.company == {"Name": "Acme", "Employees": 5, "SfdcAccountId": "001A"}
    assert keyed.update_request().params == {"keys": "SfdcAccountId"}
    search = keyed.search_request().body
    assert search["where"]["conditions"] == [
        {"name": "SfdcAccountId", "alias": "A", "value": ["001A"], "operator": "IN"}
    ]
    assert search["select"] == ["Gsid", "SfdcAccountId"]


def test_an_integer_group_id_is_a_key_and_a_trait_can_hold_it() -> None:
    assert plan({"name": "Acme"}, groupId=42).key_value == "42"
    from_trait = {**SFDC, "from": "traits.accountId"}
    assert plan({"name": "Acme", "accountId": "X9"}, identity=from_trait).key_value == "X9"


def test_a_name_is_not_required_and_never_written_when_creating_is_off() -> None:
    assert "Name" not in plan({"employees": 3}, groupId="001").company
    update_only = {**SFDC, "create": False}
    assert plan({"name": "Initech"}, identity=update_only, groupId="001").company == {"SfdcAccountId": "001"}


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({}, "groupId is required for group: companies are keyed by SfdcAccountId from it"),
        ({"groupId": ""}, "groupId is required for group: companies are keyed by SfdcAccountId from it"),
        ({"groupId": "  "}, "groupId is required for group: companies are keyed by SfdcAccountId from it"),
        ({"groupId": {"id": 1}}, "groupId must be a string or an integer, got dict"),
        ({"groupId": True}, "groupId must be a string or an integer, got bool"),
    ],
)
def test_a_group_without_a_usable_key_is_refused_naming_it(event: dict[str, Any], message: str) -> None:
    with pytest.raises(EventError) as raised:
        plan({"name": "Acme"}, **event)
    assert raised.value.message == message


def test_the_dry_run_shows_the_key_and_no_insert_when_creating_is_off() -> None:
    update_only = plan({"name": "Initech"}, identity={**SFDC, "create": False}, groupId="001")
    described = describe_plan(update_only, Credentials.of("acme", make_config()))
    assert described["company"] == {"key": "SfdcAccountId", "value": "001", "create": False}
    assert [r.step for r, _ in group_steps(update_only)] == [
        "company search",
        "company update",
        "person upsert",
    ]


@pytest.mark.parametrize(
    ("identity", "problem"),
    [
        ({"field": "Region"}, "companyIdentity.field"),
        ({"field": "Name"}, "companyIdentity.field"),
        ({"field": "SfdcAccountId", "from": "userId"}, "companyIdentity.from"),
        ({"field": "SfdcAccountId", "from": "traits."}, "companyIdentity.from"),
        ({"field": "SfdcAccountId", "crate": False}, "companyIdentity.crate"),
    ],
)
def test_validate_config_names_a_bad_company_identity(
    tmp_path: Path, identity: dict[str, Any], problem: str
) -> None:
    path = tmp_path / "d.json"
    path.write_bytes(orjson.dumps([{"id": "acme", "config": {**BASE_CONFIG, "companyIdentity": identity}}]))
    result = CliRunner().invoke(app, ["validate-config", "--destinations", str(path)])
    assert result.exit_code == 2
    assert problem in result.output


def test_validate_config_accepts_a_custom_key_field(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    identity = {"field": "ExternalId__gc", "from": "traits.externalId", "create": False}
    path.write_bytes(orjson.dumps([{"id": "acme", "config": {**BASE_CONFIG, "companyIdentity": identity}}]))
    result = CliRunner().invoke(app, ["validate-config", "--destinations", str(path)])
    assert result.exit_code == 0, result.output
