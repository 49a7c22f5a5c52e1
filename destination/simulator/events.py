"""Events Framework publish (reference §5): a registered publisher sends one event per call.

The route authenticates by the `sharedSecret` + `tenantId` headers, not by the access key, then
checks the event against the topic registry, the body, and the payload signature when present.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from destination.simulator import envelope as codes
from destination.simulator.envelope import SimError, parse_json_body
from destination.simulator.signature import EventHeaders, verify_payload_signature
from destination.simulator.state import ReceivedEvent, Simulator

SIGNATURE_HEADER = "x-payload-signature"
# Never stored with a received event: credentials, and the signature token (a bearer of sorts).
_SECRET_HEADERS = frozenset({"sharedsecret", "accesskey", "authorization", "cookie", "x-payload-signature"})


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name.lower())
    return value if value else None


def check_event_headers(sim: Simulator, headers: Mapping[str, str]) -> EventHeaders:
    """The routing headers, once they name this publisher, tenant and a registered event."""
    cfg = sim.config
    required = ["sharedSecret", "tenantId", "eventName", "eventVersion"]
    if cfg.require_topic_name:
        required.append("topicName")
    missing = [name for name in required if _header(headers, name) is None]
    if missing:
        raise SimError(400, codes.EVENT_HEADER_MISSING, f"Missing required header(s): {', '.join(missing)}")
    secret = _header(headers, "sharedSecret") or ""
    if not hmac.compare_digest(secret.encode(), cfg.shared_secret.encode()):
        raise SimError(400, codes.INVALID_AUTH_HEADERS, "Invalid sharedSecret for this publisher")
    tenant = _header(headers, "tenantId") or ""
    if tenant != cfg.tenant_id:
        raise SimError(400, codes.INVALID_AUTH_HEADERS, f"Unknown tenantId {tenant!r}")
    parsed = EventHeaders(
        tenant_id=tenant,
        topic_name=_header(headers, "topicName"),
        event_name=_header(headers, "eventName") or "",
        event_version=_header(headers, "eventVersion") or "",
        contract_id=_header(headers, "contractId"),
    )
    _check_registered(sim, parsed)
    return parsed


def _check_registered(sim: Simulator, event: EventHeaders) -> None:
    wanted = (event.event_name, event.event_version)
    if event.topic_name is None:  # topicName optional (switch) and absent: any topic will do
        if not any(wanted in sim.config.events_of(topic) for topic in sim.config.topics):
            raise SimError(
                400,
                codes.EVENT_UNKNOWN,
                f"Event {event.event_name!r} version {event.event_version!r} is not registered",
            )
        return
    if event.topic_name not in sim.config.topics:
        raise SimError(400, codes.EVENT_TOPIC_UNKNOWN, f"Unknown topic {event.topic_name!r}")
    if wanted not in sim.config.events_of(event.topic_name):
        raise SimError(
            400,
            codes.EVENT_UNKNOWN,
            f"Event {event.event_name!r} version {event.event_version!r} "
            f"is not registered in topic {event.topic_name!r}",
        )


def receive_event(sim: Simulator, headers: Mapping[str, str], raw_body: bytes) -> None:
    routing = check_event_headers(sim, headers)
    body = parse_json_body(raw_body)
    if not isinstance(body, dict):
        raise SimError(400, codes.EVENT_BODY_INVALID, "The event body must be a JSON object")
    token = _header(headers, SIGNATURE_HEADER)
    if token is None and sim.config.require_signature:
        raise SimError(401, codes.SIGNATURE_MISSING, "X-Payload-Signature is required")
    with sim.lock:
        now = sim.clock()
        claims: dict[str, Any] = {}
        if token is not None:
            claims = verify_payload_signature(
                token,
                secret=sim.config.shared_secret,
                headers=routing,
                body=body,
                now=now,
                leeway=sim.config.signature_leeway_seconds,
                jtis=sim.jtis,
            )
        sim.events.append(
            ReceivedEvent(
                received_at=now,
                tenant_id=routing.tenant_id,
                topic_name=routing.topic_name,
                event_name=routing.event_name,
                event_version=routing.event_version,
                contract_id=routing.contract_id,
                headers={k: v for k, v in headers.items() if k.lower() not in _SECRET_HEADERS},
                body=body,
                signed=token is not None,
                jti=claims.get("jti"),
            )
        )
