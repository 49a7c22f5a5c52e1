"""`validate-config`: every problem of a destinations file in one run, each naming its setting.

Beyond what loading checks (types, maps, ids), it reports what loading tolerates but a person
almost certainly got wrong:
- unknown keys inside `config` (the dashboard shape): `accesskey: unknown setting; did you mean
  accessKey?`. The service itself ignores them (rudder-server and the dashboard add their own
  keys) and logs a warning at start-up; here they are errors;
- settings an event type needs but lacks: accessKey for identify and group; sharedSecret,
  tenantId and topicName for track (once any track setting is given);
- a write key shared by two destinations (loading refuses that too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from destination.config import (
    Destination,
    DestinationConfig,
    destination_entries,
    resolve_env_refs,
    shared_write_keys,
    unknown_config_keys,
    validation_problems,
)
from destination.errors import ConfigError

TRACK_SETTINGS = ("sharedSecret", "tenantId", "topicName")


@dataclass(frozen=True)
class Checked:
    problems: list[str]
    summaries: list[str]  # one line per destination that loaded


def missing_by_type(config: DestinationConfig) -> list[str]:
    """What each event type needs and this destination lacks."""
    problems = []
    if config.access_key is None:
        problems.append("identify and group events need accessKey, which is missing")
    track = {
        "sharedSecret": config.shared_secret,
        "tenantId": config.tenant_id,
        "topicName": config.topic_name,
    }
    wants_track = any(v is not None for v in track.values()) or bool(config.event_name_map)
    missing = [name for name, value in track.items() if value is None]
    if wants_track and missing:
        problems.append(
            f"track events need {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} missing"
        )
    if config.event_name_map and not config.event_version_map:
        problems.append("track events need eventVersionMap entries for the events eventNameMap maps")
    return problems


def check_destinations(data: Any, environ: Mapping[str, str]) -> Checked:
    """Every problem of a destinations file's data, each prefixed with where it is."""
    entries = destination_entries(data)
    if not isinstance(entries, list) or not entries:
        return Checked(["expected {destinations: [...]} with at least one destination"], [])
    problems: list[str] = []
    summaries: list[str] = []
    ids: list[str] = []
    keys: list[tuple[str, list[str]]] = []
    for i, entry in enumerate(entries):
        where = f"destinations[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected an object with id and config")
            continue
        if isinstance(entry.get("id"), str):
            where = f"destination {entry['id']}"
            ids.append(entry["id"])
        found, entry_problems = _check_one(entry, environ)
        problems.extend(f"{where}: {p}" for p in entry_problems)
        keys.append((str(entry.get("id", where)), _write_keys(entry, environ)))
        if found is not None:
            summaries.append(
                f"destination {found.id}: {found.config.domain}, "
                f"{len(found.config.event_names)} mapped track events"
            )
    problems.extend(
        f"destination id {i!r} is used twice" for i in sorted({i for i in ids if ids.count(i) > 1})
    )
    problems.extend(shared_write_keys(keys))
    return Checked(problems, summaries)


def _write_keys(entry: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """The entry's write keys as text, whether or not the rest of it is valid."""
    try:
        keys = resolve_env_refs(entry.get("writeKeys") or [], environ)
    except ConfigError:
        return []
    return [k for k in keys if isinstance(k, str)] if isinstance(keys, list) else []


def _check_one(entry: dict[str, Any], environ: Mapping[str, str]) -> tuple[Destination | None, list[str]]:
    problems: list[str] = []
    resolved: dict[str, Any] = {}
    for key, value in entry.items():
        try:
            resolved[key] = resolve_env_refs(value, environ, key)
        except ConfigError as exc:
            problems.append(exc.message)
    config = entry.get("config")
    if isinstance(config, dict):
        problems.extend(f"config.{p}" for p in unknown_config_keys(config))
    if problems and any("environment variable" in p for p in problems):
        return None, problems
    try:
        found = Destination.model_validate(resolved)
    except ValidationError as exc:
        problems.extend(validation_problems(exc))
        return None, problems
    problems.extend(missing_by_type(found.config))
    return found, problems
