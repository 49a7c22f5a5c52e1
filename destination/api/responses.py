"""JSON responses rendered with orjson (integers beyond 64 bits fall back to the stdlib)."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from destination.jsonutil import dumps


class JsonResponse(JSONResponse):
    def render(self, content: Any) -> bytes:
        return dumps(content)
