"""Verification of `X-Payload-Signature` on events (DESIGN §3.4).

The token is a JWT, HS256, keyed with the publisher's shared secret. It binds the routing headers
and the body: `body_sha256` is the hex SHA-256 of the body's canonical JSON, computed here from
the parsed body because a relay may have re-serialised it (key order, whitespace). `jti` values are
remembered until their token expires, so a token is good for one delivery only.

Time checks use the simulator's injected clock, not the wall clock PyJWT would use.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
from dataclasses import dataclass, field
from typing import Any

import jwt

from destination.jsonutil import canonical_json
from destination.simulator import envelope as codes
from destination.simulator.envelope import SimError

REQUIRED_CLAIMS = (
    "iat",
    "exp",
    "jti",
    "tenantId",
    "topicName",
    "eventName",
    "eventVersion",
    "body_sha256",
)


@dataclass(frozen=True)
class EventHeaders:
    tenant_id: str
    topic_name: str | None
    event_name: str
    event_version: str
    contract_id: str | None = None

    def claim_values(self) -> dict[str, str | None]:
        return {
            "tenantId": self.tenant_id,
            "topicName": self.topic_name,
            "eventName": self.event_name,
            "eventVersion": self.event_version,
        }


@dataclass
class JtiRegistry:
    """Token ids already used, each forgotten once its token has expired."""

    _expiry: dict[str, float] = field(default_factory=dict)
    _heap: list[tuple[float, str]] = field(default_factory=list)

    def _forget_expired(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            exp, jti = heapq.heappop(self._heap)
            if self._expiry.get(jti) == exp:
                del self._expiry[jti]

    def seen(self, jti: str, now: float) -> bool:
        self._forget_expired(now)
        return jti in self._expiry

    def remember(self, jti: str, exp: float) -> None:
        self._expiry[jti] = exp
        heapq.heappush(self._heap, (exp, jti))

    def clear(self) -> None:
        self._expiry.clear()
        self._heap.clear()

    def __len__(self) -> int:
        return len(self._expiry)


def body_sha256(body: Any) -> str:
    return hashlib.sha256(canonical_json(body)).hexdigest()


def _reject(code: str, desc: str) -> SimError:
    return SimError(401, code, desc)


def _decode(token: str, secret: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={
                "verify_exp": False,  # checked below against the injected clock
                "verify_iat": False,
                "verify_nbf": False,
                "verify_aud": False,
                "verify_iss": False,
                "require": list(REQUIRED_CLAIMS),
            },
        )
    except jwt.InvalidSignatureError:
        raise _reject(codes.SIGNATURE_INVALID, "Invalid payload signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise _reject(codes.SIGNATURE_INVALID, f"Payload signature lacks claim {exc.claim}") from None
    except jwt.InvalidTokenError as exc:
        raise _reject(codes.SIGNATURE_INVALID, f"Malformed payload signature: {exc}") from None
    return claims


def _check_times(claims: dict[str, Any], now: float, leeway: float) -> float:
    iat, exp = claims["iat"], claims["exp"]
    for name, value in (("iat", iat), ("exp", exp)):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _reject(codes.SIGNATURE_INVALID, f"Payload signature claim {name} is not a number")
    if exp <= now - leeway:
        raise _reject(codes.SIGNATURE_EXPIRED, "Payload signature has expired")
    if iat > now + leeway:
        raise _reject(codes.SIGNATURE_EXPIRED, "Payload signature is issued in the future")
    return float(exp)


def verify_payload_signature(
    token: str,
    *,
    secret: str,
    headers: EventHeaders,
    body: Any,
    now: float,
    leeway: float,
    jtis: JtiRegistry,
) -> dict[str, Any]:
    """The verified claims; the jti is consumed. Raises SimError (401) naming what is wrong."""
    claims = _decode(token, secret)
    exp = _check_times(claims, now, leeway)
    for claim, header_value in headers.claim_values().items():
        if header_value is None:
            continue  # header optional (topicName switch) and absent: nothing to bind
        if claims[claim] != header_value:
            raise _reject(
                codes.SIGNATURE_CLAIM_MISMATCH,
                f"Payload signature claim {claim}={claims[claim]!r} "
                f"disagrees with header {claim}={header_value!r}",
            )
    expected = body_sha256(body)
    claimed = claims["body_sha256"]
    if not isinstance(claimed, str) or not hmac.compare_digest(claimed.lower(), expected):
        raise _reject(codes.SIGNATURE_BODY_HASH, "Payload signature body_sha256 does not match the body")
    jti = claims["jti"]
    if not isinstance(jti, str) or not jti:
        raise _reject(codes.SIGNATURE_INVALID, "Payload signature claim jti must be a non-empty string")
    if jtis.seen(jti, now):
        raise _reject(codes.SIGNATURE_REPLAY, f"Payload signature jti {jti!r} was already used")
    jtis.remember(jti, exp + leeway)  # as long as the token itself could still pass
    return claims
