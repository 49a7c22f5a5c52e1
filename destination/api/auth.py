"""Inbound authentication (DESIGN §4.4): which destination a request is for, and is it allowed.

Accepted credentials, checked against each candidate destination:
- Basic auth whose username is one of the destination's write keys (password empty or ignored);
- `Authorization: Bearer <JWT>` verified with pyjwt: HS256 with the destination's secret or RS256
  with its public key; `exp` required; `aud` checked when configured;
- `X-Signature`: hex HMAC-SHA1 of the raw body with the destination's webhookSecret (Segment).
Comparisons are constant-time. Messages say what was wrong, never echo a credential.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping

import jwt
from fastapi import HTTPException, Request

from destination.config import Destination
from destination.runtime import Runtime

_CHALLENGE = {"WWW-Authenticate": 'Basic realm="gainsight-destination"'}


class Unauthorized(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, headers=_CHALLENGE)


def _basic_username(value: str) -> str:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):  # ValueError: non-ASCII text, UnicodeDecodeError too
        raise Unauthorized("malformed Basic credentials: expected base64 of 'writeKey:'") from None
    return decoded.split(":", 1)[0]


def _by_write_key(key: str, candidates: Iterable[Destination]) -> Destination | None:
    found = None
    for destination in candidates:
        for known in destination.write_keys:
            # Check every key (no early exit), so timing does not tell which keys exist.
            if hmac.compare_digest(known.get_secret_value().encode(), key.encode()):
                found = destination
    return found


def _jwt_error(token: str, destination: Destination) -> str | None:
    """None when the token is valid for the destination, else why not."""
    auth = destination.jwt
    assert auth is not None
    if auth.secret is not None:
        key, algorithm = auth.secret.get_secret_value(), "HS256"
    else:
        key, algorithm = auth.public_key or "", "RS256"
    try:
        jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=auth.audience,
            options={"require": ["exp"], "verify_aud": auth.audience is not None},
        )
    except jwt.ExpiredSignatureError:
        return "JWT has expired"
    except jwt.MissingRequiredClaimError as exc:
        return f"JWT lacks the required claim {exc.claim!r}"
    except jwt.InvalidAudienceError:
        return "JWT audience does not match"
    except jwt.PyJWTError:
        return "JWT signature or format is invalid"
    return None


def _by_jwt(token: str, candidates: Iterable[Destination]) -> Destination:
    reasons = []
    for destination in candidates:
        if destination.jwt is None:
            continue
        reason = _jwt_error(token, destination)
        if reason is None:
            return destination
        reasons.append(reason)
    if not reasons:
        raise Unauthorized("Bearer tokens are not configured for this destination")
    # The most specific reason: a good signature that expired says more than a bad signature.
    for reason in reasons:
        if "signature" not in reason:
            raise Unauthorized(reason)
    raise Unauthorized(reasons[0])


def _by_signature(signature: str, body: bytes, candidates: Iterable[Destination]) -> Destination | None:
    found = None
    given = signature.strip().lower().encode()
    for destination in candidates:
        if destination.webhook_secret is None:
            continue
        secret = destination.webhook_secret.get_secret_value().encode()
        expected = hmac.new(secret, body, hashlib.sha1).hexdigest().encode()
        if hmac.compare_digest(expected, given):
            found = destination
    return found


def authenticate(headers: Mapping[str, str], body: bytes, candidates: list[Destination]) -> Destination:
    """The destination whose credentials the request carries; Unauthorized otherwise."""
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        found = _by_write_key(_basic_username(value), candidates)
        if found is None:
            raise Unauthorized("unknown write key")
        return found
    if scheme == "bearer":
        return _by_jwt(value.strip(), candidates)
    if authorization:
        raise Unauthorized("unsupported Authorization scheme: use Basic (write key) or Bearer (JWT)")
    signature = headers.get("x-signature")
    if signature:
        found = _by_signature(signature, body, candidates)
        if found is None:
            raise Unauthorized("X-Signature does not match the body (HMAC-SHA1 with the webhook secret)")
        return found
    raise Unauthorized(
        "credentials required: Basic auth with a write key, a Bearer JWT, or an X-Signature header"
    )


def destination_for(
    request: Request, runtime: Runtime, body: bytes, destination_id: str | None
) -> Destination:
    """The destination a request is for: by its credentials when auth is on (only the named
    destination's credentials count on /v1/d/{id}/ routes), else the named or only one."""
    if not runtime.auth_enabled:
        return runtime.destination(destination_id)
    if destination_id is not None:
        candidates = [runtime.destination(destination_id)]
    else:
        candidates = list(runtime.destinations.values())
    return authenticate(request.headers, body, candidates)
