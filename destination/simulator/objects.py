"""Low Volume custom objects on the Company paths (reference §9): query, insert, update by `keys=`.

The rules are Company's (companies.py): at most `max_records_per_call` records, every record
validated (and, for updates, matched) before the first is written, the same envelope and codes.
Each object's fields come from the simulator config (`objects`); a `lookup: Company` field must
name an existing Company's Gsid. Dates are written as `YYYY-MM-DD` (or any form Gainsight parses)
and read back as epoch milliseconds; `keys=` compares by type, so a date key matches either form.
"""

from __future__ import annotations

from typing import Any

from destination.simulator import envelope as codes
from destination.simulator.companies import GSID, records_of, refusal
from destination.simulator.envelope import SimError
from destination.simulator.fields import DATE_TYPES, NUMERIC_TYPES, FieldSpec
from destination.simulator.query import ReadOptions, parse_query, run_query
from destination.simulator.state import Simulator, new_gsid
from destination.simulator.validation import Problem, ProblemKind, check_record, parse_epoch_ms

OBJECT_GSID_PREFIX = "1P0A"


def _schema(sim: Simulator, name: str) -> dict[str, FieldSpec]:
    schema = sim.object_schemas.get(name)
    if schema is None:
        known = ", ".join(sorted(sim.object_schemas)) or "none"
        raise SimError(404, codes.INVALID_PATH, f"No object named {name} (custom objects: {known})")
    return schema


def _lookup_problems(sim: Simulator, schema: dict[str, FieldSpec], record: dict[str, Any]) -> list[Problem]:
    """A lookup field must name a record that exists (Company is the one lookup target)."""
    return [
        Problem(ProblemKind.BAD_GSID, field, value, f"no {spec.lookup} has this Gsid")
        for field, value in record.items()
        if (spec := schema.get(field)) is not None
        and spec.lookup == "Company"
        and value is not None
        and value not in sim.companies
    ]


def _validated(
    sim: Simulator, schema: dict[str, FieldSpec], body: Any, writable: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    records = records_of(body, sim.config.max_records_per_call)
    cleaned: list[dict[str, Any]] = []
    problems: list[list[Problem]] = []
    for record in records:
        clean, found = check_record(record, schema, sim.validation, writable_system=writable)
        found.extend(_lookup_problems(sim, schema, clean))
        cleaned.append(clean)
        problems.append(found)
    if any(problems):
        raise refusal(records, problems)
    return cleaned


def insert_records(sim: Simulator, name: str, body: Any) -> dict[str, Any]:
    schema = _schema(sim, name)
    with sim.lock:
        cleaned = _validated(sim, schema, body)
        written = []
        for clean in cleaned:
            gsid = new_gsid(OBJECT_GSID_PREFIX)
            sim.objects[name][gsid] = {**sim.creation_fields(gsid), **clean}
            written.append({GSID: gsid, **clean})
    return {"count": len(written), "errors": None, "records": written}


def _keys(sim: Simulator, schema: dict[str, FieldSpec], keys_param: str | None) -> list[str]:
    keys = [k.strip() for k in (keys_param or "").split(",") if k.strip()]
    if not keys:
        raise SimError(400, codes.INVALID_FIELD, "Query parameter keys is required, e.g. keys=Gsid")
    if len(keys) > sim.config.max_update_keys:
        raise SimError(
            400, codes.INVALID_FIELD, f"At most {sim.config.max_update_keys} keys, got {len(keys)}"
        )
    for key in keys:
        spec = schema.get(key)
        if spec is None or (spec.system and key != GSID):
            raise SimError(400, codes.INVALID_FIELD, f"keys names unknown field {key}")
    return keys


def _comparable(spec: FieldSpec, value: Any) -> Any:
    """A key value as `keys=` compares it (companies.same_value): numbers as numbers, dates as
    instants, anything else as it is."""
    if spec.type in NUMERIC_TYPES:
        return float(value)
    if spec.type in DATE_TYPES:
        return parse_epoch_ms(value)
    return value


def _key_of(schema: dict[str, FieldSpec], keys: list[str], record: dict[str, Any]) -> tuple[Any, ...] | None:
    values = tuple(_comparable(schema[k], record.get(k)) if record.get(k) is not None else None for k in keys)
    return None if None in values else values


def _index(
    schema: dict[str, FieldSpec], keys: list[str], rows: dict[str, dict[str, Any]]
) -> dict[Any, list[str]]:
    """The stored rows by their key values, built once per call (a call matches up to 50 records)."""
    index: dict[Any, list[str]] = {}
    for gsid, fields in rows.items():
        key = _key_of(schema, keys, fields)
        if key is not None:
            index.setdefault(key, []).append(gsid)
    return index


def update_records(sim: Simulator, name: str, body: Any, keys_param: str | None) -> dict[str, Any]:
    """Every record's key fields (AND-combined) find the rows it updates; all or nothing."""
    schema = _schema(sim, name)
    keys = _keys(sim, schema, keys_param)
    with sim.lock:
        cleaned = _validated(sim, schema, body, frozenset({GSID}) if GSID in keys else frozenset())
        rows = sim.objects[name]
        index = _index(schema, keys, rows)
        matches: list[list[str]] = []
        for position, clean in enumerate(cleaned):
            absent = [k for k in keys if clean.get(k) is None]
            if absent:
                raise SimError(400, codes.INVALID_FIELD, f"records[{position}] lacks key field(s) {absent}")
            matches.append(index.get(_key_of(schema, keys, clean), []))
        missing = [clean for clean, found in zip(cleaned, matches, strict=True) if not found]
        if missing and sim.config.update_no_match == "error":
            described = ", ".join(f"{k}={missing[0][k]}" for k in keys)
            raise SimError(
                400, codes.NO_MATCH, f"No {name} matches the keys ({described}); nothing was updated"
            )
        written = []
        for clean, found in zip(cleaned, matches, strict=True):
            changes = {k: v for k, v in clean.items() if k != GSID}
            for gsid in found:
                rows[gsid].update(changes)
                rows[gsid].update(sim.modification_fields())
                written.append({**changes, GSID: gsid})
    return {"count": len(written), "errors": None, "records": written}


def query_records(sim: Simulator, name: str, body: Any) -> Any:
    schema = _schema(sim, name)
    cfg = sim.config
    query = parse_query(
        body, schema, max_limit=cfg.max_query_limit, allow_unknown=not cfg.reject_unknown_fields
    )
    options = ReadOptions(
        dates_as_epoch_ms=cfg.query_dates_as_epoch_ms, picklists_as_gsids=cfg.query_picklists_as_gsids
    )
    with sim.lock:
        rows = run_query(query, schema, list(sim.objects[name].values()), options)
    if not rows and cfg.query_no_match_error:
        raise SimError(400, codes.NO_MATCH, "No data found for given criteria")
    return rows if cfg.query_bare_list else {"records": rows}
