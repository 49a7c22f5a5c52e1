"""The executor's pure decisions (company_writes.py, executor.py, jobs.py), one table each."""

from __future__ import annotations

from typing import Any

import pytest

from destination.gainsight.companies import gsid_by_name, gsids_by_key, gsids_written
from destination.gainsight.company_states import (
    COMPANY_STEPS,
    CompanyProgress,
    CompanyState,
    CompanyStep,
    group_steps,
    next_company_step,
)
from destination.gainsight.executor import merged_person
from destination.gainsight.jobs import Progress, changes_nothing
from destination.gainsight.outcomes import Answer
from destination.gainsight.plan import GroupPlan, IdentifyPlan, company_key

# (what is known about the company, the next call; None: no call)
UNKNOWN, ABSENT, KNOWN, CURRENT, WRITTEN = (
    CompanyState.UNKNOWN,
    CompanyState.ABSENT,
    CompanyState.KNOWN,
    CompanyState.CURRENT,
    CompanyState.WRITTEN,
)
COMPANY_STEP_CASES: list[tuple[str, CompanyProgress, CompanyStep | None]] = [
    ("unknown name: search", CompanyProgress(), "search"),
    ("searched, none found: insert", CompanyProgress(ABSENT), "insert"),
    ("searched, found: update", CompanyProgress(KNOWN, "G"), "update"),
    ("found without a Gsid: update by Name", CompanyProgress(KNOWN), "update"),
    ("Gsid remembered, fields changed: update", CompanyProgress.remembered("G", unchanged=False), "update"),
    ("Gsid remembered, fields unchanged: nothing", CompanyProgress.remembered("G", unchanged=True), None),
    ("unchanged but Gsid unknown: search", CompanyProgress.remembered(None, unchanged=True), "search"),
    ("written: done", CompanyProgress(WRITTEN, "G"), None),
]


@pytest.mark.parametrize(
    ("known", "step"), [r[1:] for r in COMPANY_STEP_CASES], ids=[r[0] for r in COMPANY_STEP_CASES]
)
def test_next_company_step(known: CompanyProgress, step: CompanyStep | None) -> None:
    assert next_company_step(known) == step


def test_the_dry_run_describes_a_group_from_the_state_table() -> None:
    plan = GroupPlan("acme.gainsightcloud.com", {"Name": "Acme"}, "ada@x.com", ())
    described = group_steps(plan)
    assert [(r.step, when) for r, when in described[:-1]] == [
        (f"company {step}", when) for step, when in COMPANY_STEPS.values()
    ]
    assert described[-1][0].step == "person upsert"


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
def test_changes_nothing(delivered: dict[str, Any] | None, record: dict[str, Any], same: bool) -> None:
    assert changes_nothing(delivered, record) is same


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


def test_company_names_are_one_company_whatever_their_case() -> None:
    assert company_key("Name", "Acme") == company_key("Name", "ACME") != company_key("Name", "Acme Labs")


def test_a_tenant_s_own_key_is_matched_exactly_and_never_meets_a_name() -> None:
    assert company_key("SfdcAccountId", "001A") != company_key("SfdcAccountId", "001a")
    assert company_key("SfdcAccountId", "acme") != company_key("Name", "acme")


def test_search_and_write_answers_are_read_back_ignoring_the_name_s_case() -> None:
    found = Answer(
        200, {"data": {"records": [{"Name": "ACME", "Gsid": "G1"}, {"Name": "beta", "Gsid": "G2"}]}}
    )
    assert gsid_by_name(["acme", "Beta", "Gamma"], found) == {"acme": "G1", "Beta": "G2"}
    written = Answer(
        200, {"data": {"records": [{"Name": "beta", "Gsid": "G2"}, {"Name": "ACME", "Gsid": "G1"}]}}
    )
    assert gsids_written("Name", ["Acme", "BETA"], written) == {"Acme": "G1", "BETA": "G2"}


def test_a_keyed_search_answers_every_company_per_value_and_never_folds_case() -> None:
    found = Answer(
        200,
        {
            "data": {
                "records": [
                    {"Gsid": "G1", "SfdcAccountId": "001A"},
                    {"Gsid": "G2", "SfdcAccountId": "001A"},
                    {"Gsid": "G3", "SfdcAccountId": "001a"},
                    {"Gsid": "G4", "SfdcAccountId": 42},
                ]
            }
        },
    )
    assert gsids_by_key("SfdcAccountId", ["001A", "42", "001B"], found) == {
        "001A": ["G1", "G2"],
        "42": ["G4"],
    }
    written = Answer(200, {"data": {"records": [{"SfdcAccountId": "X1", "Gsid": "G1"}, {"Gsid": "G2"}]}})
    assert gsids_written("SfdcAccountId", ["X1", "X2"], written) == {"X1": "G1", "X2": "G2"}
