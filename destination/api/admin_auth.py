"""The admin token (DESIGN §4.4, §9): the one credential for admin routes and /status.

Accepted as `Authorization: Bearer TOKEN`, or as the password of Basic auth with any user name
(so a browser's login prompt works). Write keys, JWTs and webhook signatures never open these
routes: they ship inside apps and only send events. With GSD_ADMIN_TOKEN unset the routes are off
and answer 404 saying how to turn them on.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from destination.runtime import Runtime, RuntimeDep

ADMIN_REALM = 'Basic realm="gainsight-destination admin", charset="UTF-8"'
ADMIN_OFF = "admin routes and /status are off: set GSD_ADMIN_TOKEN to turn them on"


class AdminUnauthorized(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(401, detail, headers={"WWW-Authenticate": ADMIN_REALM})


def presented_token(authorization: str) -> str | None:
    """The token an Authorization header carries: Bearer TOKEN, or Basic's password."""
    scheme, _, value = authorization.strip().partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return value.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        _, sep, password = decoded.partition(":")
        return password if sep else None
    return None


def check_admin(request: Request, runtime: Runtime) -> None:
    token = runtime.settings.admin_token
    if token is None:
        raise HTTPException(404, ADMIN_OFF)
    presented = presented_token(request.headers.get("authorization", ""))
    if presented is None:
        raise AdminUnauthorized(
            "admin routes need the admin token: Authorization: Bearer $GSD_ADMIN_TOKEN, "
            "or Basic auth with the token as password"
        )
    if not hmac.compare_digest(presented.encode(), token.get_secret_value().encode()):
        raise AdminUnauthorized("wrong admin token")


async def require_admin(request: Request, runtime: RuntimeDep) -> None:
    check_admin(request, runtime)


AdminDep = Annotated[None, Depends(require_admin)]
