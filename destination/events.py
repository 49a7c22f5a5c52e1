"""What makes an item of an ingest request an event (DESIGN §4.2), and nothing more.

An event is a JSON object with a known `type`, a `userId` or an `anonymousId`, and a usable
`messageId` (a string, or an integer JSON carries exactly; assigned when missing). Anything else is
not an event: ingest lists it in its answer's `rejected`, never stores it. Whether Gainsight can
take an event (an email present, fields of the right types, …) is the planner's call alone
(gainsight/plan.py): such events are stored and finish as `rejected` with its reason.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

STORED_TYPES = frozenset({"identify", "group", "track"})
ACKNOWLEDGED_TYPES = frozenset({"page", "screen", "alias"})
"""Types Gainsight does not take: acknowledged and counted, not stored."""

FIELD_HOLDERS: tuple[tuple[str, ...], ...] = (("traits",), ("context", "traits"), ("properties",))
"""The objects whose every key planning reads (the mapping looks each one up)."""

SAFE_INTEGER = 2**53
"""The largest integer every JSON reader (JavaScript's included) carries exactly."""
MAX_ID_LENGTH = 512


@dataclass(frozen=True, slots=True)
class NotAnEvent:
    """Why an item is not an event: the field at fault (None: the item itself) and the reason."""

    field: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Event:
    """An event to store or acknowledge: the payload as sent, its type set by the route when the
    route implies one, and a messageId assigned when it had none."""

    payload: dict[str, Any]
    kind: str  # the type, lower-cased
    message_id: str


_JSON_KINDS: dict[type, str] = {
    dict: "object",
    list: "array",
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _kind_of(value: Any) -> str:
    """The JSON name of a parsed value's kind, as messages name it."""
    return _JSON_KINDS.get(type(value), type(value).__name__)


_NOT_AN_OBJECT = {
    kind: NotAnEvent(None, f"expected a JSON object, got {name}")
    for kind, name in _JSON_KINDS.items()
    if kind is not dict
}


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:40] + "…")


def _type(value: Any) -> str | NotAnEvent:
    if value is None or value == "":
        return NotAnEvent("type", "Message Type is not present")
    if not isinstance(value, str):
        return NotAnEvent("type", f"must be a string, got {_kind_of(value)}")
    kind = value.lower()
    if kind not in STORED_TYPES and kind not in ACKNOWLEDGED_TYPES:
        return NotAnEvent("type", f"unknown message type {_shown(value)}")
    return kind


def _identity(event: dict[str, Any]) -> NotAnEvent | None:
    present = False
    for key in ("userId", "anonymousId"):
        value = event.get(key)
        if value is None or value == "":
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return NotAnEvent(key, f"must be a string, got {_kind_of(value)}")
        if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
            return NotAnEvent(key, f"is longer than {MAX_ID_LENGTH} characters")
        present = True
    return None if present else NotAnEvent("userId", "neither userId nor anonymousId is present")


def message_id(value: Any, missing: str | None = None) -> str | NotAnEvent:
    """The messageId as text; a missing one is `missing`, else a new one. A number must be an
    integer JSON carries exactly: 1.0, 1e3 or 1.0e-400 could read the same as another id once
    rounded, and dedupe would then drop a real event as its duplicate."""
    if value is None or value == "":
        return missing if missing is not None else str(uuid.uuid4())
    if isinstance(value, str):
        if len(value) > MAX_ID_LENGTH:
            return NotAnEvent("messageId", f"is longer than {MAX_ID_LENGTH} characters")
        return value
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= SAFE_INTEGER:
        return str(value)
    return NotAnEvent(
        "messageId", f"must be a string or an integer of at most 2^53, got {_kind_of(value)} {value!r:.40}"
    )


@dataclass(frozen=True, slots=True)
class EventLimits:
    """What one event may carry (GSD_MAX_EVENT_FIELDS, GSD_MAX_EVENT_BYTES): planning it runs on
    the event loop, in time that grows with its fields."""

    max_fields: int
    max_bytes: int


def over_limits(payload: dict[str, Any], size: int, limits: EventLimits) -> NotAnEvent | None:
    """Why an event of `size` bytes (as stored) carries too much, naming the limit; None if it fits."""
    if size > limits.max_bytes:
        return NotAnEvent(
            None, f"the event is {size} bytes; at most {limits.max_bytes} are accepted (GSD_MAX_EVENT_BYTES)"
        )
    for path in FIELD_HOLDERS:
        holder: Any = payload
        for step in path:
            holder = holder.get(step) if isinstance(holder, dict) else None
        if isinstance(holder, dict) and len(holder) > limits.max_fields:
            return NotAnEvent(
                ".".join(path),
                f"has {len(holder)} fields; at most {limits.max_fields} are accepted (GSD_MAX_EVENT_FIELDS)",
            )
    return None


USAGE_ROW_MARK = "gsdUsageRow"
"""Marks the event the service makes of a usage row Gainsight refused (usage_row_events.py)."""


def as_event(raw: Any, forced_type: str | None = None, missing_id: str | None = None) -> Event | NotAnEvent:
    """The event in `raw`, or why it is not one; `missing_id` is its messageId if it has none.
    Cheap: ingest runs this on every item."""
    if not isinstance(raw, dict):
        # Shared answers: a hostile batch may hold millions of such items.
        return _NOT_AN_OBJECT.get(type(raw)) or NotAnEvent(
            None, f"expected a JSON object, got {_kind_of(raw)}"
        )
    kind = _type(forced_type if forced_type is not None else raw.get("type"))
    if isinstance(kind, NotAnEvent):
        return kind
    problem = _identity(raw)
    if problem is not None:
        return problem
    context = raw.get("context")
    if isinstance(context, dict) and USAGE_ROW_MARK in context:
        return NotAnEvent(f"context.{USAGE_ROW_MARK}", "is reserved for the service's own usage rows")
    assigned = message_id(raw.get("messageId"), missing_id)
    if isinstance(assigned, NotAnEvent):
        return assigned
    payload = raw
    if forced_type is not None or raw.get("messageId") != assigned:
        payload = {**raw, "messageId": assigned}
        if forced_type is not None:
            payload["type"] = forced_type
    return Event(payload, kind, assigned)


_NUL, _REPLACEMENT = "\x00", "\ufffd"


def storable(text: str) -> str:
    """`text` as every store can hold it: U+0000, which PostgreSQL's text cannot, as U+FFFD."""
    return text.replace(_NUL, _REPLACEMENT)


def ordering_key(event: dict[str, Any]) -> str:
    """The person an event belongs to, for per-person order (DESIGN §5): `userId:<userId>`, else
    `anonymousId:<anonymousId>`, else `message:<messageId>` (its own queue), whatever the type. The
    same userId is one person whatever email its events carry: an identify with `traits.email` and
    a track with none are ordered together, and a group's `traits.email` (the company's address)
    plays no part. A number id is keyed as JSON reads it: an integral number as an integer (3 and
    3.0 are one id, as in JavaScript), any other as Python's `repr`. U+0000, which PostgreSQL's
    text cannot hold, is keyed as U+FFFD. The store's schema step that re-keys queued events
    (sqlite_migrations.sql v4, postgres_migrations.sql v3) computes the same text in SQL."""
    for key in ("userId", "anonymousId"):
        value = event.get(key)
        if isinstance(value, str) and value:
            return f"{key}:{storable(value)}"
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{key}:{_number_text(value)}"
    return "message:" + str(event["messageId"])


@dataclass(frozen=True, slots=True)
class Person:
    """Who an event is about, as people look for them (`events list --user`, outcome logs)."""

    user_id: str | None
    anonymous_id: str | None
    emails: tuple[str, ...]  # traits.email (not a group's: it describes the company), context.traits.email


def _text_id(value: Any) -> str | None:
    if value is None or value == "" or isinstance(value, bool | dict | list):
        return None
    return str(value)


def person_of(event: Any) -> Person:
    """The event's userId and anonymousId (as text) and the emails it carries for its person."""
    if not isinstance(event, dict):
        return Person(None, None, ())
    context = event.get("context")
    holders = [context.get("traits") if isinstance(context, dict) else None]
    kind = event.get("type")
    if not (isinstance(kind, str) and kind.lower() == "group"):
        holders.insert(0, event.get("traits"))
    emails = tuple(
        email
        for holder in holders
        if isinstance(holder, dict) and isinstance(email := holder.get("email"), str) and email
    )
    return Person(_text_id(event.get("userId")), _text_id(event.get("anonymousId")), emails)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """Lower case as SQL's lower() has it everywhere (ASCII letters only), so every store agrees."""
    return text.translate(_ASCII_LOWER)


def is_person(person: Person, user: str) -> bool:
    """`user` is the person's userId or anonymousId (exactly), or one of its emails (ignoring case)."""
    wanted = ascii_lower(user)
    return user in (person.user_id, person.anonymous_id) or any(
        ascii_lower(e) == wanted for e in person.emails
    )


def _number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) <= SAFE_INTEGER:
        return str(int(value))
    return str(value) if isinstance(value, int) else repr(value)
