"""Workers: claim person runs from the store, plan their events, run the plans through the one
executor (gainsight/executor.py) within the rate budget, and record each event's fate (DESIGN §5).

One dispatcher claims batches of person runs while fewer than `concurrency` batches are in flight;
each batch is executed together, so its group events share Company calls (DESIGN §6). A run is a
person's head and their following due events, so a person's backlog is not claimed one event per
cycle; a batch takes no more events than the rate budget left can send. Every claim
has its own lease, renewed while the batch runs; a worker whose lease expired can no longer finish,
retry or dead-letter those events (the store refuses). Before every Gainsight call the rate governor
must grant budget; when it cannot, the events are put back until the window resets (no call over
budget, no attempt counted, no lease held while waiting).

A store that cannot commit (a full disk, say) stops delivery without losing anything: a failed
claim, settle or renewal is reported to the shared StoreHealth (so /ready says why, and the log
says it once), the leases run out, and the next poll that claims and commits resumes delivery.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from destination.config import Destination
from destination.delivery.governor import DELIVERY_POOL, RateGovernor, current_pool
from destination.delivery.health import StoreHealth
from destination.delivery.retry import RetryPolicy
from destination.delivery.store import (
    MAX_RUN,
    Attempt,
    Calls,
    Claim,
    QueuedEvent,
    Store,
    StoreUnavailableError,
    run_length,
)
from destination.delivery.worker_fates import FateRecorder
from destination.errors import ConfigError, EventError, GainsightError, OverBudget, UnmappedEventError
from destination.gainsight.client import Credentials
from destination.gainsight.executor import Executor
from destination.gainsight.jobs import Fate, Job, Progress
from destination.gainsight.plan import plan_delivery
from destination.gainsight.timeline import ACTIVITY_STEP
from destination.jsonutil import JSONDecodeError, loads
from destination.mapping.spec import Specs
from destination.metrics import Metrics
from destination.settings import default

log = logging.getLogger(__name__)
TIMELINE_CLASS = "timeline"  # the gate's memory of a spent Timeline budget, apart from the pools


class BudgetGate:
    """Awaited by the workers' client before every call: grants budget or raises OverBudget.

    A full window stays full until it ends (counts only grow, in every process sharing the
    store), so once refused, a tenant is refused from memory until then: no store write per
    event while the budget is spent, and the dispatcher can stop claiming that tenant's work.
    Timeline calls spend from a governor of their own (`timeline`, DESIGN §3.6), remembered
    apart: a spent Timeline minute neither stops sync calls nor the dispatcher's claims.
    """

    def __init__(
        self,
        governor: RateGovernor,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
        *,
        timeline: RateGovernor | None = None,
    ) -> None:
        self._governor = governor
        self._timeline = timeline
        self._metrics = metrics
        self._clock = clock
        self._spent_until: dict[tuple[str, str], float] = {}

    def spent_until(self, tenant_key: str, now: float, pool: str = DELIVERY_POOL) -> float | None:
        until = self._spent_until.get((tenant_key, pool))
        return until if until is not None and until > now else None

    def spent(self, tenant_key: str, until: float, pool: str = DELIVERY_POOL) -> None:
        """The pool's budget (TIMELINE_CLASS: Timeline's) is spent until then (the dispatcher read it so)."""
        self._spent_until[(tenant_key, pool)] = until

    @property
    def timeline(self) -> RateGovernor | None:
        """Timeline's own governor; None when activities spend the sync budget."""
        return self._timeline

    async def __call__(self, tenant_key: str, step: str = "") -> None:
        now = self._clock()
        pool = current_pool()  # the transformer routes' half of the budget is refused apart
        governor, remembered = self._governor, pool
        if step == ACTIVITY_STEP and self._timeline is not None:
            governor, remembered = self._timeline, TIMELINE_CLASS
        retry_at = self.spent_until(tenant_key, now, remembered)
        if retry_at is None:
            retry_at = await governor.try_acquire(tenant_key, now, pool)
        if retry_at is not None:
            self._spent_until[(tenant_key, remembered)] = retry_at
            raise OverBudget(retry_at)


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = default("workers")  # batches in flight
    batch_claims: int = 1000  # person runs claimed per batch
    batch_calls: int = 1000  # calls a batch's events may need (fewer when the budget is short)
    lease_seconds: float = default("lease_seconds")  # renewed every third of it while a batch runs
    idle_poll_seconds: float = 0.5
    drain_seconds: float = default("drain_seconds")
    log_pii: bool = default("log_pii")  # emails in outcome lines


PLENTY_CALLS = 100_000  # far more than one process can send in a second


def _calls_needed(claim: Claim) -> Calls:
    """The Gainsight calls of each class a claim's events need at most (company calls aside),
    by the cost each was given at ingest."""
    events = claim.events
    return run_length([e.kind for e in events], [e.cost for e in events], Calls(MAX_RUN, MAX_RUN))[1]


def _in_all(calls: Sequence[Calls]) -> Calls:
    return Calls(sum(c.sync for c in calls), sum(c.timeline for c in calls))


class Deliverer(FateRecorder):
    def __init__(
        self,
        *,
        store: Store,
        destinations: Mapping[str, Destination],
        specs: Specs,
        executor: Executor,
        governor: RateGovernor,
        gate: BudgetGate | None,
        policy: RetryPolicy,
        metrics: Metrics,
        settings: WorkerSettings = WorkerSettings(),
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        health: StoreHealth | None = None,
    ) -> None:
        self._store = store
        self._health = health or StoreHealth()
        self._destinations = destinations
        self._specs = specs
        self._executor = executor
        self._governor = governor
        self._gate = gate
        self._tenants = frozenset(d.config.domain for d in destinations.values() if d.config.domain)
        configs = [d.config for d in destinations.values() if d.config.domain]
        # Tenants whose activities spend Timeline's own budget, and whether any event is free (a
        # counted one not published): those a claim can take while the sync budget is spent.
        self._timeline_governor = gate.timeline if gate is not None else None
        self._timeline_tenants = frozenset(
            c.domain for c in configs if c.domain and c.timeline is not None and self._timeline_governor
        )
        self._free_events = any(c.usage is not None and not c.usage.publish for c in configs)
        self._policy = policy
        self._metrics = metrics
        self._settings = settings
        self._log_pii = settings.log_pii
        self._clock = clock
        self._rng = rng or random.Random()
        self._plenty_until = 0.0  # until then the budget need not be read before claiming
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._in_flight: dict[asyncio.Task[None], Calls] = {}  # batch -> the calls it may spend

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
            claims: list[Claim] = []
            if len(self._in_flight) < self._settings.concurrency:
                claims = await self._claim()
            if claims:
                task = asyncio.create_task(self._deliver_guarded(claims))
                self._in_flight[task] = _in_all([_calls_needed(claim) for claim in claims])
                task.add_done_callback(self._finished)
            else:
                await self._idle()

    async def _claim(self) -> list[Claim]:
        """Claim no more than the rate budget left can send (less what batches in flight will
        spend), per class: events claimed over it would only be put back until the window ends;
        with the sync budget spent, counted events and Timeline activities are still claimed. A
        failure counts as the store's (reported once), tried again next poll."""
        now = self._clock()
        try:
            left = await self._calls_left(now)
            if left is not None and left.sync < 1 and left.timeline < 1 and not self._free_events:
                return []
            settings = self._settings
            most = settings.batch_calls
            sync, timeline = (most, most) if left is None else (left.sync, left.timeline)
            return await self._store.claim(
                now,
                settings.batch_claims,
                settings.lease_seconds,
                Calls(min(max(sync, 0), most), min(max(timeline, 0), most)),
            )
        except Exception as exc:
            self._health.failed(exc, "claiming events")
            return []

    async def _calls_left(self, now: float) -> Calls | None:
        """Calls of each class left in the budgets of the tenants not known to be spent, less
        what batches in flight may spend; None: no bound. A sync budget of PLENTY_CALLS or more is
        read again a second later, not before every claim (store reads that would slow a drain
        and change nothing); Timeline's (far smaller) is read before every claim."""
        if self._gate is None or not self._tenants:
            return None
        plenty = now < self._plenty_until
        sync = PLENTY_CALLS
        if not plenty:
            sync = await self._class_left(now, self._governor, self._tenants, DELIVERY_POOL)
            if sync >= PLENTY_CALLS:
                self._plenty_until = now + 1.0
        in_flight = _in_all(list(self._in_flight.values()))
        if not self._timeline_tenants:  # activities (if any) spend sync calls
            if plenty:
                return None
            left = sync - in_flight.sync - in_flight.timeline
            return Calls(left, left)
        governor = self._timeline_governor
        timeline = await self._class_left(now, governor, self._timeline_tenants, TIMELINE_CLASS)
        return Calls(sync, timeline) - in_flight

    async def _class_left(
        self, now: float, governor: RateGovernor | None, tenants: frozenset[str], pool: str
    ) -> int:
        """Calls left of one class for `tenants` not known to be spent; a tenant found spent is
        remembered so until the governor may have room again (no store read until then)."""
        if governor is None or self._gate is None:
            return 0
        gate = self._gate
        open_tenants = [t for t in tenants if gate.spent_until(t, now, pool) is None]
        lefts = await asyncio.gather(*(governor.calls_left(t, now) for t in open_tenants))
        for tenant, tenant_left in zip(open_tenants, lefts, strict=True):
            if tenant_left < 1:  # spent: no claim (nor ingest's wake-ups) reads it again until then
                gate.spent(tenant, governor.next_room_at(now), pool)
        return sum(lefts)

    def _budget_pause(self) -> float:
        """Seconds until any tenant has budget again, when no claim could take anything: every
        tenant's sync budget spent, and Timeline's of every tenant with activities; never while
        a counted event needs no call at all."""
        if self._gate is None or not self._tenants or self._free_events:
            return 0.0
        now = self._clock()
        resets = [self._gate.spent_until(tenant, now) for tenant in self._tenants]
        resets += [self._gate.spent_until(t, now, TIMELINE_CLASS) for t in self._timeline_tenants]
        if any(reset is None for reset in resets):
            return 0.0
        return min(float(reset) for reset in resets if reset is not None) - now

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.pop(task, None)
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
                task.cancel()  # its leases expire and another run delivers it

    async def _deliver_guarded(self, claims: Sequence[Claim]) -> None:
        try:
            await self.deliver(claims)
            # Fates recorded: the store commits (a claim alone does not say so: its lease writes
            # are small, and claiming nothing commits nothing).
            self._health.committed()
        except StoreUnavailableError as exc:
            # Recording the fates failed (a full disk): the leases run out and the events are
            # claimed again once the store commits; nothing to record now.
            self._health.failed(exc, "recording deliveries")
        except Exception as exc:
            # A bug must neither lose the events nor retry them forever: it counts as a retryable
            # failure (so the retry limits end in a dead letter). Should recording fail too, the
            # leases expire and the events are claimed again.
            log.exception("delivering a batch failed unexpectedly")
            error = GainsightError(
                f"internal error while delivering: {type(exc).__name__}", outcome="retryable"
            )
            for event in (e for claim in claims for e in claim.events):
                with contextlib.suppress(Exception):
                    stored = await self._store.get_event(event.id)
                    if stored is not None and stored.state == "leased" and stored.lease_owner == event.lease:
                        await self._settle(
                            event, Fate("retryable", error=error, progress=Progress.of(event.progress))
                        )

    # ---- one batch ----

    async def deliver(self, claims: Sequence[Claim]) -> None:
        """Execute the claimed runs (renewing their leases meanwhile) and record every fate."""
        held = list(claims)  # claims with events still to deliver: only their leases can be lost
        renewing = asyncio.create_task(self._renew_forever(held))
        try:
            runs: dict[str, list[list[Job]]] = {}
            events: dict[int, QueuedEvent] = {}
            for claim in claims:
                run = [job for event in claim.events if (job := await self._job(event)) is not None]
                if run:
                    runs.setdefault(claim.events[0].destination_id, []).append(run)
                else:  # every event finished here (filtered, rejected, dead): nothing left to hold
                    held.remove(claim)
                events.update((e.id, e) for e in claim.events)
            results = await asyncio.gather(
                *(self._execute(destination_id, batch) for destination_id, batch in runs.items())
            )
        finally:
            renewing.cancel()
        # Settled together: the store commits them in one transaction (SQLite: group commit;
        # PostgreSQL: grouping.Grouped).
        fates = [(events[event_id], fate) for batch in results for event_id, fate in batch.items()]
        await asyncio.gather(*(self._settle(event, fate) for event, fate in fates))

    async def _execute(self, destination_id: str, runs: list[list[Job]]) -> dict[int, Fate]:
        destination = self._destinations[destination_id]
        return await self._executor.run(runs, Credentials.of(destination_id, destination.config))

    async def _renew_forever(self, claims: list[Claim]) -> None:
        """Renew the leases of `claims` (a list the caller shrinks) until cancelled."""
        lease = self._settings.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            now = self._clock()
            try:
                held = await asyncio.gather(*(self._store.renew(c.lease, now, lease) for c in list(claims)))
            except StoreUnavailableError as exc:
                self._health.failed(exc, "renewing leases")
                continue
            lost = sum(1 for events in held if events == 0)
            if lost:
                log.warning("%d claims lost their lease; other workers may now hold their events", lost)

    async def _job(self, event: QueuedEvent) -> Job | None:
        """The event's plan, or None when it is finished here and now (filtered, rejected, dead)."""
        destination = self._destinations.get(event.destination_id)
        if destination is None:
            await self._dead(event, f"destination {event.destination_id!r} is no longer configured")
            return None
        try:
            message = loads(event.payload)
        except JSONDecodeError:
            await self._dead(event, "stored payload is not valid JSON")
            return None
        try:
            plan = plan_delivery(message, destination.config, self._specs)
        except UnmappedEventError as exc:
            await self._filtered(event, exc.message)
            return None
        except EventError as exc:
            await self._rejected(event, exc.message)
            return None
        except ConfigError as exc:
            await self._dead(event, exc.message, Attempt(self._clock(), "aborted", None, exc.message))
            return None
        return Job(event.id, plan, Progress.of(event.progress), event.ordering_key, event.received_at)
