"""End to end: the real service process speaks RudderStack's transformer protocol over HTTP, with
the simulator process as Gainsight. The test plays rudder-server: it sends the outputs on, and
checks the simulator's Person, Company, association and event state."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.servers import DOMAIN, Server, sandbox_config, start_service, start_simulator

META = {"jobId": 1, "destinationId": "d1"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("protocol")


@pytest.fixture(scope="module")
def simulator(workdir: Path) -> Iterator[Server]:
    with start_simulator(workdir) as server:
        yield server


@pytest.fixture(scope="module")
def service(workdir: Path, simulator: Server) -> Iterator[Server]:
    destinations = [{"id": "acme", "writeKeys": ["wk"], "config": sandbox_config()}]
    with start_service(workdir, destinations, simulator.base_url, GSD_TRANSFORMER_ROUTES="on") as server:
        yield server


@pytest.fixture(autouse=True)
def clean_simulator(simulator: Server) -> None:
    httpx.post(simulator.base_url + "/__sim/reset").raise_for_status()


def item(message: dict[str, Any], **config: Any) -> dict[str, Any]:
    return {
        "message": message,
        "destination": {"ID": "d1", "Config": sandbox_config(**config)},
        "metadata": META,
    }


def relay(output: dict[str, Any], simulator: Server) -> httpx.Response:
    """What rudder-server does with an output: send it (here to the simulator, not the domain)."""
    endpoint = output["endpoint"]
    assert endpoint.startswith(f"https://{DOMAIN}/")
    url = simulator.base_url + endpoint.removeprefix(f"https://{DOMAIN}")
    return httpx.request(
        output["method"], url, headers=output["headers"], params=output["params"], json=output["body"]["JSON"]
    )


def sim(simulator: Server, what: str) -> Any:
    return httpx.get(f"{simulator.base_url}/__sim/{what}").json()


IDENTIFY = {
    "type": "identify",
    "messageId": "id-1",
    "traits": {
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "seats": "5",
        "unmapped": 1,
    },
}
GROUP = {
    "type": "group",
    "messageId": "gr-1",
    "traits": {"name": "Acme Ltd", "employees": "120", "region": "EMEA"},
    "context": {"traits": {"email": "ada@example.com"}},
}
TRACK = {
    "type": "track",
    "event": "Ticket Closed",
    "messageId": "tr-1",
    "properties": {"ticketId": "T-42", "n": 1},
}


def test_processor_outputs_relayed_leave_person_company_association_and_event(
    service: Server, simulator: Server
) -> None:
    with service.client() as client:
        identify = client.post("/v0/destinations/gainsight", json=[item(IDENTIFY)]).json()[0]
        assert identify["statusCode"] == 200 and identify["metadata"] == META
        assert relay(identify["output"], simulator).status_code == 200
        group, track = client.post("/v0/destinations/gainsight", json=[item(GROUP), item(TRACK)]).json()
    assert group["statusCode"] == 200 and track["statusCode"] == 200
    assert relay(group["output"], simulator).status_code == 200
    assert relay(track["output"], simulator).status_code == 200

    (company,) = sim(simulator, "companies")
    assert (company["Name"], company["Employees"], company["Region__gc"]) == ("Acme Ltd", 120, "EMEA")
    (person,) = sim(simulator, "people")
    assert (person["Email"], person["Name"], person["Seats__gc"]) == ("ada@example.com", "Ada Lovelace", 5)
    assert "unmapped" not in person
    assert person["companies"] == [{"Company_ID": company["Gsid"]}]
    (event,) = sim(simulator, "events")
    assert (event["eventName"], event["eventVersion"], event["body"]) == (
        "ticket_closed",
        "1.0",
        {"ticketId": "T-42", "n": 1},
    )
    # Outputs are unsigned: rudder-server sends them later, re-serialised (README).
    assert event["signed"] is False


def test_existing_company_is_updated_not_duplicated(service: Server, simulator: Server) -> None:
    with service.client() as client:
        first = client.post("/v0/destinations/gainsight", json=[item(GROUP)]).json()[0]
        changed = {**GROUP, "traits": {"name": "Acme Ltd", "employees": 130}}
        second = client.post("/v0/destinations/gainsight", json=[item(changed)]).json()[0]
    assert first["output"]["body"]["JSON"] == second["output"]["body"]["JSON"]
    (company,) = sim(simulator, "companies")
    assert company["Employees"] == 130 and company["Region__gc"] == "EMEA"


def test_concurrent_group_requests_create_a_company_once(service: Server, simulator: Server) -> None:
    body = [item({**GROUP, "traits": {"name": "Parallel Inc", "employees": i}}) for i in range(5)]

    def send(_: int) -> list[dict[str, Any]]:
        with service.client() as client:
            return list(client.post("/v0/destinations/gainsight", json=body).json())

    with ThreadPoolExecutor(8) as pool:
        answers = [a for batch in pool.map(send, range(8)) for a in batch]
    assert {a["statusCode"] for a in answers} == {200}
    companies = sim(simulator, "companies")
    assert [c["Name"] for c in companies] == ["Parallel Inc"]
    assert {a["output"]["body"]["JSON"]["companies"][0]["Company_ID"] for a in answers} == {
        companies[0]["Gsid"]
    }


def test_gainsight_4xx_on_company_write_is_a_400_item_with_its_description(service: Server) -> None:
    bad = {**GROUP, "traits": {"name": "Bad Dates", "renewalDate": "210318"}}
    with service.client() as client:
        answer = client.post("/v0/destinations/gainsight", json=[item(bad)]).json()[0]
    assert answer["statusCode"] == 400 and answer["statTags"]["errorType"] == "aborted"
    assert "210318" in answer["error"]


def test_router_transform_over_http(service: Server, simulator: Server) -> None:
    with service.client() as client:
        response = client.post(
            "/routerTransform",
            json={"destType": "gainsight", "input": [item(IDENTIFY), item({"type": "page"})]},
        )
    assert response.status_code == 200 and response.headers["apiVersion"] == "2"
    ok, bad = response.json()["output"]
    assert ok["statusCode"] == 200 and ok["metadata"] == [META] and ok["batched"] is False
    assert relay(ok["batchedRequest"], simulator).status_code == 200
    assert sim(simulator, "people")[0]["Email"] == "ada@example.com"
    assert bad["statusCode"] == 400 and bad["error"] == "message type page not supported"


def test_protocol_routes_reject_bodies_of_the_wrong_shape(service: Server) -> None:
    with service.client() as client:
        assert client.post("/v0/destinations/gainsight", json={"message": {}}).status_code == 400
        assert client.post("/routerTransform", json=[item(IDENTIFY)]).status_code == 400
        assert client.get("/features").json() == {"routerTransform": {"GAINSIGHT": True}}


def test_openapi_lists_every_route(service: Server) -> None:
    with service.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    for path in (
        "/v0/destinations/gainsight",
        "/routerTransform",
        "/v1/transform",
        "/v1/identify",
        "/v1/batch",
        "/webhook",
        "/health",
        "/admin/dead-letters",
    ):
        assert path in paths, path


def test_a_large_body_of_empty_items_is_refused_by_the_item_cap(service: Server) -> None:
    body = b"[" + b"{}," * 999_999 + b"{}]"  # 3 MB, a million items
    with service.client() as client:
        response = client.post(
            "/v0/destinations/gainsight", content=body, headers={"Content-Type": "application/json"}
        )
        assert client.get("/health").status_code == 200
    assert response.status_code == 413 and len(response.content) < 1000
    assert "GSD_TRANSFORMER_MAX_ITEMS" in response.json()["error"]


def test_the_routes_are_off_without_the_setting(workdir: Path, simulator: Server) -> None:
    destinations = [{"id": "acme", "writeKeys": ["wk"], "config": sandbox_config()}]
    (workdir / "off").mkdir()
    with (
        start_service(workdir / "off", destinations, simulator.base_url) as server,
        server.client() as client,
    ):
        assert client.post("/v0/destinations/gainsight", json=[item(IDENTIFY)]).status_code == 404
        assert "/routerTransform" not in client.get("/openapi.json").json()["paths"]
