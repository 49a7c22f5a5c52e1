"""Workers: claim stored events, plan them, perform the plan within the rate budget, and record
the outcome (DESIGN §5).

One dispatcher claims events while worker slots are free; each event is delivered in its own task.
Before every Gainsight call the rate governor must grant budget; when it cannot, the event is put
back until the window resets (no call is sent over budget, and no lease is held while waiting).
A group is a resumable plan: once the Company's Gsid is known it is kept in the event's progress,
so a retry only redoes the association.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from destination.config import Destination
from destination.delivery.governor import RateGovernor
from destination.delivery.retry import RetryPolicy
from destination.delivery.store import Attempt, QueuedEvent, Store
from destination.errors import ConfigError, EventError, GainsightError, OverBudget, UnmappedEventError
from destination.gainsight.client import GainsightClient
from destination.gainsight.companies import CompanyResolver
from destination.gainsight.endpoints import UNKNOWN_COMPANY_CODE
from destination.gainsight.plan import GroupPlan, Plan, plan_event
from destination.jsonutil import JSONDecodeError, loads
from destination.mapping.spec import Specs
from destination.metrics import Metrics

log = logging.getLogger(__name__)

_STEP = {"identify": "person upsert", "track": "event publish"}


class BudgetGate:
    """Awaited by the workers' client before every call: grants budget or raises OverBudget.

    A full window stays full until it ends (counts only grow, in every process sharing the
    store), so once refused, a tenant is refused from memory until then: no store write per
    event while the budget is spent, and the dispatcher can stop claiming that tenant's work.
    """

    def __init__(
        self, governor: RateGovernor, metrics: Metrics, clock: Callable[[], float] = time.time
    ) -> None:
        self._governor = governor
        self._metrics = metrics
        self._clock = clock
        self._spent_until: dict[str, float] = {}

    def spent_until(self, tenant_key: str, now: float) -> float | None:
        until = self._spent_until.get(tenant_key)
        return until if until is not None and until > now else None

    async def __call__(self, tenant_key: str) -> None:
        now = self._clock()
        retry_at = self.spent_until(tenant_key, now)
        if retry_at is None:
            retry_at = await self._governor.try_acquire(tenant_key, now)
        if retry_at is not None:
            self._spent_until[tenant_key] = retry_at
            self._metrics.budget_waits.labels(tenant_key).inc()
            raise OverBudget(retry_at)


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = 4
    lease_seconds: float = 60.0
    idle_poll_seconds: float = 0.5
    drain_seconds: float = 25.0


def owner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Deliverer:
    def __init__(
        self,
        *,
        store: Store,
        destinations: Mapping[str, Destination],
        specs: Specs,
        client: GainsightClient,
        resolver: CompanyResolver,
        governor: RateGovernor,
        gate: BudgetGate | None,
        policy: RetryPolicy,
        metrics: Metrics,
        settings: WorkerSettings = WorkerSettings(),
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self._store = store
        self._destinations = destinations
        self._specs = specs
        self._client = client
        self._resolver = resolver
        self._governor = governor
        self._gate = gate
        self._tenants = frozenset(d.config.domain for d in destinations.values() if d.config.domain)
        self._policy = policy
        self._metrics = metrics
        self._settings = settings
        self._clock = clock
        self._rng = rng or random.Random()
        self._owner = owner_name()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    # ---- running ----

    def wake(self) -> None:
        """New events were stored: look for work now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping.is_set():
            pause = self._budget_pause()
            if pause > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause)
                continue
            # Cleared before claiming: a wake-up that arrives while claiming is not lost.
            self._wake.clear()
            free = self._settings.concurrency - len(self._in_flight)
            claimed: list[QueuedEvent] = []
            if free > 0:
                try:
                    claims = await self._store.claim(self._clock(), free, self._settings.lease_seconds)
                    claimed = [event for claim in claims for event in claim.events]
                except Exception:
                    log.exception("claiming events failed; trying again shortly")
            for event in claimed:
                task = asyncio.create_task(self._deliver_guarded(event))
                self._in_flight.add(task)
                task.add_done_callback(self._finished)
            if not claimed:
                await self._idle()

    def _budget_pause(self) -> float:
        """Seconds until any tenant has budget again, when every tenant's budget is spent."""
        if self._gate is None or not self._tenants:
            return 0.0
        now = self._clock()
        resets = [self._gate.spent_until(tenant, now) for tenant in self._tenants]
        if any(reset is None for reset in resets):
            return 0.0
        return min(float(reset) for reset in resets if reset is not None) - now

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # a slot is free

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._settings.idle_poll_seconds)

    async def stop(self) -> None:
        """Stop claiming and let in-flight deliveries finish (up to the drain timeout)."""
        self._stopping.set()
        self._wake.set()
        if self._in_flight:
            _, pending = await asyncio.wait(set(self._in_flight), timeout=self._settings.drain_seconds)
            for task in pending:
                task.cancel()  # its lease expires and another run delivers it

    async def _deliver_guarded(self, event: QueuedEvent) -> None:
        try:
            await self.deliver(event)
        except Exception as exc:
            # A bug must neither lose the event nor retry it forever: it counts as a retryable
            # failure (so the retry limits end in a dead letter). Should recording fail too, the
            # lease expires and the event is claimed again.
            log.exception("delivering event %s failed unexpectedly", event.id)
            error = GainsightError(
                f"internal error while delivering: {type(exc).__name__}", outcome="retryable"
            )
            with contextlib.suppress(Exception):
                await self._failed(event, error, dict(event.progress or {}))

    # ---- one event ----

    async def deliver(self, event: QueuedEvent) -> None:
        destination = self._destinations.get(event.destination_id)
        if destination is None:
            await self._dead(event, f"destination {event.destination_id!r} is no longer configured")
            return
        try:
            plan = self._plan(event, destination)
        except UnmappedEventError as exc:
            await self._filtered(event, exc.message)
            return
        except (EventError, ConfigError) as exc:
            await self._store.record_attempt(event.id, Attempt(self._clock(), "aborted", None, exc.message))
            await self._dead(event, exc.message)
            return
        progress = dict(event.progress or {})
        try:
            await self._perform(plan, progress)
        except OverBudget as exc:
            await self._store.retry_later(event.id, exc.retry_at, progress, lease=event.lease)
            return
        except GainsightError as exc:
            await self._failed(event, exc, progress)
            return
        now = self._clock()
        await self._store.record_attempt(event.id, Attempt(now, "delivered", 200))
        await self._store.complete(event.id, "delivered", lease=event.lease)
        self._metrics.attempts.labels(event.destination_id, "delivered").inc()
        self._metrics.outcomes.labels(event.destination_id, "delivered").inc()
        self._metrics.delivery_seconds.observe(max(0.0, now - event.received_at))

    def _plan(self, event: QueuedEvent, destination: Destination) -> Plan:
        try:
            message = loads(event.payload)
        except JSONDecodeError:
            raise EventError("stored payload is not valid JSON") from None
        return plan_event(message, destination.config, self._specs)

    async def _perform(self, plan: Plan, progress: dict[str, Any]) -> None:
        if isinstance(plan, GroupPlan):
            gsid = progress.get("gsid")
            if not isinstance(gsid, str):
                gsid = await self._resolver.resolve(plan)
                progress["gsid"] = gsid
            try:
                await self._client.execute(plan.association_request(gsid), "person association")
            except GainsightError as exc:
                if exc.error_code == UNKNOWN_COMPANY_CODE:
                    # The Gsid no longer names a company (deleted in Gainsight): resolve afresh.
                    self._resolver.forget(plan.domain, plan.company_name)
                    progress.pop("gsid", None)
                raise
        else:
            await self._client.execute(plan.request, _STEP[plan.kind])

    async def _failed(self, event: QueuedEvent, error: GainsightError, progress: dict[str, Any]) -> None:
        now = self._clock()
        attempt = Attempt(now, error.outcome, error.http_status, error.message, error.response)
        await self._store.record_attempt(event.id, attempt)
        self._metrics.attempts.labels(event.destination_id, error.outcome).inc()
        failures = int(progress.get("failures", 0)) + 1
        progress["failures"] = failures
        minute = self._governor.windows[0]
        retry_at = self._policy.next_attempt(
            failures, error.outcome, now, event.received_at, error.retry_after, minute.end(now), self._rng
        )
        if retry_at is None:
            reason = (
                error.message
                if error.outcome == "aborted"
                else f"gave up after {failures} attempts: {error.message}"
            )
            await self._dead(event, reason)
        else:
            await self._store.retry_later(event.id, retry_at, progress, lease=event.lease)

    async def _filtered(self, event: QueuedEvent, reason: str) -> None:
        await self._store.record_attempt(event.id, Attempt(self._clock(), "filtered", None, reason))
        await self._store.complete(event.id, "filtered", lease=event.lease)
        self._metrics.outcomes.labels(event.destination_id, "filtered").inc()

    async def _dead(self, event: QueuedEvent, reason: str) -> None:
        await self._store.dead_letter(event.id, reason, lease=event.lease)
        self._metrics.outcomes.labels(event.destination_id, "dead").inc()
        log.warning("event %s (%s) dead-lettered: %s", event.message_id, event.kind, reason)
