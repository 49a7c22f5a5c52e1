"""Parity with the reference's own test suite (DESIGN §4.2, issue 11).

rudder-transformer's Gainsight processor and router cases, with the Gainsight answers each relies
on, live beside this repository in `../shared/reference/rudder-transformer-gainsight-vectors.json`
(`GSD_REFERENCE_VECTORS` names another path). They are the reference's data: read from there,
never copied here; without them these tests are skipped, except under CI (the CI variable set),
where they fail: CI lays shared/ beside the checkout, so a missing file is a broken setup.

Each case runs against our route with Gainsight behind a mock transport that serves exactly the
calls the reference makes, in the reference's matching rule (method, URL, the body and the
headers when the case gives them); any other call fails the test, and every expected call must be
made. The answer is compared as the reference's test compares it: HTTP status equal, body deep
equal (key order ignored, array order kept), with JSON types kept apart (true is not 1).

The deliberate differences of DESIGN §3.4/§6 do not show here: transformer-route outputs carry
no X-Payload-Signature (README, "RudderStack transformer routes"), and a batched `IN` search only
happens for two or more group items of one tenant in one request, which no case has; so nothing is
allowed to differ.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.settings import Settings
from tests import ci
from tests.conftest import memory_app

VECTORS_FILE = "rudder-transformer-gainsight-vectors.json"
REPO_ROOT = Path(__file__).resolve().parents[2]


def vectors_path() -> Path:
    override = os.environ.get("GSD_REFERENCE_VECTORS")
    if override:
        return Path(override)
    return REPO_ROOT.parent / "shared" / "reference" / VECTORS_FILE


def load_cases() -> list[Any]:
    path = vectors_path()
    if not path.is_file():
        return [pytest.param(path, id="vectors-absent")]
    cases = orjson.loads(path.read_bytes())["cases"]
    return [pytest.param(case, id=case["id"]) for case in cases]


def same(ours: Any, theirs: Any) -> bool:
    """jest's toEqual on JSON values: key order ignored, array order kept, booleans not numbers."""
    if isinstance(theirs, dict):
        return (
            isinstance(ours, dict)
            and ours.keys() == theirs.keys()
            and all(same(ours[k], theirs[k]) for k in theirs)
        )
    if isinstance(theirs, list):
        return (
            isinstance(ours, list)
            and len(ours) == len(theirs)
            and all(same(a, b) for a, b in zip(ours, theirs, strict=True))
        )
    if isinstance(theirs, bool) or isinstance(ours, bool):
        return ours is theirs
    if isinstance(theirs, int | float):
        return isinstance(ours, int | float) and ours == theirs
    return type(ours) is type(theirs) and ours == theirs


class ReferenceGainsight:
    """Answers the calls the case lists, each once, first match wins; fails on any other."""

    def __init__(self, network: list[dict[str, Any]]) -> None:
        self.pending = list(network)
        self.unexpected: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        for index, call in enumerate(self.pending):
            if self._matches(call, request):
                del self.pending[index]
                answer = call["response"]
                return httpx.Response(answer["status"], content=orjson.dumps(answer["data"]))
        problem = f"unexpected Gainsight call {request.method} {request.url} {request.content[:300]!r}"
        self.unexpected.append(problem)
        raise AssertionError(problem)

    @staticmethod
    def _matches(call: dict[str, Any], request: httpx.Request) -> bool:
        expected = call["request"]
        if request.method != expected["method"].upper():
            return False
        if str(request.url.copy_with(query=None)) != expected["url"]:
            return False
        # The reference passes `keys=Name` as axios params, which its mocks do not list.
        wanted_query = {"keys": "Name"} if call["role"] == "update" else {}
        if dict(request.url.params) != wanted_query:
            return False
        if "data" in expected and not same(orjson.loads(request.content), expected["data"]):
            return False
        headers = expected.get("headers", {})
        return all(request.headers.get(name) == value for name, value in headers.items())


@pytest.fixture
def destinations_file(tmp_path: Path) -> Path:
    path = tmp_path / "destinations.json"
    config = {"domain": "demo-domain.gainsightcloud.com", "accessKey": "unused"}
    path.write_bytes(orjson.dumps([{"id": "parity", "config": config}]))
    return path


@pytest.fixture
def run_case(destinations_file: Path) -> Iterator[Any]:
    def run(case: dict[str, Any]) -> tuple[httpx.Response, ReferenceGainsight]:
        gainsight = ReferenceGainsight(case["network"])
        settings = Settings(destinations=destinations_file, transformer_routes="on")
        app = memory_app(settings, transport=httpx.MockTransport(gainsight))
        with TestClient(app) as client:
            response = client.request(case["method"], case["route"], json=case["request"])
        return response, gainsight

    yield run


def check_router_shape(case: dict[str, Any], body: Any) -> None:
    """The reference's extra router checks: metadata arrays, numeric statusCode in [200, 600),
    every input jobId in exactly one output."""
    outputs = body["output"]
    for output in outputs:
        assert isinstance(output["metadata"], list)
        status = output["statusCode"]
        assert isinstance(status, int) and not isinstance(status, bool) and 200 <= status < 600
    job_ids = [m["jobId"] for output in outputs for m in output["metadata"]]
    for item in case["request"]["input"]:
        assert job_ids.count(item["metadata"]["jobId"]) == 1


def vectors_absent(path: Path) -> NoReturn:
    ci.unavailable(f"reference vectors not found at {path} (set GSD_REFERENCE_VECTORS)")


@pytest.mark.parametrize("case", load_cases())
def test_reference_case(case: dict[str, Any] | Path, run_case: Any) -> None:
    if isinstance(case, Path):
        vectors_absent(case)
        return
    response, gainsight = run_case(case)
    assert gainsight.unexpected == []
    assert gainsight.pending == [], "the reference makes these Gainsight calls; we did not"
    expected = case["expected"]
    assert response.status_code == expected["status"]
    body = response.json()
    assert same(body, expected["body"]), orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
    if case["feature"] == "router":
        check_router_shape(case, body)
