"""Low Volume custom objects on the Company paths: the sandbox's ProductUsage__gc and configured ones."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from destination.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import ACCESS, insert_company, sim_client

USAGE = "/v1/data/objects/ProductUsage__gc"
USAGE_QUERY = "/v1/data/objects/query/ProductUsage__gc"
KEYS = "Company__gc,UsageDate__gc,Metric__gc"
DAY_MS = 1_796_515_200_000  # 2026-12-06T00:00:00Z


def row(
    company: str, count: Any = 3, date: Any = "2026-12-06", metric: str = "Report Exported"
) -> dict[str, Any]:
    return {"Company__gc": company, "UsageDate__gc": date, "Metric__gc": metric, "Count__gc": count}


def company(client: TestClient, name: str = "Acme") -> str:
    gsid: str = insert_company(client, Name=name)
    return gsid


def query(client: TestClient, conditions: list[dict[str, Any]]) -> Any:
    body = {
        "select": ["Company__gc", "UsageDate__gc", "Metric__gc", "Count__gc"],
        "where": {"conditions": conditions},
    }
    return client.post(USAGE_QUERY, headers=ACCESS, json=body)


def test_sandbox_usage_object_takes_rows_and_reads_dates_back_as_epoch_ms(client: TestClient) -> None:
    gsid = company(client)
    inserted = client.post(USAGE, headers=ACCESS, json={"records": [row(gsid)]})
    assert inserted.status_code == 200 and inserted.json()["data"]["count"] == 1
    found = query(client, [{"name": "Company__gc", "alias": "A", "value": [gsid], "operator": "IN"}])
    assert found.json()["data"]["records"] == [row(gsid, 3, DAY_MS)]
    shown = client.get("/__sim/objects/ProductUsage__gc").json()
    assert [(r["UsageDate__gc"], r["Count__gc"]) for r in shown] == [("2026-12-06", 3)]


def test_update_by_three_keys_matches_a_date_written_either_way(client: TestClient, sim: Simulator) -> None:
    gsid = company(client)
    client.post(USAGE, headers=ACCESS, json={"records": [row(gsid), row(gsid, 1, metric="Other")]})
    updated = client.put(f"{USAGE}?keys={KEYS}", headers=ACCESS, json={"records": [row(gsid, 9, DAY_MS)]})
    assert updated.status_code == 200 and updated.json()["data"]["count"] == 1
    counts = {r["Metric__gc"]: r["Count__gc"] for r in sim.objects_view("ProductUsage__gc") or []}
    assert counts == {"Report Exported": 9, "Other": 1}


def test_update_matching_nothing_writes_nothing(client: TestClient, sim: Simulator) -> None:
    gsid = company(client)
    client.post(USAGE, headers=ACCESS, json={"records": [row(gsid)]})
    answer = client.put(
        f"{USAGE}?keys={KEYS}", headers=ACCESS, json={"records": [row(gsid, 5), row(gsid, 7, "2026-12-07")]}
    )
    assert answer.status_code == 400 and answer.json()["errorCode"] == "GSOBJ_1011"
    assert [r["Count__gc"] for r in sim.objects_view("ProductUsage__gc") or []] == [3]


def test_one_bad_record_refuses_the_whole_call_naming_it(client: TestClient, sim: Simulator) -> None:
    gsid = company(client)
    unknown_company = "1P02" + "A" * 32
    answer = client.post(
        USAGE, headers=ACCESS, json={"records": [row(gsid), row(unknown_company), row(gsid, "many")]}
    )
    assert answer.status_code == 400
    errors = answer.json()["data"]["errors"]
    assert [bool(e[0]["errors"]) for e in errors] == [False, True, True]
    assert errors[1][0]["errors"][0]["fieldName"] == "Company__gc"
    assert sim.objects_view("ProductUsage__gc") == []


def test_dates_gainsight_cannot_parse_are_refused(client: TestClient) -> None:
    gsid = company(client)
    answer = client.post(USAGE, headers=ACCESS, json={"records": [row(gsid, date="061226")]})
    assert answer.status_code == 400 and answer.json()["errorCode"] == "GSOBJ_1006"


def test_at_most_fifty_records_and_three_keys(client: TestClient, sim: Simulator) -> None:
    gsid = company(client)
    many = [row(gsid, metric=f"m{i}") for i in range(51)]
    assert client.post(USAGE, headers=ACCESS, json={"records": many}).status_code == 400
    assert client.post(USAGE, headers=ACCESS, json={"records": many[:50]}).status_code == 200
    four = f"{KEYS},Count__gc"
    assert (
        client.put(f"{USAGE}?keys={four}", headers=ACCESS, json={"records": [row(gsid)]}).status_code == 400
    )
    assert len(sim.objects_view("ProductUsage__gc") or []) == 50


def test_unknown_object_is_an_error_in_the_envelope(client: TestClient) -> None:
    answer = client.post("/v1/data/objects/Nothing__gc", headers=ACCESS, json={"records": [{}]})
    assert answer.status_code == 404 and answer.json()["errorCode"] == "GSOBJ_1023"
    assert "Nothing__gc" in answer.json()["errorDesc"]
    assert client.get("/__sim/objects/Nothing__gc").status_code == 404


def test_custom_objects_need_the_access_key(client: TestClient) -> None:
    assert client.post(USAGE, json={"records": [row("x")]}).status_code == 401


def test_company_paths_still_reach_company(client: TestClient, sim: Simulator) -> None:
    company(client, "Initech")
    assert [c["Name"] for c in sim.companies_view()] == ["Initech"]
    assert sim.objects_view("ProductUsage__gc") == []


def test_objects_are_configured_with_their_field_types() -> None:
    config = SimulatorConfig.sandbox(objects={"Seats__gc": {"Company__gc": "GSID", "Seats__gc": "NUMBER"}})
    with sim_client(config) as client:
        ok = client.post(
            "/v1/data/objects/Seats__gc", headers=ACCESS, json={"records": [{"Seats__gc": "12"}]}
        )
        assert ok.status_code == 200 and ok.json()["data"]["records"][0]["Seats__gc"] == 12
        assert client.post(USAGE, headers=ACCESS, json={"records": [row("x")]}).status_code == 404


@pytest.mark.parametrize(
    "objects",
    [
        {"Usage": {"Count__gc": "NUMBER"}},
        {"Usage__gc": {"Count": "NUMBER"}},
        {"U__gc": {"C__gc": {"type": "NUMBER", "lookup": "Company"}}},
    ],
    ids=["object-suffix", "field-suffix", "lookup-on-a-number"],
)
def test_bad_object_configs_are_refused(objects: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SimulatorConfig.sandbox(objects=objects)
