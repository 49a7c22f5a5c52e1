"""Ingest as real senders and hostile ones use it, over HTTP against the real `serve` process:
the official Segment and RudderStack Python SDKs, disclosure before authentication, bounded work
under hostile bodies, slow bodies, the depth limit, strict messageIds, sandbox origins, CORS and a
private /metrics address."""

from __future__ import annotations

import base64
import gzip
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.servers import (
    Server,
    free_port,
    get_json,
    metric,
    metrics,
    running,
    sandbox_config,
    start_service,
    start_simulator,
    wait_for,
)

WRITE_KEY = "wk_senders_live"
OTHER_KEY = "wk_other_live"
ADMIN_TOKEN = "admin-token-for-senders"
APP_ORIGIN = "https://app.example.com"


def uid() -> str:
    return uuid.uuid4().hex[:10]


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("senders")


@pytest.fixture(scope="module")
def sim(workdir: Path) -> Iterator[Server]:
    with start_simulator(workdir) as server:
        yield server


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def service(workdir: Path, sim: Server, metrics_port: int) -> Iterator[Server]:
    destinations = [
        {"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config()},
        {"id": "other", "writeKeys": [OTHER_KEY], "config": sandbox_config()},
    ]
    with start_service(
        workdir,
        destinations,
        sim.base_url,
        GSD_ADMIN_TOKEN=ADMIN_TOKEN,
        GSD_BODY_TIMEOUT_SECONDS="1",
        GSD_CORS_ORIGINS=APP_ORIGIN,
        GSD_METRICS_PORT=str(metrics_port),
    ) as server:
        yield server


@pytest.fixture(scope="module")
def scraper(service: Server, metrics_port: int) -> Server:
    """Where /metrics is served: its own address."""
    return Server(service.process, f"http://127.0.0.1:{metrics_port}", service.log)


def sim_people(sim: Server) -> dict[str, Any]:
    return {p["Email"]: p for p in get_json(sim, "/__sim/people")}


def sim_jtis(sim: Server) -> set[str]:
    return {e["jti"] for e in get_json(sim, "/__sim/events")}


# ---------------------------------------------------------------- the official SDKs


def _segment(host: str, key: str, errors: list[Any]) -> Any:
    from segment.analytics import Client

    return Client(
        key,
        host=host,
        max_retries=2,
        timeout=3,
        on_error=lambda exc, batch: errors.append(exc),
        upload_interval=0.1,
        max_total_backoff_duration=5,
    )


def _rudder(host: str, key: str, errors: list[Any]) -> Any:
    from rudderstack.analytics.client import Client

    return Client(
        key,
        host=host,
        max_retries=2,
        timeout=3,
        on_error=lambda exc, batch: errors.append(exc),
        upload_interval=0.1,
    )


SDKS = {"segment": _segment, "rudderstack": _rudder}


@pytest.mark.parametrize("sdk", SDKS)
def test_an_sdk_batch_with_one_bad_event_delivers_the_good_ones(
    sim: Server, service: Server, scraper: Server, sdk: str
) -> None:
    pytest.importorskip("segment.analytics" if sdk == "segment" else "rudderstack.analytics")
    errors: list[Any] = []
    client = SDKS[sdk](service.base_url, WRITE_KEY, errors)
    email, user = f"{sdk}-{uid()}@example.com", f"user-{uid()}"
    before = metric(scraper, "gsd_events_finished_total", outcome="rejected")
    client.identify(user, {"email": email, "name": "Via SDK"})
    _, first = client.track(user, "Ticket Closed", {"ticket": 1})
    client.identify(user, {"name": "no email here"})  # Gainsight cannot take it
    _, second = client.track(user, "Feature Used", {"feature": "x"})
    client.flush()
    client.join()

    assert errors == []
    wait_for(lambda: sim_people(sim).get(email, {}).get("Name") == "Via SDK")
    wait_for(lambda: {first["messageId"], second["messageId"]} <= sim_jtis(sim))
    wait_for(lambda: metric(scraper, "gsd_events_finished_total", outcome="rejected") == before + 1)


@pytest.mark.parametrize("sdk", SDKS)
def test_an_sdk_with_a_wrong_key_gives_up_at_once_and_says_why(service: Server, sdk: str) -> None:
    pytest.importorskip("segment.analytics" if sdk == "segment" else "rudderstack.analytics")
    errors: list[Any] = []
    client = SDKS[sdk](service.base_url, "wk_wrong", errors)
    started = time.monotonic()
    client.track("someone", "Ticket Closed", {})
    client.flush()
    client.join()
    elapsed = time.monotonic() - started

    assert len(errors) == 1, errors
    error = errors[0]
    assert (error.status, error.code, error.message) == (401, "unauthorized", "unknown write key")
    assert "unknown write key" in str(error)
    assert elapsed < 3, f"the SDK retried a 401 for {elapsed:.1f}s"


# ---------------------------------------------------------------- disclosure


def test_an_unknown_destination_id_answers_like_a_known_one_with_bad_credentials(service: Server) -> None:
    event = {"type": "track", "event": "Ticket Closed", "userId": "u"}
    for headers in ({}, basic("wk_nobody"), {"Authorization": "Bearer x.y.z"}, {"X-Signature": "00"}):
        known = httpx.post(f"{service.base_url}/v1/d/acme/track", json=event, headers=headers)
        unknown = httpx.post(f"{service.base_url}/v1/d/no-such-id/track", json=event, headers=headers)
        assert (
            (unknown.status_code, unknown.json()) == (known.status_code, known.json()) == (401, known.json())
        )
        assert unknown.headers["www-authenticate"] == known.headers["www-authenticate"]


def test_ready_and_metrics_name_no_destination_or_tenant(service: Server, metrics_port: int) -> None:
    ready = httpx.get(f"{service.base_url}/ready").json()
    assert ready["destinations"] == 2 and "acme" not in str(ready)
    # /metrics lives on its own address (GSD_METRICS_PORT), not on the service's.
    assert httpx.get(f"{service.base_url}/metrics").status_code == 404
    text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    assert "gsd_queue_events" in text and "gainsightcloud.com" not in text
    assert httpx.get(f"http://127.0.0.1:{metrics_port}/other").status_code == 404


# ---------------------------------------------------------------- bounded work


def _health_latencies(service: Server, stop: threading.Event, seen: list[float]) -> None:
    with httpx.Client(base_url=service.base_url, timeout=10) as client:
        while not stop.is_set():
            started = time.monotonic()
            client.get("/health").raise_for_status()
            seen.append(time.monotonic() - started)
            time.sleep(0.02)


HOSTILE = {
    "200k gzip members": (b"".join([gzip.compress(b"")] * 1) * 200_000, {"Content-Encoding": "gzip"}, 400),
    "2M items that are not events": (b'{"batch":[' + b"0," * 2_000_000 + b"0]}", {}, 200),
    "deep nesting": (b"[" * 1_000_000 + b"]" * 1_000_000, {}, 400),
}


@pytest.mark.parametrize("kind", HOSTILE)
def test_a_4_mib_hostile_body_leaves_health_responsive(service: Server, kind: str) -> None:
    body, headers, status = HOSTILE[kind]
    body = body[: 4 * 1024 * 1024] if status != 200 else body
    assert len(body) <= 4 * 1024 * 1024
    seen: list[float] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_health_latencies, args=(service, stop, seen))
    watcher.start()
    try:
        time.sleep(0.1)
        response = httpx.post(
            f"{service.base_url}/v1/batch", content=body, headers={**basic(WRITE_KEY), **headers}, timeout=60
        )
        time.sleep(0.1)
    finally:
        stop.set()
        watcher.join()
    assert response.status_code == status, response.text[:300]
    if status == 200:
        assert response.json()["rejectedCount"] == 2_000_001 and response.json()["stored"] == 0
    assert seen and max(seen) < 1.0, f"/health took {max(seen):.2f}s"


def test_a_wrong_key_with_a_hostile_body_is_refused_before_any_work(service: Server) -> None:
    body = gzip.compress(b"") * 200_000
    started = time.monotonic()
    response = httpx.post(
        f"{service.base_url}/v1/batch",
        content=body,
        headers={**basic("wk_wrong"), "Content-Encoding": "gzip"},
        timeout=30,
    )
    assert response.status_code == 401 and time.monotonic() - started < 2


def _read_answer(sock: socket.socket) -> bytes:
    """One whole HTTP answer: the headers and the body may arrive in separate reads, so read until
    the peer closes or Content-Length bytes of body are in."""
    answer = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return answer
        answer += chunk
        head, found, body = answer.partition(b"\r\n\r\n")
        if not found:
            continue
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length" and len(body) >= int(value.strip()):
                return answer


def test_a_slow_body_is_timed_out_with_408(service: Server) -> None:
    host, port = service.base_url.removeprefix("http://").split(":")
    auth = basic(WRITE_KEY)["Authorization"]
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/track HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: {auth}\r\n".encode()
            + b"Content-Length: 1000\r\n\r\n{"
        )
        started = time.monotonic()
        answer = _read_answer(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request_timeout" in answer and b"not received within 1 seconds" in answer
    assert time.monotonic() - started < 5


def test_json_deeper_than_100_levels_is_refused_naming_the_limit(service: Server) -> None:
    deep: Any = 1
    for _ in range(101):
        deep = {"a": deep}
    event = {"type": "track", "event": "Ticket Closed", "userId": "u", "properties": deep}
    response = httpx.post(f"{service.base_url}/v1/track", json=event, headers=basic(WRITE_KEY))
    assert response.status_code == 400
    assert response.json()["message"] == "request body nests JSON deeper than 100 levels"


# ---------------------------------------------------------------- strict identifiers


@pytest.mark.parametrize("raw_id", [b"1.0e-400", b"1.0", b"true", b"9007199254740993", b"{}"])
def test_message_ids_that_would_read_as_another_are_rejected_naming_the_field(
    service: Server, raw_id: bytes
) -> None:
    body = b'{"batch":[{"type":"track","event":"Ticket Closed","userId":"u","messageId":' + raw_id + b"}]}"
    response = httpx.post(f"{service.base_url}/v1/batch", content=body, headers=basic(WRITE_KEY))
    answer = response.json()
    assert response.status_code == 200 and answer["stored"] == 0
    assert answer["rejected"][0]["field"] == "messageId" and answer["rejected"][0]["index"] == 0


# ---------------------------------------------------------------- origins and CORS


def test_with_auth_on_a_text_plain_beacon_is_read_as_json(service: Server) -> None:
    event = {"type": "track", "event": "Ticket Closed", "userId": "beacon", "messageId": uid()}
    headers = {**basic(WRITE_KEY), "Content-Type": "text/plain", "Origin": "https://shop.example"}
    response = httpx.post(f"{service.base_url}/v1/track", content=orjson.dumps(event), headers=headers)
    assert response.json()["stored"] == 1


def test_cors_preflight_on_ingest_routes_only(service: Server) -> None:
    ask = {
        "Origin": APP_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization",
    }
    preflight = httpx.options(f"{service.base_url}/v1/batch", headers=ask)
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == APP_ORIGIN
    admin = httpx.options(f"{service.base_url}/admin/dead-letters", headers=ask)
    assert "access-control-allow-origin" not in admin.headers


def test_sandbox_refuses_a_cross_origin_page_but_not_its_own(workdir: Path) -> None:
    env = {"GSD_DESTINATIONS": "", "GSD_STORE_URL": f"sqlite:///{workdir}/sandbox.sqlite3"}
    with running(["serve"], ready_path="/health", workdir=workdir, env=env) as sandbox:
        event = orjson.dumps({"type": "track", "event": "Ticket Closed", "userId": "u"})
        evil = {"Origin": "https://evil.example", "Content-Type": "text/plain"}
        refused = httpx.post(f"{sandbox.base_url}/v1/track", content=event, headers=evil)
        assert refused.status_code == 403 and "cross-origin" in refused.json()["message"]
        own = {"Origin": sandbox.base_url, "Content-Type": "text/plain"}
        assert httpx.post(f"{sandbox.base_url}/v1/track", content=event, headers=own).status_code == 200
        assert httpx.post(f"{sandbox.base_url}/v1/track", content=event).status_code == 200  # curl, a server
        assert metrics(sandbox, "gsd_events_ingested_total")


def test_admin_ids_beyond_64_bits_are_not_found_not_a_500(service: Server) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    for event_id in (2**63, 2**64, 10**30):
        response = httpx.get(f"{service.base_url}/admin/dead-letters/{event_id}", headers=admin)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    replay = httpx.post(f"{service.base_url}/admin/dead-letters/replay", json={"ids": [2**64]}, headers=admin)
    assert replay.status_code == 200 and replay.json() == {"replayed": 0}
