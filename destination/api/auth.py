"""Inbound authentication (DESIGN §4.4): which destination a request is for, and is it allowed.

Accepted credentials, checked against each candidate destination:
- Basic auth whose username is one of the destination's write keys (password empty or ignored);
- `Authorization: Bearer <JWT>` verified with pyjwt: HS256 with the destination's secret or RS256
  with its public key; `exp` required; `aud` checked when configured; `exp`, `iat` and `nbf` must
  be JSON numbers (RFC 7519's NumericDate: pyjwt alone also takes "1700000000"); with
  GSD_JWT_MAX_LIFETIME_SECONDS set, a token whose `exp` lies further ahead (or further after its
  `iat`) is refused;
- `X-Signature`: hex HMAC-SHA1 of the body as sent (before any Content-Encoding is undone) with
  the destination's webhookSecret (Segment).
Comparisons are constant-time. Messages say what was wrong, never echo a credential.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

import jwt
from fastapi import HTTPException, Request
from pydantic import SecretStr

from destination.api.body import read_wire_body
from destination.config import Destination
from destination.runtime import Runtime

_BAD_JWT = "JWT signature or format is invalid"
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


def _claims_error(claims: dict[str, object], max_lifetime: float | None) -> str | None:
    """Why checked claims are still refused: a date that is not a number, or too long a lifetime."""
    for name in ("exp", "iat", "nbf"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            return f"JWT claim {name!r} must be a number (seconds since the epoch)"
    if max_lifetime is None:
        return None
    expires, issued, now = claims["exp"], claims.get("iat"), time.time()
    assert isinstance(expires, int | float)  # required, and a number (above)
    # Its lifetime: from its iat (when given and past) or from now, whichever is earlier.
    start = min(issued, now) if isinstance(issued, int | float) else now
    if expires - start > max_lifetime:
        return f"JWT lives longer than {max_lifetime:g} seconds (GSD_JWT_MAX_LIFETIME_SECONDS)"
    return None


def _jwt_error(token: str, destination: Destination, max_lifetime: float | None = None) -> str | None:
    """None when the token is valid for the destination, else why not."""
    auth = destination.jwt
    assert auth is not None
    if auth.secret is not None:
        key, algorithm = auth.secret.get_secret_value(), "HS256"
    else:
        key, algorithm = auth.public_key or "", "RS256"
    try:
        claims = jwt.decode(
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
        return _BAD_JWT
    return _claims_error(claims, max_lifetime)


def _by_jwt(token: str, candidates: Iterable[Destination], max_lifetime: float | None) -> Destination:
    reasons = []
    for destination in candidates:
        if destination.jwt is None:
            continue
        reason = _jwt_error(token, destination, max_lifetime)
        if reason is None:
            return destination
        reasons.append(reason)
    if not reasons:
        # Worded as a bad token, so that it does not tell whether the destination exists.
        raise Unauthorized(_BAD_JWT)
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


def authenticate_headers(
    headers: Mapping[str, str], candidates: list[Destination], jwt_max_lifetime: float | None = None
) -> Destination | None:
    """The destination by the Authorization header alone, before any body is read; None when
    the request relies on X-Signature (which needs the body); Unauthorized otherwise."""
    authorization = headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "basic":
        found = _by_write_key(_basic_username(value), candidates)
        if found is None:
            raise Unauthorized("unknown write key")
        return found
    if scheme == "bearer":
        return _by_jwt(value.strip(), candidates, jwt_max_lifetime)
    if authorization:
        raise Unauthorized("unsupported Authorization scheme: use Basic (write key) or Bearer (JWT)")
    if headers.get("x-signature"):
        return None
    raise Unauthorized(
        "credentials required: Basic auth with a write key, a Bearer JWT, or an X-Signature header"
    )


def authenticate_signature(
    headers: Mapping[str, str], body: bytes, candidates: list[Destination]
) -> Destination:
    """The destination whose webhook secret signed `body` (X-Signature); Unauthorized otherwise."""
    found = _by_signature(headers.get("x-signature", ""), body, candidates)
    if found is None:
        raise Unauthorized("X-Signature does not match the body (HMAC-SHA1 with the webhook secret)")
    return found


def authenticate(
    headers: Mapping[str, str],
    body: bytes,
    candidates: list[Destination],
    jwt_max_lifetime: float | None = None,
) -> Destination:
    """The destination whose credentials the request carries; Unauthorized otherwise."""
    found = authenticate_headers(headers, candidates, jwt_max_lifetime)
    return found if found is not None else authenticate_signature(headers, body, candidates)


def candidates(runtime: Runtime, destination_id: str | None) -> list[Destination]:
    """Whose credentials count: the named destination's on /v1/d/{id}/ routes, else everyone's.
    An unknown id gets a decoy whose secrets nobody holds, so it is answered exactly as a known
    id with wrong credentials: nothing before authentication tells whether an id exists."""
    if destination_id is None:
        return list(runtime.destinations.values())
    found = runtime.destinations.get(destination_id)
    return [found if found is not None else _decoy(runtime)]


def _decoy(runtime: Runtime) -> Destination:
    """A stand-in for an unknown id: a configured destination's credential shape with secrets
    nobody holds, so that checking against it costs what checking a real one costs."""
    template = runtime.destinations[min(runtime.destinations)]
    jwt_auth = template.jwt
    if jwt_auth is not None:
        jwt_auth = jwt_auth.model_copy(
            update={"secret": SecretStr(secrets.token_hex(32)), "public_key": None}
        )
    return template.model_copy(
        update={
            "id": "",
            "write_keys": tuple(SecretStr(secrets.token_hex(16)) for _ in template.write_keys),
            "webhook_secret": SecretStr(secrets.token_hex(16)) if template.webhook_secret else None,
            "jwt": jwt_auth,
        }
    )


async def authenticated_body(
    request: Request, runtime: Runtime, destination_id: str | None
) -> tuple[Destination, bytes]:
    """The destination and the body as received (not decoded yet). Credentials carried in headers
    (write key, JWT) are checked before the body is read; an X-Signature is checked over the body
    as received, before it is decoded or parsed."""
    settings = runtime.settings
    if not runtime.auth_enabled:
        destination = runtime.destination(destination_id)
        return destination, await read_wire_body(
            request, settings.max_body_bytes, settings.body_timeout_seconds
        )
    choices = candidates(runtime, destination_id)
    found = authenticate_headers(request.headers, choices, settings.jwt_max_lifetime_seconds)
    wire = await read_wire_body(request, settings.max_body_bytes, settings.body_timeout_seconds)
    if found is None:
        found = authenticate_signature(request.headers, wire, choices)
    return found, wire


def signed_by_body(request: Request, runtime: Runtime) -> bool:
    """Whether an authenticated request's credential was its X-Signature (no header credential)."""
    return runtime.auth_enabled and not request.headers.get("authorization")
