"""The X-Payload-Signature JWT of DESIGN §3.4, made at send time so `exp` is always fresh."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import jwt

from destination.gainsight.endpoints import SIGNATURE_ALGORITHM, SIGNATURE_TTL_SECONDS


@dataclass(frozen=True, slots=True)
class SigningClaims:
    """Everything the signature covers except the clock-dependent claims."""

    tenant_id: str
    topic_name: str
    event_name: str
    event_version: str
    body_sha256: str
    jti: str | None


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def sign(claims: SigningClaims, secret: str, now: float) -> str:
    issued = int(now)
    payload = {
        "iat": issued,
        "exp": issued + SIGNATURE_TTL_SECONDS,
        # Without a messageId the token still needs a unique id for replay checks.
        "jti": claims.jti or str(uuid.uuid4()),
        "tenantId": claims.tenant_id,
        "topicName": claims.topic_name,
        "eventName": claims.event_name,
        "eventVersion": claims.event_version,
        "body_sha256": claims.body_sha256,
    }
    return jwt.encode(payload, secret, algorithm=SIGNATURE_ALGORITHM)
