"""RudderStack's transformer protocol, so rudder-server can use this service as its Gainsight
transformer (DESIGN §4.2): `POST /v0/destinations/gainsight` (processor) and `POST /routerTransform`.

As the reference does, a group's Company calls are made while transforming (by the same executor
as the workers, gainsight/executor.py); the output is the final association request. Company calls
only go to allowed domains.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any, Literal

import orjson
from fastapi import APIRouter, Request, Response

from destination.api.body import read_json
from destination.api.responses import JsonResponse
from destination.config import DestinationConfig, parse_destination_config
from destination.errors import ConfigError, EventError, GainsightError, GsdError
from destination.gainsight.client import Credentials, GainsightClient
from destination.gainsight.executor import Executor
from destination.gainsight.plan import GroupPlan, Plan, plan_event
from destination.gainsight.render import rudder_output
from destination.mapping.spec import Specs
from destination.runtime import RuntimeDep

log = logging.getLogger(__name__)

Feature = Literal["processor", "router"]
DEST_TYPE = "GAINSIGHT"
METRICS_LABEL = "transformer"  # these routes have no destination id; their calls count under this
_CONFIG_CACHE_SIZE = 256
_GROUP_CONCURRENCY = 32


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


def stat_tags(error: GsdError, feature: Feature) -> dict[str, str]:
    return {
        "errorCategory": error.error_category,
        "errorType": error.error_type,
        "destType": DEST_TYPE,
        "module": "destination",
        "implementation": "native",
        "feature": feature,
    }


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
        self._group_slots = asyncio.Semaphore(_GROUP_CONCURRENCY)

    def _config(self, destination: Any) -> DestinationConfig:
        """Parse the item's destination Config once per distinct Config, not once per event."""
        raw = destination.get("Config") if isinstance(destination, dict) else None
        if not isinstance(raw, dict):
            raise ConfigError("destination.Config is required and must be a JSON object")
        key = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
        cached = self._configs.get(key)
        if cached is None:
            try:
                cached = parse_destination_config(raw)
            except ConfigError as exc:
                cached = exc
            self._configs[key] = cached
            if len(self._configs) > _CONFIG_CACHE_SIZE:
                self._configs.popitem(last=False)
        if isinstance(cached, ConfigError):
            raise cached
        return cached

    def _plan(self, item: Any) -> tuple[Plan, Credentials]:
        if not isinstance(item, dict):
            raise ConfigError("each input must be an object with message, destination and metadata")
        config = self._config(item.get("destination"))
        message = item.get("message")
        if not isinstance(message, dict):
            raise EventError("message must be a JSON object")
        return plan_event(message, config, self._specs), Credentials.of(METRICS_LABEL, config)

    async def _group_outputs(
        self, plans: list[GroupPlan], credentials: Credentials
    ) -> list[dict[str, Any] | GsdError]:
        """The association outputs of group plans sharing a tenant: their Companies written in
        shared calls (DESIGN §6), as the reference does while transforming."""
        async with self._group_slots:
            try:
                gsids = await self._executor.company_gsids(plans, credentials)
            except GainsightError as exc:  # e.g. the rate budget is spent: every plan waits
                gsids = [exc] * len(plans)
        outputs: list[dict[str, Any] | GsdError] = []
        for plan, gsid in zip(plans, gsids, strict=True):
            if isinstance(gsid, GsdError):
                outputs.append(gsid)
            else:
                request = plan.association_request(gsid)
                outputs.append(rudder_output(request, self._client.headers_for(request, credentials)))
        return outputs

    def _output(self, plan: Plan, credentials: Credentials) -> dict[str, Any]:
        assert not isinstance(plan, GroupPlan)
        return rudder_output(plan.request, self._client.headers_for(plan.request, credentials))

    async def outputs(self, items: list[Any]) -> list[dict[str, Any] | GsdError]:
        """One output or error per item, in order. Only group items wait on Gainsight."""
        results: list[dict[str, Any] | GsdError] = []
        groups: dict[tuple[str, Credentials], list[tuple[int, GroupPlan]]] = {}
        for index, item in enumerate(items):
            try:
                plan, credentials = self._plan(item)
                if isinstance(plan, GroupPlan):
                    self._allowed.check(plan.domain)
                    groups.setdefault((plan.domain, credentials), []).append((index, plan))
                    results.append({})
                else:
                    results.append(self._output(plan, credentials))
            except GsdError as exc:
                results.append(exc)
        tenants = list(groups.items())
        written = await asyncio.gather(
            *(self._group_outputs([p for _, p in g], credentials) for (_, credentials), g in tenants)
        )
        for (_, group), outputs in zip(tenants, written, strict=True):
            for (index, _), output in zip(group, outputs, strict=True):
                results[index] = output
        return results

    async def process(self, items: list[Any]) -> list[dict[str, Any]]:
        """The processor answer: `{output|error, statusCode, statTags?, metadata}` per item."""
        answers = []
        for item, result in zip(items, await self.outputs(items), strict=True):
            metadata = item.get("metadata") if isinstance(item, dict) else None
            if isinstance(result, GsdError):
                answers.append(
                    {
                        "error": result.message,
                        "statusCode": result.status_code,
                        "statTags": stat_tags(result, "processor"),
                        "metadata": metadata,
                    }
                )
            else:
                answers.append({"output": result, "statusCode": 200, "metadata": metadata})
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
                    statusCode=result.status_code,
                    error=result.message,
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


def build_router() -> APIRouter:
    router = APIRouter(tags=["RudderStack transformer protocol"])

    @router.post(
        "/v0/destinations/gainsight",
        summary="Processor transform: one output or error per input, same order",
        openapi_extra=_body({"type": "array", "items": _ITEM_SCHEMA}),
        response_class=Response,
        responses={200: {"description": "one item per input"}, 400: {"description": "not a JSON array"}},
    )
    async def processor(request: Request, runtime: RuntimeDep) -> Response:
        items = await read_json(request, runtime.settings.max_body_bytes)
        if not isinstance(items, list):
            return _answer({"error": "request body must be a JSON array of events"}, 400)
        return _answer(await runtime.transformer.process(items))

    @router.post(
        "/routerTransform",
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
        responses={200: {"description": "`{output: [...]}`"}, 400: {"description": "no input array"}},
    )
    async def router_transform(request: Request, runtime: RuntimeDep) -> Response:
        body = await read_json(request, runtime.settings.max_body_bytes)
        items = body.get("input") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return _answer({"error": "request body must be an object with an 'input' array"}, 400)
        return _answer({"output": await runtime.transformer.route(items)})

    @router.get("/features", summary="Which destinations support routerTransform")
    async def features() -> Response:
        return _answer({"routerTransform": {DEST_TYPE: True}})

    return router
