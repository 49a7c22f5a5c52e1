"""RudderStack's transformer protocol, so rudder-server can use this service as its Gainsight
transformer (DESIGN §4.2): `POST /v0/destinations/gainsight` (processor) and `POST /routerTransform`.

As the reference does, a group's Company calls are made while transforming (by the same executor
as the workers, gainsight/executor.py); the output is the final association request. Company
calls only go to allowed domains, and spend at most half of the tenant's rate budget (the
`transformer` pool of the governor), so delivery is never starved.
The answers match the reference's, item for item (its own test vectors: tests/parity/).
Outputs carry no X-Payload-Signature: rudder-server sends them later, re-serialised and retried
with the same messageId, so neither the body hash, the expiry nor the replay check would hold.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Request, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from destination.api.body import PARSE_INLINE_BYTES, off_loop, read_raw_body
from destination.api.company_batches import CompanyBatcher
from destination.api.responses import JsonResponse
from destination.api.transformer_body import parse_items
from destination.config import DestinationConfig, parse_destination_config
from destination.delivery.governor import TRANSFORMER_POOL, budget_pool
from destination.errors import ConfigError, EventError, GainsightError, GsdError
from destination.gainsight.client import Credentials, GainsightClient
from destination.gainsight.endpoints import EVENT_PATH, PEOPLE_PATH, public_url
from destination.gainsight.executor import Executor
from destination.gainsight.plan import (
    GroupPlan,
    identify_record,
    message_type,
    person_upsert,
    plan_event,
    plan_track,
    track_parts,
)
from destination.gainsight.render import rudder_output
from destination.jsonutil import js_json_text
from destination.mapping.spec import Specs
from destination.runtime import Runtime

log = logging.getLogger(__name__)

Feature = Literal["processor", "router"]
DEST_TYPE = "GAINSIGHT"
PROCESSOR_PATH = "/v0/destinations/gainsight"
ROUTER_PATH = "/routerTransform"
TRANSFORMER_PATHS = (PROCESSOR_PATH, ROUTER_PATH)
METRICS_LABEL = "transformer"  # these routes have no destination id; their calls count under this
_CONFIG_CACHE_SIZE = 256
_HEADER_CACHE_SIZE = 1024


class AllowedDomains:
    """Shell-style patterns (`*.gainsightcloud.com`) of domains the transformer routes may call."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(p.lower() for p in patterns)

    def check(self, domain: str) -> None:
        if not any(fnmatch.fnmatchcase(domain.lower(), p) for p in self.patterns):
            raise ConfigError(
                f"domain {domain} is not allowed for the transformer routes "
                "(set GSD_ALLOWED_DOMAINS to allow it)"
            )


# The reference's words for the Company call that failed ("failed to search group {…}").
_REFERENCE_STEP = {"company search": "search", "company insert": "create", "company update": "update"}
# A Gainsight answer longer than this is cut in an item's error: one request may hold 1,000 items.
_MAX_ERROR_RESPONSE_CHARS = 4096


def error_status(error: GsdError) -> int:
    """The item's statusCode: Gainsight's own HTTP status when a call failed, as the reference
    answers (rudder-server retries 429 and 5xx, drops other 4xx), else by the error's kind."""
    if isinstance(error, GainsightError) and error.http_status and error.http_status >= 400:
        return error.http_status
    return error.status_code


def error_text(error: GsdError) -> str:
    """The item's `error`. A failed Company call reads as the reference writes it: the JSON text
    `{"message": "failed to <verb> group <answer>", "destinationResponse": {"response", "status"}}`."""
    verb = _REFERENCE_STEP.get(error.step or "") if isinstance(error, GainsightError) else None
    if verb is None or not isinstance(error, GainsightError) or error.http_status is None:
        return error.message
    response = error.response
    answer_text = js_json_text(response)
    if len(answer_text) > _MAX_ERROR_RESPONSE_CHARS:
        answer_text = answer_text[:_MAX_ERROR_RESPONSE_CHARS] + "…"
        response = answer_text
    return js_json_text(
        {
            "message": f"failed to {verb} group {answer_text}",
            "destinationResponse": {"response": response, "status": error.http_status},
        }
    )


def stat_tags(error: GsdError, feature: Feature) -> dict[str, str]:
    return {
        "errorCategory": error.error_category,
        "errorType": error.error_type,
        "destType": DEST_TYPE,
        "module": "destination",
        "implementation": "native",
        "feature": feature,
    }


_UNSET: Any = object()


class _Direct:
    """What the outputs of one destination share, made once per destination by the client from
    a plan, as for any plan: the credentials, the endpoints, the identify headers, and the track
    headers per (event name, version, contract id), the only parts of a track they depend on.
    Outputs share these header dicts; nothing mutates them. Made only for settings that passed
    an event's checks (the domain is set)."""

    __slots__ = (
        "_client",
        "_track",
        "config",
        "credentials",
        "identify_endpoint",
        "identify_headers",
        "track_endpoint",
    )

    def __init__(self, config: DestinationConfig, client: GainsightClient) -> None:
        assert config.domain is not None
        self.config = config
        self.credentials = Credentials.of(METRICS_LABEL, config)
        self._client = client
        self.identify_endpoint = public_url(config.domain, PEOPLE_PATH)
        self.identify_headers = client.headers_for(person_upsert(config.domain, {}), self.credentials)
        self.track_endpoint = public_url(config.domain, EVENT_PATH)
        self._track: dict[tuple[str, str, str | None], dict[str, str]] = {}

    def track_headers(self, message: dict[str, Any], key: tuple[str, str, str | None]) -> dict[str, str]:
        headers = self._track.get(key)
        if headers is None:
            plan = plan_track(message, self.config, signed=False)
            headers = self._client.headers_for(plan.request, self.credentials)
            if len(self._track) >= _HEADER_CACHE_SIZE:
                self._track.clear()
            self._track[key] = headers
        return headers


class RudderTransformer:
    def __init__(
        self,
        specs: Specs,
        client: GainsightClient,
        executor: Executor,
        allowed: AllowedDomains,
    ) -> None:
        self._specs = specs
        self._client = client
        self._executor = executor
        self._allowed = allowed
        self._configs: OrderedDict[bytes, DestinationConfig | ConfigError] = OrderedDict()
        self._companies = CompanyBatcher(executor.write_companies)
        # The last item's Config as it came, and its parse: the next request's first item
        # nearly always carries an equal one.
        self._last_config: tuple[Any, DestinationConfig | ConfigError] = (_UNSET, ConfigError("unset"))
        self._last_direct: _Direct | None = None

    def _config(self, raw: Any) -> DestinationConfig | ConfigError:
        """An item's destination Config parsed, once per distinct Config: the key is its JSON as
        it came (key order kept: rudder-server writes one destination's Config the same way each
        time; equal bytes mean equal settings, and a reordered copy merely parses once more)."""
        if not isinstance(raw, dict):
            return ConfigError("destination.Config is required and must be a JSON object")
        key = orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS)
        cached = self._configs.get(key)
        if cached is None:
            try:
                cached = parse_destination_config(raw)
            except ConfigError as exc:
                cached = exc
            self._configs[key] = cached
            if len(self._configs) > _CONFIG_CACHE_SIZE:
                self._configs.popitem(last=False)
        return cached

    def _direct(self, config: DestinationConfig) -> _Direct:
        """The shared parts of the destination's outputs: call once the event's checks passed."""
        direct = self._last_direct
        if direct is None or direct.config is not config:
            direct = self._last_direct = _Direct(config, self._client)
        return direct

    async def _group_outputs(
        self, plans: list[GroupPlan], credentials: Credentials
    ) -> list[dict[str, Any] | GsdError]:
        """The association outputs of group plans sharing a tenant: their Companies written in
        calls shared with concurrent requests (DESIGN §6), as the reference does while
        transforming."""
        gsids = await self._companies.resolve(plans, credentials)
        outputs: list[dict[str, Any] | GsdError] = []
        for plan, gsid in zip(plans, gsids, strict=True):
            if isinstance(gsid, GsdError):
                outputs.append(gsid)
            else:
                request = plan.association_request(gsid)
                outputs.append(rudder_output(request, self._client.headers_for(request, credentials)))
        return outputs

    async def outputs(self, items: list[Any]) -> list[dict[str, Any] | GsdError]:
        """One output or error per item, in order. Only group items wait on Gainsight."""
        with budget_pool(TRANSFORMER_POOL):
            return await self._outputs(items)

    async def _outputs(self, items: list[Any]) -> list[dict[str, Any] | GsdError]:
        # rudder-server sends this for every event: identify and track outputs are built here,
        # straight from the event (what `rudder_output` makes of their plan, without the plan),
        # and an item's settings are looked up only when its Config differs from the last one's
        # (the items of a request nearly always share one: then the same object, see
        # transformer_body).
        results: list[dict[str, Any] | GsdError] = []
        groups: dict[tuple[str, Credentials], list[tuple[int, GroupPlan]]] = {}
        specs = self._specs
        last_raw, config = self._last_config
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise ConfigError("each input must be an object with message, destination and metadata")
                destination = item.get("destination")
                raw = destination.get("Config") if isinstance(destination, dict) else None
                if raw is not last_raw and (raw is None or raw != last_raw):
                    config = self._config(raw)
                    last_raw = raw
                if isinstance(config, ConfigError):
                    raise config
                message = item.get("message")
                if not isinstance(message, dict):
                    raise EventError("message must be a JSON object")
                kind = message.get("type")
                if kind != "identify" and kind != "track":
                    kind = message_type(message)
                if kind == "identify":
                    body = identify_record(message, config, specs, diagnose=False).fields
                    direct = self._direct(config)
                    endpoint, method = direct.identify_endpoint, "PUT"
                    headers = direct.identify_headers
                elif kind == "track":
                    name, version, contract, body = track_parts(message, config)
                    direct = self._direct(config)
                    endpoint, method = direct.track_endpoint, "POST"
                    headers = direct.track_headers(message, (name, version, contract))
                else:
                    plan = plan_event(message, config, specs, signed=False)
                    assert isinstance(plan, GroupPlan)  # identify and track are built above
                    self._allowed.check(plan.domain)
                    credentials = self._direct(config).credentials
                    groups.setdefault((plan.domain, credentials), []).append((index, plan))
                    results.append({})
                    continue
                output: dict[str, Any] = {
                    "version": "1",
                    "type": "REST",
                    "method": method,
                    "endpoint": endpoint,
                    "headers": headers,
                    "params": {},
                    "body": {"JSON": body, "JSON_ARRAY": {}, "XML": {}, "FORM": {}},
                    "files": {},
                }
                results.append(output)
            except GsdError as exc:
                results.append(exc)
        self._last_config = (last_raw, config)
        tenants = list(groups.items())
        written = await asyncio.gather(
            *(self._group_outputs([p for _, p in g], credentials) for (_, credentials), g in tenants)
        )
        for (_, group), outputs in zip(tenants, written, strict=True):
            for (index, _), written_output in zip(group, outputs, strict=True):
                results[index] = written_output
        return results

    async def process(self, items: list[Any]) -> list[dict[str, Any]]:
        """The processor answer: `{output|error, statusCode, statTags?, metadata}` per item."""
        answers = []
        for item, result in zip(items, await self.outputs(items), strict=True):
            answer: dict[str, Any]
            if isinstance(result, GsdError):
                answer = {
                    "error": error_text(result),
                    "statusCode": error_status(result),
                    "statTags": stat_tags(result, "processor"),
                }
            else:
                result["userId"] = ""  # a fresh dict per item
                answer = {"output": result, "statusCode": 200}
            if isinstance(item, dict) and "metadata" in item:  # absent stays absent, as the reference
                answer["metadata"] = item["metadata"]
            answers.append(answer)
        return answers

    async def route(self, items: list[Any]) -> list[dict[str, Any]]:
        """The router answer: one unbatched `batchedRequest` (or error) per input."""
        answers = []
        for item, result in zip(items, await self.outputs(items), strict=True):
            metadata = item.get("metadata") if isinstance(item, dict) else None
            destination = item.get("destination") if isinstance(item, dict) else None
            answer: dict[str, Any] = {"metadata": [metadata], "batched": False, "destination": destination}
            if isinstance(result, GsdError):
                answer.update(
                    statusCode=error_status(result),
                    error=error_text(result),
                    statTags=stat_tags(result, "router"),
                )
            else:
                answer.update(batchedRequest=result, statusCode=200)
            answers.append(answer)
        return answers


# ---- routes ----

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
