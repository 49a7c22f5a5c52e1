"""When an event happened, as the Timeline activity's date and the usage count's day read it
(DESIGN §3.6, §3.7): its `timestamp`, else `originalTimestamp` (when the SDK saw it). An event with
neither is dated when the service received it (the sinks pass that time in)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from destination.errors import EventError

_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: what a date can hold


def event_time_ms(event: Mapping[str, Any]) -> int | None:
    """Epoch milliseconds from ISO 8601 text (no offset: UTC) or an epoch-ms integer; None when
    the event carries neither field; EventError naming a field that holds no time."""
    for name in ("timestamp", "originalTimestamp"):
        value = event.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            if not 0 <= value <= _LAST_MS:
                raise EventError(f"{name} must be epoch milliseconds from 1970 to 9999, got {value}")
            return value
        if isinstance(value, str):
            try:
                when = datetime.fromisoformat(value.strip())
            except ValueError:
                raise EventError(f"{name} must be an ISO 8601 time, got {value!r:.60}") from None
            when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
            return round(when.timestamp() * 1000)
        raise EventError(f"{name} must be an ISO 8601 time or epoch milliseconds, got {value!r:.60}")
    return None
