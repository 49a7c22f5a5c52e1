"""The simulator as an ASGI app: Gainsight's routes behind the gateway, plus `/__sim/` admin."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

from destination.simulator import admin
from destination.simulator.config import SimulatorConfig
from destination.simulator.gateway import Gateway
from destination.simulator.routes import gainsight_router, install_error_handlers
from destination.simulator.state import Simulator


class SimulatorApp(FastAPI):
    """A FastAPI app whose every request passes through the gateway first.

    The gateway sits outside FastAPI's middleware stack so it receives the server's own `send`,
    which a dropped-connection fault needs (see gateway.py).
    """

    gateway: Gateway

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.gateway(scope, receive, send)

    async def call_routes(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)


def create_simulator_app(
    config: SimulatorConfig | None = None, *, clock: Callable[[], float] = time.time
) -> FastAPI:
    """A fresh simulated tenant; its state is `app.state.simulator` (a `Simulator`).

    `clock` returns epoch seconds; it drives rate windows, token expiry and record timestamps.
    """
    simulator = Simulator(config or SimulatorConfig(), clock)
    app = SimulatorApp(
        title="Gainsight CS simulator",
        summary="People, Company, Events and Timeline APIs of a fake Gainsight tenant",
        docs_url="/__sim/docs",
        redoc_url=None,
        openapi_url="/__sim/openapi.json",
        redirect_slashes=False,
    )
    app.state.simulator = simulator
    app.include_router(gainsight_router())
    app.include_router(admin.router)
    install_error_handlers(app)
    app.gateway = Gateway(simulator, app.call_routes)
    return app
