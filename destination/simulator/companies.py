"""Company reads and writes on `/v1/data/objects/Company` (reference §4.1 to §4.3).

Writes take `{"records": [...]}`, at most `max_records_per_call`, and are all-or-nothing: every
record is validated (and, for updates, matched) before the first one is written.
"""

from __future__ import annotations

from typing import Any

from destination.simulator import envelope as codes
from destination.simulator.envelope import SimError
from destination.simulator.fields import DATE_TYPES, NUMERIC_TYPES, FieldSpec, FieldType
from destination.simulator.query import ReadOptions, parse_query, run_query
from destination.simulator.state import COMPANY_GSID_PREFIX, Simulator, new_gsid
from destination.simulator.validation import (
    COMPANY_CODES,
    Problem,
    ProblemKind,
    check_record,
    check_value,
    describe,
    parse_epoch_ms,
)

NAME = "Name"
GSID = "Gsid"


def records_of(body: Any, limit: int) -> list[dict[str, Any]]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SimError(400, codes.INVALID_FIELD, 'The body must be {"records": [ ... ]}')
    records: list[dict[str, Any]] = body["records"]
    if not records:
        raise SimError(400, codes.INVALID_FIELD, "records must not be empty")
    if len(records) > limit:
        raise SimError(
            400,
            codes.INVALID_FIELD,
            f"At most {limit} records per call, got {len(records)} (use the Bulk API for more)",
        )
    for position, record in enumerate(records):
        if not isinstance(record, dict):
            raise SimError(400, codes.INVALID_FIELD, f"records[{position}] must be an object")
    return records


def refusal(records: list[dict[str, Any]], problems: list[list[Problem]]) -> SimError:
    """400 in the shape Gainsight uses: per-record results nested one list deep."""
    flat = [p for per_record in problems for p in per_record]
    results = [
        [
            {
                "success": not found,
                "parsedValue": record,
                "errors": [p.as_error(COMPANY_CODES) for p in found],
            }
        ]
        for record, found in zip(records, problems, strict=True)
    ]
    return SimError(
        400,
        COMPANY_CODES[flat[0].kind],
        describe(flat),
        data={"count": 0, "records": None, "errors": results},
    )


def _validate(
    sim: Simulator, records: list[dict[str, Any]], writable_system: frozenset[str] = frozenset()
) -> tuple[list[dict[str, Any]], list[list[Problem]]]:
    cleaned: list[dict[str, Any]] = []
    problems: list[list[Problem]] = []
    for record in records:
        clean, found = check_record(
            record, sim.company_schema, sim.validation, writable_system=writable_system
        )
        cleaned.append(clean)
        problems.append(found)
    return cleaned, problems


def _written(data_records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"count": len(data_records), "errors": None, "records": data_records}


def folded_fields(sim: Simulator) -> frozenset[str]:
    """The Company fields whose values compare ignoring case in queries and `keys=` (the switches
    `company_name_case_sensitive` and `company_key_values_case_sensitive`)."""
    folded: set[str] = set()
    if not sim.config.company_name_case_sensitive:
        folded.add(NAME)
    if not sim.config.company_key_values_case_sensitive:
        text = (name for name, spec in sim.company_schema.items() if spec.type is FieldType.STRING)
        folded.update(name for name in text if name != NAME)
    return frozenset(folded)


def name_key(sim: Simulator, name: Any) -> Any:
    """A Company Name as the tenant compares it (`company_name_case_sensitive`)."""
    if isinstance(name, str) and not sim.config.company_name_case_sensitive:
        return name.casefold()
    return name


def _duplicate_names(sim: Simulator, cleaned: list[dict[str, Any]]) -> list[list[Problem]]:
    taken = {name_key(sim, fields.get(NAME)) for fields in sim.companies.values()}
    found: list[list[Problem]] = []
    for clean in cleaned:
        name = clean.get(NAME)
        duplicate = name_key(sim, name) in taken
        taken.add(name_key(sim, name))
        found.append(
            [Problem(ProblemKind.DUPLICATE, NAME, name, "Company names are unique")] if duplicate else []
        )
    return found


def insert_companies(sim: Simulator, body: Any) -> dict[str, Any]:
    records = records_of(body, sim.config.max_records_per_call)
    cleaned, problems = _validate(sim, records)
    for clean, found in zip(cleaned, problems, strict=True):
        if clean.get(NAME) in (None, "") and not any(p.field == NAME for p in found):
            found.append(Problem(ProblemKind.NOT_NULLABLE, NAME, None, "Name is required"))
    with sim.lock:
        if sim.config.company_unique_names and not any(problems):
            problems = _duplicate_names(sim, cleaned)
        if any(problems):
            raise refusal(records, problems)
        written = []
        for clean in cleaned:
            gsid = new_gsid(COMPANY_GSID_PREFIX)
            sim.companies[gsid] = {**sim.creation_fields(gsid), **clean}
            written.append({GSID: gsid, **clean})
    return _written(written)


def _parse_keys(sim: Simulator, keys_param: str | None) -> list[str]:
    keys = [k.strip() for k in (keys_param or "").split(",") if k.strip()]
    if not keys:
        raise SimError(400, codes.INVALID_FIELD, "Query parameter keys is required, e.g. keys=Name")
    if len(keys) > sim.config.max_update_keys:
        raise SimError(
            400,
            codes.INVALID_FIELD,
            f"At most {sim.config.max_update_keys} keys, got {len(keys)}: {', '.join(keys)}",
        )
    for key in keys:
        spec = sim.company_schema.get(key)
        if spec is None or (spec.system and key != GSID):
            raise SimError(400, codes.INVALID_FIELD, f"keys names unknown field {key}")
    return keys


def same_value(spec: FieldSpec, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return False
    if spec.type in NUMERIC_TYPES:
        return float(a) == float(b)
    if spec.type in DATE_TYPES:
        return parse_epoch_ms(a) == parse_epoch_ms(b)
    return bool(a == b)


def _matches(sim: Simulator, keys: list[str], record: dict[str, Any]) -> list[str]:
    folded = folded_fields(sim)

    def same(key: str, stored: Any, sent: Any) -> bool:
        if key in folded and isinstance(stored, str) and isinstance(sent, str):
            stored, sent = stored.casefold(), sent.casefold()
        return same_value(sim.company_schema[key], stored, sent)

    return [
        gsid for gsid, fields in sim.companies.items() if all(same(k, fields.get(k), record[k]) for k in keys)
    ]


def update_companies(sim: Simulator, body: Any, keys_param: str | None) -> dict[str, Any]:
    keys = _parse_keys(sim, keys_param)
    records = records_of(body, sim.config.max_records_per_call)
    for position, record in enumerate(records):
        absent = [k for k in keys if record.get(k) is None]
        if absent:
            raise SimError(
                400,
                codes.INVALID_FIELD,
                f"records[{position}] lacks key field(s) {', '.join(absent)}",
            )
    writable = frozenset({GSID}) if GSID in keys else frozenset()
    cleaned, problems = _validate(sim, records, writable)
    if any(problems):
        raise refusal(records, problems)
    with sim.lock:
        matches = [_matches(sim, keys, clean) for clean in cleaned]
        unmatched = [clean for clean, found in zip(cleaned, matches, strict=True) if not found]
        if unmatched and sim.config.update_no_match == "error":
            described = ", ".join(f"{k}={unmatched[0][k]}" for k in keys)
            raise SimError(
                400,
                codes.NO_MATCH,
                f"No Company matches the keys ({described}); nothing was updated",
            )
        written = []
        for clean, found in zip(cleaned, matches, strict=True):
            changes = {k: v for k, v in clean.items() if k != GSID}
            for gsid in found:
                sim.companies[gsid].update(changes)
                sim.companies[gsid].update(sim.modification_fields())
                written.append({**changes, GSID: gsid})
    return _written(written)


def delete_company(sim: Simulator, gsid: str) -> dict[str, Any]:
    _, problem, _ = check_value(sim.company_schema[GSID], gsid, sim.validation)
    if problem is not None:
        raise SimError(400, codes.GSID_INVALID, f"Invalid GSID in path: {gsid!r}")
    with sim.lock:
        if sim.companies.pop(gsid, None) is None:
            raise SimError(400, codes.NO_MATCH, f"No Company with Gsid {gsid}")
        for person in sim.people.values():
            person.companies.pop(gsid, None)  # its Company Person records go with it
    return _written([{GSID: gsid}])


def query_companies(sim: Simulator, body: Any) -> Any:
    cfg = sim.config
    query = parse_query(
        body,
        sim.company_schema,
        max_limit=cfg.max_query_limit,
        allow_unknown=not cfg.reject_unknown_fields,
    )
    options = ReadOptions(
        dates_as_epoch_ms=cfg.query_dates_as_epoch_ms,
        picklists_as_gsids=cfg.query_picklists_as_gsids,
        fold_case=folded_fields(sim),
    )
    with sim.lock:
        rows = run_query(query, sim.company_schema, list(sim.companies.values()), options)
    if not rows and cfg.query_no_match_error:
        raise SimError(400, codes.NO_MATCH, "No data found for given criteria")
    return rows if cfg.query_bare_list else {"records": rows}
