"""Ingest in process, at its edges: error shapes, limits, a store that cannot commit, origins, and
a hypothesis search for any body that makes it answer 5xx."""

from __future__ import annotations

import gzip
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from destination.app import create_app
from destination.delivery.sqlite import SQLiteStore
from destination.delivery.sqlite_writer import _unavailable
from destination.delivery.store import Store, StoreFullError, StoreUnavailableError
from destination.settings import Settings
from tests.conftest import BASE_CONFIG, memory_app
from tests.gainsight_fake import StrictGainsight

AUTH = ("wk", "")
TRACK = {"type": "track", "event": "Ticket Closed", "userId": "u", "properties": {}}


def _destinations(tmp: Path) -> Path:
    path = tmp / "destinations.json"
    path.write_bytes(orjson.dumps([{"id": "acme", "writeKeys": ["wk"], "config": BASE_CONFIG}]))
    return path


_FAKES: list[StrictGainsight] = []


def _gainsight() -> httpx.MockTransport:
    _FAKES.append(StrictGainsight())
    return _FAKES[-1].transport()


@pytest.fixture(autouse=True)
def _no_unexpected_gainsight_call() -> Iterator[None]:
    yield
    assert [call for fake in _FAKES for call in fake.unexpected] == []


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings_ = Settings(destinations=_destinations(tmp_path))
    with TestClient(memory_app(settings_, transport=_gainsight())) as test_client:
        yield test_client


def nested(depth: int) -> Any:
    """An object nesting `depth` levels deep."""
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


# ---------------------------------------------------------------- error bodies


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("POST", "/v1/track", {"content": b"{"}, 400, "invalid_request"),
        ("POST", "/v1/track", {"json": TRACK, "auth": ("nope", "")}, 401, "unauthorized"),
        ("GET", "/no/such/route", {}, 404, "not_found"),
        ("GET", "/v1/track", {}, 405, "method_not_allowed"),
        ("POST", "/v1/track", {"content": b"x", "headers": {"Content-Encoding": "br"}}, 415, None),
    ],
)
def test_every_error_carries_code_message_and_error(
    client: TestClient, method: str, path: str, kwargs: dict[str, Any], status: int, code: str | None
) -> None:
    kwargs.setdefault("auth", AUTH)
    response = client.request(method, path, **kwargs)
    body = response.json()
    assert response.status_code == status
    assert set(body) == {"code", "message", "error"} and body["error"] == body["message"] and body["message"]
    assert code is None or body["code"] == code


# ---------------------------------------------------------------- limits


def test_json_nested_deeper_than_100_is_refused_naming_the_limit(client: TestClient) -> None:
    ok = {**TRACK, "properties": nested(99)}  # the event: 100 levels
    assert client.post("/v1/track", json=ok, auth=AUTH).json()["stored"] == 1
    assert client.post("/v1/batch", json={"batch": [ok]}, auth=AUTH).json()["stored"] == 1
    too_deep = orjson.dumps({**TRACK, "properties": nested(100)})
    for body in (too_deep, b'{"batch":[' + too_deep + b"]}", b'{"a":' * 2000 + b"1" + b"}" * 2000):
        response = client.post(
            "/v1/batch" if body.startswith(b'{"batch"') else "/v1/track", content=body, auth=AUTH
        )
        assert response.status_code == 400 and "deeper than 100 levels" in response.json()["message"]


def test_gzip_members_are_capped(client: TestClient) -> None:
    headers = {"Content-Encoding": "gzip"}
    whole = orjson.dumps({"batch": [TRACK]})
    members = [gzip.compress(whole[i : i + 1]) for i in range(len(whole))]
    assert len(members) > 64
    response = client.post("/v1/batch", content=b"".join(members), headers=headers, auth=AUTH)
    assert response.status_code == 400 and "more than 64 gzip members" in response.json()["message"]
    few = gzip.compress(whole[:20]) + gzip.compress(whole[20:])
    assert client.post("/v1/batch", content=few, headers=headers, auth=AUTH).json()["stored"] == 1


def test_wrong_credentials_are_refused_before_the_body_is_read(client: TestClient) -> None:
    def endless() -> Iterator[bytes]:
        raise AssertionError("the body was read before the credentials were checked")
        yield b""  # pragma: no cover

    response = client.post("/v1/batch", content=endless(), auth=("wrong", ""))
    assert response.status_code == 401 and response.json()["message"] == "unknown write key"


def test_rejected_items_are_listed_up_to_a_cap_and_all_counted(client: TestClient) -> None:
    response = client.post("/v1/batch", json={"batch": [0] * 5000 + [TRACK]}, auth=AUTH)
    body = response.json()
    assert (body["stored"], body["rejectedCount"], len(body["rejected"])) == (1, 5000, 100)


# ---------------------------------------------------------------- a store that cannot commit


class FailingStore:
    """The real store, whose commits fail with `error` while it is set."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.error: Exception | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def enqueue(self, events: Any) -> list[bool]:
        if self.error is not None:
            raise self.error
        return await self.inner.enqueue(events)

    async def take_budget(self, tenant_key: str, windows: Any) -> str | None:
        if self.error is not None:
            raise self.error
        return await self.inner.take_budget(tenant_key, windows)


def _sqlite_app(tmp_path: Path) -> tuple[TestClient, list[SQLiteStore]]:
    opened: list[SQLiteStore] = []

    def keep(store: Store) -> Store:
        assert isinstance(store, SQLiteStore)
        opened.append(store)
        return store

    settings_ = Settings(destinations=_destinations(tmp_path), store_url=f"sqlite:///{tmp_path}/gsd.sqlite3")
    return TestClient(create_app(settings_, transport=_gainsight(), wrap_store=keep)), opened


def _set_max_pages(client: TestClient, store: SQLiteStore, pages: int | None) -> None:
    def job(conn: sqlite3.Connection) -> None:
        if pages is None:
            conn.execute("PRAGMA max_page_count = 1073741823")
        else:
            (count,) = conn.execute("PRAGMA page_count").fetchone()
            conn.execute(f"PRAGMA max_page_count = {count + pages}")

    client.portal.call(lambda: store._writer.run(job, writes=False))  # type: ignore[union-attr]


def test_a_full_disk_is_a_507_with_the_reason_and_ready_says_so_until_it_recovers(tmp_path: Path) -> None:
    client, opened = _sqlite_app(tmp_path)
    with client:
        _set_max_pages(client, opened[0], 0)  # SQLite answers SQLITE_FULL, as on a full disk
        big = {"batch": [{**TRACK, "properties": {"x": "y" * 2000}} for _ in range(50)]}
        response = client.post("/v1/batch", json=big, auth=AUTH)
        assert response.status_code == 507, response.text
        assert response.json()["code"] == "insufficient_storage"
        assert "database or disk is full" in response.json()["message"]
        ready = client.get("/ready")
        assert ready.status_code == 503 and "store cannot commit" in ready.json()["problems"][0]

        _set_max_pages(client, opened[0], None)  # space again: no restart needed
        assert client.post("/v1/batch", json=big, auth=AUTH).json()["stored"] == 50
        assert client.get("/ready").status_code == 200


def test_sqlite_errors_that_mean_cannot_commit_are_told_apart_from_bugs() -> None:
    def error(code: int) -> sqlite3.OperationalError:
        exc = sqlite3.OperationalError("x")
        exc.sqlite_errorcode = code  # type: ignore[attr-defined]
        return exc

    assert isinstance(_unavailable(error(sqlite3.SQLITE_FULL)), StoreFullError)
    for code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY):
        found = _unavailable(error(code))
        assert isinstance(found, StoreUnavailableError) and found.status == 503
    assert _unavailable(error(sqlite3.SQLITE_ERROR)) is None  # a bad query stays a bug


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (StoreUnavailableError("the store cannot commit: database is locked"), 503),
        (StoreFullError("the store cannot commit: database or disk is full (disk full)"), 507),
    ],
)
def test_a_store_that_cannot_commit_gets_503_or_507_never_a_200(
    tmp_path: Path, error: StoreUnavailableError, status: int
) -> None:
    failing: list[FailingStore] = []

    def wrap(store: Store) -> Store:
        failing.append(FailingStore(store))
        return failing[0]  # type: ignore[return-value]

    settings_ = Settings(destinations=_destinations(tmp_path))
    with TestClient(memory_app(settings_, transport=_gainsight(), wrap_store=wrap)) as client:
        failing[0].error = error
        response = client.post("/v1/track", json=TRACK, auth=AUTH)
        assert response.status_code == status and response.headers["retry-after"]
        assert response.json()["message"] == error.message
        assert client.get("/ready").status_code == 503
        failing[0].error = None
        assert client.get("/ready").status_code == 503  # reported for a while, unless a commit succeeds
        assert client.post("/v1/track", json=TRACK, auth=AUTH).json()["stored"] == 1
        assert client.get("/ready").json()["status"] == "ready"
        runtime = client.app.state.runtime  # type: ignore[attr-defined]
        failing[0].error = error  # later, /ready probes the store itself
        runtime.store_failed(error)
        runtime.store_health.failed_at -= 60
        assert client.get("/ready").status_code == 503
        failing[0].error = None
        runtime.store_health.failed_at -= 60
        assert client.get("/ready").status_code == 200


# ---------------------------------------------------------------- origins


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[TestClient]:
    settings_ = Settings(cors_origins=("https://app.example",))
    with TestClient(memory_app(settings_), base_url="http://127.0.0.1") as c:  # sandbox: a loopback Host
        yield c


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
def test_sandbox_refuses_simple_cross_origin_requests(sandbox: TestClient, content_type: str | None) -> None:
    headers = {"Origin": "https://evil.example"}
    if content_type:
        headers["Content-Type"] = content_type
    body = orjson.dumps(TRACK)
    for path in ("/v1/track", "/admin/dead-letters/purge"):
        response = sandbox.post(path, content=body, headers=headers)
        assert response.status_code == 403 and response.json()["code"] == "forbidden"
    own = {**headers, "Origin": "http://127.0.0.1"}
    assert sandbox.post("/v1/track", content=body, headers=own).status_code == 200
    assert (
        sandbox.post("/v1/track", content=body, headers={"Content-Type": content_type or ""}).status_code
        == 200
    )
    allowed = {**headers, "Origin": "https://app.example"}
    assert sandbox.post("/v1/track", content=body, headers=allowed).status_code == 200


def test_with_auth_on_any_content_type_is_read_as_json(client: TestClient) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded"):
        headers = {"Origin": "https://elsewhere.example", "Content-Type": content_type}
        response = client.post("/v1/track", content=orjson.dumps(TRACK), headers=headers, auth=AUTH)
        assert response.json()["stored"] == 1


def test_cors_is_granted_on_ingest_routes_only(sandbox: TestClient) -> None:
    ask = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    for path in ("/v1/batch", "/v1/d/sandbox/track", "/webhook"):
        preflight = sandbox.options(path, headers=ask)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    posted = sandbox.post("/v1/track", json=TRACK, headers={"Origin": "https://app.example"})
    assert posted.headers["access-control-allow-origin"] == "https://app.example"
    assert "access-control-allow-origin" not in sandbox.options("/admin/dead-letters", headers=ask).headers
    other = sandbox.options("/v1/batch", headers={**ask, "Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_by_default(client: TestClient) -> None:
    ask = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    assert "access-control-allow-origin" not in client.options("/v1/batch", headers=ask).headers


# ---------------------------------------------------------------- no 5xx, whatever the body

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_eventish = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["identify", "group", "track", "page", "Alias", "foo", ""]) | _json,
        "userId": st.text(max_size=5) | _json,
        "anonymousId": _json,
        "messageId": st.text(max_size=5) | st.integers(min_value=-(2**64), max_value=2**64) | _json,
        "traits": _json,
        "context": _json,
        "properties": _json,
        "event": _json,
    },
)


def _dumps(value: Any) -> bytes:
    """Any generated value as JSON: big integers whole, lone surrogates as \\u escapes."""
    return json.dumps(value).encode()


_bodies = (
    _eventish.map(_dumps)
    | st.lists(_eventish | _json, max_size=5).map(lambda items: _dumps({"batch": items}))
    | _json.map(_dumps)
    | st.integers(1, 1500).map(lambda d: b"[" * d + b"]" * d)
    | st.sampled_from(
        [b'{"messageId":1.0e-400,"type":"track","userId":"u"}', b"\xff\xfe", b'"\\ud800"', b"1e400"]
    )
    | st.binary(max_size=64)
)


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    tmp = tmp_path_factory.mktemp("fuzz")
    settings_ = Settings(destinations=_destinations(tmp), auth="off")
    with TestClient(memory_app(settings_, transport=_gainsight())) as test_client:
        yield test_client


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    path=st.sampled_from(["/v1/batch", "/webhook", "/v1/identify", "/v1/group", "/v1/track", "/v1/page"]),
    body=_bodies,
)
def test_no_body_makes_ingest_answer_5xx(fuzz_client: TestClient, path: str, body: bytes) -> None:
    response = fuzz_client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code < 500, (path, body[:200], response.text[:300])
    if response.status_code != 200:
        assert {"code", "message", "error"} <= set(response.json())
