"""track → Events Framework (DESIGN §3.4): headers, body, contract id, and the signature."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import jwt
import pytest

from destination.errors import ConfigError, EventError, UnmappedEventError
from destination.gainsight.client import Credentials, GainsightClient, shown_headers
from destination.gainsight.plan import plan_event
from destination.gainsight.signing import SigningClaims, sign
from destination.gainsight.track_plan import TrackPlan
from destination.jsonutil import canonical_json, loads
from tests.conftest import DOMAIN, make_config


def track(specs: Any, event: dict[str, Any] | None = None, **config: Any) -> TrackPlan:
    message = {
        "type": "track",
        "event": "Ticket Closed",
        "messageId": "m-1",
        "properties": {"b": 2, "a": "é"},
    }
    message.update(event or {})
    plan = plan_event(message, make_config(**config), specs)
    assert isinstance(plan, TrackPlan)
    return plan


CREDENTIALS = Credentials("acme", "ak-123", "ss-456")


def test_exact_request(specs: Any) -> None:
    request = track(specs).request
    assert (request.method, request.endpoint) == ("POST", f"https://{DOMAIN}/v1.0/api/eventManager/event")
    assert dict(request.headers) == {  # no secret in a plan: the client adds them when sending
        "tenantId": "tenant-1",
        "topicName": "Support",
        "eventName": "ticket_closed",
        "eventVersion": "1.0",
        "Content-Type": "application/json",
    }
    assert request.body == {"b": 2, "a": "é"}
    sent = sent_request(track(specs))
    assert (sent.headers["sharedSecret"], sent.headers["Accesskey"]) == ("ss-456", "ak-123")


def test_body_is_canonical_json(specs: Any) -> None:
    plan = track(specs, {"properties": {"z": {"y": 1, "x": [{"b": 1, "a": 2}]}, "k": "ü"}})
    assert plan.request.body_bytes == '{"k":"ü","z":{"x":[{"a":2,"b":1}],"y":1}}'.encode()


def test_properties_keep_top_level_keys_with_dots(specs: Any) -> None:
    plan = track(specs, {"properties": {"a.b": 1, "nested": {"c": 2}}})
    assert plan.request.body == {"a.b": 1, "nested": {"c": 2}}


def test_missing_properties_send_empty_object(specs: Any) -> None:
    plan = track(specs, {"properties": None})
    assert plan.request.body == {} and plan.request.body_bytes == b"{}"


def test_properties_must_be_an_object(specs: Any) -> None:
    with pytest.raises(EventError, match="properties must be a JSON object"):
        track(specs, {"properties": [1, 2]})


def test_access_key_header_only_when_configured(specs: Any) -> None:
    assert "Accesskey" not in track(specs, accessKey="").request.headers


def test_contract_id_from_settings(specs: Any) -> None:
    assert track(specs, contractId="c-settings").request.headers["contractId"] == "c-settings"


def test_contract_id_from_external_id_wins(specs: Any) -> None:
    external = {
        "context": {
            "externalId": [
                {"type": "other", "id": "x"},
                {"type": "gainsightEventContractId", "id": "c-event"},
            ]
        }
    }
    assert track(specs, external, contractId="c-settings").request.headers["contractId"] == "c-event"


def test_no_contract_id_header_when_unknown(specs: Any) -> None:
    assert "contractId" not in track(specs).request.headers


def test_event_name_required(specs: Any) -> None:
    with pytest.raises(EventError, match=r"^event name is required for track$"):
        track(specs, {"event": ""})


@pytest.mark.parametrize("setting", ["sharedSecret", "topicName", "tenantId"])
def test_settings_required(specs: Any, setting: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{setting} is required for track$"):
        track(specs, **{setting: ""})


def test_unmapped_event_name(specs: Any) -> None:
    with pytest.raises(UnmappedEventError, match=r"^Event name mapping not provided for Order Done$"):
        track(specs, {"event": "Order Done"})


def test_unmapped_event_version(specs: Any) -> None:
    with pytest.raises(UnmappedEventError, match=r"^event version mapping not provided for Ticket Closed$"):
        track(specs, eventVersionMap=[])


def test_event_map_is_case_sensitive(specs: Any) -> None:
    with pytest.raises(UnmappedEventError):
        track(specs, {"event": "ticket closed"})


# ---- the signature, as sent ----


def sent_request(plan: TrackPlan, now: float = 1_700_000_000.0) -> httpx.Request:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"result": True})

    client = GainsightClient(httpx.AsyncClient(transport=httpx.MockTransport(handler)), clock=lambda: now)
    asyncio.run(client.send_described(plan.request, CREDENTIALS))
    return seen[0]


def test_signature_verifies_with_the_shared_secret_and_covers_the_bytes_sent(specs: Any) -> None:
    plan = track(specs)
    request = sent_request(plan, now=1_700_000_000.0)
    token = request.headers["X-Payload-Signature"]
    claims = jwt.decode(token, "ss-456", algorithms=["HS256"], options={"verify_exp": False})
    assert claims == {
        "iat": 1_700_000_000,
        "exp": 1_700_000_300,
        "jti": "m-1",
        "tenantId": "tenant-1",
        "topicName": "Support",
        "eventName": "ticket_closed",
        "eventVersion": "1.0",
        "body_sha256": hashlib.sha256(request.content).hexdigest(),
    }
    assert request.content == canonical_json(loads(request.content))


def test_signature_rejects_another_secret(specs: Any) -> None:
    token = sent_request(track(specs)).headers["X-Payload-Signature"]
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "not-the-secret", algorithms=["HS256"], options={"verify_exp": False})


def test_signature_is_made_at_send_time(specs: Any) -> None:
    plan = track(specs)
    first = jwt.decode(
        sent_request(plan, 1000.0).headers["X-Payload-Signature"], options={"verify_signature": False}
    )
    later = jwt.decode(
        sent_request(plan, 5000.0).headers["X-Payload-Signature"], options={"verify_signature": False}
    )
    assert (first["iat"], later["iat"]) == (1000, 5000)


def test_signature_without_message_id_gets_a_unique_jti(specs: Any) -> None:
    plan = track(specs, {"messageId": None})
    a = jwt.decode(sent_request(plan).headers["X-Payload-Signature"], options={"verify_signature": False})
    b = jwt.decode(sent_request(plan).headers["X-Payload-Signature"], options={"verify_signature": False})
    assert a["jti"] and a["jti"] != b["jti"]


def test_secret_headers_redacted_for_display(specs: Any) -> None:
    headers = shown_headers(track(specs).request, CREDENTIALS)
    assert headers["sharedSecret"] == "***" and headers["Accesskey"] == "***"


@pytest.mark.parametrize(
    "claims",
    [
        SigningClaims("tenant-1", "Support", "ticket_closed", "1.0", "ab" * 32, "m-1"),
        SigningClaims("tenant-ü", "Støtte", "billet_fermé", "1.0", "cd" * 32, "m-é"),
    ],
    ids=["ascii", "non-ascii"],
)
def test_signature_is_the_token_pyjwt_writes(claims: SigningClaims) -> None:
    now = 1_700_000_000.9
    expected = jwt.encode(
        {
            "iat": 1_700_000_000,
            "exp": 1_700_000_300,
            "jti": claims.jti,
            "tenantId": claims.tenant_id,
            "topicName": claims.topic_name,
            "eventName": claims.event_name,
            "eventVersion": claims.event_version,
            "body_sha256": claims.body_sha256,
        },
        "a-shared-secret-of-32-bytes-or-more!",
        algorithm="HS256",
    )
    assert sign(claims, "a-shared-secret-of-32-bytes-or-more!", now) == expected


def test_an_unsigned_plan_is_the_same_request_without_signature_claims(specs: Any) -> None:
    event = {"type": "track", "event": "Ticket Closed", "messageId": "m1", "properties": {"b": 1, "a": 2}}
    signed = plan_event(event, make_config(), specs)
    unsigned = plan_event(event, make_config(), specs, signed=False)
    assert isinstance(signed, TrackPlan) and isinstance(unsigned, TrackPlan)
    assert (unsigned.request.signing, unsigned.request.body_bytes) == (None, None)
    assert unsigned.request.headers == signed.request.headers
    assert unsigned.request.body == signed.request.body == {"b": 1, "a": 2}


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        (None, f"https://{DOMAIN}/v1.0/api/eventManager/event"),
        ("http://127.0.0.1:8090/", "http://127.0.0.1:8090/v1.0/api/eventManager/event"),
    ],
    ids=["the-tenant", "redirected"],
)
def test_the_history_records_the_url_actually_called(specs: Any, base_url: str | None, expected: str) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, json={"result": True})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    client = GainsightClient(http, base_url=base_url)
    _, sent = asyncio.run(client.send_described(track(specs).request, CREDENTIALS))
    assert sent["url"] == seen[0] == expected
