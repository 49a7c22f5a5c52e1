"""Timeline single-activity save: one record, ExternalId unique per tenant, an existing company,
required fields (and an org's extra ones), its own 200/minute budget, faults, sandbox view."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from destination.simulator import Simulator, SimulatorConfig
from tests.simulator.helpers import ACCESS, PEOPLE, T0, FakeClock, insert_company, sim_client
from tests.simulator.test_config_and_cli import run_command

ACTIVITY = "/v1/ant/es/activity"


def record(gsid: str, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "ExternalId": "msg-1",
        "ContextName": "Company",
        "GsCompanyId": gsid,
        "TypeName": "Meeting",
        "Subject": "Meeting Booked",
        "Notes": "attendees: 3",
        "ActivityDate": 1_764_928_800_000,
        "Author": "integration@acme.com",
    }
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def save(client: TestClient, *records: dict[str, Any], headers: dict[str, str] = ACCESS) -> Any:
    return client.post(ACTIVITY, headers=headers, json={"records": list(records), "lookups": {}})


def test_an_activity_is_saved_and_shown(client: TestClient, sim: Simulator) -> None:
    gsid = insert_company(client, Name="Acme")
    response = save(client, record(gsid))
    assert response.status_code == 200 and response.json()["result"] is True
    [saved] = response.json()["data"]["records"]
    assert saved["ExternalId"] == "msg-1" and saved["Gsid"].startswith("1I00")
    [shown] = client.get("/__sim/activities").json()
    assert shown == {"Gsid": saved["Gsid"], "received_at": T0, **record(gsid)}


def test_a_second_save_with_the_same_external_id_is_refused_naming_it(
    client: TestClient, sim: Simulator
) -> None:
    gsid = insert_company(client, Name="Acme")
    assert save(client, record(gsid)).status_code == 200
    again = save(client, record(gsid, Subject="another"))
    assert again.status_code == 400
    assert again.json()["errorCode"] == "GSTL_DUPLICATE_EXTERNAL_ID"
    assert "'msg-1'" in again.json()["errorDesc"] and "already exists" in again.json()["errorDesc"]
    assert [a["Subject"] for a in sim.activities_view()] == ["Meeting Booked"]


def test_more_than_one_record_is_refused(client: TestClient, sim: Simulator) -> None:
    gsid = insert_company(client, Name="Acme")
    response = save(client, record(gsid), record(gsid, ExternalId="msg-2"))
    assert response.status_code == 400 and "exactly one record, got 2" in response.json()["errorDesc"]
    assert not sim.activities


@pytest.mark.parametrize(
    "missing", ["ExternalId", "ContextName", "TypeName", "Subject", "ActivityDate", "Author", "GsCompanyId"]
)
def test_each_required_field_is_named_when_missing(client: TestClient, sim: Simulator, missing: str) -> None:
    gsid = insert_company(client, Name="Acme")
    response = save(client, record(gsid, **{missing: None}))
    assert response.status_code == 400 and response.json()["errorCode"] == "GSTL_FIELD_REQUIRED"
    assert missing in response.json()["errorDesc"]
    assert not sim.activities


def test_the_company_must_exist(client: TestClient, sim: Simulator) -> None:
    response = save(client, record("1P02NOSUCHCOMPANY"))
    assert response.status_code == 400 and response.json()["errorCode"] == "GSTL_COMPANY_UNKNOWN"
    assert "1P02NOSUCHCOMPANY" in response.json()["errorDesc"]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("ActivityDate", "2026-12-06", "GSTL_FIELD_INVALID"),
        ("ActivityDate", 1.5e12, "GSTL_FIELD_INVALID"),
        ("Author", "not an email", "GSTL_FIELD_INVALID"),
        ("Subject", 7, "GSTL_FIELD_INVALID"),
        ("ContextName", "Relationship", "GSTL_FIELD_INVALID"),
        ("TypeName", "Séance", "GSTL_TYPE_UNKNOWN"),
    ],
)
def test_invalid_values_are_refused(client: TestClient, field: str, value: Any, code: str) -> None:
    gsid = insert_company(client, Name="Acme")
    response = save(client, record(gsid, **{field: value}))
    assert response.status_code == 400 and response.json()["errorCode"] == code
    assert field in response.json()["errorDesc"] or repr(value) in response.json()["errorDesc"]


def test_an_org_that_requires_an_extra_field_refuses_activities_without_it() -> None:
    config = SimulatorConfig.sandbox(activity_required_fields=("Status__gc",))
    with sim_client(config) as client:
        gsid = insert_company(client, Name="Acme")
        refused = save(client, record(gsid))
        accepted = save(client, record(gsid, Status__gc="Open"))
    assert refused.status_code == 400 and "Status__gc" in refused.json()["errorDesc"]
    assert accepted.status_code == 200


def test_the_access_key_is_required(client: TestClient, sim: Simulator) -> None:
    gsid = insert_company(client, Name="Acme")
    response = save(client, record(gsid), headers={"Accesskey": "wrong"})
    assert response.status_code == 401 and response.json()["errorCode"] == "GS_APIG_2401"
    assert not sim.activities


def test_timeline_has_its_own_minute_window_apart_from_the_sync_one() -> None:
    config = SimulatorConfig.sandbox(rate_limit_per_minute=3, timeline_rate_limit_per_minute=5)
    clock = FakeClock()
    with sim_client(config, clock) as client:
        gsid = insert_company(client, Name="Acme")  # one sync call
        pings = [client.get(PEOPLE, headers=ACCESS).status_code for _ in range(3)]
        saves = [save(client, record(gsid, ExternalId=f"m{i}")).status_code for i in range(6)]
        clock.advance(60)
        later = save(client, record(gsid, ExternalId="m-next")).status_code
        counters = client.get("/__sim/counters").json()
    assert pings == [200, 200, 429]  # the sync minute is spent ...
    assert saves == [200] * 5 + [429]  # ... and Timeline still has its own 5
    assert later == 200
    assert counters["endpoints"]["timeline.activity"]["throttled"] == 1
    assert counters["over_budget_accepted"] == 0


@pytest.mark.parametrize("counts", [True, False])
def test_timeline_calls_count_toward_the_day_unless_switched_off(counts: bool) -> None:
    config = SimulatorConfig.sandbox(
        rate_limit_per_minute=100, rate_limit_per_day=4, timeline_counts_toward_day=counts
    )
    with sim_client(config) as client:
        gsid = insert_company(client, Name="Acme")
        saves = [save(client, record(gsid, ExternalId=f"m{i}")).status_code for i in range(4)]
        ping = client.get(PEOPLE, headers=ACCESS).status_code
        counters = client.get("/__sim/counters").json()
    if counts:
        assert saves == [200, 200, 200, 429] and ping == 429
    else:
        assert saves == [200] * 4 and ping == 200
    assert counters["over_budget_accepted"] == 0


def test_faults_apply_to_timeline_by_kind_and_by_name(client: TestClient, sim: Simulator) -> None:
    gsid = insert_company(client, Name="Acme")
    client.post("/__sim/faults", json={"status_next": 1, "status": 503, "status_scope": "timeline"})
    assert save(client, record(gsid)).status_code == 503
    client.post("/__sim/faults", json={"server_error_next": 1, "server_error_scope": "timeline.activity"})
    assert save(client, record(gsid)).status_code == 500
    assert not sim.activities
    assert save(client, record(gsid)).status_code == 200


def test_a_late_answer_lands_the_activity_so_the_retry_meets_the_duplicate(
    client: TestClient, sim: Simulator
) -> None:
    gsid = insert_company(client, Name="Acme")
    client.post(
        "/__sim/faults",
        json={"timeout_next": 1, "timeout_scope": "timeline", "hang_seconds": 0, "timeout_applies": True},
    )
    assert save(client, record(gsid)).status_code == 200  # the answer only late, not lost here
    assert save(client, record(gsid)).json()["errorCode"] == "GSTL_DUPLICATE_EXTERNAL_ID"
    assert len(sim.activities) == 1


def test_reset_forgets_activities(client: TestClient, sim: Simulator) -> None:
    gsid = insert_company(client, Name="Acme")
    save(client, record(gsid))
    client.post("/__sim/reset")
    assert client.get("/__sim/activities").json() == []


def test_the_command_sets_timeline_s_own_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    result, served = run_command(["--timeline-rate-limit-per-minute", "9"], monkeypatch)
    assert result.exit_code == 0, result.output
    assert "Timeline 9 per 60s" in result.output and "/activities" in result.output
    assert served["app"].state.simulator.config.timeline_rate_limit_per_minute == 9
