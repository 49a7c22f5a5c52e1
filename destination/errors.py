"""The error tree. Each class decides what happens to the event next.

    GsdError
    ├── EventError            the event itself is invalid (400, never retried)
    ├── ConfigError           the destination settings cannot serve the event (400, never retried)
    │   └── UnmappedEventError   a track event with no name/version mapping: filtered, not a fault
    └── GainsightError        Gainsight answered with a failure, or could not be reached
        │                     (outcome: throttled | retryable | aborted)
        └── OverBudget        not sent at all: the tenant's rate budget is spent (throttled)

Messages never contain secrets: they name fields and settings, not their values.
"""

from __future__ import annotations

from typing import Any, Literal

FailureOutcome = Literal["throttled", "retryable", "aborted"]


class GsdError(Exception):
    """Base of every error this package raises on purpose."""

    status_code = 400
    error_category = "dataValidation"
    error_type = "instrumentation"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EventError(GsdError):
    """The event is invalid: a required field is missing or has the wrong shape."""


class ConfigError(GsdError):
    """The destination settings are missing or malformed for this event."""

    error_type = "configuration"


class UnmappedEventError(ConfigError):
    """eventNameMap / eventVersionMap do not map this track event."""


_STATUS_BY_OUTCOME: dict[FailureOutcome, int] = {
    "throttled": 429,
    "retryable": 500,
    "aborted": 400,
}


class GainsightError(GsdError):
    """A Gainsight call failed; `outcome` says whether to retry."""

    error_category = "network"

    def __init__(
        self,
        message: str,
        *,
        outcome: FailureOutcome,
        http_status: int | None = None,
        error_code: str | None = None,
        error_desc: str | None = None,
        retry_after: float | None = None,
        response: Any = None,
        step: str | None = None,
    ) -> None:
        super().__init__(message)
        self.outcome: FailureOutcome = outcome
        self.step = step  # the call that failed ("company search", …), when one was made
        self.http_status = http_status
        self.error_code = error_code
        self.error_desc = error_desc
        self.retry_after = retry_after
        self.response = response
        self.status_code = _STATUS_BY_OUTCOME[outcome]
        self.error_type = outcome


class OverBudget(GainsightError):
    """The call was not made: the tenant's rate budget is spent until `retry_at` (unix time)."""

    def __init__(self, retry_at: float) -> None:
        super().__init__(
            f"rate budget of this Gainsight tenant is spent until {retry_at:.0f} (unix time)",
            outcome="throttled",
        )
        self.retry_at = retry_at
