"""How a worker records each event's fate in the store: the move (complete, retry later, reject,
dead-letter) with its attempt, the metrics, and the one log line per outcome (DESIGN §9)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import replace

from destination.delivery.governor import RateGovernor
from destination.delivery.retry import RetryPolicy
from destination.delivery.store import (
    Attempt,
    QueuedEvent,
    Store,
)
from destination.events import Person, person_of
from destination.gainsight.jobs import Fate
from destination.gainsight.outcomes import delivered_note
from destination.jsonutil import JSONDecodeError, loads
from destination.logs import log_event_outcome
from destination.metrics import Metrics


class FateRecorder:
    """The Deliverer's part that settles events; the attributes are the Deliverer's."""

    _store: Store
    _governor: RateGovernor
    _policy: RetryPolicy
    _metrics: Metrics
    _log_pii: bool  # emails in outcome lines
    _clock: Callable[[], float]
    _rng: random.Random

    async def _settle(self, event: QueuedEvent, fate: Fate) -> None:
        """Record the fate; the store refuses it (and its attempt) if the lease was lost."""
        now = self._clock()
        if fate.outcome == "deferred":  # nothing was tried: no attempt
            if fate.retry_at is not None:  # the rate budget is spent until then
                # Labelled by destination: metric labels never carry a tenant's domain.
                self._metrics.budget_waits.labels(event.destination_id).inc()
            retry_at = fate.retry_at if fate.retry_at is not None else now
            await self._store.retry_later(event.id, retry_at, fate.progress.as_dict(), lease=event.lease)
            return
        call = fate.call
        status = call.answer.status if call is not None else None
        # Why a delivered event's answer is not a 2xx (a replayed signature, a Timeline activity
        # refused as a duplicate), else None.
        note = fate.note or (
            delivered_note(call.answer) if call is not None and fate.outcome == "delivered" else None
        )
        attempt = Attempt(
            now,
            fate.outcome,
            status,
            fate.error.message if fate.error is not None else note,
            call.answer.body if call is not None else None,
            request=call.request if call is not None else None,
            call=call.id if call is not None else None,
        )
        attempts = event.attempts + 1  # the store's one counter (whole history), this attempt included
        tries = event.attempts_since_replay + 1  # what the retry policy counts: a replay starts afresh
        self._metrics.attempts.labels(event.destination_id, fate.outcome).inc()
        if fate.outcome == "filtered":  # a counted event with no company (DESIGN §3.7)
            await self._filtered(event, fate.reason or "filtered", attempt)
            return
        if fate.outcome in ("delivered", "unchanged", "counted"):
            if await self._store.complete(event.id, fate.outcome, lease=event.lease, attempt=attempt):
                self._metrics.outcomes.labels(event.destination_id, fate.outcome).inc()
                self._metrics.delivery_seconds.observe(max(0.0, now - event.received_at))
                self._log(event, fate.outcome, status, attempts, now, note)
            return
        assert fate.error is not None
        if fate.outcome == "rejected":
            await self._rejected(event, fate.error.message, attempt)
            return
        minute = self._governor.windows[0]
        next_try = self._policy.next_attempt(
            tries, fate.outcome, now, event.received_at, fate.error.retry_after, minute.end(now), self._rng
        )
        if next_try is None:
            reason = (
                fate.error.message
                if fate.outcome == "aborted"
                else f"gave up after {tries} attempts{' since replay' if event.replayed_at_attempt else ''}: "
                f"{fate.error.message}"
            )
            await self._dead(event, reason, attempt)
        else:
            progress = fate.progress.as_dict()
            if await self._store.retry_later(
                event.id, next_try, progress, lease=event.lease, attempt=attempt
            ):
                self._log(event, "retry", status, attempts, now, fate.error.message)

    async def _filtered(self, event: QueuedEvent, reason: str, attempt: Attempt | None = None) -> None:
        attempt = replace(attempt, error=reason) if attempt is not None else None
        attempt = attempt or Attempt(self._clock(), "filtered", None, reason)
        if await self._store.complete(
            event.id, "filtered", lease=event.lease, attempt=attempt, reason=reason
        ):
            self._metrics.outcomes.labels(event.destination_id, "filtered").inc()
            self._log(event, "filtered", None, event.attempts + 1, self._clock(), reason)

    async def _rejected(self, event: QueuedEvent, reason: str, attempt: Attempt | None = None) -> None:
        """The event itself cannot go (the planner refused it, or no company has its key): final
        at once, never retried, not a dead letter."""
        attempt = attempt or Attempt(self._clock(), "rejected", None, reason)
        if await self._store.reject(event.id, reason, lease=event.lease, attempt=attempt):
            self._metrics.outcomes.labels(event.destination_id, "rejected").inc()
            self._log(event, "rejected", None, event.attempts + 1, self._clock(), reason)

    async def _dead(self, event: QueuedEvent, reason: str, attempt: Attempt | None = None) -> None:
        if await self._store.dead_letter(event.id, reason, lease=event.lease, attempt=attempt):
            self._metrics.outcomes.labels(event.destination_id, "dead").inc()
            status = attempt.status_code if attempt is not None else None
            attempts = event.attempts + (1 if attempt is not None else 0)
            self._log(event, "dead", status, attempts, self._clock(), reason)

    def _log(
        self,
        event: QueuedEvent,
        outcome: str,
        status: int | None,
        attempts: int,
        now: float,
        reason: str | None = None,
    ) -> None:
        """The one log line per event outcome (DESIGN §9)."""
        log_event_outcome(
            destination=event.destination_id,
            message_id=event.message_id,
            kind=event.kind,
            outcome=outcome,
            status=status,
            attempts=attempts,
            latency=now - event.received_at,
            reason=reason,
            person=_person(event),
            pii=self._log_pii,
        )


def _person(event: QueuedEvent) -> Person:
    """Who the event is about, for its outcome line (the payload parsed again: cheap beside a call)."""
    try:
        return person_of(loads(event.payload))
    except JSONDecodeError:
        return person_of(None)
