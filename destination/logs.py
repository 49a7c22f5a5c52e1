"""Logging (DESIGN §9): one line per record, JSON by default, the same for uvicorn's access log.

A record's `extra={...}` fields become keys of its JSON object, so code reports facts, not prose:

    log.info("event outcome", extra={"destination": "acme", "messageId": "m1", "type": "track",
             "outcome": "delivered", "status": 200, "attempts": 1, "latency": 0.42})

`GSD_LOG_FORMAT=text` writes the same facts as `key=value` pairs after the message.
Nothing here reads secrets; callers never put one in a record.
"""

from __future__ import annotations

import logging
import sys
import warnings
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import orjson
from jwt.warnings import InsecureKeyLengthWarning

from destination.events import Person

LogFormat = Literal["json", "text"]

# Attributes every LogRecord has; anything else on a record came from `extra=`.
# uvicorn adds `color_message` (the message with terminal colours) to some records: not a fact.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",
}
_ACCESS_FIELDS = ("client", "method", "path", "httpVersion", "status")

outcome_log = logging.getLogger("destination.events")


_CREDENTIAL_WORDS = ("key", "token", "secret", "pass", "auth", "sig", "jwt", "cred", "session", "code")


def masked_query(path: str) -> str:
    """A request target with the values of credential-like query parameters (`writeKey`, `token`,
    `api_key`, `signature`, …) shown as `***`: senders put credentials there too."""
    target, question, query = path.partition("?")
    if not question:
        return path
    parts = []
    for pair in query.split("&"):
        name, equals, _ = pair.partition("=")
        if equals and any(word in name.lower() for word in _CREDENTIAL_WORDS):
            pair = f"{name}=***"
        parts.append(pair)
    return f"{target}?{'&'.join(parts)}"


def _when(record: logging.LogRecord) -> str:
    return (
        datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record as flat facts: time, level, logger, message, then its extra fields."""
    fields: dict[str, Any] = {
        "time": _when(record),
        "level": record.levelname.lower(),
        "logger": record.name,
    }
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        # uvicorn passes (client, method, path, http version, status) as format arguments.
        fields["message"] = "request"
        fields.update(zip(_ACCESS_FIELDS, record.args, strict=True))
        fields["path"] = masked_query(str(fields["path"]))
    else:
        fields["message"] = record.getMessage()
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_") and key not in fields:
            fields[key] = value
    if record.exc_info:
        fields["exception"] = logging.Formatter().formatException(record.exc_info)
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return orjson.dumps(record_fields(record), default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        when, level, logger = fields.pop("time"), fields.pop("level").upper(), fields.pop("logger")
        head = f"{when} {level} {logger}: {fields.pop('message')}"
        exception = fields.pop("exception", None)
        pairs = " ".join(f"{k}={_text(v)}" for k, v in fields.items())
        line = f"{head} {pairs}" if pairs else head
        return f"{line}\n{exception}" if exception else line


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
    return orjson.dumps(text).decode() if (" " in text or not text) else text


def configure_logging(level: str = "info", fmt: LogFormat = "json", stream: TextIO | None = None) -> None:
    """Route every logger (ours, uvicorn's, the libraries') through one handler and format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
        logger.setLevel(level.upper())
    # httpx logs every outbound request at INFO (the event outcome line already says it), and
    # httpcore traces connections at DEBUG: neither adds a fact an operator needs.
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(max(logging.WARNING, root.level))
    # Gainsight issues the track shared secret (the HS256 key); its length is not ours to choose,
    # so pyjwt's advice to lengthen it would only be noise on every signed event.
    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)
    logging.captureWarnings(True)


def log_event_outcome(
    *,
    destination: str,
    message_id: str,
    kind: str,
    outcome: str,
    status: int | None,
    attempts: int,
    latency: float,
    reason: str | None = None,
    person: Person | None = None,
    pii: bool = False,
) -> None:
    """One line per event outcome (delivered, unchanged, counted, filtered, rejected, retry, dead).

    `latency`: seconds from receipt to this outcome. Failures log at WARNING, the rest at INFO.
    `person`: who the event is about (`person_fields`; an email only when `pii`).
    """
    fields: dict[str, Any] = {
        "destination": destination,
        "messageId": message_id,
        "type": kind,
        "outcome": outcome,
        "status": status,
        "attempts": attempts,
        "latency": round(max(latency, 0.0), 3),
    }
    if person is not None:
        fields.update(person_fields(person, pii=pii))
    if reason is not None:
        fields["reason"] = reason
    level = logging.WARNING if outcome in ("dead", "rejected") else logging.INFO
    outcome_log.log(level, "event outcome", extra=fields)


MASKED = "***"


def person_fields(person: Person, *, pii: bool) -> dict[str, str]:
    """The person key of an outcome line: `userId` and `anonymousId` (those present). An email is
    logged only with GSD_LOG_PII=true: `email` then, and an id that is an email address is `***`
    without it."""
    fields = {
        key: value if pii or "@" not in value else MASKED
        for key, value in (("userId", person.user_id), ("anonymousId", person.anonymous_id))
        if value is not None
    }
    if pii and person.emails:
        fields["email"] = person.emails[0]
    return fields
