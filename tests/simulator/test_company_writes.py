"""Company insert, update by keys and delete: record limits, all-or-nothing, key matching."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from destination.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import ACCESS, COMPANY, PEOPLE, insert_company, sim_client

GSID = re.compile(r"^1P02[0-9A-F]{32}$")


def insert(client: TestClient, records: Any) -> Any:
    return client.post(COMPANY, headers=ACCESS, json={"records": records})


def update(client: TestClient, records: Any, keys: str | None = "Name") -> Any:
    path = COMPANY if keys is None else f"{COMPANY}?keys={keys}"
    return client.put(path, headers=ACCESS, json={"records": records})


def test_insert_returns_gsids_in_input_order_and_the_count(client: TestClient, sim: Simulator) -> None:
    response = insert(client, [{"Name": f"Co {i}"} for i in range(3)])
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["count"] == 3 and data["errors"] is None
    assert [r["Name"] for r in data["records"]] == ["Co 0", "Co 1", "Co 2"]
    assert all(GSID.match(r["Gsid"]) for r in data["records"])
    stored = {c["Gsid"]: c["Name"] for c in sim.companies_view()}
    assert [stored[r["Gsid"]] for r in data["records"]] == ["Co 0", "Co 1", "Co 2"]


def test_insert_stores_system_fields(client: TestClient, sim: Simulator) -> None:
    insert_company(client, Name="Acme")
    [stored] = sim.companies_view()
    assert {"Gsid", "CreatedDate", "ModifiedDate", "CreatedBy", "ModifiedBy"} <= set(stored)


def test_fifty_records_pass_and_fifty_one_are_400_with_nothing_written(
    client: TestClient, sim: Simulator
) -> None:
    too_many = insert(client, [{"Name": f"Co {i}"} for i in range(51)])
    assert too_many.status_code == 400 and "50" in too_many.json()["errorDesc"]
    assert not sim.companies
    assert insert(client, [{"Name": f"Co {i}"} for i in range(50)]).status_code == 200
    assert len(sim.companies) == 50
    assert update(client, [{"Name": "Co 1"}] * 51).status_code == 400


@pytest.mark.parametrize(
    "body",
    [{"records": []}, {}, {"records": {"Name": "Acme"}}, {"records": ["Acme"]}, [{"Name": "Acme"}]],
    ids=["empty", "no-records", "records-object", "record-string", "bare-list"],
)
def test_malformed_records_are_400(client: TestClient, sim: Simulator, body: Any) -> None:
    assert client.post(COMPANY, headers=ACCESS, json=body).status_code == 400
    assert client.put(COMPANY + "?keys=Name", headers=ACCESS, json=body).status_code == 400
    assert not sim.companies


def test_one_bad_record_fails_the_whole_insert_with_per_record_errors(
    client: TestClient, sim: Simulator
) -> None:
    response = insert(client, [{"Name": "Good"}, {"Name": "Bad", "Employees": "many"}, {"Name": "Also good"}])
    assert response.status_code == 400
    payload = response.json()
    assert payload["result"] is False and payload["errorCode"] == "GSOBJ_1008"
    data = payload["data"]
    assert data["count"] == 0 and data["records"] is None
    assert [entry[0]["success"] for entry in data["errors"]] == [True, False, True]
    [error] = data["errors"][1][0]["errors"]
    assert (error["fieldName"], error["invalidValue"], error["errorCode"]) == (
        "Employees",
        "many",
        "GSOBJ_1008",
    )
    assert not sim.companies


def test_insert_needs_a_name(client: TestClient) -> None:
    response = insert(client, [{"Industry": "Tech"}])
    assert response.status_code == 400 and response.json()["errorCode"] == "GSOBJ_1007"


def test_duplicate_names_are_allowed_by_default(client: TestClient, sim: Simulator) -> None:
    insert_company(client, Name="Acme")
    insert_company(client, Name="Acme")
    assert len(sim.companies) == 2


def test_unique_names_switch_rejects_duplicates() -> None:
    with sim_client(SimulatorConfig.sandbox(company_unique_names=True)) as client:
        insert_company(client, Name="Acme")
        assert insert(client, [{"Name": "Acme"}]).status_code == 400
        assert insert(client, [{"Name": "B"}, {"Name": "B"}]).status_code == 400
        assert len(client.app.state.simulator.companies) == 1  # type: ignore[attr-defined]


def test_unique_names_compare_names_as_queries_do() -> None:
    with sim_client(SimulatorConfig.sandbox(company_unique_names=True)) as client:
        insert_company(client, Name="Acme")
        assert insert(client, [{"Name": "ACME"}]).status_code == 400
    exact = SimulatorConfig.sandbox(company_unique_names=True, company_name_case_sensitive=True)
    with sim_client(exact) as client:
        insert_company(client, Name="Acme")
        assert insert(client, [{"Name": "ACME"}]).status_code == 200


def test_update_keyed_by_name_matches_ignoring_case_and_writes_the_name_sent(
    client: TestClient, sim: Simulator
) -> None:
    gsid = insert_company(client, Name="Acme", Employees=10)
    response = update(client, [{"Name": "ACME", "Employees": 20}])
    assert response.status_code == 200 and response.json()["data"]["records"][0]["Gsid"] == gsid
    [stored] = sim.companies_view()
    assert (stored["Name"], stored["Employees"]) == ("ACME", 20)


def test_update_keyed_by_name_matches_exactly_under_the_case_sensitive_switch() -> None:
    with sim_client(SimulatorConfig.sandbox(company_name_case_sensitive=True)) as client:
        insert_company(client, Name="Acme")
        assert update(client, [{"Name": "ACME", "Employees": 20}]).status_code == 400  # no match
        assert update(client, [{"Name": "Acme", "Employees": 20}]).status_code == 200


def test_update_by_name_merges_fields_and_returns_the_gsid(client: TestClient, sim: Simulator) -> None:
    gsid = insert_company(client, Name="Acme", Industry="Tech", Employees=10)
    response = update(client, [{"Name": "Acme", "Employees": 20, "Region__gc": "EU"}])
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["count"] == 1 and data["records"][0]["Gsid"] == gsid
    [stored] = sim.companies_view()
    assert (stored["Industry"], stored["Employees"], stored["Region__gc"]) == ("Tech", 20, "EU")


def test_update_and_matches_every_key(client: TestClient, sim: Simulator) -> None:
    eu = insert_company(client, Name="Acme", Region__gc="EU")
    us = insert_company(client, Name="Acme", Region__gc="US")
    response = update(
        client, [{"Name": "Acme", "Region__gc": "US", "Tier__gc": "gold"}], keys="Name,Region__gc"
    )
    assert [r["Gsid"] for r in response.json()["data"]["records"]] == [us]
    assert sim.companies[us]["Tier__gc"] == "gold" and "Tier__gc" not in sim.companies[eu]


def test_update_by_gsid_key(client: TestClient, sim: Simulator) -> None:
    gsid = insert_company(client, Name="Acme")
    response = update(client, [{"Gsid": gsid, "Name": "Acme Ltd"}], keys="Gsid")
    assert response.status_code == 200 and sim.companies[gsid]["Name"] == "Acme Ltd"


@pytest.mark.parametrize(
    ("keys", "record"),
    [
        (None, {"Name": "Acme"}),
        ("", {"Name": "Acme"}),
        ("Name,Industry,Stage,Status", {"Name": "Acme", "Industry": "a", "Stage": "b", "Status": "c"}),
        ("Nope", {"Name": "Acme"}),
        ("CreatedDate", {"Name": "Acme"}),
        ("Name,Industry", {"Name": "Acme"}),
    ],
    ids=["absent", "empty", "four-keys", "unknown-key", "system-key", "record-lacks-key"],
)
def test_update_keys_must_be_one_to_three_fields_present_in_every_record(
    client: TestClient, keys: str | None, record: dict[str, Any]
) -> None:
    insert_company(client, Name="Acme", Industry="a", Stage="b", Status="c")
    response = update(client, [record], keys=keys)
    assert response.status_code == 400 and response.json()["errorCode"] == "GSOBJ_1002"


def test_update_with_three_keys_is_allowed(client: TestClient) -> None:
    insert_company(client, Name="Acme", Industry="a", Stage="b")
    response = update(client, [{"Name": "Acme", "Industry": "a", "Stage": "b"}], keys="Name, Industry ,Stage")
    assert response.status_code == 200 and response.json()["data"]["count"] == 1


def test_update_without_a_match_is_400_gsobj_1011_and_writes_nothing(
    client: TestClient, sim: Simulator
) -> None:
    gsid = insert_company(client, Name="Acme", Industry="Tech")
    response = update(client, [{"Name": "Acme", "Industry": "Retail"}, {"Name": "Nobody"}])
    assert response.status_code == 400 and response.json()["errorCode"] == "GSOBJ_1011"
    assert "Nobody" in response.json()["errorDesc"]
    assert sim.companies[gsid]["Industry"] == "Tech"


def test_update_no_match_ignore_switch_answers_200_with_count_0() -> None:
    with sim_client(SimulatorConfig.sandbox(update_no_match="ignore")) as client:
        response = update(client, [{"Name": "Nobody"}])
    assert response.status_code == 200
    assert response.json()["data"] == {"count": 0, "errors": None, "records": []}


def test_update_validates_all_records_before_writing(client: TestClient, sim: Simulator) -> None:
    gsid = insert_company(client, Name="Acme", Employees=1)
    response = update(client, [{"Name": "Acme", "Employees": 2}, {"Name": "Acme", "RenewalDate": "210318"}])
    assert response.status_code == 400 and response.json()["errorCode"] == "GSOBJ_1006"
    assert sim.companies[gsid]["Employees"] == 1


def test_delete_removes_the_company_and_its_associations(client: TestClient, sim: Simulator) -> None:
    gsid = insert_company(client, Name="Acme")
    client.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com", "companies": [{"Company_ID": gsid}]})
    response = client.delete(f"{COMPANY}/{gsid}", headers=ACCESS)
    assert response.status_code == 200 and not sim.companies
    assert sim.people_view()[0]["companies"] == []
    again = client.delete(f"{COMPANY}/{gsid}", headers=ACCESS)
    assert again.status_code == 400 and again.json()["errorCode"] == "GSOBJ_1011"


def test_delete_with_a_malformed_gsid_is_gsobj_1004(client: TestClient) -> None:
    response = client.delete(f"{COMPANY}/abc", headers=ACCESS)
    assert response.status_code == 400 and response.json()["errorCode"] == "GSOBJ_1004"
