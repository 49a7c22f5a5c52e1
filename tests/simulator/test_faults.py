"""Injected faults, set at start or at run time through /__sim/faults, optionally scoped by kind."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from destination.simulator import FaultConfig, Simulator, SimulatorConfig
from tests.simulator.helpers import ACCESS, EVENTS, PEOPLE, QUERY, event_headers, sim_client


def set_faults(client: TestClient, **changes: Any) -> dict[str, Any]:
    response = client.post("/__sim/faults", json=changes)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def ping(client: TestClient) -> httpx.Response:
    response: httpx.Response = client.get(PEOPLE, headers=ACCESS)
    return response


def test_error_rate_one_answers_500_gu_1101(client: TestClient) -> None:
    set_faults(client, error_rate=1.0)
    response = ping(client)
    assert response.status_code == 500
    assert response.json()["errorCode"] == "GU_1101" and response.json()["result"] is False


def test_seeded_error_rate_is_reproducible() -> None:
    def run() -> list[int]:
        config = SimulatorConfig.sandbox(faults=FaultConfig(error_rate=0.5, seed=7))
        with sim_client(config) as client:
            return [ping(client).status_code for _ in range(40)]

    first = run()
    assert first == run()
    assert 5 < first.count(500) < 35 and set(first) == {200, 500}


def test_throttle_burst_answers_429_for_the_next_n_calls(client: TestClient, sim: Simulator) -> None:
    set_faults(client, throttle_next=2)
    statuses = [ping(client).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    assert sim.counters_view()["endpoints"]["people.ping"]["faults"] == {"throttle": 2}


def test_injected_429_has_gainsights_throttle_body(client: TestClient) -> None:
    set_faults(client, throttle_next=1)
    body = ping(client).json()
    assert (body["errorCode"], body["errorDesc"]) == ("GU_2400", "Too many request")


def test_server_errors_for_the_next_n_calls_with_chosen_status(client: TestClient) -> None:
    set_faults(client, server_error_next=2, server_error_status=503)
    assert [ping(client).status_code for _ in range(3)] == [503, 503, 200]


def test_latency_is_added_to_every_call(client: TestClient) -> None:
    set_faults(client, latency_seconds=0.05)
    started = time.perf_counter()
    assert ping(client).status_code == 200
    assert time.perf_counter() - started >= 0.05


def test_timeout_holds_the_answer_but_carries_out_the_call(client: TestClient, sim: Simulator) -> None:
    set_faults(client, timeout_next=1, hang_seconds=0.2)
    started = time.perf_counter()
    response = client.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com"})
    assert time.perf_counter() - started >= 0.2
    assert response.status_code == 200 and len(sim.people) == 1
    assert ping(client).status_code == 200


def test_timeout_that_does_not_apply_hangs_then_504_without_writing(
    client: TestClient, sim: Simulator
) -> None:
    set_faults(client, timeout_next=1, hang_seconds=0.05, timeout_applies=False)
    response = client.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com"})
    assert response.status_code == 504 and not sim.people


def test_dropped_connection_in_process_raises_a_transport_error(client: TestClient, sim: Simulator) -> None:
    set_faults(client, drop_next=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com"})
    assert not sim.people
    assert ping(client).status_code == 200
    [dropped, _] = sim.requests_view()
    assert (dropped["status"], dropped["outcome"]) == (None, "fault:drop")


def test_faults_scoped_to_one_kind_spare_the_others(client: TestClient) -> None:
    set_faults(client, throttle_next=1, throttle_scope="events", error_rate=1.0, error_rate_scope="company")
    assert ping(client).status_code == 200
    assert client.post(QUERY, headers=ACCESS, json={"select": ["Name"]}).status_code == 500
    assert client.post(EVENTS, headers=event_headers(), json={"a": 1}).status_code == 429
    assert client.post(EVENTS, headers=event_headers(), json={"a": 1}).status_code == 200


def test_one_counted_fault_per_call_drop_first(client: TestClient) -> None:
    set_faults(client, throttle_next=1, server_error_next=1, drop_next=1)
    with pytest.raises(httpx.RemoteProtocolError):
        ping(client)
    assert [ping(client).status_code for _ in range(3)] == [429, 500, 200]


def test_faults_set_at_start_from_config() -> None:
    with sim_client(SimulatorConfig.sandbox(faults=FaultConfig(server_error_next=1))) as client:
        assert [ping(client).status_code for _ in range(2)] == [500, 200]


def test_faulted_calls_still_count_against_the_budget() -> None:
    config = SimulatorConfig.sandbox(rate_limit_per_minute=2, faults=FaultConfig(server_error_next=1))
    with sim_client(config) as client:
        assert [ping(client).status_code for _ in range(3)] == [500, 200, 429]


def test_admin_route_reads_updates_and_clears_faults(client: TestClient) -> None:
    assert client.get("/__sim/faults").json()["drop_next"] == 0
    updated = set_faults(client, drop_next=3, drop_scope="people")
    assert (updated["drop_next"], updated["drop_scope"]) == (3, "people")
    assert set_faults(client, latency_seconds=0.0)["drop_next"] == 3  # fields not sent stay
    cleared = client.delete("/__sim/faults").json()
    assert cleared == FaultConfig().model_dump()


@pytest.mark.parametrize(
    "changes",
    [{"error_rate": 2}, {"drop_next": -1}, {"drop_scope": "billing"}, {"explode": True}, [1]],
)
def test_invalid_fault_settings_are_400(client: TestClient, changes: Any) -> None:
    response = client.post("/__sim/faults", json=changes)
    assert response.status_code == 400 and response.json()["result"] is False
    assert client.get("/__sim/faults").json() == FaultConfig().model_dump()


def test_admin_routes_are_never_faulted(client: TestClient) -> None:
    set_faults(client, error_rate=1.0, drop_next=5)
    assert client.get("/__sim/counters").status_code == 200
    assert client.get("/__sim/faults").json()["drop_next"] == 5


def test_status_fault_answers_any_4xx_for_the_next_n_calls(client: TestClient) -> None:
    set_faults(client, status_next=2, status=404)
    responses = [ping(client) for _ in range(3)]
    assert [r.status_code for r in responses] == [404, 404, 200]
    body = responses[0].json()
    assert body["result"] is False and body["errorCode"] == "GSOBJ_1002" and "404" in body["errorDesc"]


@pytest.mark.parametrize(("status", "code"), [(401, "GS_APIG_2401"), (429, "GU_2400"), (503, "GU_1101")])
def test_status_fault_uses_gainsights_envelope_for_the_status(
    client: TestClient, status: int, code: str
) -> None:
    set_faults(client, status_next=1, status=status)
    response = ping(client)
    assert (response.status_code, response.json()["errorCode"]) == (status, code)


def test_status_fault_scoped_to_one_endpoint_spares_its_kind(client: TestClient, sim: Simulator) -> None:
    set_faults(client, status_next=1, status=400, status_scope="people.upsert")
    assert ping(client).status_code == 200  # people.ping: same kind, other endpoint
    assert client.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com"}).status_code == 400
    assert not sim.people
    assert client.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com"}).status_code == 200
    assert sim.counters_view()["endpoints"]["people.upsert"]["faults"] == {"status": 1}


def test_every_scope_may_name_an_endpoint(client: TestClient) -> None:
    set_faults(client, throttle_next=1, throttle_scope="company.query")
    assert ping(client).status_code == 200
    assert client.post(QUERY, headers=ACCESS, json={"select": ["Name"]}).status_code == 429


@pytest.mark.parametrize("changes", [{"status": 399}, {"status": 600}, {"status_scope": "people.delete"}])
def test_status_fault_outside_400_to_599_or_unknown_endpoint_is_400(
    client: TestClient, changes: dict[str, Any]
) -> None:
    response = client.post("/__sim/faults", json=changes)
    assert response.status_code == 400 and response.json()["result"] is False
