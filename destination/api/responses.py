"""JSON responses rendered with orjson (integers beyond 64 bits fall back to the stdlib), and the
one error shape every 4xx/5xx answer carries.

Error bodies are `{"code", "message", "error"}` (`error` repeats `message` for older clients): the
official Segment and RudderStack Python SDKs read `code` and `message` from a failed answer, and stop
on a 4xx showing them; without `code` the RudderStack SDK raised KeyError and retried for minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi.responses import JSONResponse

from destination.jsonutil import dumps

ERROR_CODES: Mapping[int, str] = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
    431: "request_head_too_large",
    500: "internal_error",
    503: "unavailable",
    507: "insufficient_storage",
}


class JsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)


def error_body(status: int, message: str, code: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "code": code or ERROR_CODES.get(status, f"http_{status}"),
        "message": message,
        "error": message,
        **extra,
    }


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JsonResponse:
    return JsonResponse(error_body(status, message, code, **extra), status, headers=dict(headers or {}))


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "code": {"type": "string", "description": "machine-readable, e.g. invalid_request"},
        "message": {"type": "string", "description": "what was wrong, naming the field or limit"},
        "error": {"type": "string", "description": "the same text as message"},
    },
    "required": ["code", "message", "error"],
}
