"""People single upsert: one person per call, matched by Email, merged, associated to Companies."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from destination.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import ACCESS, PEOPLE, PEOPLE_ALT, insert_company, sim_client

GSID = re.compile(r"^1P04[0-9A-F]{32}$")


def upsert(client: TestClient, body: object, path: str = PEOPLE) -> dict[str, object]:
    response = client.put(path, headers=ACCESS, json=body)
    payload: dict[str, object] = response.json()
    payload["status"] = response.status_code
    return payload


def test_new_email_creates_a_person_with_a_gsid(client: TestClient, sim: Simulator) -> None:
    answer = upsert(client, {"Email": "ada@example.com", "FirstName": "Ada"})
    assert answer["status"] == 200 and answer["result"] is True
    data = answer["data"]
    assert isinstance(data, dict) and data["operation"] == "INSERT"
    assert GSID.match(str(data["Gsid"]))
    [person] = sim.people_view()
    assert person["Gsid"] == data["Gsid"] and person["FirstName"] == "Ada"


def test_known_email_updates_only_the_fields_sent(client: TestClient, sim: Simulator) -> None:
    upsert(client, {"Email": "ada@example.com", "FirstName": "Ada", "LastName": "Byron"})
    answer = upsert(client, {"Email": "ada@example.com", "LastName": "Lovelace", "Plan__gc": "gold"})
    assert isinstance(answer["data"], dict) and answer["data"]["operation"] == "UPDATE"
    [person] = sim.people_view()
    assert (person["FirstName"], person["LastName"], person["Plan__gc"]) == ("Ada", "Lovelace", "gold")


def test_null_clears_a_field(client: TestClient, sim: Simulator) -> None:
    upsert(client, {"Email": "ada@example.com", "FirstName": "Ada"})
    upsert(client, {"Email": "ada@example.com", "FirstName": None})
    assert sim.people_view()[0]["FirstName"] is None


def test_email_matches_case_insensitively_by_default(client: TestClient, sim: Simulator) -> None:
    upsert(client, {"Email": "Ada@Example.com"})
    upsert(client, {"Email": "ada@example.COM", "FirstName": "Ada"})
    [person] = sim.people_view()
    assert person["Email"] == "ada@example.COM" and person["FirstName"] == "Ada"


def test_case_sensitive_email_switch_makes_two_people() -> None:
    with sim_client(SimulatorConfig.sandbox(email_case_sensitive=True)) as client:
        upsert(client, {"Email": "Ada@Example.com"})
        upsert(client, {"Email": "ada@example.com"})
        assert len(client.app.state.simulator.people) == 2  # type: ignore[attr-defined]


def test_both_people_paths_share_one_store(client: TestClient, sim: Simulator) -> None:
    upsert(client, {"Email": "ada@example.com", "FirstName": "Ada"}, PEOPLE)
    upsert(client, {"Email": "ada@example.com", "LastName": "L"}, PEOPLE_ALT)
    [person] = sim.people_view()
    assert (person["FirstName"], person["LastName"]) == ("Ada", "L")


@pytest.mark.parametrize("body", [[{"Email": "a@example.com"}], "a@example.com", 3, None])
def test_body_must_be_one_json_object(client: TestClient, sim: Simulator, body: object) -> None:
    answer = upsert(client, body)
    assert answer["status"] == 400 and answer["result"] is False
    assert not sim.people


@pytest.mark.parametrize("body", [{}, {"Email": None}, {"Email": ""}, {"FirstName": "Ada"}])
def test_email_is_required(client: TestClient, body: dict[str, object]) -> None:
    answer = upsert(client, body)
    assert answer["status"] == 400 and answer["errorCode"] == "GSOBJ_VDTEMAIL1001"


@pytest.mark.parametrize("email", ["not-an-email", "a@b", 42, "a b@example.com"])
def test_invalid_email_is_rejected(client: TestClient, email: object) -> None:
    answer = upsert(client, {"Email": email})
    assert answer["status"] == 400 and answer["errorCode"] == "GSOBJ_VDTEMAIL1001"


def test_company_id_associates_with_an_existing_company(client: TestClient, sim: Simulator) -> None:
    gsid = insert_company(client, Name="Acme")
    answer = upsert(client, {"Email": "ada@example.com", "companies": [{"Company_ID": gsid}]})
    assert answer["status"] == 200
    assert sim.people_view()[0]["companies"] == [{"Company_ID": gsid}]
    [link] = client.get("/__sim/associations").json()
    assert (link["Email"], link["Company_ID"], link["CompanyName"]) == ("ada@example.com", gsid, "Acme")


def test_company_person_attributes_are_kept(client: TestClient, sim: Simulator) -> None:
    gsid = insert_company(client, Name="Acme")
    upsert(client, {"Email": "ada@example.com", "companies": [{"Company_ID": gsid, "Title": "CTO"}]})
    assert sim.people_view()[0]["companies"] == [{"Company_ID": gsid, "Title": "CTO"}]


def test_unknown_company_gsid_is_400_people1001_and_writes_nothing(
    client: TestClient, sim: Simulator
) -> None:
    known = insert_company(client, Name="Acme")
    upsert(client, {"Email": "ada@example.com", "FirstName": "Ada"})
    before = sim.people_view()
    unknown = "1P02" + "F" * 32
    answer = upsert(
        client,
        {
            "Email": "ada@example.com",
            "FirstName": "Changed",
            "companies": [{"Company_ID": known}, {"Company_ID": unknown}],
        },
    )
    assert answer["status"] == 400 and answer["errorCode"] == "GSOBJ_PEOPLE1001"
    assert unknown in str(answer["errorDesc"])
    assert sim.people_view() == before
    new_person = upsert(client, {"Email": "new@example.com", "companies": [{"Company_ID": unknown}]})
    assert new_person["status"] == 400 and len(sim.people) == 1


def test_companies_add_to_existing_associations_by_default(client: TestClient, sim: Simulator) -> None:
    first, second = insert_company(client, Name="A"), insert_company(client, Name="B")
    upsert(client, {"Email": "ada@example.com", "companies": [{"Company_ID": first}]})
    upsert(client, {"Email": "ada@example.com", "companies": [{"Company_ID": second}]})
    upsert(client, {"Email": "ada@example.com", "FirstName": "no companies key"})
    linked = [link["Company_ID"] for link in sim.people_view()[0]["companies"]]
    assert linked == [first, second]


def test_companies_replace_switch_replaces_associations() -> None:
    with sim_client(SimulatorConfig.sandbox(people_companies_replace=True)) as client:
        first, second = insert_company(client, Name="A"), insert_company(client, Name="B")
        upsert(client, {"Email": "ada@example.com", "companies": [{"Company_ID": first}]})
        upsert(client, {"Email": "ada@example.com", "companies": [{"Company_ID": second}]})
        [person] = client.get("/__sim/people").json()
    assert [link["Company_ID"] for link in person["companies"]] == [second]


@pytest.mark.parametrize(
    "companies",
    [{"Company_ID": "x"}, ["1P02"], [{"Name": "Acme"}], [{"Company_ID": 7}]],
    ids=["object", "string-item", "no-id", "number-id"],
)
def test_malformed_companies_is_400(client: TestClient, sim: Simulator, companies: object) -> None:
    answer = upsert(client, {"Email": "ada@example.com", "companies": companies})
    assert answer["status"] == 400 and not sim.people


@pytest.mark.parametrize("field", ["Gsid", "CreatedDate", "ModifiedDate", "CreatedBy", "ModifiedBy"])
def test_system_fields_are_not_writable(client: TestClient, field: str) -> None:
    answer = upsert(client, {"Email": "ada@example.com", field: "1P04" + "0" * 32})
    assert answer["status"] == 400 and answer["errorCode"] == "GSOBJ_1002"
    assert field in str(answer["errorDesc"])
