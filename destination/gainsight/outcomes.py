"""Classify a Gainsight answer (DESIGN §3.5): delivered, throttled, retryable or aborted. Pure."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from destination.errors import GainsightError
from destination.gainsight.endpoints import REPLAYED_SIGNATURE_CODE

Outcome = Literal["delivered", "throttled", "retryable", "aborted"]


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back for one call: an HTTP status and body, or a transport failure."""

    status: int | None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    transport_error: str | None = None

    @property
    def error_code(self) -> str | None:
        return _envelope_text(self.body, "errorCode")

    @property
    def error_desc(self) -> str | None:
        return _envelope_text(self.body, "errorDesc") or _envelope_text(self.body, "message")


def _envelope_text(body: Any, key: str) -> str | None:
    if isinstance(body, dict):
        value = body.get(key)
        if value is not None and value != "":
            return str(value)
    return None


def classify(answer: Answer) -> Outcome:
    if answer.status is None:
        return "retryable"  # timeout, refused or dropped connection
    if answer.status == 429:
        return "throttled"
    if answer.status == 401 and answer.error_code == REPLAYED_SIGNATURE_CODE:
        return "delivered"
    if answer.status >= 500:
        return "retryable"
    if 200 <= answer.status < 300:
        body = answer.body
        if isinstance(body, dict) and body.get("result") is False:
            return "aborted"
        return "delivered"
    return "aborted"


def retry_after_seconds(headers: Mapping[str, str], now: float) -> float | None:
    """Retry-After as delta-seconds or an HTTP date; None when absent or unreadable."""
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def describe(answer: Answer) -> str:
    if answer.status is None:
        return f"no answer from Gainsight ({answer.transport_error or 'connection failed'})"
    parts = [f"Gainsight answered {answer.status}"]
    if answer.error_code:
        parts.append(answer.error_code)
    text = " ".join(parts)
    return f"{text}: {answer.error_desc}" if answer.error_desc else text


def delivered_note(answer: Answer) -> str | None:
    """What a `delivered` answer that is not a 2xx means; None for a plain success."""
    if answer.status == 401 and answer.error_code == REPLAYED_SIGNATURE_CODE:
        # The signature's id was seen: an earlier attempt, whose answer was lost, was received.
        return f"received by an earlier attempt; this one was refused as a replay: {describe(answer)}"
    return None


def failure(answer: Answer, step: str, now: float) -> GainsightError:
    """The error for an answer that is not `delivered`; `step` says which call failed."""
    outcome = classify(answer)
    assert outcome != "delivered"
    return GainsightError(
        f"{step} failed: {describe(answer)}",
        outcome=outcome,
        http_status=answer.status,
        error_code=answer.error_code,
        error_desc=answer.error_desc,
        retry_after=retry_after_seconds(answer.headers, now),
        response=answer.body,
        step=step,
    )
