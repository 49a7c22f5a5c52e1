"""Inbound events (Segment / RudderStack HTTP-API shapes), validated at ingest.

The model checks shape and names the bad field; unknown fields are kept (the stored payload is
the event as sent, plus a messageId when it had none). Whether the event can become a Gainsight
request (email present, …) is checked by the pure planner, also at ingest.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from destination.errors import EventError

Scalar = str | int | float
_SAFE_INTEGER = 2**53


class InboundEvent(BaseModel):
    """One event. Any other field is allowed and kept as sent."""

    model_config = ConfigDict(extra="allow", strict=False)

    type: str | None = None
    messageId: Scalar | None = None
    userId: Scalar | None = None
    anonymousId: Scalar | None = None
    event: str | None = None
    traits: dict[str, Any] | None = None
    properties: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    timestamp: str | None = None


def _describe(error: ValidationError, where: str) -> str:
    problems = []
    for err in error.errors():
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        problems.append(f"{where}{path}: {err['msg']}")
    return "; ".join(problems)


def checked_event(raw: Any, where: str, forced_type: str | None = None) -> dict[str, Any]:
    """The event to store: shape-checked, its type set by the route when the route implies one,
    and a messageId assigned when missing. EventError names the field (prefixed by `where`)."""
    if not isinstance(raw, dict):
        raise EventError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    event = dict(raw)
    if forced_type is not None:
        event["type"] = forced_type
    try:
        InboundEvent.model_validate(event)
    except ValidationError as exc:
        raise EventError(_describe(exc, where)) from None
    event["messageId"] = _message_id(event.get("messageId"), where)
    return event


def _message_id(value: Any, where: str) -> str:
    """The messageId as text; a missing one is assigned. A number must be an exact integer, or
    two different ids could read the same once rounded (dedupe would drop a real event)."""
    if value is None or value == "":
        return str(uuid.uuid4())
    if isinstance(value, float):
        if not value.is_integer() or abs(value) >= _SAFE_INTEGER:
            raise EventError(f"{where}.messageId: expected a string or an exact integer, got {value!r}")
        value = int(value)
    return str(value)


def ordering_key(event: dict[str, Any]) -> str:
    """The person an event belongs to, for per-person order: email, else userId, else anonymousId."""
    for holder in (event.get("traits"), (event.get("context") or {}).get("traits")):
        if isinstance(holder, dict):
            email = holder.get("email")
            if isinstance(email, str) and email:
                return "email:" + email.strip().lower()
    for key in ("userId", "anonymousId"):
        value = event.get(key)
        if value is not None and value != "":
            return f"{key}:{value}"
    return "message:" + str(event["messageId"])
