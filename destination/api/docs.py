"""GET /docs: the HTTP API for people, rendered from the OpenAPI document with no outside asset;
GET / sends a person who opens the service's address to /status (or /docs while /status is off).

FastAPI's Swagger UI loads its script and styles from a CDN, blank on a private network; this
page is plain HTML built on the server from the same document that /openapi.json serves.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from destination.api.status import templates
from destination.jsonutil import dumps
from destination.runtime import RuntimeDep

router = APIRouter()

_METHODS = ("get", "post", "put", "patch", "delete")


@router.get("/", include_in_schema=False)
async def home(request: Request, runtime: RuntimeDep) -> RedirectResponse:
    page = "/status" if runtime.settings.admin_token is not None else "/docs"
    return RedirectResponse(request.scope.get("root_path", "") + page, status_code=307)


@router.get("/docs", include_in_schema=False, response_class=HTMLResponse)
async def docs(request: Request) -> HTMLResponse:
    schema = request.app.openapi()
    info = schema.get("info", {})
    html = (
        templates()
        .get_template("docs.html")
        .render(
            title=info.get("title", ""),
            version=info.get("version", ""),
            description=info.get("description", ""),
            openapi_version=schema.get("openapi", ""),
            base=request.scope.get("root_path", ""),
            groups=_groups(schema),
        )
    )
    return HTMLResponse(
        html, headers={"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"}
    )


def _groups(schema: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for tag, operation in _operations(schema):
        grouped.setdefault(tag, []).append(operation)
    return list(grouped.items())


def _operations(schema: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            yield (
                (operation.get("tags") or ["Other"])[0],
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary", ""),
                    "description": operation.get("description", ""),
                    "security": ", ".join(name for entry in operation.get("security", []) for name in entry),
                    "parameters": [
                        {
                            "name": p.get("name"),
                            "where": p.get("in"),
                            "required": p.get("required", False),
                            "type": _type(p.get("schema", {})),
                        }
                        for p in operation.get("parameters", [])
                    ],
                    "body": _body(operation),
                    "responses": [
                        (code, answer.get("description", ""))
                        for code, answer in operation.get("responses", {}).items()
                    ],
                },
            )


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    return str(schema.get("type") or schema.get("$ref", "").rsplit("/", 1)[-1] or "any")


def _body(operation: dict[str, Any]) -> str | None:
    content = operation.get("requestBody", {}).get("content", {})
    for media_type, described in content.items():
        return f"{media_type}: {dumps(described.get('schema', {})).decode()}"
    return None
