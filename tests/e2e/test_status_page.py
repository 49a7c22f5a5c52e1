"""/status in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).

Log in with the admin token (Basic auth), see each destination, replay a dead letter with the
page's button, and see it delivered; see the latest rejected and filtered events, a failed
attempt marked resolved once its event is delivered, and press "retry now". Skipped only when
chromium is absent outside CI; under CI (the CI variable set) a missing browser fails the test.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from destination.sandbox import SANDBOX_USAGE
from tests import ci
from tests.e2e.servers import Server, get_json, sandbox_config, start_service, start_simulator, wait_for

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_TOKEN = "status-page-token"
WRITE_KEY = "wk_status"
DAY = 86_400
# A "minute" window as long as a day: after a 429 an event waits for the next window, at UTC
# midnight, so it surely still waits when "retry now" is pressed.
LONG_WINDOW = {"GSD_RATE_MINUTE_SECONDS": str(DAY), "GSD_RATE_LIMIT_PER_MINUTE": "100000"}
USAGE = {**SANDBOX_USAGE, "events": ["Report Exported"]}


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        ci.unavailable(f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    workdir = tmp_path_factory.mktemp("status")
    destinations = [
        {"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config(usage=USAGE)},
        {"id": "globex", "writeKeys": ["wk_globex"], "config": sandbox_config(accessKey="rotated")},
    ]
    with (
        start_simulator(workdir) as sim,
        start_service(
            workdir,
            destinations,
            sim.base_url,
            GSD_ADMIN_TOKEN=ADMIN_TOKEN,
            GSD_MAX_ATTEMPTS="1",
            GSD_USAGE_FLUSH_SECONDS="1",
            **LONG_WINDOW,
        ) as service,
    ):
        yield service, sim


@contextmanager
def status_page(browser: Any, service: Server, token: str = ADMIN_TOKEN) -> Iterator[tuple[Any, list[str]]]:
    """The service's /status page in the browser, logged in as an operator (answered 200), and the
    outside URLs the page fetched while open (none expected: no outside assets)."""
    context = browser.new_context(http_credentials={"username": "ops", "password": token})
    try:
        page = context.new_page()
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(service.base_url) else outside.append(r.url))
        response = page.goto(service.base_url + "/status")
        assert response is not None and response.status == 200
        yield page, outside
    finally:
        context.close()


def event_state(service: Server, message_id: str, destination: str = "acme") -> str:
    found = get_json(
        service,
        f"/admin/events/{destination}/{message_id}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
    )
    return str(found["state"])


def test_an_operator_logs_in_sees_destinations_and_replays_a_dead_letter(
    browser: Any, servers: tuple[Server, Server]
) -> None:
    service, sim = servers
    # One call fails with a 500; with GSD_MAX_ATTEMPTS=1 the event becomes a dead letter at once.
    httpx.post(sim.base_url + "/__sim/faults", json={"server_error_next": 1}, timeout=5).raise_for_status()
    message_id = f"dead-{uuid.uuid4().hex[:8]}"
    event = {
        "type": "identify",
        "userId": "u1",
        "messageId": message_id,
        "traits": {"email": "replay@example.com"},
    }
    sent = httpx.post(service.base_url + "/v1/identify", json=event, auth=(WRITE_KEY, ""), timeout=10)
    assert sent.status_code == 200, sent.text
    wait_for(lambda: event_state(service, message_id) == "dead")

    # Without the token the browser is asked to log in; a write key does not open the page.
    anonymous = browser.new_context()
    try:
        refused = anonymous.request.get(service.base_url + "/status")
        assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Basic")
    finally:
        anonymous.close()

    with status_page(browser, service) as (page, outside):
        acme = page.locator("#destination-acme")
        assert acme.is_visible() and "acme.gainsightcloud.com" in acme.inner_text()
        assert page.locator("#destination-globex").is_visible()
        assert acme.locator("td[data-state=dead]").inner_text() == "1"
        assert "500" in acme.locator("table.errors").inner_text()  # the last error, with its status
        assert acme.locator(".health").inner_text().startswith("degraded")  # a fresh dead letter

        acme.get_by_role("button", name=f"Replay {message_id}").click()
        page.wait_for_url("**/status?replayed=1")
        assert "Replayed 1 dead letter(s)" in page.locator(".notice").inner_text()

        wait_for(lambda: event_state(service, message_id) == "delivered")
        page.goto(service.base_url + "/status")
        acme = page.locator("#destination-acme")
        assert acme.locator("td[data-state=dead]").inner_text() == "0"
        assert int(acme.locator("td[data-state=delivered]").inner_text()) >= 1
        assert page.get_by_role("button", name=f"Replay {message_id}").count() == 0
        assert acme.locator(".health").inner_text() == "ok"  # replayed and delivered: not degraded
        resolved = acme.locator("table.errors tr.resolved", has_text=message_id)
        assert "resolved: delivered since" in resolved.inner_text()
        assert outside == []  # no outside asset was fetched


def test_a_forged_replay_form_is_refused(servers: tuple[Server, Server]) -> None:
    service, _ = servers
    message_id = f"refused-{uuid.uuid4().hex[:8]}"
    event = {
        "type": "identify",
        "userId": "u2",
        "messageId": message_id,
        "traits": {"email": "forged@example.com"},
    }
    assert (
        httpx.post(service.base_url + "/v1/identify", json=event, auth=("wk_globex", "")).status_code == 200
    )
    wait_for(lambda: event_state(service, message_id, "globex") == "dead")  # 401: the key was rotated
    url = service.base_url + "/status/replay"
    auth = ("ops", ADMIN_TOKEN)
    form = {"destination": "globex"}
    # Credentials alone (as a browser would resend them to a cross-site form) are not enough.
    assert httpx.post(url, data=form, auth=auth).status_code == 403
    assert httpx.post(service.base_url + "/status/retry", data=form, auth=auth).status_code == 403
    page = httpx.get(service.base_url + "/status", auth=auth).text
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    cross_site = httpx.post(
        url, data={**form, "csrf": token}, auth=auth, headers={"Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    assert httpx.post(url, data={**form, "csrf": token}).status_code == 401
    same_site = httpx.post(
        url,
        data={**form, "csrf": token},
        auth=auth,
        headers={"Origin": service.base_url},
        follow_redirects=False,
    )
    assert same_site.status_code == 303 and same_site.headers["location"] == "/status?replayed=1"
    retry = httpx.post(
        service.base_url + "/status/retry",
        data={**form, "csrf": token},
        auth=auth,
        headers={"Origin": service.base_url},
        follow_redirects=False,
    )
    assert retry.status_code == 303 and retry.headers["location"] == "/status?retried=0"  # none waited
    assert "No queued event was waiting" in httpx.get(service.base_url + "/status?retried=0", auth=auth).text


def send(service: Server, kind: str, **fields: Any) -> str:
    message_id = f"{kind}-{uuid.uuid4().hex[:8]}"
    event = {"type": kind, "messageId": message_id, **fields}
    response = httpx.post(f"{service.base_url}/v1/{kind}", json=event, auth=(WRITE_KEY, ""), timeout=10)
    assert response.status_code == 200, response.text
    return message_id


def test_the_page_lists_rejected_and_filtered_events_and_retries_waiting_ones_now(
    browser: Any, servers: tuple[Server, Server]
) -> None:
    service, sim = servers
    if DAY - time.time() % DAY < 300:  # the long window would end (and the backoff with it) mid-test
        time.sleep(DAY - time.time() % DAY + 1)
    rejected = send(service, "identify", userId="u-rejected", traits={"firstName": "No Email"})
    filtered = send(service, "track", anonymousId="anon-filtered", event="Not Mapped")
    wait_for(
        lambda: event_state(service, rejected) == "rejected" and event_state(service, filtered) == "filtered"
    )
    httpx.post(sim.base_url + "/__sim/faults", json={"throttle_next": 1}, timeout=5).raise_for_status()
    waiting = send(service, "identify", userId="u-waiting", traits={"email": "waiting@example.com"})
    wait_for(
        lambda: get_json(
            service, f"/admin/events/acme/{waiting}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )["attempts"]
    )

    with status_page(browser, service) as (page, _):
        acme = page.locator("#destination-acme")
        row = acme.locator("table.rejected tr", has_text=rejected).inner_text()
        assert "u-rejected" in row and "email is required for identify" in row
        row = acme.locator("table.filtered tr", has_text=filtered).inner_text()
        assert "anon-filtered" in row and "Event name mapping not provided for Not Mapped" in row
        error = acme.locator("table.errors tr", has_text=waiting)
        assert "429" in error.inner_text() and error.locator(".badge").count() == 0  # not resolved
        assert acme.locator(".health").inner_text() == "ok"  # one throttled call: not degraded

        acme.get_by_role("button", name="Retry acme now").click()
        page.wait_for_url("**/status?retried=1")
        assert "1 waiting event(s) are due now" in page.locator(".notice").inner_text()
        wait_for(lambda: event_state(service, waiting) == "delivered")
        page.goto(service.base_url + "/status")
        resolved = page.locator("#destination-acme table.errors tr.resolved", has_text=waiting)
        assert "resolved: delivered since" in resolved.inner_text()
        assert page.get_by_role("button", name="Retry acme now").count() == 0  # nothing queued


def test_the_page_shows_today_s_usage_counts(browser: Any, servers: tuple[Server, Server]) -> None:
    service, sim = servers
    group = {"userId": "u-usage", "traits": {"name": "Usage Co"}, "context": {"traits": {"email": "u@x.io"}}}
    counted = [{"userId": "u-usage", "event": "Report Exported", "messageId": f"use-{n}"} for n in range(2)]
    nobody = {"userId": "u-nobody", "event": "Report Exported", "messageId": "use-nobody"}
    with httpx.Client(base_url=service.base_url, auth=(WRITE_KEY, ""), timeout=10) as client:
        assert client.post("/v1/group", json=group).status_code == 200
        for event in [*counted, nobody]:
            assert client.post("/v1/track", json=event).status_code == 200
    wait_for(
        lambda: (
            event_state(service, "use-1") == "counted" and event_state(service, "use-nobody") == "filtered"
        )
    )
    wait_for(lambda: [r for r in get_json(sim, "/__sim/objects/ProductUsage__gc") if r["Count__gc"] == 2])

    with status_page(browser, service) as (page, _):
        acme = page.locator("#destination-acme")
        assert "usage counts today" in acme.inner_text().lower()  # h3s are shown upper-cased
        row = acme.locator("table.usage tr[data-metric='Report Exported']")
        assert [cell.inner_text() for cell in row.locator("td").all()] == ["1", "2", "2", "1"]
        assert acme.locator(".unattributed").inner_text() == "1"
        assert acme.locator(".last-flush").inner_text() != "never"
        assert int(acme.locator("td[data-state=counted]").inner_text()) == 2
