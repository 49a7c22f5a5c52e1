"""Gainsight's reply envelope and the error codes the simulator answers with.

Codes in the `GSOBJ_…`, `GS_APIG_…`, `GU_…` families are Gainsight's (reference §1, §2, §3.4, §4.5).
Gainsight documents no codes for Events API failures or for payload signatures (the signature is
this product's own extension), so those codes (`GSEVT_…`, `GSSIG_…`) are the simulator's, spelled as
words so nobody mistakes them for real ones.
"""

from __future__ import annotations

import uuid
from typing import Any

from starlette.responses import Response

from destination.jsonutil import JSONDecodeError, dumps, loads

UNAUTHORIZED = "GS_APIG_2401"
THROTTLED = "GU_2400"
INTERNAL = "GU_1101"
STRING_TOO_LONG = "GSOBJ_1001"
INVALID_FIELD = "GSOBJ_1002"  # also used for malformed requests: Gainsight's "re-check mapping"
BAD_DATETIME = "GSOBJ_1005"
BAD_DATE = "GSOBJ_1006"
NOT_NULLABLE = "GSOBJ_1007"
TYPE_CHECK = "GSOBJ_1008"
NO_MATCH = "GSOBJ_1011"
INVALID_PATH = "GSOBJ_1023"
INVALID_AUTH_HEADERS = "GSOBJ_1024"
GSID_INVALID = "GSOBJ_1004"
PEOPLE_ASSOCIATION = "GSOBJ_PEOPLE1001"

EVENT_HEADER_MISSING = "GSEVT_HEADER_MISSING"
EVENT_TOPIC_UNKNOWN = "GSEVT_TOPIC_UNKNOWN"
EVENT_UNKNOWN = "GSEVT_EVENT_UNKNOWN"
EVENT_BODY_INVALID = "GSEVT_BODY_INVALID"
SIGNATURE_MISSING = "GSSIG_MISSING"
SIGNATURE_INVALID = "GSSIG_INVALID"
SIGNATURE_EXPIRED = "GSSIG_EXPIRED"
SIGNATURE_CLAIM_MISMATCH = "GSSIG_CLAIM_MISMATCH"
SIGNATURE_BODY_HASH = "GSSIG_BODY_HASH"
SIGNATURE_REPLAY = "GSSIG_REPLAY"

THROTTLED_DESC = "Too many request"  # sic, as Gainsight spells it


class SimError(Exception):
    """A Gainsight error answer: raised anywhere in a handler, rendered as an envelope."""

    def __init__(
        self,
        status: int,
        code: str,
        desc: str,
        *,
        data: Any = None,
        message: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {desc}")
        self.status = status
        self.code = code
        self.desc = desc
        self.data = data
        self.message = message
        self.headers = headers or {}


def new_request_id() -> str:
    return str(uuid.uuid4())


def envelope(
    *,
    result: bool,
    data: Any = None,
    code: str | None = None,
    desc: str | None = None,
    message: str | None = None,
) -> dict[str, Any]:
    return {
        "result": result,
        "errorCode": code,
        "errorDesc": desc,
        "requestId": new_request_id(),
        "data": data,
        "message": message,
    }


def success_body(data: Any = None) -> bytes:
    return dumps(envelope(result=True, data=data))


def error_body(error: SimError) -> bytes:
    return dumps(
        envelope(
            result=False,
            data=error.data,
            code=error.code,
            desc=error.desc,
            message=error.message,
        )
    )


def success_response(data: Any = None, status: int = 200) -> Response:
    return Response(success_body(data), status_code=status, media_type="application/json")


def error_response(error: SimError) -> Response:
    return Response(
        error_body(error),
        status_code=error.status,
        media_type="application/json",
        headers=error.headers,
    )


def unauthorized(status: int) -> SimError:
    return SimError(status, UNAUTHORIZED, "Unauthorized", message="Unauthorized")


def throttled(retry_after: int | None) -> SimError:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return SimError(429, THROTTLED, THROTTLED_DESC, headers=headers)


def internal_error(status: int = 500) -> SimError:
    return SimError(status, INTERNAL, "Something went wrong, please try again later")


def injected(status: int) -> SimError:
    """An error answer asked for through the faults (`status`), in the envelope Gainsight would use."""
    if status == 429:
        return throttled(None)
    if status >= 500:
        return internal_error(status)
    if status == 401:
        return unauthorized(401)
    return SimError(status, INVALID_FIELD, f"Injected fault: the simulator was told to answer {status}")


def parse_json_body(raw: bytes) -> Any:
    """The request body as JSON, or a 400 envelope (never a framework error page)."""
    if not raw.strip():
        raise SimError(400, INVALID_FIELD, "Invalid JSON body: the body is empty")
    try:
        return loads(raw)
    except (JSONDecodeError, UnicodeDecodeError) as exc:
        raise SimError(400, INVALID_FIELD, f"Invalid JSON body: {exc}") from None
