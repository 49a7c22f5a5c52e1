"""What the simulated tenant saw: per-endpoint call counts and a request log without secrets."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

# Query parameters whose values never reach the log (Gainsight takes none, but a client may try).
_SECRET_PARAMS = frozenset({"accesskey", "access_key", "sharedsecret", "shared_secret", "token"})


@dataclass
class EndpointCounts:
    calls: int = 0
    throttled: int = 0  # 429s from the rate limiter (injected 429s are under faults)
    by_status: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "throttled": self.throttled,
            "by_status": dict(sorted(self.by_status.items())),
            "faults": dict(sorted(self.faults.items())),
        }


@dataclass
class Counters:
    endpoints: dict[str, EndpointCounts] = field(default_factory=dict)

    def of(self, endpoint: str) -> EndpointCounts:
        return self.endpoints.setdefault(endpoint, EndpointCounts())

    def snapshot(self, over_budget_accepted: int) -> dict[str, Any]:
        total = EndpointCounts()
        for counts in self.endpoints.values():
            total.calls += counts.calls
            total.throttled += counts.throttled
            total.by_status.update(counts.by_status)
            total.faults.update(counts.faults)
        return {
            "endpoints": {name: c.as_dict() for name, c in sorted(self.endpoints.items())},
            "total": total.as_dict(),
            # Calls let through beyond the budget: a self-check of the limiter, must stay 0.
            "over_budget_accepted": over_budget_accepted,
        }

    def clear(self) -> None:
        self.endpoints.clear()


def redact_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs], safe=",*")


@dataclass(frozen=True)
class LoggedRequest:
    time: float
    method: str
    path: str
    query: str
    endpoint: str | None
    status: int | None  # None: no HTTP answer (dropped connection)
    outcome: str  # "handled", "throttled", "unknown path" or "fault:<kind>"
    duration_ms: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "endpoint": self.endpoint,
            "status": self.status,
            "outcome": self.outcome,
            "duration_ms": round(self.duration_ms, 3),
        }


class RequestLog:
    """The most recent requests, oldest dropped first. Holds no headers and no bodies."""

    def __init__(self, size: int) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=size)

    def add(self, entry: LoggedRequest) -> None:
        self._entries.append(entry)

    def entries(self) -> list[LoggedRequest]:
        return list(self._entries)

    def clear(self) -> None:
        self._entries.clear()
