"""Dry run: events in, planned Gainsight requests out, nothing sent (CLI `transform`, /v1/transform)."""

from __future__ import annotations

from typing import Any

from destination.config import DestinationConfig
from destination.errors import GsdError, UnmappedEventError
from destination.gainsight.client import Credentials
from destination.gainsight.plan import plan_delivery
from destination.gainsight.render import describe_plan
from destination.jsonutil import JSONDecodeError, loads
from destination.mapping.spec import Specs


class EventStreamError(ValueError):
    """The input is neither a JSON array, a {"batch": [...]} object, one event, nor JSON lines."""


def parse_event_stream(text: str) -> list[Any]:
    """Events from a JSON array, a `{"batch": [...]}` object, one JSON object, or JSON lines."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        whole = loads(stripped)
    except JSONDecodeError:
        whole = None
    else:
        if isinstance(whole, list):
            return whole
        if isinstance(whole, dict):
            batch = whole.get("batch")
            return batch if isinstance(batch, list) else [whole]
    events = []
    for number, line in enumerate(stripped.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            events.append(loads(line))
        except JSONDecodeError as exc:
            raise EventStreamError(f"line {number}: not valid JSON ({exc})") from None
    return events


def dry_run_one(index: int, event: Any, config: DestinationConfig, specs: Specs) -> dict[str, Any]:
    message_id = event.get("messageId") if isinstance(event, dict) else None
    head: dict[str, Any] = {"index": index, "messageId": message_id}
    try:
        plan = plan_delivery(event, config, specs)
    except UnmappedEventError as exc:
        return {**head, "filtered": exc.message, "statusCode": exc.status_code}
    except GsdError as exc:
        return {**head, "error": exc.message, "statusCode": exc.status_code}
    return {**head, **describe_plan(plan, Credentials.of("dry-run", config))}


def dry_run(events: list[Any], config: DestinationConfig, specs: Specs) -> list[dict[str, Any]]:
    return [dry_run_one(i, event, config, specs) for i, event in enumerate(events)]
