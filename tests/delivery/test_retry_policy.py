"""RetryPolicy.next_attempt under a fixed random draw and a fixed clock."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from destination.delivery.retry import RetryPolicy

NOW = 1_000_000.0
RECEIVED = NOW - 10.0
POLICY = RetryPolicy(base_seconds=1.0, cap_seconds=600.0, max_attempts=20, max_age_seconds=86_400.0)


class FixedDraw(random.Random):
    """uniform(a, b) always lands at the same fraction of the interval."""

    def __init__(self, fraction: float) -> None:
        super().__init__(0)
        self.fraction = fraction

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self.fraction


CASES = [
    # name, attempts, outcome, retry_after, window_reset_at, draw, expected delay from NOW (None = give up)
    ("first-retryable-waits-up-to-base", 1, "retryable", None, None, 1.0, 1.0),
    ("full-jitter-can-retry-at-once", 1, "retryable", None, None, 0.0, 0.0),
    ("third-retryable-doubles-twice", 3, "retryable", None, None, 1.0, 4.0),
    ("half-draw-of-the-ceiling", 5, "retryable", None, None, 0.5, 8.0),
    ("ceiling-capped", 11, "retryable", None, None, 1.0, 600.0),
    ("huge-attempt-count-stays-capped", 19, "retryable", None, None, 1.0, 600.0),
    ("retry-after-is-honoured-plus-jitter", 1, "retryable", 30.0, None, 0.5, 30.5),
    ("retry-after-beats-the-window", 2, "throttled", 5.0, NOW + 50.0, 0.0, 5.0),
    ("negative-retry-after-is-now", 1, "retryable", -3.0, None, 0.0, 0.0),
    ("throttled-waits-for-the-next-window", 1, "throttled", None, NOW + 42.0, 0.25, 42.25),
    ("past-window-reset-means-now", 1, "throttled", None, NOW - 5.0, 0.0, 0.0),
    ("throttled-without-window-backs-off", 2, "throttled", None, None, 1.0, 2.0),
    ("retryable-ignores-window-reset", 1, "retryable", None, NOW + 42.0, 1.0, 1.0),
    ("aborted-gives-up-at-once", 1, "aborted", None, None, 0.5, None),
    ("aborted-ignores-retry-after", 1, "aborted", 5.0, None, 0.5, None),
    ("last-attempt-gives-up", 20, "retryable", None, None, 0.5, None),
    ("throttled-not-bounded-by-attempts", 50, "throttled", None, NOW + 60.0, 0.0, 60.0),
]


@pytest.mark.parametrize(
    ("attempts", "outcome", "retry_after", "window_reset_at", "draw", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_next_attempt(
    attempts: int,
    outcome: str,
    retry_after: float | None,
    window_reset_at: float | None,
    draw: float,
    expected: float | None,
) -> None:
    at = POLICY.next_attempt(attempts, outcome, NOW, RECEIVED, retry_after, window_reset_at, FixedDraw(draw))
    assert at == (None if expected is None else NOW + expected)


def test_no_retry_later_than_the_maximum_age() -> None:
    policy = RetryPolicy(max_age_seconds=100.0)
    received = NOW - 90.0
    assert policy.next_attempt(3, "retryable", NOW, received, None, None, FixedDraw(1.0)) == NOW + 4.0
    assert policy.next_attempt(3, "retryable", NOW, received, 10.0, None, FixedDraw(0.0)) == NOW + 10.0
    assert policy.next_attempt(3, "retryable", NOW, received, 10.0, None, FixedDraw(0.5)) is None
    assert policy.next_attempt(1, "throttled", NOW, received, None, NOW + 30, FixedDraw(0.0)) is None


@pytest.mark.parametrize("outcome", ["delivered", "filtered", "unknown"])
def test_only_failures_have_a_next_attempt(outcome: str) -> None:
    with pytest.raises(ValueError, match="not a failure"):
        POLICY.next_attempt(1, outcome, NOW, RECEIVED, None, None, FixedDraw(0.0))


@pytest.mark.parametrize(
    "fields",
    [
        {"base_seconds": 0.0},
        {"base_seconds": 10.0, "cap_seconds": 5.0},
        {"max_attempts": 0},
        {"max_age_seconds": 0.0},
    ],
)
def test_nonsense_policies_are_rejected(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="retry policy needs"):
        RetryPolicy(**fields)  # type: ignore[arg-type]


def test_the_jitter_is_drawn_from_the_given_generator_alone() -> None:
    def schedule(seed: int) -> list[float | None]:
        rng = random.Random(seed)
        return [POLICY.next_attempt(n, "retryable", NOW, RECEIVED, None, None, rng) for n in range(1, 21)]

    draws = random.Random(7)
    ceilings = [min(600.0, 2.0 ** (n - 1)) for n in range(1, 20)]
    expected = [NOW + draws.uniform(0.0, ceiling) for ceiling in ceilings]
    random.seed(12345)  # the module's own generator must play no part
    assert schedule(7) == [*expected, None]
    assert schedule(7) != schedule(8)


@given(
    attempts=st.integers(min_value=1, max_value=10_000),
    outcome=st.sampled_from(["throttled", "retryable"]),
    age=st.floats(min_value=0.0, max_value=200_000.0),
    retry_after=st.none() | st.floats(min_value=0.0, max_value=100_000.0),
    window_in=st.none() | st.floats(min_value=-100.0, max_value=86_400.0),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_retry_is_never_in_the_past_nor_past_the_maximum_age(
    attempts: int,
    outcome: str,
    age: float,
    retry_after: float | None,
    window_in: float | None,
    seed: int,
) -> None:
    window_reset_at = None if window_in is None else NOW + window_in
    at = POLICY.next_attempt(
        attempts, outcome, NOW, NOW - age, retry_after, window_reset_at, random.Random(seed)
    )
    if at is None:
        return
    assert NOW <= at <= NOW - age + POLICY.max_age_seconds
    if retry_after is not None:
        assert at >= NOW + retry_after
    elif outcome == "throttled" and window_reset_at is not None:
        assert at >= window_reset_at
    else:
        assert at <= NOW + POLICY.cap_seconds
