"""Company writes shared across concurrent transformer requests (DESIGN §6).

rudder-server sends many small requests at once. For each tenant, one batch of Company calls is
in flight at a time; group events arriving meanwhile wait for it and then go together in the
next batch (one search for the unknown names, one insert, one update of up to 50 records), so
a burst of one-event requests costs a few calls instead of one or two each. An idle tenant's
first event goes at once: nothing waits for a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from destination.errors import GainsightError
from destination.gainsight.client import Credentials
from destination.gainsight.plan import GroupPlan

Resolve = Callable[[Sequence[GroupPlan], Credentials], Awaitable[list[str | GainsightError]]]
TenantKey = tuple[str, Credentials]
Waiter = tuple[GroupPlan, "asyncio.Future[str | GainsightError]"]


@dataclass
class _Tenant:
    waiting: list[Waiter] = field(default_factory=list)
    writer: asyncio.Task[None] | None = None


class CompanyBatcher:
    """`resolve(plans)` for plans of one tenant, coalesced with other callers' plans."""

    def __init__(self, resolve_many: Resolve, max_batch: int = 500) -> None:
        self._resolve_many = resolve_many
        self._max_batch = max_batch
        self._tenants: dict[TenantKey, _Tenant] = {}

    async def resolve(
        self, plans: Sequence[GroupPlan], credentials: Credentials
    ) -> list[str | GainsightError]:
        """Each plan's Gsid, or the error that stopped it; the plans share one domain and key."""
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[str | GainsightError]] = [loop.create_future() for _ in plans]
        key = (plans[0].domain, credentials)
        tenant = self._tenants.setdefault(key, _Tenant())
        tenant.waiting.extend(zip(plans, futures, strict=True))
        if tenant.writer is None:  # the writer runs in the caller's context (its budget pool)
            tenant.writer = loop.create_task(self._write_while_waiting(key, tenant))
        return list(await asyncio.gather(*futures))

    async def _write_while_waiting(self, key: TenantKey, tenant: _Tenant) -> None:
        try:
            while tenant.waiting:
                batch = tenant.waiting[: self._max_batch]
                del tenant.waiting[: self._max_batch]
                await self._write(batch, key[1])
        except BaseException:  # shutting down: nobody will write for the rest
            for _, future in tenant.waiting:
                future.cancel()
            raise
        finally:
            del self._tenants[key]

    async def _write(self, batch: list[Waiter], credentials: Credentials) -> None:
        try:
            results: list[str | GainsightError | BaseException] = list(
                await self._resolve_many([plan for plan, _ in batch], credentials)
            )
        except GainsightError as exc:  # e.g. the rate budget is spent: every plan waits
            results = [exc] * len(batch)
        except Exception as exc:  # a bug: each waiting request answers it, the writer goes on
            results = [exc] * len(batch)
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its request went away
                continue
            if isinstance(result, GainsightError) or not isinstance(result, BaseException):
                future.set_result(result)
            else:
                future.set_exception(result)
