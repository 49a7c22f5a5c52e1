"""A usage row Gainsight refused, as an event of its own: its dead letter (DESIGN §3.7).

The flusher turns a refused row into a `track` event in the destination's queue, named after the
row's metric and marked `context.gsdUsageRow`. A worker tries it once more, alone (the usage sink
writes the row's count as the store holds it then); refused again, it becomes a dead letter like
any event, with the request and Gainsight's answer, and `dead-letters replay` writes it once the
cause is fixed. Its messageId names the row and the count refused, so a flusher that dies before
holding the row back enqueues it once, not twice. Its person (`userId`) is the row: it waits
behind nobody's events and holds up none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from destination.delivery.store import NewEvent
from destination.delivery.usage_store import UsageKey, UsageRow
from destination.events import USAGE_ROW_MARK, ordering_key
from destination.gainsight.outcomes import Answer
from destination.jsonutil import dumps

ROW_MARK = USAGE_ROW_MARK  # refused at ingest: only the flusher makes such events


def row_event(destination_id: str, row: UsageRow, answer: Answer, now: float) -> NewEvent:
    key = row.key
    payload: dict[str, Any] = {
        "type": "track",
        "messageId": f"usage-row:{key.company}:{key.day}:{key.metric}:{row.count}",
        "userId": f"usage-row:{key.company}:{key.day}:{key.metric}",
        "event": key.metric,
        "timestamp": f"{key.day}T00:00:00.000Z",
        "properties": {
            "count": row.count,
            "refusedWith": {
                "status": answer.status,
                "errorCode": answer.error_code,
                "errorDesc": answer.error_desc,
            },
        },
        "context": {ROW_MARK: {"company": key.company, "day": key.day, "metric": key.metric}},
    }
    return NewEvent(destination_id, payload["messageId"], ordering_key(payload), "track", dumps(payload), now)


def row_of(event: Mapping[str, Any]) -> UsageKey | None:
    """The usage row a row event names, or None for any other event."""
    context = event.get("context")
    mark = context.get(ROW_MARK) if isinstance(context, dict) else None
    if not isinstance(mark, dict):
        return None
    parts = (mark.get("company"), mark.get("day"), mark.get("metric"))
    if not all(isinstance(part, str) and part for part in parts):
        return None
    company, day, metric = parts
    return UsageKey(str(company), str(day), str(metric))
