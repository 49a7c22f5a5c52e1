"""Turn one event and one destination's settings into a plan of named Gainsight requests (DESIGN §3).

Pure: the same (event, settings) always gives the same plan; no I/O, no clock, no secret: a
Request names its step and carries only the headers that are not credentials; the client adds
the access key, shared secret and signature as it sends it (requests.py, client.py).
executor.py runs them.

`plan_event` plans as the reference does: the RudderStack transformer routes keep it (they only
ever publish; rudder-server delivers what they return). `plan_delivery` plans for the workers and
the dry run: `plan_event`'s plan, except for the track events that `config.timeline` or
`config.usage` claim (DESIGN §3.6, §3.7), which `track_route` sends to their own sink.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from destination.config import DestinationConfig
from destination.config_sections import CompanyIdentity, TrackRoute
from destination.delivery.store_values import Cost
from destination.errors import ConfigError, EventError
from destination.gainsight.emails import check_email, looks_like_email
from destination.gainsight.requests import (
    Kind,
    Request,
    company_insert,
    company_search,
    company_update,
    person_upsert,
)
from destination.gainsight.timeline import ActivityPlan, plan_activity
from destination.gainsight.track_plan import TrackPlan, plan_track, required
from destination.gainsight.usage import CountPlan, plan_count
from destination.gainsight.usage_row_events import row_of
from destination.jsonutil import js_json_text
from destination.mapping.engine import Diagnostic, MappedRecord, js_falsy, lookup, map_record
from destination.mapping.spec import Specs


@dataclass(frozen=True, slots=True)
class IdentifyPlan:
    """Upsert the Person (DESIGN §3.2)."""

    domain: str
    person: Mapping[str, Any]  # the mapped fields, Email included
    diagnostics: tuple[Diagnostic, ...]
    kind: Kind = "identify"

    @property
    def email(self) -> str:
        return str(self.person["Email"])

    @property
    def request(self) -> Request:
        return person_upsert(self.domain, self.person)


def company_key(field: str, value: str) -> str:
    """A company's key within a batch and in the store's Gsid, delivered-state and hold memory.
    Names are matched ignoring case, as Gainsight's `EQ`/`IN` and `keys=Name` do (reference §7
    [U], and the simulator's default), so "Acme" and "ACME" are one company; a tenant's own key
    (companyIdentity) is matched exactly, and never meets a Name key."""
    return value.casefold() if field == "Name" else f"{field}\x1f{value}"


@dataclass(frozen=True, slots=True)
class GroupPlan:
    """Find or write the Company, then associate the person with its Gsid (DESIGN §3.3).

    The company is found by `key_field` (Name, or the tenant's companyIdentity field) holding
    `key_value`; `company` is the record to write, the key field included. `create=False`: a
    company the search does not find is never inserted (the event is rejected)."""

    domain: str
    company: Mapping[str, Any]
    email: str
    diagnostics: tuple[Diagnostic, ...]
    kind: Kind = "group"
    key_field: str = "Name"
    create: bool = True

    @property
    def key_value(self) -> str:
        return str(self.company[self.key_field])

    @property
    def company_key(self) -> str:
        return company_key(self.key_field, self.key_value)

    @property
    def company_name(self) -> str | None:
        name = self.company.get("Name")
        return None if name is None else str(name)

    def search_request(self) -> Request:
        return company_search(self.domain, [self.key_value], self.key_field)

    def insert_request(self) -> Request:
        return company_insert(self.domain, [self.company])

    def update_request(self) -> Request:
        return company_update(self.domain, [self.company], self.key_field)

    def association_request(self, gsid: str) -> Request:
        return person_upsert(self.domain, association(self.email, [gsid]))


def association(email: str, gsids: Sequence[str]) -> dict[str, Any]:
    """The Person upsert body that links a person to companies (DESIGN §3.3)."""
    return {"Email": email, "companies": [{"Company_ID": gsid} for gsid in gsids]}


Plan = IdentifyPlan | GroupPlan | TrackPlan


def message_type(event: Mapping[str, Any]) -> str:
    raw = event.get("type")
    if raw is None or raw == "":
        raise EventError("Message Type is not present. Aborting message.")
    if not isinstance(raw, str):
        raise EventError(f"message type must be a string, got {type(raw).__name__}")
    return raw.lower()


def plan_event(
    event: Mapping[str, Any], config: DestinationConfig, specs: Specs, *, signed: bool = True
) -> Plan:
    """The plan for one event; EventError / ConfigError when it cannot be planned."""
    if not isinstance(event, dict):
        raise EventError("the event must be a JSON object")
    kind = message_type(event)
    if kind == "identify":
        return plan_identify(event, config, specs)
    if kind == "group":
        return plan_group(event, config, specs)
    if kind == "track":
        return plan_track(event, config, signed=signed)
    raise EventError(f"message type {kind} not supported")


def _email_source(event: Mapping[str, Any], value: Any, specs: Specs) -> str:
    """The path of the event the person's Email was taken from (for the error message)."""
    for rule in specs.person.required:
        for path in rule.sources:
            if lookup(event, path) is value:
                return ".".join(path)
    return "traits.email"


def identify_record(
    event: Mapping[str, Any], config: DestinationConfig, specs: Specs, *, diagnose: bool = True
) -> MappedRecord:
    """The Person record an identify writes, every check made (its plan: `plan_identify`)."""
    ready = config.identify_ready  # then neither settings check can fail
    if not ready:
        required(config, "identify", "accessKey")
    mapped = map_record(specs.person, event, config.person_fields, "personMap", diagnose=diagnose)
    email = mapped.fields.get("Email")
    if not looks_like_email(email):  # the path is looked for only to name it in the error
        check_email(email, _email_source(event, email, specs))
    if not ready:
        required(config, "identify", "domain")
    return mapped


def plan_identify(event: Mapping[str, Any], config: DestinationConfig, specs: Specs) -> IdentifyPlan:
    mapped = identify_record(event, config, specs)
    assert config.domain is not None
    return IdentifyPlan(config.domain, mapped.fields, mapped.diagnostics)


def _group_email(event: Mapping[str, Any]) -> str:
    context = event.get("context")
    traits = context.get("traits") if isinstance(context, dict) else None
    email = traits.get("email") if isinstance(traits, dict) else None
    if js_falsy(email):
        raise EventError("user email is required for group")
    return check_email(email, "context.traits.email")


def _company_name(name: Any) -> str:
    if isinstance(name, bool) or not isinstance(name, str | int | float):
        raise EventError(f"traits.name must be a string, got {type(name).__name__}")
    return name if isinstance(name, str) else js_json_text(name)


def _key_value(event: Mapping[str, Any], identity: CompanyIdentity) -> str:
    """The group event's value for the tenant's company key: a string or an integer."""
    value = lookup(event, identity.path)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, bool | float | dict | list):
        raise EventError(f"{identity.from_} must be a string or an integer, got {type(value).__name__}")
    # absent, null or blank
    raise EventError(
        f"{identity.from_} is required for group: companies are keyed by {identity.field} from it"
    )


def plan_group(event: Mapping[str, Any], config: DestinationConfig, specs: Specs) -> GroupPlan:
    required(config, "group", "accessKey")
    identity = config.company_identity
    spec = specs.company if identity is None else specs.company_unnamed
    mapped = map_record(spec, event, config.company_fields, "companyMap")
    email = _group_email(event)
    company = dict(mapped.fields)
    if "Name" in company:
        company["Name"] = _company_name(company["Name"])
    if identity is not None:
        company[identity.field] = _key_value(event, identity)
        if not identity.create:
            company.pop("Name", None)  # the companies' owner (a CRM) names them
    required(config, "group", "domain")
    assert config.domain is not None
    return GroupPlan(
        domain=config.domain,
        company=company,
        email=email,
        diagnostics=mapped.diagnostics,
        key_field="Name" if identity is None else identity.field,
        create=True if identity is None else identity.create,
    )


DeliveryPlan = Plan | ActivityPlan | CountPlan
"""Every plan the executor runs: plan.py's, and one per track sink."""

TRACK_PLANS: tuple[type, ...] = (TrackPlan, ActivityPlan, CountPlan)
"""The plans of track events: each is one call (or none) in its place in the person's order."""

ROW_ROUTE = TrackRoute("usage", publish=False)  # a refused usage row's event: written, never published


def plan_delivery(event: Mapping[str, Any], config: DestinationConfig, specs: Specs) -> DeliveryPlan:
    """The plan for one event to deliver; EventError / ConfigError when it cannot be planned."""
    route = _track_route(event, config)
    if route is not None and route.sink == "timeline":
        return plan_activity(event, config, route)
    if route is not None and route.sink == "usage":  # usage counts (DESIGN §3.7; gainsight/usage.py)
        if config.usage is None:  # a refused row's event, replayed once usage is switched off
            raise ConfigError("usage counts are no longer configured: the refused row cannot be written")
        return plan_count(event, config, route)
    return plan_event(event, config, specs)  # a track without a usable name is refused there


def delivery_cost(event: Mapping[str, Any], config: DestinationConfig) -> Cost:
    """What delivering the event will spend of the rate budget, by the route plan_delivery
    follows (decided at ingest, stored as events.cost, so that claims are sized per budget class):
    an activity a Timeline call (and a sync one when also published), a counted event none unless
    published (a usage row's own event writes its row: sync), anything else a sync call."""
    route = _track_route(event, config)
    if route is None or route.sink == "publish":
        return "sync"
    if route.sink == "timeline":
        return "both" if route.publish else "timeline"
    return "sync" if route.publish or row_of(event) is not None else "none"


def _track_route(event: Mapping[str, Any], config: DestinationConfig) -> TrackRoute | None:
    """Where a track event with a usable name goes; None for any other event."""
    name = event.get("event") if isinstance(event, dict) else None
    if isinstance(name, str) and name and message_type(event) == "track":
        if row_of(event) is not None:  # a refused usage row, whatever usage.events says now
            return ROW_ROUTE
        return config.track_route(name)
    return None
