"""X-Payload-Signature: HS256 JWT binding headers and the canonical body; one use per jti."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from destination.simulator import Simulator, SimulatorConfig
from destination.simulator.signature import JtiRegistry
from tests.simulator.helpers import EVENTS, T0, FakeClock, event_headers, sign, sim_client

BODY = {"ticketId": "T-42", "email": "ada@example.com", "nested": {"b": 2, "a": [1, "é"]}}


def post_signed(
    client: TestClient, token: str, body: bytes | None = None, **header_overrides: str
) -> httpx.Response:
    headers = {
        **event_headers(**header_overrides),
        "X-Payload-Signature": token,
        "Content-Type": "application/json",
    }
    content = body if body is not None else json.dumps(BODY).encode()
    response: httpx.Response = client.post(EVENTS, headers=headers, content=content)
    return response


def test_valid_signature_is_accepted_and_the_jti_recorded(client: TestClient, sim: Simulator) -> None:
    response = post_signed(client, sign(BODY, event_headers(), jti="m-1"))
    assert response.status_code == 200, response.text
    [event] = sim.events_view()
    assert event["signed"] is True and event["jti"] == "m-1"
    assert "x-payload-signature" not in event["headers"]


def test_reserialised_body_with_other_key_order_and_whitespace_still_verifies(client: TestClient) -> None:
    token = sign(BODY, event_headers())
    reordered = {"nested": {"a": [1, "é"], "b": 2}, "email": "ada@example.com", "ticketId": "T-42"}
    relayed = json.dumps(reordered, indent=4, ensure_ascii=True).encode()
    assert post_signed(client, token, relayed).status_code == 200


def test_tampered_body_fails_the_body_hash(client: TestClient, sim: Simulator) -> None:
    token = sign(BODY, event_headers())
    tampered = json.dumps({**BODY, "ticketId": "T-43"}).encode()
    response = post_signed(client, token, tampered)
    assert response.status_code == 401
    assert response.json()["errorCode"] == "GSSIG_BODY_HASH"
    assert not sim.events


def test_signature_with_another_secret_is_invalid(client: TestClient) -> None:
    response = post_signed(client, sign(BODY, event_headers(), secret="not-the-secret"))
    assert response.status_code == 401
    assert response.json()["errorCode"] == "GSSIG_INVALID"


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c"])
def test_malformed_token_is_invalid(client: TestClient, token: str) -> None:
    response = post_signed(client, token)
    assert response.json()["errorCode"] == "GSSIG_INVALID"


def test_other_algorithms_are_refused(client: TestClient) -> None:
    response = post_signed(client, sign(BODY, event_headers(), algorithm="HS512"))
    assert response.json()["errorCode"] == "GSSIG_INVALID"


@pytest.mark.parametrize(
    "claim", ["iat", "exp", "jti", "tenantId", "topicName", "eventName", "eventVersion", "body_sha256"]
)
def test_each_claim_is_required(client: TestClient, claim: str) -> None:
    left_out: dict[str, Any] = {claim: None}
    response = post_signed(client, sign(BODY, event_headers(), **left_out))
    assert response.status_code == 401
    assert response.json()["errorCode"] == "GSSIG_INVALID"
    assert claim in response.json()["errorDesc"]


def test_expired_token_is_rejected(clock: FakeClock, client: TestClient) -> None:
    token = sign(BODY, event_headers(), now=T0, ttl=300)
    clock.advance(300)
    response = post_signed(client, token)
    assert response.status_code == 401
    assert response.json()["errorCode"] == "GSSIG_EXPIRED"


def test_token_issued_in_the_future_is_rejected(client: TestClient) -> None:
    response = post_signed(client, sign(BODY, event_headers(), now=T0 + 60))
    assert response.json()["errorCode"] == "GSSIG_EXPIRED"


def test_leeway_tolerates_small_clock_skew() -> None:
    with sim_client(SimulatorConfig.sandbox(signature_leeway_seconds=30)) as client:
        assert post_signed(client, sign(BODY, event_headers(), now=T0 + 20)).status_code == 200


@pytest.mark.parametrize(
    ("claim", "value"),
    [("tenantId", "other"), ("topicName", "Other"), ("eventName", "feature_used"), ("eventVersion", "2.0")],
)
def test_claims_that_disagree_with_the_headers_are_rejected(
    client: TestClient, claim: str, value: str
) -> None:
    disagreeing: dict[str, Any] = {claim: value}
    response = post_signed(client, sign(BODY, event_headers(), **disagreeing))
    assert response.status_code == 401
    assert response.json()["errorCode"] == "GSSIG_CLAIM_MISMATCH"
    assert claim in response.json()["errorDesc"]


def test_replayed_jti_is_rejected(client: TestClient, sim: Simulator) -> None:
    token = sign(BODY, event_headers(), jti="m-1")
    assert post_signed(client, token).status_code == 200
    replay = post_signed(client, token)
    assert replay.status_code == 401
    assert replay.json()["errorCode"] == "GSSIG_REPLAY"
    fresh_token_same_jti = sign(BODY, event_headers(), jti="m-1", iat=int(T0) - 1)
    assert post_signed(client, fresh_token_same_jti).json()["errorCode"] == "GSSIG_REPLAY"
    assert len(sim.events) == 1


def test_rejected_call_does_not_use_up_its_jti(client: TestClient) -> None:
    tampered = json.dumps({**BODY, "ticketId": "T-43"}).encode()
    assert post_signed(client, sign(BODY, event_headers(), jti="m-2"), tampered).status_code == 401
    assert post_signed(client, sign(BODY, event_headers(), jti="m-2")).status_code == 200


def test_jtis_are_forgotten_once_their_token_expired() -> None:
    registry = JtiRegistry()
    registry.remember("a", exp=100.0)
    registry.remember("b", exp=200.0)
    assert registry.seen("a", now=99.0) and registry.seen("b", now=99.0)
    assert not registry.seen("a", now=100.0) and registry.seen("b", now=100.0)
    assert len(registry) == 1


def test_signature_is_optional_by_default_and_mandatory_by_switch(client: TestClient) -> None:
    assert client.post(EVENTS, headers=event_headers(), json=BODY).status_code == 200
    with sim_client(SimulatorConfig.sandbox(require_signature=True)) as strict:
        unsigned = strict.post(EVENTS, headers=event_headers(), json=BODY)
        signed = post_signed(strict, sign(BODY, event_headers()))
    assert unsigned.status_code == 401 and unsigned.json()["errorCode"] == "GSSIG_MISSING"
    assert signed.status_code == 200
