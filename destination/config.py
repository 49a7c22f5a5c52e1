"""Destination settings: RudderStack's Gainsight dashboard shape (camelCase), one or many per file.

`DestinationConfig` is exactly what a user types into RudderStack (DESIGN §3.1); `Destination`
wraps it with this service's own per-destination settings (id, inbound credentials; §4.3).
Every error names the setting, e.g. `personMap[2].to`.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jwt
import yaml
from jwt.algorithms import RSAAlgorithm
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from destination.config_sections import (
    CUSTOM_SUFFIX,
    CompanyIdentity,
    TimelineConfig,
    TrackRoute,
    UsageConfig,
    overlap_problems,
    shared_usage_objects,
    track_route,
)
from destination.env_refs import resolve_env_refs
from destination.errors import ConfigError
from destination.jsonutil import JSONDecodeError, loads
from destination.mapping.spec import default_specs
from destination.setting_problems import describe_validation_error, unknown_keys

log = logging.getLogger(__name__)

_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::\d{1,5})?")


class MapEntry(BaseModel):
    """One `{"from": …, "to": …}` row of a dashboard map."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")
    from_: str = Field(alias="from")
    to: str


def _clean_map(rows: Any) -> Any:
    """The dashboard sends an empty row ({"from": "", "to": ""}) for an empty map: drop those."""
    if rows is None:
        return []
    if not isinstance(rows, list):
        raise ValueError('expected a list of {"from": ..., "to": ...} rows')
    kept = []
    for row in rows:
        if isinstance(row, dict) and not row.get("from") and not row.get("to"):
            continue
        if isinstance(row, dict):
            row = {k: (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
        kept.append(row)
    return kept


def _map_dict(rows: tuple[MapEntry, ...]) -> dict[str, str]:
    return {row.from_: row.to for row in rows}  # a repeated `from`: the last row wins


class DestinationConfig(BaseModel):
    """The RudderStack dashboard settings of one Gainsight destination."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    domain: str | None = None
    access_key: SecretStr | None = Field(None, alias="accessKey")
    shared_secret: SecretStr | None = Field(None, alias="sharedSecret")
    tenant_id: str | None = Field(None, alias="tenantId")
    topic_name: str | None = Field(None, alias="topicName")
    contract_id: str | None = Field(None, alias="contractId")
    person_map: tuple[MapEntry, ...] = Field((), alias="personMap")
    company_map: tuple[MapEntry, ...] = Field((), alias="companyMap")
    event_name_map: tuple[MapEntry, ...] = Field((), alias="eventNameMap")
    event_version_map: tuple[MapEntry, ...] = Field((), alias="eventVersionMap")
    company_identity: CompanyIdentity | None = Field(None, alias="companyIdentity")
    timeline: TimelineConfig | None = None
    usage: UsageConfig | None = None

    @field_validator("access_key", "shared_secret", "tenant_id", "topic_name", "contract_id", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)  # a tenant or contract id typed as a number
        return value.strip() if isinstance(value, str) else value

    @field_validator("domain", mode="before")
    @classmethod
    def _host_only(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        host = value.strip()
        if not host:
            return None
        host = re.sub(r"^https?://", "", host, flags=re.IGNORECASE).rstrip("/")
        if not _HOST.fullmatch(host):
            raise ValueError(f"expected a host name such as acme.gainsightcloud.com, got {value.strip()!r}")
        return host.lower()

    @field_validator("person_map", "company_map", "event_name_map", "event_version_map", mode="before")
    @classmethod
    def _drop_empty_rows(cls, value: Any) -> Any:
        return _clean_map(value)

    @model_validator(mode="after")
    def _rows_complete(self) -> DestinationConfig:
        for name, rows in (
            ("personMap", self.person_map),
            ("companyMap", self.company_map),
            ("eventNameMap", self.event_name_map),
            ("eventVersionMap", self.event_version_map),
        ):
            for i, row in enumerate(rows):
                if not row.from_:
                    raise ValueError(f"{name}[{i}].from: is empty (its 'to' is {row.to!r})")
                if not row.to:
                    raise ValueError(f"{name}[{i}].to: is empty (its 'from' is {row.from_!r})")
        return self

    @model_validator(mode="after")
    def _custom_targets(self) -> DestinationConfig:
        specs = default_specs()
        for name, rows, spec in (
            ("personMap", self.person_map, specs.person),
            ("companyMap", self.company_map, specs.company),
        ):
            for i, row in enumerate(rows):
                if not row.to.endswith(CUSTOM_SUFFIX) and row.to not in spec.standard_fields:
                    raise ValueError(
                        f"{name}[{i}].to: {row.to!r} must end in {CUSTOM_SUFFIX} (a custom "
                        f"field) or be a standard {spec.object} field"
                    )
        return self

    @model_validator(mode="after")
    def _one_sink_per_event(self) -> DestinationConfig:
        if problems := overlap_problems(self.timeline, self.usage):
            raise ValueError("; ".join(problems))
        return self

    def track_route(self, event_name: str) -> TrackRoute:
        """Where a track event of this name goes (Events Framework, Timeline, usage counts)."""
        return track_route(self.timeline, self.usage, event_name)

    @functools.cached_property
    def identify_ready(self) -> bool:
        """Every setting an identify needs is present (no settings check can fail)."""
        return bool(self.access_key and self.domain)

    @functools.cached_property
    def track_ready(self) -> bool:
        """Every setting a track needs is present (no settings check can fail)."""
        return bool(self.shared_secret and self.topic_name and self.tenant_id and self.domain)

    @functools.cached_property
    def person_fields(self) -> dict[str, str]:
        return _map_dict(self.person_map)

    @functools.cached_property
    def company_fields(self) -> dict[str, str]:
        return _map_dict(self.company_map)

    @functools.cached_property
    def event_names(self) -> dict[str, str]:
        return _map_dict(self.event_name_map)

    @functools.cached_property
    def event_versions(self) -> dict[str, str]:
        return _map_dict(self.event_version_map)


# Keys RudderStack's dashboard or rudder-server put in every destination's Config: not typos.
RUDDERSTACK_COMMON_KEYS = frozenset(
    {
        "blacklistedEvents",
        "whitelistedEvents",
        "eventFilteringOption",
        "oneTrustCookieCategories",
        "ketchConsentPurposes",
        "consentManagement",
        "eventDelivery",
        "eventDeliveryTS",
    }
)
CONFIG_KEYS = frozenset(field.alias or name for name, field in DestinationConfig.model_fields.items())


def unknown_config_keys(config: Mapping[str, Any]) -> list[str]:
    """`accesskey: unknown setting; did you mean accessKey?` per key the dashboard shape lacks."""
    return unknown_keys(config, CONFIG_KEYS, ignored=RUDDERSTACK_COMMON_KEYS)


def parse_destination_config(data: Any) -> DestinationConfig:
    """Validate a dashboard Config object; raise ConfigError naming each bad setting."""
    if not isinstance(data, dict):
        raise ConfigError("destination Config must be a JSON object")
    try:
        return DestinationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"invalid destination settings: {describe_validation_error(exc)}") from None


# ---- the destinations file (DESIGN §4.3) ----

_DESTINATION_ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class JwtAuth(BaseModel):
    """Bearer JWT accepted for a destination: HS256 with `secret`, or RS256 with `publicKey`."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    secret: SecretStr | None = None
    public_key: str | None = Field(None, alias="publicKey")
    audience: str | None = None

    @model_validator(mode="after")
    def _one_key(self) -> JwtAuth:
        if (self.secret is None) == (self.public_key is None):
            raise ValueError("give exactly one of 'secret' (HS256) or 'publicKey' (RS256)")
        if self.public_key is not None:
            try:
                RSAAlgorithm(RSAAlgorithm.SHA256).prepare_key(self.public_key)
            except (jwt.PyJWTError, ValueError, TypeError):
                raise ValueError("publicKey: expected an RSA public key in PEM form") from None
        return self


class Destination(BaseModel):
    """One configured destination: its id, inbound credentials and dashboard settings."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    id: str = Field(pattern=_DESTINATION_ID)
    write_keys: tuple[SecretStr, ...] = Field((), alias="writeKeys")
    jwt: JwtAuth | None = None
    webhook_secret: SecretStr | None = Field(None, alias="webhookSecret")
    config: DestinationConfig

    @model_validator(mode="after")
    def _deliverable(self) -> Destination:
        if not self.config.domain:
            raise ValueError("config.domain is required")
        return self


class DestinationsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    destinations: tuple[Destination, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> DestinationsFile:
        seen: set[str] = set()
        for dest in self.destinations:
            if dest.id in seen:
                raise ValueError(f"destination id {dest.id!r} is used twice")
            seen.add(dest.id)
        return self

    @model_validator(mode="after")
    def _unique_write_keys(self) -> DestinationsFile:
        # A write key picks the destination: shared, its events would all go to one of them.
        problems = shared_write_keys(
            (d.id, [k.get_secret_value() for k in d.write_keys]) for d in self.destinations
        )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _one_writer_per_usage_object(self) -> DestinationsFile:
        if problems := shared_usage_objects(
            (d.id, d.config.domain, d.config.usage) for d in self.destinations
        ):
            raise ValueError("; ".join(problems))
        return self


def shared_write_keys(destinations: Iterable[tuple[str, list[str]]]) -> list[str]:
    """One problem per write key that more than one destination lists (the key itself not shown)."""
    owners: dict[str, list[str]] = {}
    for destination_id, keys in destinations:
        for key in dict.fromkeys(keys):
            owners.setdefault(key, []).append(destination_id)
    return [
        f"a write key is shared by destinations {', '.join(ids)}: each destination needs its own"
        for ids in owners.values()
        if len(ids) > 1
    ]


def parse_destinations(data: Any, environ: Mapping[str, str] | None = None) -> tuple[Destination, ...]:
    """Accept `{destinations: [...]}`, a bare list of destinations, or one destination."""
    if isinstance(data, list):
        data = {"destinations": data}
    elif isinstance(data, dict) and "destinations" not in data and "config" in data:
        data = {"destinations": [data]}
    data = resolve_env_refs(data, os.environ if environ is None else environ)
    try:
        return DestinationsFile.model_validate(data).destinations
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def _syntax_error(exc: Exception, path: Path) -> str:
    """Where and what, never the offending line itself: it may hold a secret."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"not valid YAML at line {mark.line + 1}, column {mark.column + 1}: {exc.problem}"
    if isinstance(exc, yaml.YAMLError):
        return "not valid YAML"
    return f"not valid JSON: {exc}"


def read_destinations_file(path: Path) -> Any:
    """The destinations file's data (YAML or JSON), not yet validated; ConfigError if unreadable."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read destinations file {path}: {exc.strerror}") from None
    try:
        return loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {_syntax_error(exc, path)}") from None


def destination_entries(data: Any) -> Any:
    """The list of destinations in any accepted shape (see parse_destinations)."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and "destinations" not in data and "config" in data:
        return [data]
    return data.get("destinations") if isinstance(data, dict) else data


def load_destination_configs(
    path: Path, environ: Mapping[str, str] | None = None
) -> dict[str, DestinationConfig]:
    """Only the dashboard settings of each destination, by id: what an offline dry run needs.
    Inbound credentials (writeKeys, jwt, webhookSecret) are neither read nor required."""
    entries = destination_entries(read_destinations_file(path))
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a list of destinations")
    found = {}
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            raise ConfigError(f"{path}: destinations[{i}]: expected an object with an id")
        raw = resolve_env_refs(entry.get("config"), os.environ if environ is None else environ, "config")
        try:
            found[entry["id"]] = parse_destination_config(raw)
        except ConfigError as exc:
            raise ConfigError(f"{path}: destination {entry['id']}: {exc.message}") from None
    return found


def load_destinations(path: Path, environ: Mapping[str, str] | None = None) -> tuple[Destination, ...]:
    """Read a destinations file (YAML or JSON); ConfigError names the file and every bad setting.

    Unknown keys inside `config` are ignored (the dashboard and rudder-server add their own), each
    with a warning in the log: `validate-config` reports them as errors.
    """
    data = read_destinations_file(path)
    try:
        found = parse_destinations(data, environ)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc.message}") from None
    entries = destination_entries(data)
    for entry in entries if isinstance(entries, list) else []:
        config = entry.get("config") if isinstance(entry, dict) else None
        for problem in unknown_config_keys(config) if isinstance(config, dict) else []:
            log.warning("destination %s: config.%s (ignored)", entry.get("id"), problem)
    return found
