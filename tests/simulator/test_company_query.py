"""Company query: conditions and their operators, expressions, select, order, paging, switches."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from destination.simulator import SANDBOX, SimulatorConfig
from destination.simulator.fields import FieldType
from destination.simulator.query import picklist_gsid
from tests.simulator.helpers import cond, insert_company, names_where, query, sim_client

CONFIG = SimulatorConfig.sandbox(
    company_fields={**dict(SANDBOX.company_fields), "Level__gc": FieldType.PICKLIST}
)


def seed(client: TestClient) -> None:
    insert_company(
        client, Name="Acme", Employees=50, Industry="Tech", RenewalDate="2024-01-15", Region__gc="EU"
    )
    insert_company(client, Name="Beta", Employees=5, Industry="Retail", RenewalDate="2024-06-01")
    insert_company(client, Name="Gamma", Employees=500, Industry="Tech", Region__gc="US", Level__gc="Gold")
    insert_company(client, Name="acme labs", Employees=50, Region__gc="EU")


@pytest.fixture
def seeded() -> Iterator[TestClient]:
    with sim_client(CONFIG) as client:
        seed(client)
        yield client


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        (cond("Name", "EQ", "Acme"), ["Acme"]),
        (cond("Name", "NE", "Acme"), ["Beta", "Gamma", "acme labs"]),
        (cond("Industry", "NE", "Tech"), ["Beta"]),  # an empty field does not match NE
        (cond("Name", "IN", "Beta", "Gamma", "Zeta"), ["Beta", "Gamma"]),
        (cond("Name", "NOT_IN", "Beta", "Gamma"), ["Acme", "acme labs"]),
        (cond("Name", "CONTAINS", "ACME"), ["Acme", "acme labs"]),
        (cond("Name", "STARTS_WITH", "ac"), ["Acme", "acme labs"]),
        (cond("Name", "ENDS_WITH", "ma"), ["Gamma"]),
        (cond("Region__gc", "IS_NULL"), ["Beta"]),
        (cond("Region__gc", "IS_NOT_NULL"), ["Acme", "Gamma", "acme labs"]),
        (cond("Employees", "EQ", "50"), ["Acme", "acme labs"]),
        (cond("Employees", "GT", 50), ["Gamma"]),
        (cond("Employees", "GTE", 50), ["Acme", "Gamma", "acme labs"]),
        (cond("Employees", "LT", 50), ["Beta"]),
        (cond("Employees", "LTE", 5), ["Beta"]),
        (cond("Employees", "BTW", 10, 100), ["Acme", "acme labs"]),
        (cond("RenewalDate", "BTW", "2024-01-01", "2024-03-01"), ["Acme"]),
        (cond("RenewalDate", "GT", 1704067200000), ["Acme", "Beta"]),
        (cond("Level__gc", "EQ", "Gold"), ["Gamma"]),
        (cond("Level__gc", "EQ", picklist_gsid("Level__gc", "Gold")), ["Gamma"]),
    ],
)
def test_operator(seeded: TestClient, condition: dict[str, Any], expected: list[str]) -> None:
    assert names_where(seeded, condition) == expected


def test_conditions_without_an_expression_must_all_hold(seeded: TestClient) -> None:
    assert names_where(seeded, cond("Industry", "EQ", "Tech"), cond("Employees", "GT", 100)) == ["Gamma"]


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("A AND B", ["Acme"]),
        ("A OR C", ["Acme", "Beta", "Gamma"]),
        ("B AND (A OR C)", ["Acme"]),
        ("(B AND A) OR C", ["Acme", "Beta"]),
        ("B AND A OR C", ["Acme", "Beta"]),  # AND binds tighter than OR
        ("A and B", ["Acme"]),  # keywords in any case
        ("C", ["Beta"]),
    ],
)
def test_expression_combines_aliases(seeded: TestClient, expression: str, expected: list[str]) -> None:
    conditions = (
        cond("Industry", "EQ", "Tech", alias="A"),
        cond("Region__gc", "EQ", "EU", alias="B"),
        cond("Name", "EQ", "Beta", alias="C"),
    )
    assert names_where(seeded, *conditions, expression=expression) == expected


def test_select_returns_only_the_named_fields(seeded: TestClient) -> None:
    without_gsid = query(seeded, {"select": ["Name", "Employees"], "limit": 1}).json()["data"]["records"]
    assert without_gsid == [{"Name": "Acme", "Employees": 50}]
    with_gsid = query(seeded, {"select": ["Gsid", "Name"], "limit": 1}).json()["data"]["records"]
    assert set(with_gsid[0]) == {"Gsid", "Name"} and with_gsid[0]["Gsid"].startswith("1P02")


def test_reads_return_dates_as_epoch_ms_and_picklists_as_gsids(seeded: TestClient) -> None:
    body = {
        "select": ["RenewalDate", "Level__gc"],
        "where": {"conditions": [cond("Name", "IN", "Acme", "Gamma")]},
    }
    rows = query(seeded, body).json()["data"]["records"]
    assert rows == [
        {"RenewalDate": 1705276800000, "Level__gc": None},
        {"RenewalDate": None, "Level__gc": picklist_gsid("Level__gc", "Gold")},
    ]


def test_read_switches_return_values_as_stored() -> None:
    config = CONFIG.model_copy(update={"query_dates_as_epoch_ms": False, "query_picklists_as_gsids": False})
    with sim_client(config) as client:
        seed(client)
        rows = query(
            client, {"select": ["RenewalDate", "Level__gc"], "orderBy": {"Level__gc": "asc"}, "limit": 1}
        )
    assert rows.json()["data"]["records"] == [{"RenewalDate": None, "Level__gc": "Gold"}]


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        ({"Name": "asc"}, ["Acme", "Beta", "Gamma", "acme labs"]),
        ({"Name": "desc"}, ["acme labs", "Gamma", "Beta", "Acme"]),
        ({"Employees": "desc", "Name": "desc"}, ["Gamma", "acme labs", "Acme", "Beta"]),
        ({"Region__gc": "asc"}, ["Acme", "acme labs", "Gamma", "Beta"]),  # empty values last
        ({"Region__gc": "DESC"}, ["Gamma", "Acme", "acme labs", "Beta"]),
    ],
)
def test_order_by(seeded: TestClient, order: dict[str, str], expected: list[str]) -> None:
    assert names_where(seeded, orderBy=order) == expected


def test_limit_and_offset_page_through_results(seeded: TestClient) -> None:
    pages = [names_where(seeded, orderBy={"Name": "asc"}, limit=3, offset=offset) for offset in (0, 3, 6)]
    assert pages == [["Acme", "Beta", "Gamma"], ["acme labs"], []]


@pytest.mark.parametrize("limit", [5000, 1])
def test_limit_up_to_5000_is_accepted(seeded: TestClient, limit: int) -> None:
    assert query(seeded, {"select": ["Name"], "limit": limit}).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"select": ["Name"], "limit": 5001},
        {"select": ["Name"], "limit": 0},
        {"select": ["Name"], "offset": -1},
        {"select": ["Name"], "limit": "10"},
        {"select": []},
        {"select": "Name"},
        {"select": ["Nope"]},
        {"select": ["Csm__gr.Email"]},
        {"select": ["Name"], "orderBy": {"Name": "up"}},
        {"select": ["Name"], "where": {"conditions": [cond("Name", "LIKE", "a")]}},
        {"select": ["Name"], "where": {"conditions": [cond("Nope", "EQ", "a")]}},
        {"select": ["Name"], "where": {"conditions": [{"name": "Name", "operator": "EQ", "value": "Acme"}]}},
        {"select": ["Name"], "where": {"conditions": [cond("Name", "EQ")]}},
        {"select": ["Name"], "where": {"conditions": [cond("Name", "BTW", "a")]}},
        {"select": ["Name"], "where": {"conditions": [cond("Employees", "GT", "many")]}},
        {
            "select": ["Name"],
            "where": {"conditions": [cond("Name", "EQ", "a", alias="A")], "expression": "A AND B"},
        },
        {
            "select": ["Name"],
            "where": {"conditions": [cond("Name", "EQ", "a", alias="A")], "expression": "(A"},
        },
        {
            "select": ["Name"],
            "where": {"conditions": [cond("Name", "EQ", "a", alias="A")], "expression": "A A"},
        },
        {
            "select": ["Name"],
            "where": {"conditions": [cond("Name", "EQ", "a", alias="A")], "expression": "A & A"},
        },
        {"select": ["Name"], "where": {"conditions": [cond("Name", "EQ", "a", alias="(")]}},
        {"select": ["Name"], "where": {"conditions": [cond("Name", "EQ", "a", alias="and")]}},
        ["Name"],
    ],
)
def test_malformed_query_is_400(seeded: TestClient, body: Any) -> None:
    response = query(seeded, body)
    assert response.status_code == 400, response.text
    assert response.json()["errorCode"] == "GSOBJ_1002"
    assert response.json()["errorDesc"].startswith("Invalid query")


def test_no_match_is_200_with_empty_records(seeded: TestClient) -> None:
    response = query(seeded, {"select": ["Name"], "where": {"conditions": [cond("Name", "EQ", "Nobody")]}})
    assert response.status_code == 200 and response.json()["data"] == {"records": []}


def test_no_match_error_switch_answers_400_gsobj_1011() -> None:
    with sim_client(SimulatorConfig.sandbox(query_no_match_error=True)) as client:
        response = query(client, {"select": ["Name"]})
    assert response.status_code == 400 and response.json()["errorCode"] == "GSOBJ_1011"


def test_bare_list_switch_makes_data_the_list() -> None:
    with sim_client(SimulatorConfig.sandbox(query_bare_list=True)) as client:
        insert_company(client, Name="Acme")
        response = query(client, {"select": ["Name"]})
    assert response.json()["data"] == [{"Name": "Acme"}]


EVERY_NAME = ["Acme", "Beta", "Gamma", "acme labs"]


@pytest.mark.parametrize(
    ("condition", "ignoring_case", "exactly"),
    [
        (cond("Name", "EQ", "ACME"), ["Acme"], []),
        (cond("Name", "IN", "acme", "GAMMA"), ["Acme", "Gamma"], []),
        (cond("Name", "NE", "aCmE"), ["Beta", "Gamma", "acme labs"], EVERY_NAME),
        (cond("Name", "NOT_IN", "BETA", "gamma"), ["Acme", "acme labs"], EVERY_NAME),
        (cond("Industry", "EQ", "tech"), [], []),  # only Name follows the switch
    ],
)
def test_company_names_match_ignoring_case_unless_the_switch_says_exactly(
    condition: dict[str, Any], ignoring_case: list[str], exactly: list[str]
) -> None:
    with sim_client(CONFIG) as client:
        seed(client)
        assert names_where(client, condition) == ignoring_case
    exact = SimulatorConfig.sandbox(
        company_fields=dict(CONFIG.company_fields), company_name_case_sensitive=True
    )
    with sim_client(exact) as client:
        seed(client)
        assert names_where(client, condition) == exactly
