"""Turn one event and one destination's settings into a plan of named Gainsight requests (DESIGN §3).

Pure: the same (event, settings) always gives the same plan; no I/O, no clock, no secret: a
Request names its step and carries only the headers that are not credentials; the client adds
the access key, shared secret and signature as it sends it (client.py). executor.py runs them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from destination.config import DestinationConfig
from destination.config_sections import CompanyIdentity
from destination.errors import ConfigError, EventError, UnmappedEventError
from destination.gainsight import endpoints as ep
from destination.gainsight.emails import check_email, looks_like_email
from destination.gainsight.signing import SigningClaims, body_digest
from destination.jsonutil import canonical_json, js_json_text
from destination.mapping.engine import Diagnostic, MappedRecord, js_falsy, lookup, map_record
from destination.mapping.spec import Specs

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


@dataclass(frozen=True, slots=True)
class TrackPlan:
    """Publish the event to the Events Framework (DESIGN §3.4)."""

    request: Request
    diagnostics: tuple[Diagnostic, ...]
    kind: Kind = "track"

    @property
    def domain(self) -> str:
        return self.request.domain


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


_SETTING_ATTRIBUTES = {
    "accessKey": "access_key",
    "sharedSecret": "shared_secret",
    "topicName": "topic_name",
    "tenantId": "tenant_id",
    "domain": "domain",
}


def _required(config: DestinationConfig, kind: str, *names: str) -> None:
    """Settings checked in the order the reference checks them, named as the dashboard names them."""
    for name in names:
        if not getattr(config, _SETTING_ATTRIBUTES[name]):
            raise ConfigError(f"{name} is required for {kind}")


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
        _required(config, "identify", "accessKey")
    mapped = map_record(specs.person, event, config.person_fields, "personMap", diagnose=diagnose)
    email = mapped.fields.get("Email")
    if not looks_like_email(email):  # the path is looked for only to name it in the error
        check_email(email, _email_source(event, email, specs))
    if not ready:
        _required(config, "identify", "domain")
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
    _required(config, "group", "accessKey")
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
    _required(config, "group", "domain")
    assert config.domain is not None
    return GroupPlan(
        domain=config.domain,
        company=company,
        email=email,
        diagnostics=mapped.diagnostics,
        key_field="Name" if identity is None else identity.field,
        create=True if identity is None else identity.create,
    )


def _contract_id(event: Mapping[str, Any], config: DestinationConfig) -> str | None:
    context = event.get("context")
    external = context.get("externalId") if isinstance(context, dict) else None
    if isinstance(external, list):
        for entry in external:
            if isinstance(entry, dict) and entry.get("type") == ep.CONTRACT_ID_EXTERNAL_TYPE:
                value = entry.get("id")
                if value is not None and value != "" and not isinstance(value, dict | list):
                    return str(value)
    return config.contract_id


def _track_event_name(event: Mapping[str, Any]) -> str:
    name = event.get("event")
    if js_falsy(name):
        raise EventError("event name is required for track")
    if not isinstance(name, str):
        raise EventError(f"event must be a string, got {type(name).__name__}")
    return name


def track_properties(event: Mapping[str, Any]) -> dict[str, Any]:
    properties = event.get("properties")
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise EventError(f"properties must be a JSON object, got {type(properties).__name__}")
    return properties


def track_parts(
    event: Mapping[str, Any], config: DestinationConfig
) -> tuple[str, str, str | None, dict[str, Any]]:
    """(Gainsight event name, its version, contract id, properties) of a track, every check made
    in the reference's order. The request's headers depend on nothing else of the event."""
    name = _track_event_name(event)
    ready = config.track_ready  # then no settings check below can fail
    if not ready:
        _required(config, "track", "sharedSecret", "topicName", "tenantId")
    properties = track_properties(event)
    mapped_name = config.event_names.get(name)
    if not mapped_name:
        raise UnmappedEventError(f"Event name mapping not provided for {name}")
    mapped_version = config.event_versions.get(name)
    if not mapped_version:
        raise UnmappedEventError(f"event version mapping not provided for {name}")
    if not ready:
        _required(config, "track", "domain")
    return mapped_name, mapped_version, _contract_id(event, config), properties


def plan_track(event: Mapping[str, Any], config: DestinationConfig, *, signed: bool = True) -> TrackPlan:
    """`signed=False`: no canonical body and no signature claims (the transformer routes hand
    the request to rudder-server, which re-serialises it)."""
    mapped_name, mapped_version, contract_id, properties = track_parts(event, config)
    assert config.domain and config.shared_secret and config.tenant_id and config.topic_name
    # sharedSecret (and Accesskey, when configured) are added by the client when it sends this.
    headers = {
        "tenantId": config.tenant_id,
        "topicName": config.topic_name,
        "eventName": mapped_name,
        "eventVersion": mapped_version,
        "Content-Type": ep.JSON_CONTENT_TYPE,
    }
    if contract_id:
        headers["contractId"] = contract_id
    if not signed:
        request = Request(
            "event publish", "POST", config.domain, ep.EVENT_PATH, MappingProxyType(headers), properties
        )
        return TrackPlan(request, ())
    body = canonical_json(properties)
    message_id = event.get("messageId")
    signing = SigningClaims(
        tenant_id=config.tenant_id,
        topic_name=config.topic_name,
        event_name=mapped_name,
        event_version=mapped_version,
        body_sha256=body_digest(body),
        jti=str(message_id) if isinstance(message_id, str | int) and message_id != "" else None,
    )
    request = Request(
        "event publish",
        "POST",
        config.domain,
        ep.EVENT_PATH,
        MappingProxyType(headers),
        properties,
        body_bytes=body,
        signing=signing,
    )
    return TrackPlan(request, ())
