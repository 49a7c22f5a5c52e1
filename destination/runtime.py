"""What the running service holds (built once in create_app's lifespan) and how routes reach it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request

from destination.config import Destination
from destination.delivery.health import StoreHealth
from destination.delivery.store import Store
from destination.gainsight.transformer import RudderTransformer
from destination.mapping.spec import Specs
from destination.metrics import Metrics
from destination.settings import Settings

if TYPE_CHECKING:
    from destination.delivery.worker import Deliverer


@dataclass
class Runtime:
    settings: Settings
    specs: Specs
    destinations: dict[str, Destination]
    transformer: RudderTransformer
    store: Store
    metrics: Metrics
    deliverer: Deliverer
    sandbox: bool
    worker: asyncio.Task[None] | None = None  # the delivery loop, once started
    # Whether the store commits, as ingest and the workers last found it (shared with the workers).
    store_health: StoreHealth = field(default_factory=StoreHealth)

    def store_failed(self, error: Exception) -> None:
        self.store_health.failed(error)

    def store_committed(self) -> None:
        self.store_health.committed()

    @property
    def auth_enabled(self) -> bool:
        return self.settings.auth_enabled

    @property
    def delivering(self) -> bool:
        """The delivery loop is running (it ends only on shutdown or a bug)."""
        return self.worker is not None and not self.worker.done()

    def wake_workers(self) -> None:
        self.deliverer.wake()

    def destination(self, destination_id: str | None) -> Destination:
        """The named destination, or the only one when no name is given."""
        if destination_id is None:
            if len(self.destinations) == 1:
                return next(iter(self.destinations.values()))
            names = ", ".join(sorted(self.destinations))
            raise HTTPException(400, f"several destinations are configured; name one of: {names}")
        found = self.destinations.get(destination_id)
        if found is None:
            raise HTTPException(404, f"no destination with id {destination_id!r}")
        return found


async def get_runtime(request: Request) -> Runtime:
    # async on purpose: FastAPI runs a plain `def` dependency in a thread pool, per request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
