"""Reading Gainsight's answers to Company calls (reference §4): records, Gsids, "no match".

What the calls are and when they are made is executor.py; this module only reads answers.
"""

from __future__ import annotations

from typing import Any

from destination.gainsight.outcomes import Answer, classify

# Gainsight's documented "nothing matches" answer to a query (some tenants answer 200 + []).
_NO_MATCH_CODES = frozenset({"GSOBJ_1011"})


def records_of(answer: Answer) -> list[dict[str, Any]]:
    """`data.records`, or `data` itself when a tenant answers with a bare list."""
    body = answer.body
    data = body.get("data") if isinstance(body, dict) else None
    if isinstance(data, dict):
        data = data.get("records")
    if isinstance(data, list):
        return [r for r in data if isinstance(r, dict)]
    return []


def is_no_match(answer: Answer) -> bool:
    return classify(answer) == "aborted" and answer.error_code in _NO_MATCH_CODES


def matched_nothing(answer: Answer) -> bool:
    """An update that succeeded but changed no row (tenants that answer 200 with count 0)."""
    data = answer.body.get("data") if isinstance(answer.body, dict) else None
    return isinstance(data, dict) and data.get("count") == 0 and not records_of(answer)


def gsid_by_name(names: list[str], answer: Answer) -> dict[str, str]:
    """Searched name -> Gsid ("" when the answer leaves it out) of the companies a search found.

    Returned names are matched to the searched ones ignoring case (a tenant's `EQ`/`IN` may), the
    first record winning. A search for ONE name that answers any record means "found, update it",
    as the reference does (`records.length === 0` → create, else update), whatever its Name.
    """
    records = records_of(answer)
    if len(names) == 1 and records:
        gsid = records[0].get("Gsid")
        return {names[0]: gsid if isinstance(gsid, str) else ""}
    wanted = {name.casefold(): name for name in names}
    found: dict[str, str] = {}
    for record in records:
        name, gsid = record.get("Name"), record.get("Gsid")
        searched = wanted.get(name.casefold()) if isinstance(name, str) else None
        if searched is not None and searched not in found:
            found[searched] = gsid if isinstance(gsid, str) else ""
    return found


def gsids_by_key(key: str, values: list[str], answer: Answer) -> dict[str, list[str]]:
    """Searched value -> the Gsid of every company the search answered with that exact value of
    `key` (a tenant's own key: matched exactly; "" where a record left its Gsid out)."""
    wanted = set(values)
    found: dict[str, list[str]] = {}
    for record in records_of(answer):
        value = _text(record.get(key))
        if value is not None and value in wanted:
            gsid = record.get("Gsid")
            found.setdefault(value, []).append(gsid if isinstance(gsid, str) else "")
    return found


def gsids_written(key: str, values: list[str], answer: Answer) -> dict[str, str]:
    """Gsids of written records: by their key when echoed (Name ignoring case, another key
    exactly), else by position (input order)."""
    fold = key == "Name"
    records = records_of(answer)
    by_key: dict[str, str] = {}
    for record in records:
        value, gsid = _text(record.get(key)), record.get("Gsid")
        if value is not None and isinstance(gsid, str):
            by_key.setdefault(value.casefold() if fold else value, gsid)
    result = {}
    for i, value in enumerate(values):
        gsid = by_key.get(value.casefold() if fold else value)
        if gsid is None and i < len(records) and isinstance(records[i].get("Gsid"), str):
            gsid = records[i]["Gsid"]
        if gsid:
            result[value] = gsid
    return result


def _text(value: Any) -> str | None:
    """A key value as the plans hold it: text (a number field answers a number)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return None
