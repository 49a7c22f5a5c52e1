"""The X-Payload-Signature JWT of DESIGN §3.4, made at send time so `exp` is always fresh.

The token is exactly what `jwt.encode(claims, secret, algorithm="HS256")` writes (pyjwt checks
it in the tests), made without pyjwt's per-call work: the header segment is a constant, the
claims are written by orjson (by the standard library when a claim is not ASCII, as pyjwt
escapes it), and the HMAC key schedule is computed once per shared secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass
from functools import lru_cache

import orjson

from destination.gainsight.endpoints import SIGNATURE_ALGORITHM, SIGNATURE_TTL_SECONDS

assert SIGNATURE_ALGORITHM == "HS256"


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


def _segment(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


_HEADER = _segment(b'{"alg":"HS256","typ":"JWT"}') + b"."


@lru_cache(maxsize=256)
def _keyed(secret: str) -> hmac.HMAC:
    """An HMAC-SHA256 with the key already absorbed; each token signs with a copy of it."""
    return hmac.new(secret.encode(), digestmod=hashlib.sha256)


def _claims_json(payload: dict[str, object]) -> bytes:
    data = orjson.dumps(payload)
    if data.isascii():
        return data
    return json.dumps(payload, separators=(",", ":")).encode()  # \u-escaped, as pyjwt writes


def sign(claims: SigningClaims, secret: str, now: float) -> str:
    issued = int(now)
    payload: dict[str, object] = {
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
    signing_input = _HEADER + _segment(_claims_json(payload))
    mac = _keyed(secret).copy()
    mac.update(signing_input)
    return (signing_input + b"." + _segment(mac.digest())).decode()
