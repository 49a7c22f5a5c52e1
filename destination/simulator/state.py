"""The simulated tenant's state: its records, received events, budget, faults and bookkeeping.

Handlers run on the event loop and never await between reading and writing state, so a call's
writes are atomic with respect to other calls; the lock additionally guards readers on other
threads (a test reading `app.state.simulator` while a TestClient call is in flight).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from destination.simulator.config import SimulatorConfig
from destination.simulator.counters import Counters, RequestLog
from destination.simulator.faults import FaultInjector
from destination.simulator.fields import (
    COMPANY_STANDARD_FIELDS,
    PERSON_STANDARD_FIELDS,
    FieldSpec,
    build_schema,
    object_schema,
)
from destination.simulator.ratelimit import BudgetAudit, RateLimiter, timeline_limiter
from destination.simulator.signature import JtiRegistry
from destination.simulator.validation import ValidationOptions

ACTIVITY_GSID_PREFIX = "1I00"
COMPANY_GSID_PREFIX = "1P02"
PERSON_GSID_PREFIX = "1P04"
# Who Gainsight records as CreatedBy/ModifiedBy for API writes: the connection's API user.
API_USER_GSID = "1P01" + "A" * 32


def new_gsid(prefix: str) -> str:
    """Gainsight-shaped id: a 4-character prefix and 32 uppercase hex characters."""
    return prefix + uuid.uuid4().hex.upper()


@dataclass
class Person:
    gsid: str
    fields: dict[str, Any]
    companies: dict[str, dict[str, Any]] = field(default_factory=dict)  # Company Gsid → attributes

    def view(self) -> dict[str, Any]:
        links = [{"Company_ID": gsid, **attrs} for gsid, attrs in self.companies.items()]
        return {**self.fields, "companies": links}


@dataclass
class ReceivedEvent:
    received_at: float
    tenant_id: str
    topic_name: str | None
    event_name: str
    event_version: str
    contract_id: str | None
    headers: dict[str, str]  # secrets removed
    body: dict[str, Any]
    signed: bool
    jti: str | None

    def view(self) -> dict[str, Any]:
        return {
            "received_at": self.received_at,
            "tenantId": self.tenant_id,
            "topicName": self.topic_name,
            "eventName": self.event_name,
            "eventVersion": self.event_version,
            "contractId": self.contract_id,
            "headers": self.headers,
            "body": self.body,
            "signed": self.signed,
            "jti": self.jti,
        }


@dataclass
class Activity:
    """One Timeline activity saved (reference §8): its record as received, and when."""

    gsid: str
    received_at: float
    record: dict[str, Any]

    def view(self) -> dict[str, Any]:
        return {"Gsid": self.gsid, "received_at": self.received_at, **self.record}


class Simulator:
    def __init__(self, config: SimulatorConfig, clock: Callable[[], float]) -> None:
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.person_schema: dict[str, FieldSpec] = build_schema(PERSON_STANDARD_FIELDS, config.person_fields)
        self.company_schema: dict[str, FieldSpec] = build_schema(
            COMPANY_STANDARD_FIELDS, config.company_fields
        )
        self.object_schemas: dict[str, dict[str, FieldSpec]] = {
            name: object_schema(fields) for name, fields in config.objects.items()
        }
        self.validation = ValidationOptions(
            reject_unknown_fields=config.reject_unknown_fields,
            accept_numeric_strings=config.accept_numeric_strings,
            string_max_length=config.string_max_length,
            richtext_max_length=config.richtext_max_length,
        )
        self.limiter = RateLimiter(
            per_minute=config.rate_limit_per_minute,
            per_day=config.rate_limit_per_day,
            minute_seconds=config.minute_seconds,
            day_seconds=config.day_seconds,
            count_rejected=config.count_rejected_calls,
        )
        self.timeline_limiter = self._timeline_limiter()
        self.audit = BudgetAudit(self.limiter)
        self.faults = FaultInjector(config.faults)
        self.counters = Counters()
        self.requests = RequestLog(config.request_log_size)
        self.jtis = JtiRegistry()
        self.people: dict[str, Person] = {}
        self.people_by_email: dict[str, str] = {}
        self.companies: dict[str, dict[str, Any]] = {}  # Gsid → fields, insertion ordered
        self.events: list[ReceivedEvent] = []
        # Custom object records: object -> Gsid -> fields, insertion ordered.
        self.objects: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in config.objects}
        self.activities: dict[str, Activity] = {}  # ExternalId → activity, unique per tenant

    def _timeline_limiter(self) -> RateLimiter:
        config = self.config
        return timeline_limiter(
            self.limiter, config.timeline_rate_limit_per_minute, config.timeline_counts_toward_day
        )

    def limiter_for(self, kind: str) -> RateLimiter:
        """The budget a call of endpoint `kind` draws on: Timeline's own class, or the sync one."""
        return self.timeline_limiter if kind == "timeline" else self.limiter

    def reset(self) -> None:
        """Forget everything received and counted; faults go back to the configured ones."""
        with self.lock:
            self.people.clear()
            self.people_by_email.clear()
            self.companies.clear()
            self.events.clear()
            for records in self.objects.values():
                records.clear()
            self.activities.clear()
            self.counters.clear()
            self.requests.clear()
            self.jtis.clear()
            self.limiter.reset()
            self.timeline_limiter = self._timeline_limiter()  # shares the new day window
            self.audit.reset()
            self.faults.reset()

    def email_key(self, email: str) -> str:
        return email if self.config.email_case_sensitive else email.casefold()

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def person_by_email(self, email: str) -> Person | None:
        gsid = self.people_by_email.get(self.email_key(email))
        return self.people[gsid] if gsid is not None else None

    def creation_fields(self, gsid: str) -> dict[str, Any]:
        now = self.now_ms()
        return {
            "Gsid": gsid,
            "CreatedDate": now,
            "ModifiedDate": now,
            "CreatedBy": API_USER_GSID,
            "ModifiedBy": API_USER_GSID,
        }

    def modification_fields(self) -> dict[str, Any]:
        return {"ModifiedDate": self.now_ms(), "ModifiedBy": API_USER_GSID}

    # ------------------------------------------------------------ inspection

    def people_view(self) -> list[dict[str, Any]]:
        with self.lock:
            return [person.view() for person in self.people.values()]

    def companies_view(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(fields) for fields in self.companies.values()]

    def associations_view(self) -> list[dict[str, Any]]:
        with self.lock:
            return [
                {
                    "Person_ID": person.gsid,
                    "Email": person.fields.get("Email"),
                    "Company_ID": company_gsid,
                    "CompanyName": self.companies.get(company_gsid, {}).get("Name"),
                    "attributes": attrs,
                }
                for person in self.people.values()
                for company_gsid, attrs in person.companies.items()
            ]

    def objects_view(self, name: str) -> list[dict[str, Any]] | None:
        """A custom object's records as stored (dates as written); None for an unknown object."""
        with self.lock:
            records = self.objects.get(name)
            return None if records is None else [dict(fields) for fields in records.values()]

    def events_view(self) -> list[dict[str, Any]]:
        with self.lock:
            return [event.view() for event in self.events]

    def activities_view(self) -> list[dict[str, Any]]:
        with self.lock:
            return [activity.view() for activity in self.activities.values()]

    def requests_view(self) -> list[dict[str, Any]]:
        with self.lock:
            return [entry.as_dict() for entry in self.requests.entries()]

    def counters_view(self) -> dict[str, Any]:
        with self.lock:
            return self.counters.snapshot(self.audit.over_budget)
