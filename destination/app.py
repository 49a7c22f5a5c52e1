"""create_app(settings): the FastAPI service. Nothing happens at import time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError

from destination import __version__
from destination.api import health, rudder, transform
from destination.api.responses import JsonResponse
from destination.config import Destination, load_destinations
from destination.gainsight.client import GainsightClient, new_http_client
from destination.gainsight.companies import CompanyResolver
from destination.mapping.spec import default_specs
from destination.runtime import Runtime
from destination.settings import DEFAULT_ALLOWED_DOMAINS, Settings

log = logging.getLogger(__name__)

SANDBOX_MOUNT = "/gainsight"


def _error_handlers(app: FastAPI) -> None:
    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JsonResponse:
        return JsonResponse({"error": exc.detail}, exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JsonResponse:
        problems = [f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()]
        return JsonResponse({"error": "; ".join(problems)}, 400)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JsonResponse:
        log.error("unexpected error: %s", type(exc).__name__, exc_info=exc)
        return JsonResponse({"error": "internal error; see the service log"}, 500)


def _allowed_domains(settings: Settings, destinations: dict[str, Destination]) -> tuple[str, ...]:
    if settings.allowed_domains:
        return settings.allowed_domains
    configured = tuple(d.config.domain for d in destinations.values() if d.config.domain)
    return DEFAULT_ALLOWED_DOMAINS + configured


def create_app(
    settings: Settings | None = None, *, transport: httpx.AsyncBaseTransport | None = None
) -> FastAPI:
    """Build the service. `transport` replaces the network for outbound Gainsight calls (tests)."""
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
        http = new_http_client(outbound, httpx.Timeout(settings.gainsight_timeout_seconds, connect=5.0))
        client = GainsightClient(http, base_url=_base_url(settings, sandbox is not None, outbound))
        resolver = CompanyResolver(client)
        transformer = rudder.RudderTransformer(
            specs, client, resolver, rudder.AllowedDomains(_allowed_domains(settings, destinations))
        )
        app.state.runtime = Runtime(
            settings=settings,
            specs=specs,
            destinations=destinations,
            client=client,
            resolver=resolver,
            transformer=transformer,
            sandbox=sandbox is not None,
        )
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(
        title="gainsight-destination",
        version=__version__,
        description="Deliver RudderStack/Segment events into Gainsight CS.",
        lifespan=lifespan,
        default_response_class=JsonResponse,
    )
    _error_handlers(app)
    app.include_router(health.router)
    app.include_router(transform.router)
    if settings.transformer_routes == "on":
        app.include_router(rudder.build_router())
    if sandbox is not None:
        app.mount(SANDBOX_MOUNT, sandbox.app)
    return app


def _base_url(settings: Settings, sandbox: bool, outbound: Any) -> str | None:
    if settings.gainsight_base_url is not None:
        return settings.gainsight_base_url
    if sandbox and isinstance(outbound, httpx.ASGITransport):
        return "http://sandbox"
    return None
