"""What the store holds, as JSON for people (DESIGN §9): admin routes, the CLI and /status share it.

Times are ISO 8601 UTC strings; the attempt count is the event's recorded history everywhere (a
list line and the full view agree, and history survives replay).
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

from destination.delivery.store import Attempt, DeadLetter, EventSummary, StoredEvent
from destination.jsonutil import JSONDecodeError, loads

EVENT_STATES_SHOWN = ("queued", "leased", "delivered", "unchanged", "counted", "filtered", "rejected", "dead")
"""Every state an event can be in (DESIGN §9), in the order people read them."""


def iso(at: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC with milliseconds: 2026-11-30T13:09:15.123Z."""
    if at is None:
        return None
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload(event: StoredEvent) -> Any:
    """The stored event as JSON; bytes that are not JSON (never written by ingest) as base64."""
    try:
        return loads(event.payload)
    except JSONDecodeError:
        return base64.b64encode(event.payload).decode()


def attempt_view(attempt: Attempt) -> dict[str, Any]:
    view: dict[str, Any] = {
        "at": iso(attempt.at),
        "outcome": attempt.outcome,
        "status": attempt.status_code,
        "request": attempt.request,
        "response": attempt.response,
    }
    if attempt.error is not None:
        view["error"] = attempt.error
    if attempt.call is not None:
        view["call"] = attempt.call
    return view


def event_view(event: StoredEvent, waiting_for: dict[str, Any] | None = None) -> dict[str, Any]:
    """One event with every attempt (DESIGN §9's shape); `waiting_for`: see waiting.py."""
    view: dict[str, Any] = {
        "id": event.id,
        "destination": event.destination_id,
        "messageId": event.message_id,
        "type": event.kind,
        "state": event.state,
    }
    if event.reason is not None:
        view["reason"] = event.reason
    view.update(
        {
            "receivedAt": iso(event.received_at),
            "finishedAt": iso(event.finished_at),
            "nextAttemptAt": iso(event.available_at) if event.state == "queued" else None,
            "waitingFor": waiting_for,
            "event": payload(event),
            "attempts": [attempt_view(a) for a in event.history],
        }
    )
    return view


def event_summary(event: EventSummary) -> dict[str, Any]:
    """One line of an event list."""
    line: dict[str, Any] = {
        "id": event.id,
        "destination": event.destination_id,
        "messageId": event.message_id,
        "type": event.kind,
        "state": event.state,
        "userId": event.user_id,
        "anonymousId": event.anonymous_id,
        "attempts": event.attempts,
        "receivedAt": iso(event.received_at),
        "finishedAt": iso(event.finished_at),
    }
    if event.reason is not None:
        line["reason"] = event.reason
    return line


def dead_letter_summary(letter: DeadLetter) -> dict[str, Any]:
    """One line of a dead-letter list (admin route and CLI)."""
    return {
        "id": letter.id,
        "destination": letter.destination_id,
        "messageId": letter.message_id,
        "type": letter.kind,
        "attempts": letter.attempts,
        "reason": letter.reason,
        "receivedAt": iso(letter.received_at),
        "deadAt": iso(letter.dead_at),
    }
