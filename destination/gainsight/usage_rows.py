"""Usage rows as Gainsight requests, and Gainsight's rows read back (DESIGN §3.7). Pure.

A row is written with its absolute count: `{company: Gsid, date: "YYYY-MM-DD", metric: name,
count: n}` in the tenant's custom object, inserted (POST) when Gainsight does not hold it yet, else
updated (PUT `?keys=` the company, date and metric fields). Which rows Gainsight holds is asked
with one `IN` query on the three key fields; Gainsight reads dates back as epoch ms (reference §9),
so a date in an answer is matched in either form.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from destination.delivery.usage_store import UsageKey
from destination.gainsight import endpoints as ep
from destination.gainsight.requests import Request

QUERY_LIMIT = 5000  # Gainsight's largest page (reference §4.1)
_JSON_HEADERS = MappingProxyType({"Content-Type": ep.JSON_CONTENT_TYPE})


@dataclass(frozen=True, slots=True)
class UsageTarget:
    """Where counts go: the custom object and its four fields (config.usage)."""

    object: str
    company: str
    date: str
    metric: str
    count: str

    @property
    def keys(self) -> str:
        return f"{self.company},{self.date},{self.metric}"


def object_path(target: UsageTarget) -> str:
    return f"{ep.OBJECTS_PATH}/{target.object}"


def usage_search(domain: str, target: UsageTarget, keys: Sequence[UsageKey], offset: int = 0) -> Request:
    """One `IN` query for the rows of `keys` (every company, day and metric among them: a superset, read
    back with `found_keys`), a page of QUERY_LIMIT from `offset`."""
    fields = (target.company, target.date, target.metric)
    values = (
        sorted({k.company for k in keys}),
        sorted({k.day for k in keys}),
        sorted({k.metric for k in keys}),
    )
    conditions = [
        {"name": name, "alias": alias, "value": list(value), "operator": "IN"}
        for name, alias, value in zip(fields, "ABC", values, strict=True)
    ]
    body = {
        "select": ["Gsid", *fields],
        "where": {"conditions": conditions, "expression": "A AND B AND C"},
        "limit": QUERY_LIMIT,
        "offset": offset,
    }
    path = f"{ep.OBJECTS_QUERY_PATH}/{target.object}"
    return Request("usage search", "POST", domain, path, _JSON_HEADERS, body)


def _record(target: UsageTarget, key: UsageKey, count: int) -> dict[str, Any]:
    return {target.company: key.company, target.date: key.day, target.metric: key.metric, target.count: count}


def usage_insert(domain: str, target: UsageTarget, rows: Sequence[tuple[UsageKey, int]]) -> Request:
    body = {"records": [_record(target, key, count) for key, count in rows]}
    return Request("usage insert", "POST", domain, object_path(target), _JSON_HEADERS, body)


def usage_update(domain: str, target: UsageTarget, rows: Sequence[tuple[UsageKey, int]]) -> Request:
    body = {"records": [_record(target, key, count) for key, count in rows]}
    params = MappingProxyType({"keys": target.keys})
    return Request("usage update", "PUT", domain, object_path(target), _JSON_HEADERS, body, params=params)


def day_of(value: Any) -> str | None:
    """A date as Gainsight answers it (epoch ms, `YYYY-MM-DD`, an ISO date-time) as YYYY-MM-DD."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return time.strftime("%Y-%m-%d", time.gmtime(value / 1000))
    if isinstance(value, str) and len(value) >= 10 and value[4] == "-" and value[7] == "-":
        return value[:10]
    return None


def answer_records(body: Any) -> list[dict[str, Any]]:
    """The records of a query's answer: `data.records`, or `data` itself as a list (reference §4.1)."""
    data = body.get("data") if isinstance(body, dict) else None
    records = data.get("records") if isinstance(data, dict) else data
    return [r for r in records if isinstance(r, dict)] if isinstance(records, list) else []


def found_keys(target: UsageTarget, records: Iterable[dict[str, Any]]) -> set[UsageKey]:
    """The row keys Gainsight answered."""
    found = set()
    for record in records:
        company, day, metric = (
            record.get(target.company),
            day_of(record.get(target.date)),
            record.get(target.metric),
        )
        if isinstance(company, str) and day is not None and isinstance(metric, str):
            found.add(UsageKey(company, day, metric))
    return found
