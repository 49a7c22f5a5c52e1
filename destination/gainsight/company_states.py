"""Which call a company needs next, by what is known of it (DESIGN §3.3, §6): pure.

A company moves through `CompanyState`; `COMPANY_STEPS` says which call each state needs:

    UNKNOWN   no Gsid known                                 → company search
    ABSENT    the search answered no record                 → company insert (Gsid from the answer)
    KNOWN     Gsid remembered, or the search found it       → company update (PUT ?keys=<key>)
    CURRENT   Gsid remembered, fields as last delivered     → no call (unchanged)
    WRITTEN   inserted or updated in this batch             → no call

The dry run's description of a group event (`group_steps`) is made from the same table; the calls
themselves are company_writes.py's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from destination.gainsight import plan as p
from destination.gainsight.requests import Request


class CompanyState(Enum):
    UNKNOWN = "unknown"
    ABSENT = "absent"
    KNOWN = "known"
    CURRENT = "current"
    WRITTEN = "written"


CompanyStep = Literal["search", "insert", "update"]

COMPANY_STEPS: dict[CompanyState, tuple[CompanyStep, str]] = {
    CompanyState.UNKNOWN: ("search", "unless the company's Gsid is known"),
    CompanyState.ABSENT: ("insert", "when the search finds no company"),
    CompanyState.KNOWN: ("update", "when the company exists (its Gsid remembered or the search's)"),
}
"""The call each state needs, and when it is sent (the dry run's words); other states need none."""

MAX_COMPANY_ROUNDS = 4
"""Search, insert or update, and once more for a company deleted in Gainsight meanwhile."""


@dataclass(frozen=True, slots=True)
class CompanyProgress:
    """What is known, so far in this batch, about one company."""

    state: CompanyState = CompanyState.UNKNOWN
    gsid: str | None = None  # remembered, or learnt from the search or a write

    @classmethod
    def remembered(cls, gsid: str | None, unchanged: bool) -> CompanyProgress:
        if not gsid:
            return cls()
        return cls(CompanyState.CURRENT if unchanged else CompanyState.KNOWN, gsid)


def next_company_step(company: CompanyProgress) -> CompanyStep | None:
    """The next call for a company; None once its Gsid is known and its fields are there."""
    step = COMPANY_STEPS.get(company.state)
    return None if step is None else step[0]


def group_steps(plan: p.GroupPlan) -> list[tuple[Request, str]]:
    """Every request a group event may cause, with when it is sent (for the dry run)."""
    builders: dict[CompanyStep, Callable[[], Request]] = {
        "search": plan.search_request,
        "insert": plan.insert_request,
        "update": plan.update_request,
    }
    gsid = f"<Gsid of the company whose {plan.key_field} is {plan.key_value!r}>"
    steps = [(s, when) for s, when in COMPANY_STEPS.values() if plan.create or s != "insert"]
    return [(builders[step](), when) for step, when in steps] + [
        (plan.association_request(gsid), "merged with the person's run into one person upsert")
    ]
