"""RudderStack's transformer protocol over HTTP, so rudder-server can use this service as its
Gainsight transformer (DESIGN §4.2): `POST /v0/destinations/gainsight` (processor) and
`POST /routerTransform`. The routes read and check the request; what each item becomes is
gainsight/transformer.py.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from destination.api.body import PARSE_INLINE_BYTES, off_loop, read_raw_body
from destination.api.responses import JsonResponse
from destination.api.transformer_body import parse_items
from destination.gainsight.transformer_errors import DEST_TYPE
from destination.runtime import Runtime

PROCESSOR_PATH = "/v0/destinations/gainsight"
ROUTER_PATH = "/routerTransform"
TRANSFORMER_PATHS = (PROCESSOR_PATH, ROUTER_PATH)
API_VERSION_HEADERS = {"apiVersion": "2"}

_ITEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "message": {"type": "object", "description": "the RudderStack event"},
        "destination": {
            "type": "object",
            "properties": {"Config": {"type": "object", "description": "Gainsight dashboard settings"}},
        },
        "metadata": {"description": "echoed unchanged"},
    },
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _answer(content: Any, status: int = 200) -> Response:
    return JsonResponse(content, status, API_VERSION_HEADERS)


async def _read_items(request: Request, runtime: Runtime, items_key: str | None) -> Any:
    settings = runtime.settings
    raw = await read_raw_body(request, settings.max_body_bytes, settings.body_timeout_seconds)
    return await off_loop(len(raw), lambda: parse_items(raw, items_key), PARSE_INLINE_BYTES)


def _check_count(items: list[Any], max_items: int) -> None:
    if len(items) > max_items:
        raise HTTPException(
            413,
            f"{len(items)} items in one request; at most {max_items} are accepted "
            "(GSD_TRANSFORMER_MAX_ITEMS)",
        )


async def processor(request: Request) -> Response:
    """`POST /v0/destinations/gainsight`: one output or error per input, same order."""
    runtime: Runtime = request.app.state.runtime
    items = await _read_items(request, runtime, None)
    if not isinstance(items, list):
        raise HTTPException(400, "request body must be a JSON array of events")
    _check_count(items, runtime.settings.transformer_max_items)
    return _answer(await runtime.transformer.process(items))


async def router_transform(request: Request) -> Response:
    """`POST /routerTransform`: unbatched requests, one per input."""
    runtime: Runtime = request.app.state.runtime
    body = await _read_items(request, runtime, "input")
    items = body.get("input") if isinstance(body, dict) else None
    if not isinstance(items, list):
        raise HTTPException(400, "request body must be an object with an 'input' array")
    _check_count(items, runtime.settings.transformer_max_items)
    return _answer({"output": await runtime.transformer.route(items)})


async def features(request: Request) -> Response:
    return _answer({"routerTransform": {DEST_TYPE: True}})


Handler = Callable[[Request], Awaitable[Response]]
ErrorAnswer = Callable[[Request, Exception], Awaitable[Response]]


class TransformerRoutes:
    """ASGI middleware answering `POST /v0/destinations/gainsight` and `POST /routerTransform`
    before FastAPI's own middleware and routing, which were a third of a one-event request:
    rudder-server calls these for every event it sends. Errors are answered by the app's own
    error handler (`on_error`); other methods and paths go on to the app (`build_router`
    documents these routes)."""

    def __init__(self, app: ASGIApp, on_error: ErrorAnswer) -> None:
        self.app = app
        self.on_error = on_error
        self.routes: dict[str, Handler] = {PROCESSOR_PATH: processor, ROUTER_PATH: router_transform}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler = self.routes.get(scope["path"]) if scope["type"] == "http" else None
        if handler is None or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:
            response = await self.on_error(request, exc)
        await response(scope, receive, send)


def build_router() -> APIRouter:
    """The routes as the OpenAPI document describes them."""
    router = APIRouter(tags=["RudderStack transformer protocol"])
    router.add_api_route(
        PROCESSOR_PATH,
        processor,
        methods=["POST"],
        summary="Processor transform: one output or error per input, same order",
        openapi_extra=_body({"type": "array", "items": _ITEM_SCHEMA}),
        response_class=Response,
        responses={
            200: {"description": "one item per input"},
            400: {"description": "not a JSON array"},
            413: {"description": "more items than GSD_TRANSFORMER_MAX_ITEMS, or too large a body"},
        },
    )
    router.add_api_route(
        ROUTER_PATH,
        router_transform,
        methods=["POST"],
        summary="Router transform: unbatched requests, one per input",
        openapi_extra=_body(
            {
                "type": "object",
                "required": ["input"],
                "properties": {
                    "destType": {"type": "string"},
                    "input": {"type": "array", "items": _ITEM_SCHEMA},
                },
            }
        ),
        response_class=Response,
        responses={
            200: {"description": "`{output: [...]}`"},
            400: {"description": "no input array"},
            413: {"description": "more items than GSD_TRANSFORMER_MAX_ITEMS, or too large a body"},
        },
    )
    router.add_api_route(
        "/features", features, methods=["GET"], summary="Which destinations support routerTransform"
    )
    return router
