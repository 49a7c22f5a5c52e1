"""Timeline single-activity save (reference §8): `POST /v1/ant/es/activity`, one record a call.

Everything is checked before anything is written. `ExternalId` is unique per tenant: a second
save with one is refused, the error text naming it (a retried insert whose first try landed meets
that refusal). Gainsight documents no error codes for Timeline, so the codes here are the
simulator's own, spelled as words (`GSTL_…`); the duplicate's exact code is [U].
"""

from __future__ import annotations

import re
from typing import Any

from destination.simulator.envelope import SimError
from destination.simulator.state import ACTIVITY_GSID_PREFIX, Activity, Simulator, new_gsid

BODY_INVALID = "GSTL_BODY_INVALID"
FIELD_REQUIRED = "GSTL_FIELD_REQUIRED"
FIELD_INVALID = "GSTL_FIELD_INVALID"
TYPE_UNKNOWN = "GSTL_TYPE_UNKNOWN"
COMPANY_UNKNOWN = "GSTL_COMPANY_UNKNOWN"
DUPLICATE_EXTERNAL_ID = "GSTL_DUPLICATE_EXTERNAL_ID"  # [U] the real code

# The fields every activity needs; a Company activity also needs GsCompanyId.
REQUIRED = ("ExternalId", "ContextName", "TypeName", "Subject", "ActivityDate", "Author")
CONTEXTS = ("Company",)  # the contexts the simulator keeps (Gainsight has more: Relationship, CTA, …)
_TEXT = ("ExternalId", "ContextName", "TypeName", "Subject", "Author", "GsCompanyId")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


def _record(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise SimError(400, BODY_INVALID, 'The body must be {"records": [ {...} ], "lookups": {...}}')
    if not isinstance(body.get("lookups", {}), dict):
        raise SimError(400, BODY_INVALID, "lookups must be an object")
    records = body["records"]
    if len(records) != 1:
        raise SimError(
            400,
            BODY_INVALID,
            f"The single-activity API takes exactly one record, got {len(records)} (use the bulk API)",
        )
    if not isinstance(records[0], dict):
        raise SimError(400, BODY_INVALID, "records[0] must be an object")
    return records[0]


def _missing(sim: Simulator, record: dict[str, Any]) -> list[str]:
    required = [*REQUIRED, *sim.config.activity_required_fields]
    if record.get("ContextName") == "Company":
        required.append("GsCompanyId")
    return [name for name in dict.fromkeys(required) if record.get(name) in (None, "")]


def _check_fields(sim: Simulator, record: dict[str, Any]) -> None:
    missing = _missing(sim, record)
    if missing:
        raise SimError(400, FIELD_REQUIRED, f"Required field(s) missing: {', '.join(missing)}")
    wrong = [name for name in _TEXT if name in record and not isinstance(record[name], str)]
    if wrong:
        raise SimError(400, FIELD_INVALID, f"Field(s) must be strings: {', '.join(wrong)}")
    date = record["ActivityDate"]
    if isinstance(date, bool) or not isinstance(date, int):
        raise SimError(400, FIELD_INVALID, f"ActivityDate must be epoch milliseconds, got {date!r}")
    if not _EMAIL.match(record["Author"]):
        author = record["Author"]
        raise SimError(400, FIELD_INVALID, f"Author must be a Gainsight user's email, got {author!r}")
    notes = record.get("Notes")
    if notes is not None and (not isinstance(notes, str) or len(notes) > sim.config.richtext_max_length):
        raise SimError(400, FIELD_INVALID, "Notes must be text within the rich text length limit")
    if record["ContextName"] not in CONTEXTS:
        raise SimError(400, FIELD_INVALID, f"ContextName {record['ContextName']!r} is not supported")
    types = sim.config.activity_types
    if types is not None and record["TypeName"] not in types:
        raise SimError(400, TYPE_UNKNOWN, f"Activity type {record['TypeName']!r} does not exist")


def save_activity(sim: Simulator, body: Any) -> dict[str, Any]:
    """Save one activity; the answer's `data` names its Gsid and ExternalId."""
    record = _record(body)
    _check_fields(sim, record)
    external_id = record["ExternalId"]
    with sim.lock:
        if record["GsCompanyId"] not in sim.companies:
            raise SimError(400, COMPANY_UNKNOWN, f"No Company with Gsid {record['GsCompanyId']!r}")
        if external_id in sim.activities:
            raise SimError(
                400,
                DUPLICATE_EXTERNAL_ID,
                f"An activity with ExternalId {external_id!r} already exists: "
                "ExternalId must be unique in the tenant",
            )
        gsid = new_gsid(ACTIVITY_GSID_PREFIX)
        sim.activities[external_id] = Activity(gsid, sim.clock(), dict(record))
    return {"count": 1, "records": [{"Gsid": gsid, "ExternalId": external_id}]}
