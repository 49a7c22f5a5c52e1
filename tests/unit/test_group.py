"""group → Company, then association (DESIGN §3.3): field rows, errors, and the Company paths."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from destination.delivery.memory import MemoryStore
from destination.errors import ConfigError, EventError, GainsightError
from destination.gainsight.client import Credentials, GainsightClient
from destination.gainsight.executor import Executor
from destination.gainsight.plan import GroupPlan, plan_event
from destination.jsonutil import loads
from tests.conftest import DOMAIN, make_config

EMAIL = "ada@example.com"


def group(specs: Any, traits: dict[str, Any], email: str | None = EMAIL, **config: Any) -> GroupPlan:
    event: dict[str, Any] = {"type": "group", "groupId": "g1", "traits": traits}
    if email is not None:
        event["context"] = {"traits": {"email": email}}
    plan = plan_event(event, make_config(**config), specs)
    assert isinstance(plan, GroupPlan)
    return plan


ROWS = [
    ("employees", 120, "Employees", 120),
    ("employees", "120", "Employees", 120),
    ("arr", 1000.5, "Arr", 1000.5),
    ("billingAddress", "1 Main St", "BillingAddress", "1 Main St"),
    ("billingAddress", {"city": "Paris"}, "BillingAddress", '{"city":"Paris"}'),
    ("summary", {"a": [1, 2]}, "Summary", '{"a":[1,2]}'),
    ("companyType", "Customer", "CompanyType", "Customer"),
    ("csm", "user-1", "Csm", "user-1"),
    ("customerLifetimeInMonths", "12", "CustomerlifetimeInMonths", 12),
    ("industry", "Retail", "Industry", "Retail"),
    ("industry", {"name": "Retail"}, "Industry", '{"name":"Retail"}'),
    ("lifecycleInWeeks", 3.0, "LifecycleInWeeks", 3),
    ("managedAs", "Tech Touch", "ManagedAs", "Tech Touch"),
    ("mrr", 99, "Mrr", 99),
    ("originalContractDate", "2024-01-31", "OriginalContractDate", "2024-01-31"),
    ("parentCompany", "Parent Co", "ParentCompany", "Parent Co"),
    ("renewalDate", "2025-01-31", "RenewalDate", "2025-01-31"),
    ("stage", "Live", "Stage", "Live"),
    ("status", "Active", "Status", "Active"),
    ("tags", "vip", "Tags", "vip"),
    ("tickerSymbol", {"NYSE": "ACME"}, "TickerSymbol", '{"NYSE":"ACME"}'),
    ("tickerSymbol", "ACME", "TickerSymbol", "ACME"),
    ("users", "40", "Users", 40),
    ("sfdcAccountId", "001xx", "SfdcAccountId", "001xx"),
    ("industryNew", "Fintech", "IndustryNew", "Fintech"),
]


@pytest.mark.parametrize(("trait", "value", "field", "sent"), ROWS, ids=[f"{r[0]}->{r[2]}" for r in ROWS])
def test_company_standard_field(specs: Any, trait: str, value: Any, field: str, sent: Any) -> None:
    company = group(specs, {"name": "Acme", trait: value}).company
    assert company[field] == sent
    assert type(company[field]) is type(sent)


@pytest.mark.parametrize("trait", ["employees", "customerLifetimeInMonths", "lifecycleInWeeks", "users"])
def test_company_number_field_not_a_number_left_out(specs: Any, trait: str) -> None:
    plan = group(specs, {"name": "Acme", trait: "many"})
    assert len(plan.company) == 1
    assert "expected a number" in plan.diagnostics[0].problem


def test_company_name_and_custom_fields(specs: Any) -> None:
    plan = group(specs, {"name": "Acme", "region": "EMEA", "unmapped": 1})
    assert dict(plan.company) == {"Name": "Acme", "Region__gc": "EMEA"}
    assert [d.field for d in plan.diagnostics] == ["traits.unmapped"]


def test_company_custom_fields_only_from_traits(specs: Any) -> None:
    event = {
        "type": "group",
        "traits": {"name": "Acme"},
        "context": {"traits": {"email": EMAIL, "region": "EU"}},
    }
    plan = plan_event(event, make_config(), specs)
    assert isinstance(plan, GroupPlan) and "Region__gc" not in plan.company


def test_requests_of_the_plan(specs: Any) -> None:
    plan = group(specs, {"name": "Acme", "region": "EMEA"})
    headers = {"Content-Type": "application/json"}  # credentials are added when sent
    search = plan.search_request()
    assert (search.method, search.endpoint) == ("POST", f"https://{DOMAIN}/v1/data/objects/query/Company")
    assert search.body["where"] == {
        "conditions": [{"name": "Name", "alias": "A", "value": ["Acme"], "operator": "EQ"}],
        "expression": "A",
    }
    insert = plan.insert_request()
    assert (insert.method, insert.endpoint, insert.body) == (
        "POST",
        f"https://{DOMAIN}/v1/data/objects/Company",
        {"records": [{"Name": "Acme", "Region__gc": "EMEA"}]},
    )
    update = plan.update_request()
    assert (update.method, dict(update.params)) == ("PUT", {"keys": "Name"})
    assert update.body == insert.body
    association = plan.association_request("GSID1")
    assert (association.method, association.endpoint) == ("PUT", f"https://{DOMAIN}/v1.0/api/people")
    assert association.body == {"Email": EMAIL, "companies": [{"Company_ID": "GSID1"}]}
    for request in (search, insert, update, association):
        assert dict(request.headers) == headers


def test_company_name_required(specs: Any) -> None:
    with pytest.raises(EventError, match=r"^company name is required for group$"):
        group(specs, {"employees": 1})


def test_user_email_required(specs: Any) -> None:
    with pytest.raises(EventError, match=r"^user email is required for group$"):
        group(specs, {"name": "Acme"}, email=None)


def test_user_email_only_from_context_traits(specs: Any) -> None:
    with pytest.raises(EventError, match="user email is required for group"):
        plan_event({"type": "group", "traits": {"name": "Acme", "email": EMAIL}}, make_config(), specs)


def test_access_key_required(specs: Any) -> None:
    with pytest.raises(ConfigError, match=r"^accessKey is required for group$"):
        group(specs, {"name": "Acme"}, accessKey=None)


# ---- Company resolution against an injected transport ----

Handler = Callable[[httpx.Request], httpx.Response]


def envelope(records: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "result": True,
        "errorCode": None,
        "errorDesc": None,
        "requestId": "r1",
        "data": {"count": len(records or []), "errors": None, "records": records or []},
        "message": None,
        **extra,
    }


class Recorder:
    """A transport that answers from a script and fails the test on any unexpected call."""

    def __init__(self, *answers: tuple[str, str, httpx.Response]) -> None:
        self.answers = list(answers)
        self.calls: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request)
        assert self.answers, f"unexpected call {request.method} {request.url}"
        method, path, response = self.answers.pop(0)
        assert (request.method, request.url.path) == (method, path)
        return response

    def client(self) -> GainsightClient:
        return GainsightClient(httpx.AsyncClient(transport=httpx.MockTransport(self)))


SEARCH = ("POST", "/v1/data/objects/query/Company")
COMPANY = "/v1/data/objects/Company"


CREDENTIALS = Credentials("acme", "ak-123", "ss-456")


def executor_for(client: GainsightClient) -> Executor:
    return Executor(client, MemoryStore(), unchanged_ttl_seconds=0, clock=time.time)


def resolve(recorder: Recorder, plan: GroupPlan, executor: Executor | None = None) -> str:
    executor = executor or executor_for(recorder.client())
    (result,) = asyncio.run(executor.write_companies([plan], CREDENTIALS))
    if isinstance(result, GainsightError):
        raise result
    return result


def test_new_company_is_searched_then_inserted(specs: Any) -> None:
    recorder = Recorder(
        (*SEARCH, httpx.Response(200, json=envelope([]))),
        ("POST", COMPANY, httpx.Response(200, json=envelope([{"Gsid": "NEW1"}]))),
    )
    plan = group(specs, {"name": "Acme", "employees": 5})
    assert resolve(recorder, plan) == "NEW1"
    assert loads(recorder.calls[1].content) == {"records": [{"Name": "Acme", "Employees": 5}]}
    assert recorder.calls[1].headers["Accesskey"] == "ak-123"


def test_existing_company_is_updated_by_name(specs: Any) -> None:
    recorder = Recorder(
        (*SEARCH, httpx.Response(200, json=envelope([{"Gsid": "OLD1", "Name": "Acme"}]))),
        ("PUT", COMPANY, httpx.Response(200, json=envelope([{"Gsid": "OLD1", "Name": "Acme"}]))),
    )
    assert resolve(recorder, group(specs, {"name": "Acme"})) == "OLD1"
    assert recorder.calls[1].url.params["keys"] == "Name"


def test_no_match_error_answer_counts_as_not_found(specs: Any) -> None:
    no_data = {"result": False, "errorCode": "GSOBJ_1011", "errorDesc": "No data found for given criteria"}
    recorder = Recorder(
        (*SEARCH, httpx.Response(400, json=no_data)),
        ("POST", COMPANY, httpx.Response(200, json=envelope([{"Gsid": "NEW2"}]))),
    )
    assert resolve(recorder, group(specs, {"name": "Acme"})) == "NEW2"


def test_bare_list_query_answer_is_understood(specs: Any) -> None:
    recorder = Recorder(
        (*SEARCH, httpx.Response(200, json={"result": True, "data": [{"Gsid": "OLD2"}]})),
        ("PUT", COMPANY, httpx.Response(200, json=envelope([{"Gsid": "OLD2"}]))),
    )
    assert resolve(recorder, group(specs, {"name": "Acme"})) == "OLD2"


def test_known_company_skips_the_search(specs: Any) -> None:
    recorder = Recorder(
        (*SEARCH, httpx.Response(200, json=envelope([]))),
        ("POST", COMPANY, httpx.Response(200, json=envelope([{"Gsid": "NEW1"}]))),
        ("PUT", COMPANY, httpx.Response(200, json=envelope([{"Gsid": "NEW1"}]))),
    )
    executor = executor_for(recorder.client())
    plan = group(specs, {"name": "Acme"})
    assert resolve(recorder, plan, executor) == "NEW1"
    assert resolve(recorder, plan, executor) == "NEW1"
    assert len(recorder.calls) == 3


def test_a_gsid_is_remembered_once_not_again_on_each_write(specs: Any) -> None:
    """The store learns a company's Gsid when it is found or created; a later write of that
    company changes nothing there, so it writes nothing to the store."""

    remembered: list[dict[str, str]] = []

    class CountingStore(MemoryStore):
        async def remember_gsids(self, scope: str, gsids: Any, now: float) -> None:
            remembered.append(dict(gsids))
            await super().remember_gsids(scope, gsids, now)

    recorder = Recorder(
        (*SEARCH, httpx.Response(200, json=envelope([]))),
        ("POST", COMPANY, httpx.Response(200, json=envelope([{"Gsid": "NEW1"}]))),
        ("PUT", COMPANY, httpx.Response(200, json=envelope([{"Gsid": "NEW1"}]))),
    )
    store = CountingStore()
    executor = Executor(recorder.client(), store, unchanged_ttl_seconds=0, clock=time.time)
    plan = group(specs, {"name": "Acme"})
    assert resolve(recorder, plan, executor) == resolve(recorder, plan, executor) == "NEW1"
    assert [r for r in remembered if r] == [{"acme": "NEW1"}]


def test_concurrent_groups_for_one_company_insert_it_once(specs: Any) -> None:
    inserted: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/query/Company"):
            return httpx.Response(200, json=envelope([{"Gsid": "G"}] if inserted else []))
        if request.method == "POST":
            inserted.append("x")
        return httpx.Response(200, json=envelope([{"Gsid": "G"}]))

    executor = executor_for(GainsightClient(httpx.AsyncClient(transport=httpx.MockTransport(handler))))
    plan = group(specs, {"name": "Acme"})

    async def many() -> list[list[str | GainsightError]]:
        return await asyncio.gather(*(executor.write_companies([plan], CREDENTIALS) for _ in range(20)))

    assert asyncio.run(many()) == [["G"]] * 20
    assert inserted == ["x"]


@pytest.mark.parametrize(
    ("status", "outcome"), [(429, "throttled"), (500, "retryable"), (503, "retryable"), (400, "aborted")]
)
def test_search_failures_are_classified(specs: Any, status: int, outcome: str) -> None:
    body = {
        "result": False,
        "errorCode": "GU_2400" if status == 429 else "GSOBJ_1002",
        "errorDesc": "Too many request" if status == 429 else "Invalid field",
    }
    recorder = Recorder((*SEARCH, httpx.Response(status, json=body)))
    with pytest.raises(GainsightError) as caught:
        resolve(recorder, group(specs, {"name": "Acme"}))
    assert caught.value.outcome == outcome
    assert caught.value.error_code == body["errorCode"]
    assert body["errorDesc"] in caught.value.message


def test_insert_4xx_keeps_gainsight_error(specs: Any) -> None:
    bad = {
        "result": False,
        "errorCode": "GSOBJ_1006",
        "errorDesc": "Invalid date format (RenewalDate = 210318)",
        "requestId": "r",
    }
    recorder = Recorder(
        (*SEARCH, httpx.Response(200, json=envelope([]))),
        ("POST", COMPANY, httpx.Response(400, json=bad)),
    )
    with pytest.raises(GainsightError) as caught:
        resolve(recorder, group(specs, {"name": "Acme", "renewalDate": "210318"}))
    error = caught.value
    assert (error.outcome, error.status_code, error.error_code) == ("aborted", 400, "GSOBJ_1006")
    assert "company insert failed" in error.message and "Invalid date format" in error.message


def test_update_5xx_is_retryable(specs: Any) -> None:
    recorder = Recorder(
        (*SEARCH, httpx.Response(200, json=envelope([{"Gsid": "OLD1"}]))),
        ("PUT", COMPANY, httpx.Response(502, text="bad gateway")),
    )
    with pytest.raises(GainsightError) as caught:
        resolve(recorder, group(specs, {"name": "Acme"}))
    assert caught.value.outcome == "retryable"


def test_connection_failure_is_retryable(specs: Any) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    executor = executor_for(GainsightClient(httpx.AsyncClient(transport=httpx.MockTransport(handler))))
    (result,) = asyncio.run(executor.write_companies([group(specs, {"name": "Acme"})], CREDENTIALS))
    assert isinstance(result, GainsightError) and result.outcome == "retryable"


@pytest.mark.parametrize(
    "update_answer",
    [
        httpx.Response(
            400, json={"result": False, "errorCode": "GSOBJ_1011", "errorDesc": "no entity matches"}
        ),
        httpx.Response(200, json={"result": True, "data": {"count": 0, "records": []}}),
    ],
    ids=["no-match-error", "count-zero"],
)
def test_a_company_gone_since_it_was_remembered_is_resolved_afresh(
    specs: Any, update_answer: httpx.Response
) -> None:
    recorder = Recorder(
        (*SEARCH, httpx.Response(200, json=envelope([]))),
        ("POST", COMPANY, httpx.Response(200, json=envelope([{"Gsid": "A"}]))),
        ("PUT", COMPANY, update_answer),
        (*SEARCH, httpx.Response(200, json=envelope([]))),
        ("POST", COMPANY, httpx.Response(200, json=envelope([{"Gsid": "B"}]))),
    )
    executor = executor_for(recorder.client())
    plan = group(specs, {"name": "Acme"})
    assert resolve(recorder, plan, executor) == "A"
    assert resolve(recorder, plan, executor) == "B"


# ---- batched Company writes (DESIGN §6): same result as writing event by event ----


class FakeCompanies:
    """A tiny Gainsight Company table answering query (EQ/IN), insert and update by Name."""

    def __init__(self, existing: dict[str, str] | None = None, bad_field: str | None = None) -> None:
        self.rows: dict[str, dict[str, Any]] = {
            n: {"Name": n, "Gsid": g} for n, g in (existing or {}).items()
        }
        self.calls: list[tuple[str, int]] = []
        self.bad_field = bad_field

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = loads(request.content)
        if request.url.path.endswith("/query/Company"):
            names = body["where"]["conditions"][0]["value"]
            self.calls.append(("search", len(names)))
            return httpx.Response(200, json=envelope([self.rows[n] for n in names if n in self.rows]))
        records = body["records"]
        self.calls.append(("insert" if request.method == "POST" else "update", len(records)))
        if self.bad_field and any(self.bad_field in r for r in records):
            return httpx.Response(
                400, json={"result": False, "errorCode": "GSOBJ_1006", "errorDesc": "bad date"}
            )
        out = []
        for record in records:
            row = self.rows.setdefault(record["Name"], {"Gsid": f"G-{record['Name']}"})
            row.update(record)
            out.append({"Gsid": row["Gsid"], "Name": row["Name"]})
        return httpx.Response(200, json=envelope(out))


def resolve_many(fake: FakeCompanies, plans: list[GroupPlan]) -> list[Any]:
    executor = executor_for(GainsightClient(httpx.AsyncClient(transport=httpx.MockTransport(fake))))
    return asyncio.run(executor.write_companies(plans, CREDENTIALS))


def test_batched_writes_share_calls_and_merge_events_of_one_company(specs: Any) -> None:
    fake = FakeCompanies(existing={"Old": "G-OLD"})
    plans = [
        group(specs, {"name": "New", "employees": 1, "region": "EU"}),
        group(specs, {"name": "Old", "employees": 2}),
        group(specs, {"name": "New", "employees": 3}),
    ]
    assert resolve_many(fake, plans) == ["G-New", "G-OLD", "G-New"]
    assert fake.calls == [("search", 2), ("insert", 1), ("update", 1)]
    assert fake.rows["New"] == {"Gsid": "G-New", "Name": "New", "Employees": 3, "Region__gc": "EU"}
    assert fake.rows["Old"]["Employees"] == 2


def test_known_companies_skip_the_search(specs: Any) -> None:
    fake = FakeCompanies()
    executor = executor_for(GainsightClient(httpx.AsyncClient(transport=httpx.MockTransport(fake))))
    plans = [group(specs, {"name": f"C{i}"}) for i in range(60)]
    asyncio.run(executor.write_companies(plans, CREDENTIALS))
    fake.calls.clear()
    asyncio.run(executor.write_companies(plans, CREDENTIALS))
    assert fake.calls == [("update", 50), ("update", 10)]


def test_a_refused_batch_is_retried_event_by_event(specs: Any) -> None:
    fake = FakeCompanies(bad_field="RenewalDate")
    plans = [
        group(specs, {"name": "Good", "employees": 1}),
        group(specs, {"name": "Bad", "renewalDate": "210318"}),
        group(specs, {"name": "Bad", "employees": 5}),
    ]
    good, bad_date, bad_ok = resolve_many(fake, plans)
    assert good == "G-Good" and bad_ok == "G-Bad"
    assert isinstance(bad_date, GainsightError) and bad_date.outcome == "aborted"
    assert fake.rows["Bad"]["Employees"] == 5 and "RenewalDate" not in fake.rows["Bad"]


def test_a_throttled_batch_fails_its_events_without_more_calls(specs: Any) -> None:
    calls: list[httpx.Request] = []

    def throttled(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(429, json={"errorCode": "GU_2400", "errorDesc": "Too many request"})

    executor = executor_for(GainsightClient(httpx.AsyncClient(transport=httpx.MockTransport(throttled))))
    plans = [group(specs, {"name": "A"}), group(specs, {"name": "B"})]
    results = asyncio.run(executor.write_companies(plans, CREDENTIALS))
    assert [r.outcome for r in results] == ["throttled", "throttled"]
    assert len(calls) == 1
