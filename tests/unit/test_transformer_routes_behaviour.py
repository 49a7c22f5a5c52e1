"""The transformer routes, behaviour by behaviour: what the reference's vectors pin (in our own
words and data), the limits of issue 9, and the budget share. Gainsight is a mock transport that
answers only the calls a test expects and fails on any other."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.settings import Settings
from tests.conftest import BASE_CONFIG, DOMAIN, memory_app

PROCESSOR = "/v0/destinations/gainsight"
GROUP = {"type": "group", "traits": {"name": "Acme"}, "context": {"traits": {"email": "ada@example.com"}}}
IDENTIFY = {"type": "identify", "traits": {"email": "ada@example.com"}}
Answer = tuple[int, Any]


class Gainsight:
    """Answers `(method, path) -> [answers…]` in order; any other call fails the test."""

    def __init__(self, script: dict[tuple[str, str], list[Answer]]) -> None:
        self.script = {key: list(answers) for key, answers in script.items()}
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        answers = self.script.get((request.method, request.url.path))
        if not answers:
            raise AssertionError(f"unexpected Gainsight call {request.method} {request.url}")
        status, body = answers.pop(0)
        return httpx.Response(status, content=orjson.dumps(body))

    def bodies(self) -> list[Any]:
        return [orjson.loads(c.content) for c in self.calls]


SEARCH = ("POST", "/v1/data/objects/query/Company")
INSERT = ("POST", "/v1/data/objects/Company")
UPDATE = ("PUT", "/v1/data/objects/Company")


def ok(records: list[dict[str, Any]]) -> Answer:
    return 200, {"result": True, "errorCode": None, "data": {"records": records}}


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def start_app(gainsight: Gainsight | None = None, **settings: Any) -> TestClient:
        destinations = tmp_path / "d.json"
        destinations.write_bytes(orjson.dumps([{"id": "acme", "config": BASE_CONFIG}]))
        options: dict[str, Any] = {"transformer_routes": "on", **settings}
        app = memory_app(
            Settings(destinations=destinations, **options),
            transport=httpx.MockTransport(gainsight or Gainsight({})),
        )
        client = TestClient(app, base_url="http://localhost")  # with auth off, a loopback Host
        clients.append(client.__enter__())
        return client

    yield start_app
    for client in clients:
        client.__exit__(None, None, None)


def item(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"message": message, "destination": {"Config": BASE_CONFIG}, **extra}


def test_processor_leaves_metadata_out_when_the_input_has_none(start: Callable[..., TestClient]) -> None:
    answers = start().post(PROCESSOR, json=[item(IDENTIFY), item({"type": "page"})]).json()
    assert ["metadata" in a for a in answers] == [False, False]


def test_processor_echoes_metadata_as_given_even_null(start: Callable[..., TestClient]) -> None:
    answers = start().post(PROCESSOR, json=[item(IDENTIFY, metadata=None), item(IDENTIFY, metadata=7)]).json()
    assert [a["metadata"] for a in answers] == [None, 7]


def test_processor_output_has_an_empty_user_id_and_the_router_request_none(
    start: Callable[..., TestClient],
) -> None:
    client = start()
    output = client.post(PROCESSOR, json=[item(IDENTIFY)]).json()[0]["output"]
    routed = client.post("/routerTransform", json={"input": [item(IDENTIFY, metadata={"jobId": 1})]}).json()
    assert output["userId"] == ""
    assert "userId" not in routed["output"][0]["batchedRequest"]
    assert {k: v for k, v in output.items() if k != "userId"} == routed["output"][0]["batchedRequest"]


def test_one_company_is_searched_with_the_reference_query(start: Callable[..., TestClient]) -> None:
    gainsight = Gainsight({SEARCH: [ok([])], INSERT: [ok([{"Gsid": "G-new"}])]})
    answer = start(gainsight).post(PROCESSOR, json=[item(GROUP)]).json()[0]
    assert gainsight.bodies()[0] == {
        "select": ["Name"],
        "where": {
            "conditions": [{"name": "Name", "alias": "A", "value": ["Acme"], "operator": "EQ"}],
            "expression": "A",
        },
    }
    assert gainsight.bodies()[1] == {"records": [{"Name": "Acme"}]}
    assert answer["output"]["body"]["JSON"] == {
        "Email": "ada@example.com",
        "companies": [{"Company_ID": "G-new"}],
    }


def test_a_search_answering_any_record_updates_the_company_by_name(
    start: Callable[..., TestClient],
) -> None:
    """Whatever the records found are named, the reference updates: Gsid from the update's answer."""
    gainsight = Gainsight(
        {SEARCH: [ok([{"Name": "Other Co"}])], UPDATE: [ok([{"Name": "Acme", "Gsid": "G-upd"}])]}
    )
    answer = start(gainsight).post(PROCESSOR, json=[item(GROUP)]).json()[0]
    update = gainsight.calls[1]
    assert (update.method, update.url.params["keys"]) == ("PUT", "Name")
    assert answer["output"]["body"]["JSON"]["companies"] == [{"Company_ID": "G-upd"}]


def test_a_refused_company_update_is_the_reference_error_text_and_is_not_repeated(
    start: Callable[..., TestClient],
) -> None:
    refusal = {"result": False, "errorCode": "GSOBJ_1006", "errorDesc": "bad date", "data": None}
    gainsight = Gainsight({SEARCH: [ok([{"Name": "Acme"}])], UPDATE: [(400, refusal)]})
    answer = start(gainsight).post(PROCESSOR, json=[item(GROUP)]).json()[0]
    assert len(gainsight.calls) == 2
    assert answer["statusCode"] == 400 and answer["statTags"]["errorType"] == "aborted"
    assert answer["error"] == (
        '{"message":"failed to update group {\\"result\\":false,\\"errorCode\\":\\"GSOBJ_1006\\",'
        '\\"errorDesc\\":\\"bad date\\",\\"data\\":null}","destinationResponse":{"response":'
        '{"result":false,"errorCode":"GSOBJ_1006","errorDesc":"bad date","data":null},"status":400}}'
    )


@pytest.mark.parametrize(("status", "error_type"), [(429, "throttled"), (502, "retryable")])
def test_a_failed_search_answers_gainsight_s_status(
    start: Callable[..., TestClient], status: int, error_type: str
) -> None:
    gainsight = Gainsight({SEARCH: [(status, {"result": False, "errorCode": "X"})]})
    answer = start(gainsight).post(PROCESSOR, json=[item(GROUP)]).json()[0]
    assert (answer["statusCode"], answer["statTags"]["errorType"]) == (status, error_type)
    error = orjson.loads(answer["error"])
    assert error["message"] == 'failed to search group {"result":false,"errorCode":"X"}'
    assert error["destinationResponse"]["status"] == status


def test_a_long_gainsight_answer_is_cut_in_the_item_s_error(start: Callable[..., TestClient]) -> None:
    gainsight = Gainsight({SEARCH: [(400, {"result": False, "errorDesc": "x" * 100_000})]})
    answer = start(gainsight).post(PROCESSOR, json=[item(GROUP)]).json()[0]
    assert answer["statusCode"] == 400 and len(answer["error"]) < 10_000


def test_group_items_of_one_tenant_share_one_in_search(start: Callable[..., TestClient]) -> None:
    """The deliberate difference of DESIGN §6: one search for the request's companies."""
    gainsight = Gainsight(
        {
            SEARCH: [ok([{"Name": "acme", "Gsid": "G-a"}])],  # Gainsight matches names ignoring case
            UPDATE: [ok([{"Name": "Acme", "Gsid": "G-a"}])],
            INSERT: [ok([{"Name": "Globex", "Gsid": "G-g"}])],
        }
    )
    globex = {**GROUP, "traits": {"name": "Globex"}}
    answers = start(gainsight).post(PROCESSOR, json=[item(GROUP), item(globex)]).json()
    condition = gainsight.bodies()[0]["where"]["conditions"][0]
    assert (condition["operator"], condition["value"]) == ("IN", ["Acme", "Globex"])
    assert [a["output"]["body"]["JSON"]["companies"] for a in answers] == [
        [{"Company_ID": "G-a"}],
        [{"Company_ID": "G-g"}],
    ]


# ---- limits (issue 9) ----


def test_the_routes_are_off_unless_switched_on(tmp_path: Path) -> None:
    destinations = tmp_path / "d.json"
    destinations.write_bytes(orjson.dumps([{"id": "acme", "config": BASE_CONFIG}]))
    with TestClient(memory_app(Settings(destinations=destinations))) as client:
        assert client.post(PROCESSOR, json=[]).status_code == 404
        assert client.post("/routerTransform", json={"input": []}).status_code == 404
        assert client.get("/features").status_code == 404
        paths = client.get("/openapi.json").json()["paths"]
    assert not {PROCESSOR, "/routerTransform", "/features"} & set(paths)


def test_the_routes_are_documented_when_on(start: Callable[..., TestClient]) -> None:
    paths = start().get("/openapi.json").json()["paths"]
    assert "413" in paths[PROCESSOR]["post"]["responses"]
    assert "413" in paths["/routerTransform"]["post"]["responses"]


def test_more_items_than_the_cap_are_refused_naming_the_setting(start: Callable[..., TestClient]) -> None:
    client = start(transformer_max_items=3)
    assert client.post(PROCESSOR, json=[{}] * 3).status_code == 200
    for response in (
        client.post(PROCESSOR, json=[{}] * 4),
        client.post("/routerTransform", json={"input": [{}] * 4}),
    ):
        assert response.status_code == 413
        assert "GSD_TRANSFORMER_MAX_ITEMS" in response.text and "at most 3" in response.text


def test_a_request_of_empty_items_answers_little(start: Callable[..., TestClient]) -> None:
    """Empty items are cheap to send; their answers must stay of the same order of size."""
    body = orjson.dumps([{}] * 1000)
    response = start().post(PROCESSOR, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200 and len(response.content) < 300 * 1000


def test_company_calls_spend_at_most_half_of_the_tenant_s_budget(start: Callable[..., TestClient]) -> None:
    gainsight = Gainsight({SEARCH: [ok([])] * 10, INSERT: [ok([{"Gsid": "G"}])] * 10})
    client = start(gainsight, rate_limit_per_minute=4)
    answers = [
        client.post(PROCESSOR, json=[item({**GROUP, "traits": {"name": f"C{n}"}})]).json()[0]
        for n in range(2)
    ]
    assert len(gainsight.calls) == 2  # half of 4: one search and one insert
    assert answers[0]["statusCode"] == 200
    assert answers[1]["statusCode"] == 429 and "rate budget" in answers[1]["error"]
    assert DOMAIN in str(gainsight.calls[0].url)


def test_each_item_is_planned_with_its_own_config(start: Callable[..., TestClient]) -> None:
    """Parsed settings are reused only for an equal Config, in any order of items and requests."""
    other = {"message": IDENTIFY, "destination": {"Config": {**BASE_CONFIG, "accessKey": "ak-other"}}}
    client = start()
    for body in ([item(IDENTIFY), other, item(IDENTIFY)], [other, other, item(IDENTIFY)]):
        answers = client.post(PROCESSOR, json=body).json()
        keys = [a["output"]["headers"]["Accesskey"] for a in answers]
        expected = ["ak-other" if entry is other else "ak-123" for entry in body]
        assert keys == expected


def test_track_headers_follow_each_item_s_settings_event_and_contract(
    start: Callable[..., TestClient],
) -> None:
    """Headers are made once per (settings, event, contract) and shared: never another item's."""
    maps = {
        "eventNameMap": [{"from": "Ticket Closed", "to": "ticket_closed"}, {"from": "Won", "to": "won"}],
        "eventVersionMap": [{"from": "Ticket Closed", "to": "1.0"}, {"from": "Won", "to": "2.0"}],
    }
    plain = {"Config": {**BASE_CONFIG, **maps}}
    other = {"Config": {**BASE_CONFIG, **maps, "sharedSecret": "ss-other", "contractId": "K-1"}}

    def track(event: str, destination: dict[str, Any], contract: str | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"type": "track", "event": event, "properties": {"n": 1}}
        if contract is not None:
            message["context"] = {"externalId": [{"type": "gainsightEventContractId", "id": contract}]}
        return {"message": message, "destination": destination}

    body = [
        track("Ticket Closed", plain),
        track("Won", plain),
        track("Ticket Closed", plain, "C-7"),
        track("Ticket Closed", other),
        track("Won", other, "C-8"),
        track("Ticket Closed", plain),
    ]
    client = start()
    for _ in range(2):  # the second request is answered from the shared headers
        answers = client.post(PROCESSOR, json=body).json()
        seen = [
            (h["eventName"], h["eventVersion"], h.get("contractId"), h["sharedSecret"])
            for h in (a["output"]["headers"] for a in answers)
        ]
        assert seen == [
            ("ticket_closed", "1.0", None, "ss-456"),
            ("won", "2.0", None, "ss-456"),
            ("ticket_closed", "1.0", "C-7", "ss-456"),
            ("ticket_closed", "1.0", "K-1", "ss-other"),
            ("won", "2.0", "C-8", "ss-other"),
            ("ticket_closed", "1.0", None, "ss-456"),
        ]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("route", [PROCESSOR, "/routerTransform"])
def test_json_nested_beyond_what_can_be_written_back_is_refused(
    start: Callable[..., TestClient], route: str
) -> None:
    client = start()
    deep = {"type": "track", "event": "Ticket Closed", "properties": {"x": nested(260)}}
    body = [item(deep)] if route == PROCESSOR else {"input": [item(deep)]}
    response = client.post(route, content=_dump(body), headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and "254 levels" in response.json()["error"]


def test_the_deepest_writable_item_is_answered(start: Callable[..., TestClient]) -> None:
    """Its answer nests one level deeper than orjson writes: the fallback writer takes it."""
    deep = {"type": "track", "event": "Ticket Closed", "properties": {"x": nested(250)}}
    response = start().post(
        PROCESSOR, content=_dump([item(deep)]), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json()[0]["output"]["body"]["JSON"] == {"x": nested(250)}


def _dump(value: Any) -> bytes:
    return json.dumps(value).encode()  # orjson would refuse to write the deepest of these


# ---------------------------------------------------------------- answered before FastAPI's routing


def test_the_processor_route_refuses_cross_origin_page_posts_in_sandbox_mode(
    start: Callable[..., TestClient],
) -> None:
    client = start(auth="off")
    body = orjson.dumps([item(IDENTIFY)])
    refused = client.post(PROCESSOR, content=body, headers={"Origin": "https://evil.example"})
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"
    assert (
        client.post(PROCESSOR, content=body, headers={"Content-Type": "application/json"}).status_code == 200
    )


def test_other_methods_on_the_transformer_paths_are_answered_by_the_app(
    start: Callable[..., TestClient],
) -> None:
    client = start()
    response = client.get(PROCESSOR)
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
    assert client.get("/features").json() == {"routerTransform": {"GAINSIGHT": True}}


def test_a_store_that_cannot_commit_answers_503_with_retry_after(tmp_path: Path) -> None:
    """A group item takes rate budget from the store: when the store is down, the request is
    answered 503 (rudder-server retries it), never a 500, and /ready names the store."""
    from destination.delivery.store import Store, StoreUnavailableError

    class DownStore:
        def __init__(self, inner: Store) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        async def take_budget(self, tenant_key: str, windows: Any) -> str | None:
            raise StoreUnavailableError("store unavailable: disk I/O error")

    destinations = tmp_path / "d.json"
    destinations.write_bytes(orjson.dumps([{"id": "acme", "config": BASE_CONFIG}]))
    settings = Settings(destinations=destinations, transformer_routes="on")
    gainsight = Gainsight({})
    app = memory_app(settings, transport=httpx.MockTransport(gainsight), wrap_store=DownStore)
    with TestClient(app) as client:
        response = client.post(PROCESSOR, json=[item(GROUP)])
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert response.json()["code"] == "unavailable" and "disk I/O error" in response.json()["message"]
        assert gainsight.calls == []
        ready = client.get("/ready")
        assert ready.status_code == 503 and "store cannot commit" in ready.json()["problems"][0]


def test_an_item_whose_settings_lack_the_domain_is_refused_alone(start: Callable[..., TestClient]) -> None:
    no_domain = {k: v for k, v in BASE_CONFIG.items() if k != "domain"}
    track = {"type": "track", "event": "Ticket Closed"}
    items = [
        {"message": IDENTIFY, "destination": {"Config": no_domain}},
        {"message": track, "destination": {"Config": no_domain}},
        {"message": GROUP, "destination": {"Config": no_domain}},
        item(IDENTIFY),
    ]
    answers = start().post(PROCESSOR, json=items).json()
    assert [a["statusCode"] for a in answers] == [400, 400, 400, 200]
    assert [a.get("error") for a in answers[:3]] == [
        "domain is required for identify",
        "domain is required for track",
        "domain is required for group",
    ]
