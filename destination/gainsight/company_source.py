"""Where a track event's company may be read when its person has no group association yet (DESIGN
§3.6): `context.groupId` as the value of the `companyIdentity` field. Pure; a module of its own so
that the track plans (timeline.py, …) and plan.py, which imports them, can both use it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from destination.config import DestinationConfig
from destination.events import storable


@dataclass(frozen=True, slots=True)
class CompanySource:
    """Where a track event's company may be read when its person has no group association yet:
    `context.groupId` as the value of the `companyIdentity` field (both None without either)."""

    field: str | None = None
    value: str | None = None


def company_source(event: Mapping[str, Any], config: DestinationConfig) -> CompanySource:
    identity = config.company_identity
    context = event.get("context")
    group_id = context.get("groupId") if isinstance(context, dict) else None
    if identity is None or group_id is None or group_id == "" or isinstance(group_id, dict | list | bool):
        return CompanySource()
    return CompanySource(identity.field, storable(str(group_id)))  # a store key (track_company.py)
