"""`validate-config`: every problem of a destinations file in one run, each naming its setting.

Beyond what loading checks (types, maps, ids), it reports what loading tolerates but a person
almost certainly got wrong:
- unknown keys at every level, each with a "did you mean": at the top, in a destination, in
  `jwt`, inside `config` (`accesskey: unknown setting; did you mean accessKey?`; the service
  ignores those, since rudder-server and the dashboard add their own keys, and logs a warning at
  start-up) and in map rows (`form: unknown key; did you mean from?`);
- an `{env: …}` variable that is not set, without hiding anything else: the check goes on with a
  placeholder, and says nothing more about the setting it stands for;
- settings an event type needs but lacks: accessKey for identify and group; sharedSecret,
  tenantId and topicName for track (once any track setting is given); accessKey for Timeline
  activities, and the event maps and track settings an `alsoPublish` activity needs;
- a write key shared by two destinations (loading refuses that too);
- `usage` problems (usage_checks.py): fields that are not custom fields, or not four different
  ones, no accessKey, counted events to publish without their eventNameMap entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from destination.config import (
    Destination,
    DestinationConfig,
    JwtAuth,
    MapEntry,
    destination_entries,
    shared_write_keys,
    unknown_config_keys,
)
from destination.env_refs import resolve_env_refs
from destination.errors import ConfigError
from destination.setting_problems import unknown_keys, validation_problems
from destination.usage_checks import usage_problems

TRACK_SETTINGS = ("sharedSecret", "tenantId", "topicName")
_TRACK_ATTRIBUTES = {"sharedSecret": "shared_secret", "tenantId": "tenant_id", "topicName": "topic_name"}
MAPS = ("personMap", "companyMap", "eventNameMap", "eventVersionMap")


def _keys(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(field.alias or name for name, field in model.model_fields.items())


DESTINATION_KEYS = _keys(Destination)
JWT_KEYS = _keys(JwtAuth)
MAP_ROW_KEYS = _keys(MapEntry)


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
    return problems + timeline_problems(config)


def timeline_problems(config: DestinationConfig) -> list[str]:
    """What `timeline` needs beyond its own shape (DESIGN §3.6): the access key its calls
    authenticate with, and for an `alsoPublish` activity what publishing it needs."""
    timeline = config.timeline
    if timeline is None:
        return []
    problems = []
    if config.access_key is None:
        problems.append("timeline activities need accessKey, which is missing")
    for i, activity in enumerate(timeline.activities):
        if not activity.also_publish:
            continue
        where = f"timeline.activities[{i}] ({activity.event})"
        unmapped = [
            name
            for name, mapped in (
                ("eventNameMap", config.event_names),
                ("eventVersionMap", config.event_versions),
            )
            if not mapped.get(activity.event)
        ]
        if unmapped:
            problems.append(f"{where}: alsoPublish needs an entry for it in {' and '.join(unmapped)}")
        missing = [name for name in TRACK_SETTINGS if getattr(config, _TRACK_ATTRIBUTES[name]) is None]
        if missing:
            problems.append(f"{where}: alsoPublish needs {', '.join(missing)}, which the config lacks")
    return problems


def check_destinations(data: Any, environ: Mapping[str, str]) -> Checked:
    """Every problem of a destinations file's data, each prefixed with where it is."""
    entries = destination_entries(data)
    one_destination = isinstance(data, dict) and entries == [data]  # its keys are checked below
    problems = unknown_keys(data, {"destinations"}) if isinstance(data, dict) and not one_destination else []
    if not isinstance(entries, list) or not entries:
        return Checked([*problems, "expected {destinations: [...]} with at least one destination"], [])
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
    problems = unknown_keys(entry, DESTINATION_KEYS)
    known = {k: v for k, v in entry.items() if k in DESTINATION_KEYS}
    unset: list[tuple[str, str]] = []
    resolved = resolve_env_refs(known, environ, unset=unset)
    problems.extend(f"{where}: environment variable {var} is not set" for where, var in unset)
    jwt = resolved.get("jwt")
    if isinstance(jwt, dict):
        problems.extend(f"jwt.{p}" for p in unknown_keys(jwt, JWT_KEYS))
        resolved["jwt"] = {k: v for k, v in jwt.items() if k in JWT_KEYS}
    config = resolved.get("config")
    if isinstance(config, dict):
        problems.extend(f"config.{p}" for p in unknown_config_keys(config))
        problems.extend(_map_row_problems(config))
    try:
        found = Destination.model_validate(resolved)
    except ValidationError as exc:
        # What a placeholder stands in for is unknown: say nothing more about that setting.
        problems.extend(p for p in validation_problems(exc) if not _about(p, [w for w, _ in unset]))
        return None, problems
    problems.extend(missing_by_type(found.config))
    problems.extend(usage_problems(found.config))
    return (None, problems) if unset else (found, problems)  # no summary made of placeholders


def _map_row_problems(config: dict[str, Any]) -> list[str]:
    """`config.personMap[0].form: unknown key; did you mean from?` per unknown key of a map row."""
    return [
        f"config.{name}[{i}].{problem}"
        for name in MAPS
        if isinstance(rows := config.get(name), list)
        for i, row in enumerate(rows)
        if isinstance(row, dict)
        for problem in unknown_keys(row, MAP_ROW_KEYS, what="key")
    ]


def _about(problem: str, settings: list[str]) -> bool:
    """The problem names one of `settings` (or a part of it): `config: personMap[0].to: …` too."""
    named = problem.replace(": ", ".")
    return any(
        named.startswith(setting) and not named[len(setting) : len(setting) + 1].isalnum()
        for setting in settings
    )
