"""Inbound authentication (DESIGN §4.4), at the function level: which destination, or 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import jwt
import pytest

from destination.api.auth import Unauthorized, authenticate
from destination.config import Destination
from tests.conftest import BASE_CONFIG

BODY = b'{"type":"identify"}'


def destination(id: str, **extra: Any) -> Destination:
    return Destination.model_validate({"id": id, "config": BASE_CONFIG, **extra})


A = destination(
    "a",
    writeKeys=["wk_a"],
    jwt={"secret": "jwt-secret-a-0123456789abcdef0123", "audience": "gsd"},
    webhookSecret="hook-a",
)
B = destination("b", writeKeys=["wk_b", "wk_b2"])
BOTH = [A, B]


def basic(user: str, password: str = "") -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(claims: dict[str, Any], key: str = "jwt-secret-a-0123456789abcdef0123") -> dict[str, str]:
    return {"authorization": "Bearer " + jwt.encode(claims, key, algorithm="HS256")}


def signature(body: bytes, secret: str = "hook-a") -> dict[str, str]:
    return {"x-signature": hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()}


def refused(headers: dict[str, str], candidates: list[Destination] = BOTH, body: bytes = BODY) -> str:
    with pytest.raises(Unauthorized) as caught:
        authenticate(headers, body, candidates)
    assert caught.value.status_code == 401
    return str(caught.value.detail)


@pytest.mark.parametrize(("key", "expected"), [("wk_a", "a"), ("wk_b", "b"), ("wk_b2", "b")])
def test_write_key_picks_its_destination(key: str, expected: str) -> None:
    assert authenticate(basic(key), BODY, BOTH).id == expected


def test_write_key_password_is_ignored() -> None:
    assert authenticate(basic("wk_a", "anything"), BODY, BOTH).id == "a"


def test_unknown_write_key() -> None:
    assert refused(basic("wk_zzz")) == "unknown write key"


def test_malformed_basic() -> None:
    assert "malformed Basic" in refused({"authorization": "Basic %%%"})


def test_write_key_of_another_destination_is_refused() -> None:
    assert refused(basic("wk_a"), [B]) == "unknown write key"


def test_valid_jwt() -> None:
    claims = {"exp": time.time() + 60, "aud": "gsd"}
    assert authenticate(bearer(claims), BODY, BOTH).id == "a"


@pytest.mark.parametrize(
    ("claims", "key", "reason"),
    [
        ({"exp": -60, "aud": "gsd"}, None, "JWT has expired"),
        ({"aud": "gsd"}, None, "JWT lacks the required claim 'exp'"),
        ({"exp": 60, "aud": "other"}, None, "JWT audience does not match"),
        (
            {"exp": 60, "aud": "gsd"},
            "wrong-secret-0123456789abcdef012345",
            "JWT signature or format is invalid",
        ),
    ],
)
def test_bad_jwt(claims: dict[str, Any], key: str | None, reason: str) -> None:
    # `exp` is given relative to now, so the case means the same whenever it runs.
    claims = {**claims, "exp": time.time() + claims["exp"]} if "exp" in claims else claims
    headers = bearer(claims, key) if key else bearer(claims)
    assert refused(headers) == reason


def test_jwt_when_no_destination_takes_jwts() -> None:
    assert refused(bearer({"exp": time.time() + 60}), [B]) == "JWT signature or format is invalid"


def test_rs256_public_key() -> None:
    crypto = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
    from cryptography.hazmat.primitives import serialization

    private = crypto.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    rs = destination("rs", jwt={"publicKey": public_pem})
    token = jwt.encode({"exp": time.time() + 60}, private, algorithm="RS256")
    assert authenticate({"authorization": f"Bearer {token}"}, BODY, [rs]).id == "rs"
    forged = jwt.encode({"exp": time.time() + 60}, "a-shared-secret-0123456789abcdef0", algorithm="HS256")
    assert refused({"authorization": f"Bearer {forged}"}, [rs]) == "JWT signature or format is invalid"


def test_x_signature() -> None:
    assert authenticate(signature(BODY), BODY, BOTH).id == "a"


def test_x_signature_of_another_body_is_refused() -> None:
    assert "X-Signature does not match" in refused(signature(b"{}"))


def test_no_credentials() -> None:
    assert refused({}).startswith("credentials required")


def test_unsupported_scheme() -> None:
    assert "unsupported Authorization scheme" in refused({"authorization": "Digest abc"})


def test_errors_never_echo_credentials() -> None:
    for headers in (
        basic("wk_secret_value"),
        {"authorization": "Bearer tok_secret_value"},
        {"x-signature": "sig_secret_value"},
    ):
        assert "secret_value" not in refused(headers)
