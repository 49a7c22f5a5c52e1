"""Whether the store can commit, as ingest and the delivery workers last found it (DESIGN §5).

Ingest, the workers and `/ready` share one `StoreHealth`: a failed commit (a full disk, a lock, a
server out of reach) marks the store failing with its cause until a commit succeeds again, and
`/ready` reports it meanwhile. The log says so once per change of state, one line when it starts
failing and one when it recovers, never once per failed try (workers retry every poll).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from destination.delivery.store import StoreError

log = logging.getLogger(__name__)


def describe(error: BaseException) -> str:
    """The cause as /ready and the log name it: the store's own message, else the error's type
    (never a query's text, which could carry data)."""
    return str(error) if isinstance(error, StoreError) else type(error).__name__


class StoreHealth:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.problem: str | None = None  # why the last commit failed, until one succeeds again
        self.failed_at = 0.0  # clock() of that failure

    def failed(self, error: BaseException, during: str = "committing") -> None:
        """A commit (or a claim, a settle) failed: report it until one succeeds."""
        cause = describe(error)
        if self.problem is None:
            # A store error is a state of the world (one line); anything else may be a bug: its
            # traceback once, not every poll.
            log.warning(
                "store failing (while %s): %s; delivery waits and resumes by itself",
                during,
                cause,
                exc_info=None if isinstance(error, StoreError) else error,
            )
        self.problem = cause
        self.failed_at = self._clock()

    def committed(self) -> None:
        """A commit succeeded: the store works again."""
        if self.problem is not None:
            log.info("store commits again; delivery resumes (it failed: %s)", self.problem)
            self.problem = None

    def failing_for(self) -> float:
        """Seconds since the last failure was reported."""
        return self._clock() - self.failed_at
