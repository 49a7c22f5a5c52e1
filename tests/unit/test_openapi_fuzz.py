"""schemathesis against the service's own OpenAPI: no request the schema allows gets a 5xx, and
every status it answers is one the document lists for that operation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from destination.settings import Settings
from tests.conftest import BASE_CONFIG, memory_app
from tests.gainsight_fake import StrictGainsight

schemathesis = pytest.importorskip("schemathesis")


GAINSIGHT = StrictGainsight()  # the workers deliver what the fuzzer sends; any stray call fails
ADMIN_TOKEN = "fuzz-admin-token"  # so that the admin routes are exercised too


def _app(tmp: Path) -> Any:
    path = tmp / "destinations.json"
    path.write_bytes(orjson.dumps([{"id": "acme", "writeKeys": ["wk"], "config": BASE_CONFIG}]))
    # With auth off, only loopback names and GSD_HOST are answered: schemathesis calls the app
    # as "testserver".
    settings = Settings(destinations=path, auth="off", admin_token=ADMIN_TOKEN, host="testserver")
    return memory_app(settings, transport=GAINSIGHT.transport())


_TMP = Path(__import__("tempfile").mkdtemp(prefix="gsd-fuzz-"))
APP = _app(_TMP)
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
DOCUMENT: dict[str, Any] = APP.openapi()


@pytest.fixture(scope="module", autouse=True)
def lifespan() -> Iterator[None]:
    with TestClient(APP):
        yield
    assert GAINSIGHT.unexpected == []


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_no_undocumented_status(case: Any) -> None:
    response = case.call(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    operation = DOCUMENT["paths"][case.path].get(case.method.lower())
    if operation is None:  # a method the path does not take: 405, or a templated route's 4xx
        assert 400 <= response.status_code < 500, (case.method, case.path, response.status_code)
        return
    documented = set(operation["responses"])
    assert str(response.status_code) in documented, (case.method, case.path, response.status_code, documented)
