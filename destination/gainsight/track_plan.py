"""A track event's Events Framework publish (DESIGN §3.4), planned as the reference plans it; the
Timeline and usage plans (timeline.py, usage.py) publish through it when they also publish.
Pure, as plan.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from destination.config import DestinationConfig
from destination.errors import ConfigError, EventError, UnmappedEventError
from destination.gainsight import endpoints as ep
from destination.gainsight.requests import Kind, Request
from destination.gainsight.signing import SigningClaims, body_digest
from destination.jsonutil import canonical_json
from destination.mapping.engine import Diagnostic, js_falsy


@dataclass(frozen=True, slots=True)
class TrackPlan:
    """Publish the event to the Events Framework (DESIGN §3.4)."""

    request: Request
    diagnostics: tuple[Diagnostic, ...]
    kind: Kind = "track"

    @property
    def domain(self) -> str:
        return self.request.domain


_SETTING_ATTRIBUTES = {
    "accessKey": "access_key",
    "sharedSecret": "shared_secret",
    "topicName": "topic_name",
    "tenantId": "tenant_id",
    "domain": "domain",
}


def required(config: DestinationConfig, kind: str, *names: str) -> None:
    """Settings checked in the order the reference checks them, named as the dashboard names them."""
    for name in names:
        if not getattr(config, _SETTING_ATTRIBUTES[name]):
            raise ConfigError(f"{name} is required for {kind}")


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
        required(config, "track", "sharedSecret", "topicName", "tenantId")
    properties = track_properties(event)
    mapped_name = config.event_names.get(name)
    if not mapped_name:
        raise UnmappedEventError(f"Event name mapping not provided for {name}")
    mapped_version = config.event_versions.get(name)
    if not mapped_version:
        raise UnmappedEventError(f"event version mapping not provided for {name}")
    if not ready:
        required(config, "track", "domain")
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
