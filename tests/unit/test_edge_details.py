"""Smaller edges (issue 19.8): /status/replay ids that are digits but not ids, a signed webhook
replayed as is, credentials in access-logged query strings, messageIds holding "/", and JWT dates
that are not numbers or lie too far ahead."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import orjson
import pytest
from fastapi.testclient import TestClient

from destination.api.auth import Unauthorized, authenticate
from destination.api.status import form_token
from destination.config import Destination
from destination.logs import JsonFormatter, masked_query
from destination.settings import Settings
from tests.conftest import BASE_CONFIG, memory_app

TOKEN = "admin-token-for-edges"
JWT_SECRET = "jwt-secret-a-0123456789abcdef0123"
HOOK_SECRET = "hook-secret"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
DESTINATION = {
    "id": "acme",
    "writeKeys": ["wk"],
    "jwt": {"secret": JWT_SECRET},
    "webhookSecret": HOOK_SECRET,
    "config": BASE_CONFIG,
}


def _no_gainsight() -> httpx.MockTransport:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"unexpected Gainsight call {request.method} {request.url}")

    return httpx.MockTransport(refuse)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    path = tmp_path / "destinations.json"
    path.write_bytes(orjson.dumps([DESTINATION]))
    settings = Settings(destinations=path, admin_token=TOKEN, jwt_max_lifetime_seconds=3600)
    with TestClient(memory_app(settings, transport=_no_gainsight())) as test_client:
        test_client.app.state.runtime.worker.cancel()  # type: ignore[attr-defined]  # nothing delivered
        yield test_client


# ---------------------------------------------------------------- /status/replay ids


@pytest.mark.parametrize("value", ["²", "٣", "1" * 4300, "9" * 20, "0"])
def test_status_replay_refuses_ids_that_are_not_ids_with_400(client: TestClient, value: str) -> None:
    csrf = form_token(client.app.state.runtime)  # type: ignore[attr-defined]
    response = client.post(
        "/status/replay", data={"csrf": csrf, "ids": value}, headers=ADMIN, follow_redirects=False
    )
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith("ids: ")


def test_status_replay_takes_a_real_id(client: TestClient) -> None:
    csrf = form_token(client.app.state.runtime)  # type: ignore[attr-defined]
    response = client.post(
        "/status/replay", data={"csrf": csrf, "ids": "42"}, headers=ADMIN, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/status?replayed=0"


# ---------------------------------------------------------------- a signed webhook, replayed


def _signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(HOOK_SECRET.encode(), body, hashlib.sha1).hexdigest()
    return {"X-Signature": digest, "Content-Type": "application/json"}


def test_a_replayed_signed_webhook_without_message_ids_is_a_duplicate(client: TestClient) -> None:
    body = orjson.dumps(
        [
            {"type": "track", "userId": "u", "event": "Ticket Closed"},
            {"type": "identify", "userId": "u", "traits": {"email": "ada@example.com"}},
        ]
    )
    first = client.post("/webhook", content=body, headers=_signed(body)).json()
    again = client.post("/webhook", content=body, headers=_signed(body)).json()
    assert first["stored"] == 2 and again["stored"] == 0 and again["duplicates"] == 2
    assert first["messageIds"] == again["messageIds"]
    assert first["messageIds"][0] != first["messageIds"][1]  # one per event of the body
    assert all(m.startswith("sig-") for m in first["messageIds"])


def test_unsigned_events_without_message_ids_still_get_fresh_ids(client: TestClient) -> None:
    event = {"type": "track", "userId": "u", "event": "Ticket Closed"}
    first = client.post("/v1/track", json=event, auth=("wk", "")).json()
    again = client.post("/v1/track", json=event, auth=("wk", "")).json()
    assert first["stored"] == again["stored"] == 1 and first["messageIds"] != again["messageIds"]


# ---------------------------------------------------------------- access log


@pytest.mark.parametrize(
    ("path", "shown"),
    [
        ("/v1/track?writeKey=wk_live&x=1", "/v1/track?writeKey=***&x=1"),
        ("/status?token=t0ps3cret", "/status?token=***"),
        ("/a?api_key=1&Authorization=2&signature=3&password=4&state=dead", None),
        ("/admin/events?destination=acme&state=dead", "/admin/events?destination=acme&state=dead"),
        ("/health", "/health"),
    ],
)
def test_the_access_log_masks_credentials_in_query_strings(path: str, shown: str | None) -> None:
    masked = masked_query(path)
    if shown is not None:
        assert masked == shown
    else:
        assert masked == "/a?api_key=***&Authorization=***&signature=***&password=***&state=dead"
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        "",
        0,
        '%s - "%s %s HTTP/%s" %d',
        ("1.2.3.4:5", "GET", path, "1.1", 200),
        None,
    )
    line = orjson.loads(JsonFormatter().format(record))
    assert line["path"] == masked
    for secret in ("wk_live", "t0ps3cret"):
        assert secret not in line["path"]


# ---------------------------------------------------------------- messageIds holding "/"


@pytest.mark.parametrize("message_id", ["orders/42/created", "a/b", "/leading", "trailing/"])
def test_an_event_whose_message_id_holds_a_slash_can_be_viewed(client: TestClient, message_id: str) -> None:
    event = {"type": "track", "userId": "u", "event": "Ticket Closed", "messageId": message_id}
    assert client.post("/v1/track", json=event, auth=("wk", "")).json()["stored"] == 1
    for shown in (message_id, message_id.replace("/", "%2F")):
        response = client.get(f"/admin/events/acme/{shown}", headers=ADMIN)
        assert response.status_code == 200, response.text
        assert response.json()["messageId"] == message_id


# ---------------------------------------------------------------- JWT dates and lifetime

ACME = Destination.model_validate(DESTINATION)


def _bearer(claims: dict[str, Any]) -> dict[str, str]:
    return {"authorization": "Bearer " + jwt.encode(claims, JWT_SECRET, algorithm="HS256")}


def _reason(claims: dict[str, Any], max_lifetime: float | None = None) -> str | None:
    try:
        authenticate(_bearer(claims), b"{}", [ACME], max_lifetime)
    except Unauthorized as exc:
        return str(exc.detail)
    return None


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_a_jwt_date_given_as_a_string_is_refused(claim: str) -> None:
    now = int(time.time())
    claims: dict[str, Any] = {"exp": now + 60, "iat": now - 1, "nbf": now - 1}
    assert _reason(claims) is None
    claims[claim] = str(claims[claim])
    assert _reason(claims) == f"JWT claim {claim!r} must be a number (seconds since the epoch)"


def test_a_jwt_living_longer_than_the_maximum_is_refused() -> None:
    now = time.time()
    too_long = "JWT lives longer than 3600 seconds (GSD_JWT_MAX_LIFETIME_SECONDS)"
    assert _reason({"exp": now + 7200}, 3600) == too_long
    assert _reason({"exp": now + 60, "iat": now - 7200}, 3600) == too_long  # issued long before
    assert _reason({"exp": now + 3000, "iat": now - 60}, 3600) is None
    assert _reason({"exp": now + 10**9}) is None  # no maximum unless set


def test_the_maximum_lifetime_applies_to_ingest(client: TestClient) -> None:
    event = {"type": "track", "userId": "u", "event": "Ticket Closed"}
    long_lived = _bearer({"exp": time.time() + 86_400})
    refused = client.post("/v1/track", json=event, headers=long_lived)
    assert refused.status_code == 401 and "GSD_JWT_MAX_LIFETIME_SECONDS" in refused.json()["message"]
    fine = client.post("/v1/track", json=event, headers=_bearer({"exp": time.time() + 600}))
    assert fine.status_code == 200
