"""What a queued event waits for, as its view says it (`waitingFor`, DESIGN §9), first match wins:

    {"kind": "event", "messageId": M}   an earlier event of its person is ahead of it (the person's
                                        head, M): events of one person go out in order
    {"kind": "budget", "until": T}      the tenant's rate budget is spent until T (a window's end):
                                        nothing is sent before then, whatever its own retry time
    {"kind": "backoff", "until": T}     its next try, after a failure, is due at T
    None                                nothing: due now (a worker claims it), in flight, or finished

A window counts as spent once its calls reach `limit - margin`, where the rate governor stops
granting calls away from the window's edges (governor.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from destination.delivery.governor import RateWindow
from destination.delivery.store import Store, StoredEvent
from destination.delivery.views import iso


async def budget_spent_until(
    store: Store, tenant_key: str, windows: Sequence[RateWindow], now: float
) -> float | None:
    """The end of the last spent window (None: budget left in every window)."""
    used = await store.budget_used(tenant_key, [(w.name, w.start(now)) for w in windows])
    ends = [w.end(now) for w in windows if used.get(w.name, 0) >= w.limit - w.margin]
    return max(ends) if ends else None


async def waiting_for(
    store: Store,
    event: StoredEvent,
    now: float,
    tenant_key: str | None,
    windows: Sequence[RateWindow],
) -> dict[str, Any] | None:
    """What the event waits for (see above); `tenant_key` None: its budget is not known here."""
    if event.state != "queued":
        return None
    head = await store.person_head(event.destination_id, event.ordering_key)
    if head is not None and head.id != event.id:
        return {"kind": "event", "messageId": head.message_id}
    if tenant_key is not None:
        spent_until = await budget_spent_until(store, tenant_key, windows, now)
        if spent_until is not None:
            return {"kind": "budget", "until": iso(spent_until)}
    if event.available_at is not None and event.available_at > now:
        return {"kind": "backoff", "until": iso(event.available_at)}
    return None
