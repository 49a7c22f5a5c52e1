"""The RudderStack transformer protocol routes, in process, with Gainsight behind a mock transport."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.settings import Settings
from tests.conftest import BASE_CONFIG, DOMAIN, memory_app

META = {"jobId": 7, "sourceId": "src", "anything": ["kept", {"as": "is"}]}


def item(message: dict[str, Any], config: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "message": message,
        "destination": {"ID": "d1", "Config": config or BASE_CONFIG},
        "metadata": META,
    }


IDENTIFY = {"type": "identify", "traits": {"email": "ada@example.com", "firstName": "Ada"}}
TRACK = {"type": "track", "event": "Ticket Closed", "messageId": "m1", "properties": {"ticketId": "T-1"}}
GROUP = {"type": "group", "traits": {"name": "Acme"}, "context": {"traits": {"email": "ada@example.com"}}}


def companies_handler(calls: list[httpx.Request]) -> Callable[[httpx.Request], httpx.Response]:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if request.url.path.endswith("/query/Company"):
            return httpx.Response(200, json={"result": True, "data": {"records": []}})
        if request.url.path.endswith("/objects/Company"):
            return httpx.Response(200, json={"result": True, "data": {"records": [{"Gsid": "GS1"}]}})
        return httpx.Response(404)

    return handler


@pytest.fixture
def calls() -> list[httpx.Request]:
    return []


@pytest.fixture
def client(
    tmp_path: Path, calls: list[httpx.Request], monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    destinations = tmp_path / "destinations.json"
    destinations.write_bytes(
        orjson.dumps({"destinations": [{"id": "acme", "writeKeys": ["wk"], "config": BASE_CONFIG}]})
    )
    settings = Settings(destinations=destinations, transformer_routes="on")
    app = memory_app(settings, transport=httpx.MockTransport(companies_handler(calls)))
    with TestClient(app) as test_client:
        yield test_client


def test_identify_output_envelope(client: TestClient) -> None:
    response = client.post("/v0/destinations/gainsight", json=[item(IDENTIFY)])
    assert response.status_code == 200 and response.headers["apiVersion"] == "2"
    assert response.json() == [
        {
            "output": {
                "version": "1",
                "type": "REST",
                "method": "PUT",
                "endpoint": f"https://{DOMAIN}/v1.0/api/people",
                "headers": {"Accesskey": "ak-123", "Content-Type": "application/json"},
                "params": {},
                "body": {
                    "JSON": {"Email": "ada@example.com", "FirstName": "Ada", "Name": "Ada"},
                    "JSON_ARRAY": {},
                    "XML": {},
                    "FORM": {},
                },
                "files": {},
                "userId": "",
            },
            "statusCode": 200,
            "metadata": META,
        }
    ]


def test_track_output_is_unsigned_because_rudder_server_resends_it_later(client: TestClient) -> None:
    output = client.post("/v0/destinations/gainsight", json=[item(TRACK)]).json()[0]["output"]
    assert output["headers"] == {
        "sharedSecret": "ss-456",
        "tenantId": "tenant-1",
        "topicName": "Support",
        "eventName": "ticket_closed",
        "eventVersion": "1.0",
        "Content-Type": "application/json",
        "Accesskey": "ak-123",
    }
    assert output["body"]["JSON"] == {"ticketId": "T-1"}


def test_group_output_is_the_association_after_company_calls(
    client: TestClient, calls: list[httpx.Request]
) -> None:
    answer = client.post("/v0/destinations/gainsight", json=[item(GROUP)]).json()[0]
    assert answer["statusCode"] == 200
    assert answer["output"]["body"]["JSON"] == {
        "Email": "ada@example.com",
        "companies": [{"Company_ID": "GS1"}],
    }
    assert [(c.method, c.url.host, c.url.path) for c in calls] == [
        ("POST", DOMAIN, "/v1/data/objects/query/Company"),
        ("POST", DOMAIN, "/v1/data/objects/Company"),
    ]


def test_errors_are_items_in_order_with_stat_tags(client: TestClient) -> None:
    body = [
        item({"type": "identify", "traits": {}}),
        item(IDENTIFY),
        item({"type": "page"}),
        item(TRACK, {**BASE_CONFIG, "sharedSecret": ""}),
    ]
    answers = client.post("/v0/destinations/gainsight", json=body).json()
    assert [a["statusCode"] for a in answers] == [400, 200, 400, 400]
    assert answers[0]["error"] == "email is required for identify"
    assert answers[0]["statTags"] == {
        "errorCategory": "dataValidation",
        "errorType": "instrumentation",
        "destType": "GAINSIGHT",
        "module": "destination",
        "implementation": "native",
        "feature": "processor",
    }
    assert answers[2]["error"] == "message type page not supported"
    assert answers[3]["error"] == "sharedSecret is required for track"
    assert answers[3]["statTags"]["errorType"] == "configuration"
    assert all(a["metadata"] == META for a in answers)


def test_gainsight_failures_map_to_status_codes(tmp_path: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        name = orjson.loads(request.content)["where"]["conditions"][0]["value"][0]
        status = {"T": 429, "R": 503, "A": 400}[name]
        return httpx.Response(
            status, json={"result": False, "errorCode": f"E{status}", "errorDesc": f"desc {status}"}
        )

    destinations = tmp_path / "d.json"
    destinations.write_bytes(orjson.dumps([{"id": "acme", "config": BASE_CONFIG}]))
    app = memory_app(
        Settings(destinations=destinations, transformer_routes="on"),
        transport=httpx.MockTransport(handler),
    )
    with TestClient(app) as test_client:
        answers = [
            test_client.post(
                "/v0/destinations/gainsight", json=[item({**GROUP, "traits": {"name": n}})]
            ).json()[0]
            for n in ("T", "R", "A")
        ]
    assert [
        (a["statusCode"], a["statTags"]["errorCategory"], a["statTags"]["errorType"]) for a in answers
    ] == [
        (429, "network", "throttled"),
        (503, "network", "retryable"),  # Gainsight's own status, as the reference answers
        (400, "network", "aborted"),
    ]
    assert orjson.loads(answers[2]["error"]) == {
        "message": 'failed to search group {"result":false,"errorCode":"E400","errorDesc":"desc 400"}',
        "destinationResponse": {
            "response": {"result": False, "errorCode": "E400", "errorDesc": "desc 400"},
            "status": 400,
        },
    }


def test_company_calls_only_to_allowed_domains(client: TestClient, calls: list[httpx.Request]) -> None:
    config = {**BASE_CONFIG, "domain": "evil.example.com"}
    answer = client.post("/v0/destinations/gainsight", json=[item(GROUP, config)]).json()[0]
    assert answer["statusCode"] == 400 and "evil.example.com is not allowed" in answer["error"]
    assert calls == []


def test_invalid_settings_name_the_setting(client: TestClient) -> None:
    config = {**BASE_CONFIG, "personMap": [{"from": "seats", "to": "Seats"}]}
    answer = client.post("/v0/destinations/gainsight", json=[item(IDENTIFY, config)]).json()[0]
    assert answer["statusCode"] == 400 and "personMap[0].to" in answer["error"]


def test_dashboard_empty_map_rows_are_accepted(client: TestClient) -> None:
    config = {**BASE_CONFIG, "personMap": [{"from": "", "to": ""}], "companyMap": [{"from": "", "to": ""}]}
    assert (
        client.post("/v0/destinations/gainsight", json=[item(IDENTIFY, config)]).json()[0]["statusCode"]
        == 200
    )


@pytest.mark.parametrize("body", [b'{"a": 1}', b'"x"', b"not json", b""])
def test_processor_body_must_be_an_array(client: TestClient, body: bytes) -> None:
    response = client.post(
        "/v0/destinations/gainsight", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400 and "error" in response.json()


def test_gzip_body_is_accepted(client: TestClient) -> None:
    raw = gzip.compress(orjson.dumps([item(IDENTIFY)]))
    response = client.post(
        "/v0/destinations/gainsight",
        content=raw,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200 and response.json()[0]["statusCode"] == 200


def test_router_transform(client: TestClient) -> None:
    destination = {"ID": "d1", "Config": BASE_CONFIG}
    body = {"destType": "gainsight", "input": [item(IDENTIFY), item({"type": "alias"})]}
    response = client.post("/routerTransform", json=body)
    assert response.status_code == 200 and response.headers["apiVersion"] == "2"
    ok, bad = response.json()["output"]
    assert ok["batched"] is False and ok["statusCode"] == 200 and ok["metadata"] == [META]
    assert ok["batchedRequest"]["endpoint"] == f"https://{DOMAIN}/v1.0/api/people"
    assert ok["destination"] == destination
    assert bad["statusCode"] == 400 and bad["error"] == "message type alias not supported"
    assert bad["statTags"]["feature"] == "router" and bad["metadata"] == [META]


@pytest.mark.parametrize("body", [[], {"destType": "gainsight"}, {"input": "x"}])
def test_router_requires_input(client: TestClient, body: Any) -> None:
    response = client.post("/routerTransform", json=body)
    assert response.status_code == 400 and "input" in response.json()["error"]


def test_features(client: TestClient) -> None:
    response = client.get("/features")
    assert (
        response.json() == {"routerTransform": {"GAINSIGHT": True}} and response.headers["apiVersion"] == "2"
    )


def test_dry_run_transform_hides_secrets(client: TestClient) -> None:
    batch = {"batch": [IDENTIFY, TRACK, GROUP, {"type": "page"}]}
    assert client.post("/v1/transform", json=batch).status_code == 401  # auth is on: no credentials
    response = client.post("/v1/transform", json=batch, auth=("wk", ""))
    assert response.status_code == 200
    results = response.json()["results"]
    assert results[0]["requests"][0]["headers"]["Accesskey"] == "***"
    assert results[1]["requests"][0]["headers"]["sharedSecret"] == "***"
    assert [r["step"] for r in results[2]["requests"]] == [
        "company search",
        "company insert",
        "company update",
        "person upsert",
    ]
    assert results[3]["error"] == "message type page not supported"
    assert "ak-123" not in response.text and "ss-456" not in response.text


def test_transformer_routes_can_be_switched_off(tmp_path: Path) -> None:
    destinations = tmp_path / "d.json"
    destinations.write_bytes(orjson.dumps([{"id": "acme", "config": BASE_CONFIG}]))
    app = memory_app(Settings(destinations=destinations, transformer_routes="off"))
    with TestClient(app) as test_client:
        assert test_client.post("/v0/destinations/gainsight", json=[]).status_code == 404


def test_company_calls_respect_the_rate_budget(tmp_path: Path, calls: list[httpx.Request]) -> None:
    destinations = tmp_path / "d.json"
    destinations.write_bytes(orjson.dumps([{"id": "acme", "config": BASE_CONFIG}]))
    settings = Settings(destinations=destinations, transformer_routes="on", rate_limit_per_minute=1)
    app = memory_app(settings, transport=httpx.MockTransport(companies_handler(calls)))
    with TestClient(app) as test_client:
        answer = test_client.post("/v0/destinations/gainsight", json=[item(GROUP)]).json()[0]
    assert answer["statusCode"] == 429 and answer["statTags"]["errorType"] == "throttled"
    assert "rate budget" in answer["error"]
    assert len(calls) <= 1


def test_an_item_whose_config_keys_companies_follows_that_key(
    client: TestClient, calls: list[httpx.Request]
) -> None:
    keyed = {**BASE_CONFIG, "companyIdentity": {"field": "SfdcAccountId", "create": True}}
    plain, by_key = GROUP, {**GROUP, "groupId": "001A"}
    response = client.post("/v0/destinations/gainsight", json=[item(plain), item(by_key, keyed)])
    assert [out["statusCode"] for out in response.json()] == [200, 200]
    searched = [orjson.loads(c.content)["where"]["conditions"][0] for c in calls if "query" in c.url.path]
    assert sorted((s["name"], s["value"][0]) for s in searched) == [
        ("Name", "Acme"),
        ("SfdcAccountId", "001A"),
    ]
    keyed_insert = [c for c in calls if c.method == "POST" and c.url.path.endswith("/objects/Company")]
    records = [r for c in keyed_insert for r in orjson.loads(c.content)["records"]]
    assert {"Name": "Acme", "SfdcAccountId": "001A"} in records


def test_an_update_only_item_whose_company_is_unknown_is_a_400_naming_the_key(client: TestClient) -> None:
    update_only = {**BASE_CONFIG, "companyIdentity": {"field": "SfdcAccountId", "create": False}}
    response = client.post(
        "/v0/destinations/gainsight", json=[item({**GROUP, "groupId": "001X"}, update_only)]
    )
    (out,) = response.json()
    assert out["statusCode"] == 400
    assert "no Company with SfdcAccountId = 001X; creating companies is off" in out["error"]
