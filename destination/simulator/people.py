"""People single upsert (reference §3.1): one person per call, matched by Email.

Everything is checked before anything is written: a bad field or an unknown Company_ID leaves the
tenant untouched.
"""

from __future__ import annotations

from typing import Any

from destination.simulator import envelope as codes
from destination.simulator.envelope import SimError
from destination.simulator.state import PERSON_GSID_PREFIX, Person, Simulator, new_gsid
from destination.simulator.validation import (
    PERSON_CODES,
    ProblemKind,
    check_record,
    check_value,
    describe,
)

COMPANIES_KEY = "companies"  # the only key on a person that is not a Person field
EMAIL = "Email"
_BAD_GSID = PERSON_CODES[ProblemKind.BAD_GSID]


def _parse_companies(raw: Any) -> list[tuple[str, dict[str, Any]]] | None:
    """(Company Gsid, Company Person attributes) pairs, or None when the key is absent."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise SimError(400, codes.INVALID_FIELD, "companies must be an array of objects")
    links: list[tuple[str, dict[str, Any]]] = []
    for position, item in enumerate(raw):
        if not isinstance(item, dict):
            raise SimError(400, codes.INVALID_FIELD, f"companies[{position}] must be an object")
        company_id = item.get("Company_ID")
        if not isinstance(company_id, str) or not company_id:
            raise SimError(400, _BAD_GSID, f"companies[{position}].Company_ID must be a GSID")
        attrs = {k: v for k, v in item.items() if k != "Company_ID"}
        links.append((company_id, attrs))
    return links


def _check_email(sim: Simulator, value: Any) -> str:
    if value is None or value == "":
        raise SimError(
            400,
            PERSON_CODES[ProblemKind.BAD_EMAIL],
            "Email is required: it is the key people are matched by",
        )
    _, problem, _ = check_value(sim.person_schema[EMAIL], value, sim.validation)
    if problem is not None:
        raise SimError(400, PERSON_CODES[problem], f"Invalid email ({EMAIL} = {value})")
    return str(value)  # only strings pass the EMAIL check


def upsert_person(sim: Simulator, body: Any) -> dict[str, Any]:
    if isinstance(body, list):
        raise SimError(
            400,
            codes.INVALID_FIELD,
            "One person per call: the body must be a JSON object, not an array "
            "(several people at once is the asynchronous bulk API)",
        )
    if not isinstance(body, dict):
        raise SimError(400, codes.INVALID_FIELD, "The body must be a JSON object (one person)")
    fields = {k: v for k, v in body.items() if k != COMPANIES_KEY}
    links = _parse_companies(body.get(COMPANIES_KEY))
    email = _check_email(sim, fields.get(EMAIL))
    clean, problems = check_record(fields, sim.person_schema, sim.validation)
    if problems:
        raise SimError(400, PERSON_CODES[problems[0].kind], describe(problems))
    with sim.lock:
        missing = [gsid for gsid, _ in links or [] if gsid not in sim.companies]
        if missing:
            raise SimError(
                400,
                codes.PEOPLE_ASSOCIATION,
                f"Associated Company record(s) do not exist: {', '.join(dict.fromkeys(missing))}",
            )
        return _write(sim, email, clean, links)


def _write(
    sim: Simulator,
    email: str,
    clean: dict[str, Any],
    links: list[tuple[str, dict[str, Any]]] | None,
) -> dict[str, Any]:
    person = sim.person_by_email(email)
    created = person is None
    if person is None:
        gsid = new_gsid(PERSON_GSID_PREFIX)
        person = Person(gsid, {**sim.creation_fields(gsid), **clean})
        sim.people[gsid] = person
    else:
        sim.people_by_email.pop(sim.email_key(str(person.fields[EMAIL])), None)
        person.fields.update(clean)  # merge: only the fields sent change
        person.fields.update(sim.modification_fields())
    sim.people_by_email[sim.email_key(email)] = person.gsid
    if links is not None:
        if sim.config.people_companies_replace:
            person.companies.clear()
        for company_gsid, attrs in links:
            person.companies.setdefault(company_gsid, {}).update(attrs)
    return {
        "Gsid": person.gsid,
        EMAIL: person.fields[EMAIL],
        "operation": "INSERT" if created else "UPDATE",
    }
