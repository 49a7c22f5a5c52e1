"""Usage counts as people see them: the dry run's count key, validate-config's usage problems, the
/status section; and the pure parts of writing rows (requests, dates read back either way)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from destination.delivery.memory import MemoryStore
from destination.delivery.usage_store import UNATTRIBUTED, UsageKey, utc_day
from destination.dryrun import dry_run_one
from destination.errors import ConfigError
from destination.gainsight.plan import plan_delivery
from destination.gainsight.usage import CountPlan, event_day
from destination.gainsight.usage_rows import UsageTarget, day_of, found_keys, usage_search, usage_update
from destination.mapping.spec import default_specs
from destination.sandbox import SANDBOX_USAGE
from destination.settings import Settings
from tests.conftest import BASE_CONFIG, make_config
from tests.unit.test_validate_config import problems

USAGE: dict[str, Any] = {**SANDBOX_USAGE, "events": ["Report Exported"]}
TARGET = UsageTarget("ProductUsage__gc", "Company__gc", "UsageDate__gc", "Metric__gc", "Count__gc")
TRACK = {"type": "track", "event": "Report Exported", "userId": "u1", "messageId": "m1"}


def test_the_dry_run_shows_the_count_key_and_sends_nothing() -> None:
    config = make_config(usage=USAGE, companyIdentity={"field": "SfdcAccountId"})
    event = {**TRACK, "timestamp": "2026-12-06T23:30:00-02:00", "context": {"groupId": "001A"}}
    shown = dry_run_one(0, event, config, default_specs())
    assert shown["requests"] == []
    count = shown["count"]
    assert count["object"] == "ProductUsage__gc" and count["published"] is False
    assert count["key"]["UsageDate__gc"] == "2026-12-07"
    assert count["key"]["Metric__gc"] == "Report Exported"
    assert "SfdcAccountId = 001A" in count["key"]["Company__gc"]


def test_a_counted_event_with_a_timestamp_that_is_no_time_is_rejected_naming_it() -> None:
    shown = dry_run_one(0, {**TRACK, "timestamp": "yesterday"}, make_config(usage=USAGE), default_specs())
    assert "timestamp" in shown["error"] and shown["statusCode"] == 400


def test_events_not_counted_are_planned_as_before() -> None:
    event = {**TRACK, "event": "Ticket Closed"}
    shown = dry_run_one(0, event, make_config(usage=USAGE), default_specs())
    assert [r["step"] for r in shown["requests"]] == ["event publish"] and "count" not in shown


def test_event_day_reads_timestamp_then_original_timestamp() -> None:
    assert event_day({"originalTimestamp": "2026-12-06T00:00:00Z"}) == "2026-12-06"
    assert event_day({"timestamp": "2026-12-06T00:30:00+01:00"}) == "2026-12-05"
    assert event_day({}) is None


def test_validate_config_reports_usage_problems(tmp_path: Path) -> None:
    usage = {**USAGE, "fields": {**USAGE["fields"], "count": "Metric__gc", "date": "Date"}, "publish": True}
    found = problems(
        tmp_path, [{"id": "acme", "writeKeys": ["k1"], "config": {**BASE_CONFIG, "usage": usage}}]
    )
    assert any("usage.fields.date: 'Date' is not a custom field" in p for p in found)
    assert any("four different fields" in p for p in found)
    assert any("usage.publish: 'Report Exported'" in p and "eventNameMap" in p for p in found)


def test_dates_are_matched_whether_gainsight_answers_epoch_ms_or_text() -> None:
    assert day_of(1_796_515_200_000) == day_of("2026-12-06") == day_of("2026-12-06T00:00:00Z") == "2026-12-06"
    answered = [
        {"Company__gc": "G1", "UsageDate__gc": 1_796_515_200_000, "Metric__gc": "m"},
        {"Company__gc": "G2", "UsageDate__gc": "2026-12-06", "Metric__gc": "m"},
        {"Company__gc": "G3", "UsageDate__gc": None, "Metric__gc": "m"},
    ]
    assert found_keys(TARGET, answered) == {
        UsageKey("G1", "2026-12-06", "m"),
        UsageKey("G2", "2026-12-06", "m"),
    }


def test_rows_are_written_with_absolute_counts_keyed_by_company_date_and_metric() -> None:
    key = UsageKey("G1", "2026-12-06", "m")
    update = usage_update("acme.gainsightcloud.com", TARGET, [(key, 7)])
    assert (update.method, update.path) == ("PUT", "/v1/data/objects/ProductUsage__gc")
    assert update.params == {"keys": "Company__gc,UsageDate__gc,Metric__gc"}
    assert update.body == {
        "records": [{"Company__gc": "G1", "UsageDate__gc": "2026-12-06", "Metric__gc": "m", "Count__gc": 7}]
    }
    search = usage_search("acme.gainsightcloud.com", TARGET, [key, UsageKey("G2", "2026-12-07", "m")])
    assert search.path == "/v1/data/objects/query/ProductUsage__gc"
    conditions = search.body["where"]["conditions"]
    assert [(c["name"], c["operator"], c["value"]) for c in conditions] == [
        ("Company__gc", "IN", ["G1", "G2"]),
        ("UsageDate__gc", "IN", ["2026-12-06", "2026-12-07"]),
        ("Metric__gc", "IN", ["m"]),
    ]


def test_status_shows_today_s_counts_the_unattributed_and_the_last_write() -> None:
    store = MemoryStore()
    from destination.app import create_app

    app = create_app(Settings(admin_token="t0ken", usage_flush_seconds=3600), store=store)
    today = utc_day(time.time())
    with TestClient(app, base_url="http://127.0.0.1") as client:
        client.portal.call(_counts, store, today)  # type: ignore[union-attr]
        page = client.get("/status", headers={"Authorization": "Bearer t0ken"}).text
    assert f"Usage counts today ({today}, into ProductUsage__gc)" in page
    assert (
        '<tr data-metric="Report Exported"><th>Report Exported</th><td class="n">1</td><td class="n">3</td>'
        in page
    )
    assert '<span class="unattributed">2</span>' in page
    assert '<span class="last-flush">never</span>' not in page


async def _counts(store: MemoryStore, today: str) -> None:
    for n in range(3):
        await store.count_usage("sandbox", f"a{n}", UsageKey("G1", today, "Report Exported"), time.time())
    for n in range(2):
        await store.count_usage(
            "sandbox", f"u{n}", UsageKey(UNATTRIBUTED, today, "Report Exported"), time.time()
        )
    await store.usage_written("sandbox", [(UsageKey("G1", today, "Report Exported"), 2)], time.time())


def test_a_refused_usage_row_is_written_whatever_usage_events_say_now() -> None:
    specs = default_specs()
    row = {
        "type": "track",
        "event": "Report Exported",
        "userId": "usage-row:G1:2026-12-06:Report Exported",
        "messageId": "usage-row:G1:2026-12-06:Report Exported:3",
        "context": {"gsdUsageRow": {"company": "G1", "day": "2026-12-06", "metric": "Report Exported"}},
    }
    moved_on = {**SANDBOX_USAGE, "events": ["Dashboard Viewed"]}  # no longer counts this metric
    planned = plan_delivery(row, make_config(usage=moved_on), specs)
    assert isinstance(planned, CountPlan) and planned.row is not None and planned.publish is None
    with pytest.raises(ConfigError, match="usage counts are no longer configured"):
        plan_delivery(row, make_config(), specs)
