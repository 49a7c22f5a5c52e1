"""Simulator settings: the fake tenant, its limits, the switches for uncertain behaviour, the faults.

Every switch exists because the reference marks the behaviour uncertain [U]; its default is the
likelier real behaviour. `SANDBOX` describes the sandbox tenant the product creates its sandbox
destination from; `SimulatorConfig()` *is* that tenant unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from destination.simulator.fields import (
    COMPANY_STANDARD_FIELDS,
    CUSTOM_FIELD_SUFFIX,
    PERSON_STANDARD_FIELDS,
    FieldType,
    ObjectField,
)

EndpointKind = Literal["people", "company", "object", "events", "timeline"]
EndpointName = Literal[
    "people.upsert",
    "people.ping",
    "company.query",
    "company.insert",
    "company.update",
    "company.delete",
    "object.query",
    "object.insert",
    "object.update",
    "events.publish",
    "timeline.activity",
]
# Every endpoint, one kind of endpoint, or one endpoint by name.
FaultScope = Literal["all"] | EndpointKind | EndpointName


class EventDef(BaseModel):
    """One event registered in a topic: (name, version) must match the request headers exactly."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    version: str = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version_is_text(cls, value: Any) -> Any:
        # YAML reads `version: 1.0` as a float, and 1.10 would silently become "1.1".
        if isinstance(value, int | float):
            raise ValueError(f"version must be a string; quote it in YAML: '{value}'")
        return value


class FaultConfig(BaseModel):
    """Injected failures. Counts (`*_next`) apply to the next N calls in scope, then run out.

    At most one counted fault hits a call, in this order: drop, timeout, throttle, server error,
    status; then the error rate is drawn; latency is added to every call in its scope. A scope is
    `all`, a kind (`people`, `company`, `events`, `timeline`) or one endpoint (`people.upsert`, …).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    seed: int | None = None  # for the error-rate RNG; None = unpredictable
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)  # probability of 500 GU_1101
    error_rate_scope: FaultScope = "all"
    latency_seconds: float = Field(default=0.0, ge=0.0)
    latency_scope: FaultScope = "all"
    throttle_next: int = Field(default=0, ge=0)  # answer 429 GU_2400
    throttle_scope: FaultScope = "all"
    server_error_next: int = Field(default=0, ge=0)
    server_error_status: int = Field(default=500, ge=500, le=599)
    server_error_scope: FaultScope = "all"
    # Any error answer, 4xx included (a 400 makes a dead letter at once), in Gainsight's envelope.
    status_next: int = Field(default=0, ge=0)
    status: int = Field(default=400, ge=400, le=599)
    status_scope: FaultScope = "all"
    timeout_next: int = Field(default=0, ge=0)
    timeout_scope: FaultScope = "all"
    hang_seconds: float = Field(default=30.0, ge=0.0)
    # True: the call is carried out, only the answer is late (the client cannot tell it landed).
    # False: the call hangs, then fails with 504 without touching any state.
    timeout_applies: bool = True
    drop_next: int = Field(default=0, ge=0)  # close the TCP connection without any HTTP response
    drop_scope: FaultScope = "all"


def _custom_fields_valid(fields: dict[str, FieldType], standard: set[str]) -> dict[str, FieldType]:
    for name in fields:
        if name in standard:
            raise ValueError(f"{name} is a standard field and cannot be redefined")
        if not name.endswith(CUSTOM_FIELD_SUFFIX) or len(name) == len(CUSTOM_FIELD_SUFFIX):
            raise ValueError(f"custom field {name!r} must end in {CUSTOM_FIELD_SUFFIX}")
    return fields


def _objects_valid(objects: dict[str, dict[str, ObjectField]]) -> dict[str, dict[str, ObjectField]]:
    for name, fields in objects.items():
        if not name.endswith(CUSTOM_FIELD_SUFFIX) or len(name) == len(CUSTOM_FIELD_SUFFIX):
            raise ValueError(f"custom object {name!r} must end in {CUSTOM_FIELD_SUFFIX}")
        for field_name in fields:
            if not field_name.endswith(CUSTOM_FIELD_SUFFIX) or len(field_name) == len(CUSTOM_FIELD_SUFFIX):
                raise ValueError(f"{name}: custom field {field_name!r} must end in {CUSTOM_FIELD_SUFFIX}")
    return objects


# The sandbox's usage object: what the README's example usage config writes (DESIGN §3.7).
SANDBOX_USAGE_OBJECT: dict[str, Any] = {
    "ProductUsage__gc": {
        "Company__gc": {"type": "GSID", "lookup": "Company"},
        "UsageDate__gc": "DATE",
        "Metric__gc": "STRING",
        "Count__gc": "NUMBER",
    }
}


@dataclass(frozen=True)
class SandboxTenant:
    """The tenant the product's sandbox destination talks to."""

    access_key: str
    shared_secret: str
    tenant_id: str
    topic: str
    events: tuple[tuple[str, str], ...]  # (event name, version)
    person_fields: tuple[tuple[str, FieldType], ...]
    company_fields: tuple[tuple[str, FieldType], ...]
    objects: dict[str, Any]  # custom object -> {field: type or {type, lookup}}

    def config(self, **overrides: Any) -> SimulatorConfig:
        return SimulatorConfig.model_validate(
            {
                "access_key": self.access_key,
                "shared_secret": self.shared_secret,
                "tenant_id": self.tenant_id,
                "topics": {self.topic: [{"name": n, "version": v} for n, v in self.events]},
                "person_fields": dict(self.person_fields),
                "company_fields": dict(self.company_fields),
                "objects": self.objects,
                **overrides,
            }
        )


SANDBOX = SandboxTenant(
    access_key="sandbox-access-key",
    shared_secret="sandbox-shared-secret",
    tenant_id="sandbox-tenant",
    topic="Sandbox",
    events=(("ticket_closed", "1.0"), ("feature_used", "1.0"), ("order_completed", "1.0")),
    person_fields=(("Seats__gc", FieldType.NUMBER), ("Plan__gc", FieldType.STRING)),
    company_fields=(("Region__gc", FieldType.STRING), ("Tier__gc", FieldType.STRING)),
    objects=SANDBOX_USAGE_OBJECT,
)


def _sandbox_topics() -> dict[str, list[EventDef]]:
    return {SANDBOX.topic: [EventDef(name=n, version=v) for n, v in SANDBOX.events]}


class SimulatorConfig(BaseModel):
    # Frozen: it is read once when the app is built; faults change at run time via /__sim/faults.
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The fake tenant.
    access_key: str = Field(default=SANDBOX.access_key, min_length=1)
    shared_secret: str = Field(default=SANDBOX.shared_secret, min_length=1)
    tenant_id: str = Field(default=SANDBOX.tenant_id, min_length=1)
    topics: dict[str, list[EventDef]] = Field(default_factory=_sandbox_topics)
    person_fields: dict[str, FieldType] = Field(default_factory=lambda: dict(SANDBOX.person_fields))
    company_fields: dict[str, FieldType] = Field(default_factory=lambda: dict(SANDBOX.company_fields))
    # Low Volume custom objects (reference §9), served on the Company paths: name -> its fields.
    objects: dict[str, dict[str, ObjectField]] = Field(
        default_factory=lambda: {
            name: {f: ObjectField.model_validate(t) for f, t in fields.items()}
            for name, fields in SANDBOX.objects.items()
        }
    )

    # Budget (reference §2): fixed windows, index = floor(now / window length).
    rate_limit_per_minute: int = Field(default=100, ge=1)
    rate_limit_per_day: int = Field(default=50_000, ge=1)
    minute_seconds: float = Field(default=60.0, gt=0)
    day_seconds: float = Field(default=86_400.0, gt=0)
    count_rejected_calls: bool = True  # [U] does a 429'd call use up budget?
    retry_after_header: bool = False  # [U] Gainsight documents none

    # Auth.
    unauthorized_status: int = Field(default=401, ge=400, le=499)  # [U] sample shows no status

    # People.
    email_case_sensitive: bool = False  # [U]
    people_companies_replace: bool = False  # [U] False: `companies` adds to existing associations

    # Field checks.
    reject_unknown_fields: bool = True  # False: unknown names are stored untyped
    accept_numeric_strings: bool = True  # "12.5" for a NUMBER field; "1,000" is still rejected
    string_max_length: int = Field(default=255, ge=1)  # STRING/EMAIL/URL/PICKLIST
    richtext_max_length: int = Field(default=131_072, ge=1)

    # Company.
    max_records_per_call: int = Field(default=50, ge=1)
    max_update_keys: int = Field(default=3, ge=1)
    update_no_match: Literal["error", "ignore"] = "error"  # [U] error: 400 GSOBJ_1011, no write
    company_unique_names: bool = False  # [U] Gainsight is not known to enforce it
    # [U] False: Name is matched ignoring case in EQ/NE/IN/NOT_IN queries, in `PUT ?keys=Name` and
    # by `company_unique_names` (as Email is for people); True: exactly.
    company_name_case_sensitive: bool = False
    # [U] True: other text fields used as keys (SfdcAccountId, an external id …__gc) are matched
    # exactly in EQ/NE/IN/NOT_IN queries and in `PUT ?keys=` (Salesforce ids are case-sensitive);
    # False: ignoring case, as Name is.
    company_key_values_case_sensitive: bool = True

    # Query.
    max_query_limit: int = Field(default=5000, ge=1)
    query_bare_list: bool = False  # [U] True: `data` is the list itself, not {"records": [...]}
    query_no_match_error: bool = False  # [U] True: no match answers 400 GSOBJ_1011
    query_dates_as_epoch_ms: bool = True  # reads return Date/DateTime as epoch milliseconds
    query_picklists_as_gsids: bool = True  # reads return picklist item GSIDs, not labels

    # Events.
    require_topic_name: bool = True  # [U] topicName missing from the doc's header table
    require_signature: bool = False  # X-Payload-Signature is verified whenever present
    signature_leeway_seconds: float = Field(default=0.0, ge=0)

    # Timeline (reference §8): single-activity saves have a budget class of their own.
    timeline_rate_limit_per_minute: int = Field(default=200, ge=1)
    timeline_counts_toward_day: bool = True  # [U] do they also spend the sync day's 50,000?
    # [U] the tenant's activity types (types differ per org); None: any TypeName is accepted.
    activity_types: tuple[str, ...] | None = ("Update", "Meeting", "Call", "Email", "Milestone")
    # Fields some orgs require on every activity (a custom Status, say); refused without them.
    activity_required_fields: tuple[str, ...] = ()

    # Bookkeeping.
    request_log_size: int = Field(default=10_000, ge=1)

    faults: FaultConfig = Field(default_factory=FaultConfig)

    @field_validator("person_fields")
    @classmethod
    def _person_custom_fields(cls, value: dict[str, FieldType]) -> dict[str, FieldType]:
        return _custom_fields_valid(value, set(PERSON_STANDARD_FIELDS))

    @field_validator("company_fields")
    @classmethod
    def _company_custom_fields(cls, value: dict[str, FieldType]) -> dict[str, FieldType]:
        return _custom_fields_valid(value, set(COMPANY_STANDARD_FIELDS))

    @field_validator("objects")
    @classmethod
    def _custom_objects(cls, value: dict[str, dict[str, ObjectField]]) -> dict[str, dict[str, ObjectField]]:
        return _objects_valid(value)

    @model_validator(mode="after")
    def _day_not_shorter_than_minute(self) -> SimulatorConfig:
        if self.day_seconds < self.minute_seconds:
            raise ValueError("day_seconds must not be shorter than minute_seconds")
        return self

    @classmethod
    def sandbox(cls, **overrides: Any) -> SimulatorConfig:
        return SANDBOX.config(**overrides)

    @classmethod
    def from_file(cls, path: str | Path) -> SimulatorConfig:
        """Load YAML or JSON (YAML is a superset of JSON, so one parser reads both)."""
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        if data is None:
            data = {}
        return cls.model_validate(data)

    def events_of(self, topic: str) -> set[tuple[str, str]]:
        return {(e.name, e.version) for e in self.topics.get(topic, [])}
