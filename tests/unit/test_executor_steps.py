"""The executor's pure decisions (gainsight/executor.py), one table each."""

from __future__ import annotations

from typing import Any

import pytest

from destination.gainsight.executor import (
    CompanyProgress,
    CompanyStep,
    Progress,
    holds,
    merged_person,
    next_company_step,
)
from destination.gainsight.plan import GroupPlan, IdentifyPlan

# (what is known about the company, the next call)
COMPANY_STEPS: list[tuple[str, CompanyProgress, CompanyStep]] = [
    ("unknown name: search", CompanyProgress(), "search"),
    ("searched, none found: insert", CompanyProgress(searched=True), "insert"),
    ("searched, found: update", CompanyProgress(searched=True, found=True, gsid="G"), "update"),
    ("found without a Gsid: update by Name", CompanyProgress(searched=True, found=True), "update"),
    ("Gsid remembered, fields changed: update", CompanyProgress(gsid="G"), "update"),
    ("Gsid remembered, fields unchanged: nothing", CompanyProgress(gsid="G", unchanged=True), "done"),
    ("unchanged but Gsid unknown: search", CompanyProgress(unchanged=True), "search"),
    ("written: done", CompanyProgress(gsid="G", written=True), "done"),
    ("inserted: done", CompanyProgress(searched=True, gsid="G", written=True), "done"),
]


@pytest.mark.parametrize(("known", "step"), [r[1:] for r in COMPANY_STEPS], ids=[r[0] for r in COMPANY_STEPS])
def test_next_company_step(known: CompanyProgress, step: CompanyStep) -> None:
    assert next_company_step(known) == step


HOLDS: list[tuple[str, dict[str, Any] | None, dict[str, Any], bool]] = [
    ("nothing remembered", None, {"Name": "A"}, False),
    ("same fields", {"Name": "A", "Stage": "Live"}, {"Name": "A", "Stage": "Live"}, True),
    ("fewer fields than remembered", {"Name": "A", "Stage": "Live"}, {"Name": "A"}, True),
    ("a changed value", {"Name": "A", "Stage": "Live"}, {"Name": "A", "Stage": "Churn"}, False),
    ("a new field", {"Name": "A"}, {"Name": "A", "Stage": "Live"}, False),
    (
        "companies already linked",
        {"Email": "a", "companies": ["G1", "G2"]},
        {"Email": "a", "companies": ["G2"]},
        True,
    ),
    ("a new company link", {"Email": "a", "companies": ["G1"]}, {"Email": "a", "companies": ["G2"]}, False),
    ("1 and 1.0 are one number", {"Employees": 1}, {"Employees": 1.0}, True),
]


@pytest.mark.parametrize(("delivered", "record", "same"), [r[1:] for r in HOLDS], ids=[r[0] for r in HOLDS])
def test_holds(delivered: dict[str, Any] | None, record: dict[str, Any], same: bool) -> None:
    assert holds(delivered, record) is same


def identify(**fields: Any) -> IdentifyPlan:
    return IdentifyPlan("d", {"Email": "ada@x.com", **fields}, ())


def group(name: str, email: str = "ada@x.com") -> GroupPlan:
    return GroupPlan("d", {"Name": name}, email, ())


def test_a_run_merges_fields_in_event_order_and_links_every_company() -> None:
    plans = [identify(FirstName="A", Seats__gc=1), group("Acme"), identify(FirstName="B"), group("Beta")]
    assert merged_person(plans, ["G-ACME", "G-BETA", "G-ACME"]) == {
        "Email": "ada@x.com",
        "FirstName": "B",  # last write wins
        "Seats__gc": 1,  # left out later: keeps its earlier value
        "companies": [{"Company_ID": "G-ACME"}, {"Company_ID": "G-BETA"}],
    }


def test_a_run_of_groups_alone_is_an_association() -> None:
    assert merged_person([group("Acme", "Ada@x.com")], ["G"]) == {
        "Email": "Ada@x.com",
        "companies": [{"Company_ID": "G"}],
    }


def test_progress_round_trips_through_the_store_s_json() -> None:
    assert Progress.of(Progress("G1").as_dict()) == Progress("G1")
    assert Progress.of(None) == Progress() and Progress().as_dict() is None
    assert Progress.of({"company_gsid": 7}) == Progress()  # not a Gsid: start afresh
