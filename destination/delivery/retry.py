"""When a failed event is tried again, or given up on. Pure: the clock and randomness are arguments."""

from __future__ import annotations

import random
from dataclasses import dataclass

from destination.settings import default

FAILURE_OUTCOMES = frozenset({"throttled", "retryable", "aborted"})
_MAX_DOUBLINGS = 60  # 2**60 * base is far beyond any cap; keeps the power from overflowing


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by an attempt count and an age.

    After try number n (1 = first) failed at `now`, the next try is at:

        aborted                                  -> never (None): dead letter now
        Retry-After r given                      -> now + r + U(0, base)
        throttled, next window boundary t known  -> t + U(0, base)
        otherwise                                -> now + U(0, min(cap, base * 2**(n-1)))

    and never (None) when n >= max_attempts (throttled excepted: a 429 says the tenant is busy,
    not that the event is bad, so only the age bounds it), or when that time is later than
    first_received_at + max_age.

    Defaults: base 1 s and cap 600 s (a 10-minute ceiling; the cap is reached at try 11);
    20 attempts ride out roughly an hour of Gainsight errors (the capped waits average 300 s)
    before the event is parked for replay; and after a day an update is too stale to apply
    blindly, since newer data may have reached Gainsight another way.
    """

    base_seconds: float = 1.0
    cap_seconds: float = 600.0
    max_attempts: int = default("max_attempts")
    max_age_seconds: float = default("max_age_seconds")

    def __post_init__(self) -> None:
        if not 0 < self.base_seconds <= self.cap_seconds:
            raise ValueError("retry policy needs 0 < base_seconds <= cap_seconds")
        if self.max_attempts < 1:
            raise ValueError("retry policy needs max_attempts >= 1")
        if self.max_age_seconds <= 0:
            raise ValueError("retry policy needs max_age_seconds > 0")

    def backoff_ceiling(self, attempts: int) -> float:
        """The longest backoff after `attempts` tries: min(cap, base * 2**(attempts-1))."""
        doublings = min(max(attempts - 1, 0), _MAX_DOUBLINGS)
        return min(self.cap_seconds, self.base_seconds * 2.0**doublings)

    def next_attempt(
        self,
        attempts: int,
        outcome: str,
        now: float,
        first_received_at: float,
        retry_after: float | None,
        window_reset_at: float | None,
        rng: random.Random,
    ) -> float | None:
        """The time of the next try after try number `attempts` ended in `outcome`; None = give up."""
        if outcome not in FAILURE_OUTCOMES:
            raise ValueError(f"{outcome!r} is not a failure; only {sorted(FAILURE_OUTCOMES)} are")
        if outcome == "aborted":
            return None
        if outcome != "throttled" and attempts >= self.max_attempts:
            return None
        if retry_after is not None:
            at = now + max(retry_after, 0.0) + rng.uniform(0.0, self.base_seconds)
        elif outcome == "throttled" and window_reset_at is not None:
            at = max(window_reset_at, now) + rng.uniform(0.0, self.base_seconds)
        else:
            at = now + rng.uniform(0.0, self.backoff_ceiling(attempts))
        if at > first_received_at + self.max_age_seconds:
            return None
        return at
