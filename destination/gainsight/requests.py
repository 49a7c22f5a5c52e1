"""The Gainsight requests a plan is made of, each named by its step (DESIGN §3, §6).

A Request carries no credential: the client adds the access key, shared secret and signature as it
sends it (client.py). Steps name calls everywhere they are counted: the budget class (§3.6), the
attempt history, the metrics.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from destination.gainsight import endpoints as ep
from destination.gainsight.signing import SigningClaims

Kind = Literal["identify", "group", "track"]
_CompanyCall = Literal["company search", "company insert", "company update"]
_UsageCall = Literal["usage search", "usage insert", "usage update"]  # the usage object's rows (§3.7)
SyncStep = Literal[_CompanyCall, "person upsert", "event publish", _UsageCall]
Step = Literal[SyncStep, "timeline activity"]  # Timeline calls: a budget class of their own (§3.6)
STEPS: tuple[Step, ...] = get_args(Step)
_NO_PARAMS: Mapping[str, str] = MappingProxyType({})
_KEYS_NAME: Mapping[str, str] = MappingProxyType({"keys": "Name"})
_JSON_HEADERS: Mapping[str, str] = MappingProxyType({"Content-Type": ep.JSON_CONTENT_TYPE})


@dataclass(frozen=True, slots=True)
class Request:
    """One Gainsight HTTP request, described: its step name, and no credential (see client.py)."""

    step: Step
    method: str
    domain: str
    path: str
    headers: Mapping[str, str]
    body: Any
    params: Mapping[str, str] = field(default_factory=lambda: _NO_PARAMS)
    # The exact bytes to send when they matter (the signed track body); else JSON of `body`.
    body_bytes: bytes | None = None
    signing: SigningClaims | None = None

    @property
    def endpoint(self) -> str:
        return ep.public_url(self.domain, self.path)


def company_search(domain: str, names: Sequence[str], key: str = "Name") -> Request:
    """The companies whose `key` field holds one of `names`. By Name and for one name, the
    reference's own query, byte for byte (any record found means "update it"); else one `IN`
    query (DESIGN §6) that answers each record's Gsid and key, so that two companies sharing a
    key value are seen (a tenant's own key never guesses, §3.3)."""
    body: dict[str, Any]
    if key == "Name" and len(names) == 1:
        condition = {"name": "Name", "alias": "A", "value": list(names), "operator": "EQ"}
        body = {"select": ["Name"], "where": {"conditions": [condition], "expression": "A"}}
    else:
        body = {
            "select": ["Gsid", key],
            "where": {
                "conditions": [{"name": key, "alias": "A", "value": list(names), "operator": "IN"}],
                "expression": "A",
            },
            "limit": min(5000, 10 * len(names)),
            "offset": 0,
        }
    return Request("company search", "POST", domain, ep.COMPANY_QUERY_PATH, _JSON_HEADERS, body)


def company_insert(domain: str, records: Sequence[Mapping[str, Any]]) -> Request:
    body = {"records": [dict(r) for r in records]}
    return Request("company insert", "POST", domain, ep.COMPANY_PATH, _JSON_HEADERS, body)


def company_update(domain: str, records: Sequence[Mapping[str, Any]], key: str = "Name") -> Request:
    body = {"records": [dict(r) for r in records]}
    params = _KEYS_NAME if key == "Name" else MappingProxyType({"keys": key})
    return Request("company update", "PUT", domain, ep.COMPANY_PATH, _JSON_HEADERS, body, params=params)


def person_upsert(domain: str, person: Mapping[str, Any]) -> Request:
    return Request("person upsert", "PUT", domain, ep.PEOPLE_PATH, _JSON_HEADERS, dict(person))
