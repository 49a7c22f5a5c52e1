"""/status's capacity section in a real browser (Debian's chromium driven by Playwright): the
forecast says a busy destination does not fit its tenant's daily budget and a calm one does, with
its three charts (inline SVG images with accessible names) and the events that cost the calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.servers import Server, get_json, sandbox_config, start_service, start_simulator, wait_for
from tests.e2e.test_status_page import browser, status_page  # noqa: F401  # browser: the module's chromium

ADMIN_TOKEN = "capacity-page-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BUSY_KEY, CALM_KEY = "wk_busy", "wk_calm"
DAILY_BUDGET = 100  # a day: 30 tracks in an hour need 720; one identify 24


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("capacity")
    destinations = [
        {"id": "busy", "writeKeys": [BUSY_KEY], "config": sandbox_config()},
        {"id": "calm", "writeKeys": [CALM_KEY], "config": sandbox_config(domain="calm.gainsightcloud.com")},
    ]
    with (
        start_simulator(workdir) as sim,
        start_service(
            workdir,
            destinations,
            sim.base_url,
            GSD_ADMIN_TOKEN=ADMIN_TOKEN,
            GSD_RATE_LIMIT_PER_DAY=str(DAILY_BUDGET),
        ) as running,
    ):
        yield running


def send(service: Server, key: str, events: list[dict[str, Any]]) -> None:
    sent = httpx.post(service.base_url + "/v1/batch", json={"batch": events}, auth=(key, ""), timeout=10)
    assert sent.status_code == 200, sent.text


def test_the_page_shows_the_forecast_and_its_charts(browser: Any, service: Server) -> None:  # noqa: F811
    tracks = [
        {"type": "track", "userId": f"u{n % 5}", "event": "Ticket Closed", "messageId": f"t{n}"}
        for n in range(30)
    ]
    send(service, BUSY_KEY, tracks)
    send(service, CALM_KEY, [{"type": "identify", "userId": "c1", "traits": {"email": "c1@example.com"}}])

    def delivered() -> bool:
        busy = get_json(service, "/admin/capacity/busy", headers=ADMIN)
        calm = get_json(service, "/admin/events?destination=calm&state=delivered", headers=ADMIN)
        return bool(calm["events"]) and busy["backlogEvents"] == 0

    wait_for(delivered, timeout=60)

    with status_page(browser, service, ADMIN_TOKEN) as (page, outside):
        busy = page.locator("#destination-busy .capacity")
        assert "does not fit the daily budget" in busy.locator(".forecast .fits").inner_text()
        assert "720" in busy.locator("p.forecast").inner_text()  # 30 events in the last hour, a call each
        row = busy.locator("table.by-event tr", has_text="Ticket Closed")
        assert row.locator("td.lever").inner_text() == "usage"

        calls = busy.get_by_role("img", name="Gainsight calls a minute over the last hour", exact=False)
        assert calls.is_visible()
        assert calls.locator("rect").count() >= 1  # the calls made this minute
        assert calls.locator("line.limit").count() == 1  # the budget line
        finished = busy.get_by_role("img", name="Events finished an hour over the last day", exact=False)
        assert finished.is_visible() and finished.locator("rect").count() >= 1
        backlog = busy.get_by_role("img", name="Backlog over the last 24 hours and projected", exact=False)
        assert backlog.is_visible() and backlog.locator("polyline.projection").count() == 1
        assert backlog.locator("polyline.history").count() == 1
        assert "events queued now" in (backlog.locator("desc").text_content() or "")

        calm = page.locator("#destination-calm .capacity")
        assert calm.locator(".forecast .fits").inner_text() == "fits the daily budget"
        assert calm.get_by_role("img").count() == 3
        assert outside == []  # no outside asset was fetched
