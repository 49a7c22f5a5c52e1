"""create_app(settings): the FastAPI service. Nothing happens at import time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException as StarletteHTTPException

from destination import __version__
from destination.api import admin, capacity, docs, health, ingest, rudder, status, transform
from destination.api.body import BoundedBody
from destination.api.origins import OriginGuard
from destination.api.responses import ERROR_SCHEMA, JsonResponse, error_response
from destination.capacity_metrics import CapacityGauges
from destination.config import Destination, load_destinations
from destination.delivery.governor import (
    RateGovernor,
    RateWindow,
    default_windows,
    timeline_governor,
    timeline_windows,
)
from destination.delivery.health import StoreHealth
from destination.delivery.retry import RetryPolicy
from destination.delivery.store import Store, StoreUnavailableError
from destination.delivery.stores import open_store
from destination.delivery.worker import BudgetGate, Deliverer, WorkerSettings
from destination.gainsight.client import (
    CALLS_IN_FLIGHT,
    Credentials,
    GainsightClient,
    http_timeout,
    new_http_client,
)
from destination.gainsight.executor import Executor
from destination.gainsight.outcomes import Answer
from destination.gainsight.requests import Request as PlannedRequest
from destination.gainsight.transformer import AllowedDomains, RudderTransformer
from destination.gainsight.usage_flush import usage_flusher
from destination.mapping.spec import default_specs
from destination.metrics import Metrics, serve_metrics
from destination.runtime import Runtime
from destination.serving import HTTP_GRACE_SECONDS
from destination.settings import DEFAULT_ALLOWED_DOMAINS, Settings

log = logging.getLogger(__name__)

SANDBOX_MOUNT = "/gainsight"


def _error_handlers(app: FastAPI) -> None:
    """Every 4xx/5xx answers {"code", "message", "error"} (responses.py says why)."""

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JsonResponse:
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        return error_response(400, "; ".join(problems))

    # The transformer routes' own dispatch (rudder.TransformerRoutes) answers its errors with
    # the same function.
    for kind in (StarletteHTTPException, StoreUnavailableError, Exception):
        app.add_exception_handler(kind, error_answer)


async def error_answer(request: Request, exc: Exception) -> JsonResponse:
    if isinstance(exc, StarletteHTTPException):
        # One line per refused request; messages name fields and limits, never a credential.
        log.info(
            "request refused",
            extra={"path": request.url.path, "status": exc.status_code, "reason": str(exc.detail)},
        )
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)
    if isinstance(exc, StoreUnavailableError):
        runtime = getattr(request.app.state, "runtime", None)
        if runtime is not None:
            runtime.store_failed(exc)
        return error_response(exc.status, exc.message, headers={"Retry-After": "5"})
    log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
    return error_response(500, "internal error; see the service log")


_ERROR_SCHEMA = ERROR_SCHEMA
_SECURED_TAGS = {"Ingest", "Dry run"}


def _describe_api(app: FastAPI) -> None:
    """OpenAPI as the service behaves: invalid parameters get 400 {"error"} (not FastAPI's 422),
    and the routes behind inbound auth say which credentials they take."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            for path_item in schema.get("paths", {}).values():
                for method, operation in path_item.items():
                    _describe_operation(method, operation)
            schema.setdefault("components", {})["securitySchemes"] = {
                "writeKey": {"type": "http", "scheme": "basic", "description": "username = a write key"},
                "jwt": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "adminToken": {"type": "http", "scheme": "bearer", "description": "GSD_ADMIN_TOKEN"},
                "adminBasic": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "any user name, password = GSD_ADMIN_TOKEN",
                },
                "webhookSignature": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-Signature",
                    "description": "hex HMAC-SHA1 of the body with the destination's webhookSecret",
                },
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ERROR_SCHEMA}}}


def _describe_operation(method: str, operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    if operation.get("parameters"):
        responses.setdefault(
            "404",
            _error_response(
                "no such destination or item (with auth on, an unknown "
                "destination id is answered 401, as bad credentials)"
            ),
        )
    if method.lower() not in ("get", "head", "options"):
        responses.setdefault("403", _error_response("sandbox mode: a simple request from another origin"))
    if operation.get("tags") == ["Admin"]:
        responses.setdefault("503", _error_response("the store cannot commit now"))
    if responses.pop("422", None) is not None or "400" in responses:
        described = responses.get("400", {}).get("description", "invalid request; the error names the field")
        responses["400"] = {
            "description": described,
            "content": {"application/json": {"schema": _ERROR_SCHEMA}},
        }
    if _SECURED_TAGS & set(operation.get("tags", [])):
        operation["security"] = [{"writeKey": []}, {"jwt": []}, {"webhookSignature": []}, {}]
        responses.setdefault("401", {"description": "missing or invalid credentials (when auth is on)"})
    if "Admin" in operation.get("tags", []) and operation.get("summary") != "Prometheus metrics":
        operation["security"] = [{"adminToken": []}, {"adminBasic": []}]
        responses.setdefault("401", {"description": "missing or wrong admin token"})
        responses.setdefault("404", {"description": "admin routes are off (GSD_ADMIN_TOKEN unset)"})


def _allowed_domains(settings: Settings, destinations: dict[str, Destination]) -> tuple[str, ...]:
    if settings.allowed_domains:
        return settings.allowed_domains
    configured = tuple(d.config.domain for d in destinations.values() if d.config.domain)
    return DEFAULT_ALLOWED_DOMAINS + configured


def create_app(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    store: Store | None = None,
    wrap_store: Callable[[Store], Store] | None = None,
) -> FastAPI:
    """Build the service. For tests: `transport` replaces the network for outbound Gainsight
    calls, `store` the store the settings name (the in-memory double), and `wrap_store` wraps
    the store (one that fails on demand)."""
    injected = store
    settings = settings or Settings()
    specs = default_specs()
    sandbox = None
    if settings.destinations is not None:
        destinations = {d.id: d for d in load_destinations(settings.destinations)}
    else:
        from destination.sandbox import Sandbox

        sandbox = Sandbox.create()
        destinations = {sandbox.destination.id: sandbox.destination}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        outbound = transport
        if outbound is None and sandbox is not None and settings.gainsight_base_url is None:
            outbound = httpx.ASGITransport(app=sandbox.app)
        base_url = _base_url(settings, sandbox is not None, outbound)
        http = new_http_client(outbound, http_timeout(settings.gainsight_timeout_seconds))
        # Holds at once: a person upsert per call slot, a company write per batch in flight and
        # for the transformer routes, and the usage flush; one waiting for a connection fails.
        holds = _calls_in_flight(settings) + settings.workers + 2
        store = injected or open_store(
            settings.store_url, pool_size=settings.store_pool_size, hold_pool_size=holds
        )
        if wrap_store is not None:
            store = wrap_store(store)
        metrics = Metrics()
        metrics.refreshers.append(CapacityGauges(metrics.registry, store, destinations, settings).refresh)
        governor = RateGovernor(store, _rate_windows(settings), guard_seconds=_guard_seconds(settings))
        timeline = timeline_governor(
            store, _timeline_windows(settings), guard_seconds=_guard_seconds(settings)
        )
        # Every call this service makes passes the rate governor's gate (Timeline calls their own
        # governor's); one executor (its locks, and the store's Gsid memory) serves the workers
        # and the transformer routes, so they never both create a company.
        gate = BudgetGate(governor, metrics, timeline=timeline)
        client = GainsightClient(
            http,
            base_url=base_url,
            gate=gate,
            observe=_observer(metrics),
            calls_in_flight=_calls_in_flight(settings),
        )
        executor = Executor(
            client,
            store,
            unchanged_ttl_seconds=settings.unchanged_ttl_seconds,
            saved=metrics.saved,
            clock=time.time,
            unattributed=lambda destination: metrics.usage_unattributed.labels(destination).inc(),
        )
        health = StoreHealth()
        deliverer = Deliverer(
            store=store,
            health=health,
            destinations=destinations,
            specs=specs,
            executor=executor,
            governor=governor,
            gate=gate,
            policy=RetryPolicy(max_attempts=settings.max_attempts, max_age_seconds=settings.max_age_seconds),
            metrics=metrics,
            settings=WorkerSettings(
                concurrency=settings.workers,
                lease_seconds=settings.lease_seconds,
                drain_seconds=settings.drain_seconds - HTTP_GRACE_SECONDS,
                log_pii=settings.log_pii,
            ),
        )
        transformer = RudderTransformer(
            specs, client, executor, AllowedDomains(_allowed_domains(settings, destinations))
        )
        app.state.runtime = Runtime(
            settings=settings,
            specs=specs,
            destinations=destinations,
            transformer=transformer,
            store=store,
            metrics=metrics,
            deliverer=deliverer,
            sandbox=sandbox is not None,
            store_health=health,
        )
        worker = asyncio.create_task(deliverer.run())
        app.state.runtime.worker = worker
        pruner = asyncio.create_task(_prune_forever(store, settings.unchanged_ttl_seconds))
        flusher = usage_flusher(executor, store, destinations, metrics)
        flushing = asyncio.create_task(flusher.run_forever(settings.usage_flush_interval))
        metrics_server = None
        if settings.metrics_port is not None:
            metrics_server = await serve_metrics(
                metrics, store, settings.metrics_host, settings.metrics_port, sorted(destinations)
            )
        try:
            yield
        finally:
            if metrics_server is not None:
                metrics_server.close()
            pruner.cancel()
            flushing.cancel()
            await deliverer.stop()
            worker.cancel()
            await asyncio.gather(worker, pruner, flushing, return_exceptions=True)
            await http.aclose()
            if injected is None:  # an injected store belongs to whoever made it
                await store.close()

    app = FastAPI(
        title="gainsight-destination",
        version=__version__,
        description="Deliver RudderStack/Segment events into Gainsight CS.",
        lifespan=lifespan,
        default_response_class=JsonResponse,
        # FastAPI's own OpenTelemetry hooks look up providers on every request; the service
        # reports through /metrics and its logs instead.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        docs_url=None,  # Swagger UI and ReDoc load from a CDN: /docs is served by api/docs.py
        redoc_url=None,
    )
    _error_handlers(app)
    _describe_api(app)
    if settings.transformer_routes == "on":
        # Inside the origin guard, before FastAPI's routing (see TransformerRoutes).
        app.add_middleware(rudder.TransformerRoutes, on_error=error_answer)
    app.add_middleware(
        OriginGuard,
        sandbox_guard=not settings.auth_enabled,
        cors_origins=settings.cors_origins,
        configured_host=settings.host,
        transformer_paths=rudder.TRANSFORMER_PATHS if settings.transformer_routes == "on" else (),
    )
    app.include_router(health.router)
    app.include_router(ingest.router)
    app.include_router(transform.router)
    app.include_router(admin.router)
    app.include_router(capacity.router)
    app.include_router(status.router)
    app.include_router(docs.router)
    if settings.transformer_routes == "on":
        app.include_router(rudder.build_router())
    if sandbox is not None:
        bounded = BoundedBody(sandbox.app, settings.max_body_bytes, settings.body_timeout_seconds)
        app.mount(SANDBOX_MOUNT, bounded)
    return app


def _base_url(settings: Settings, sandbox: bool, outbound: Any) -> str | None:
    if settings.gainsight_base_url is not None:
        return settings.gainsight_base_url
    if sandbox and isinstance(outbound, httpx.ASGITransport):
        return "http://sandbox"
    return None


PRUNE_EVERY_SECONDS = 3600.0


async def _prune_forever(store: Store, state_ttl_seconds: float) -> None:
    """Forget finished events and messageIds past the dedupe window, and memories past their
    TTL, once an hour."""
    while True:
        try:
            removed = await store.prune(time.time(), state_ttl_seconds=state_ttl_seconds)
            if removed:
                log.info("pruned %d finished events past the dedupe window", removed)
        except Exception:
            log.exception("pruning the store failed; will try again")
        await asyncio.sleep(PRUNE_EVERY_SECONDS)


def _calls_in_flight(settings: Settings) -> int:
    """The Gainsight calls one process makes at once (the client's call slots)."""
    return max(CALLS_IN_FLIGHT, 2 * settings.workers)


def _rate_windows(settings: Settings) -> tuple[RateWindow, ...]:
    return default_windows(
        settings.rate_limit_per_minute,
        settings.rate_limit_per_day,
        settings.rate_minute_seconds,
        settings.rate_day_seconds,
    )


def _timeline_windows(settings: Settings) -> tuple[RateWindow, ...]:
    return timeline_windows(
        settings.timeline_rate_limit_per_minute,
        settings.rate_limit_per_day,
        settings.timeline_counts_toward_day,
        settings.rate_minute_seconds,
        settings.rate_day_seconds,
    )


def _guard_seconds(settings: Settings) -> float:
    # Keep calls off window edges (clock skew, latency), but never more than a tenth of a window.
    return min(1.0, settings.rate_minute_seconds / 10)


def _observer(metrics: Metrics) -> Callable[[Credentials, PlannedRequest, Answer], None]:
    def observe(credentials: Credentials, request: PlannedRequest, answer: Answer) -> None:
        status = str(answer.status) if answer.status else "no_answer"
        metrics.calls.labels(credentials.destination, request.step, status).inc()

    return observe
