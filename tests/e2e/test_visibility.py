"""Every event's fate, visible (DESIGN §9), through the real `serve` process and the simulator:
event status by messageId and by state, admin token, dead-letter selections, logs, degraded
destinations, serve's start-up errors and the self-contained /docs page.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.servers import (
    Server,
    free_port,
    get_json,
    metric,
    queue_idle,
    running,
    sandbox_config,
    start_service,
    start_simulator,
    wait_for,
)

ADMIN_TOKEN = "visibility-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
WRITE_KEY = "wk_visible"
BROKEN_KEY = "wk_broken"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("visibility")


@pytest.fixture(scope="module")
def sim(workdir: Path) -> Iterator[Server]:
    with start_simulator(workdir) as server:
        yield server


@pytest.fixture(scope="module")
def service(workdir: Path, sim: Server) -> Iterator[Server]:
    destinations = [
        {"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config()},
        # An access key Gainsight refuses: every call gets 401.
        {"id": "broken", "writeKeys": [BROKEN_KEY], "config": sandbox_config(accessKey="rotated-key")},
    ]
    with start_service(
        workdir, destinations, sim.base_url, GSD_ADMIN_TOKEN=ADMIN_TOKEN, GSD_MAX_ATTEMPTS="1"
    ) as server:
        yield server


@pytest.fixture(autouse=True)
def _idle_between_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "service" in request.fixturenames:
        service = request.getfixturevalue("service")
        wait_for(lambda: queue_idle(service))


def identify(email: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": email,
        "messageId": f"m-{uuid.uuid4().hex[:10]}",
        "traits": {"email": email},
        **extra,
    }


def send(service: Server, event: dict[str, Any], key: str = WRITE_KEY) -> str:
    response = httpx.post(service.base_url + "/v1/identify", json=event, auth=(key, ""), timeout=10)
    assert response.status_code == 200 and response.json()["stored"] == 1, response.text
    return str(event["messageId"])


def event_state(service: Server, destination: str, message_id: str) -> dict[str, Any]:
    found: dict[str, Any] = get_json(service, f"/admin/events/{destination}/{message_id}", headers=ADMIN)
    return found


ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_an_events_fate_is_shown_with_every_attempt_and_survives_replay(service: Server, sim: Server) -> None:
    httpx.post(sim.base_url + "/__sim/faults", json={"server_error_next": 1}, timeout=5).raise_for_status()
    message_id = send(service, identify("fate@example.com"))
    dead = wait_for(lambda: (e := event_state(service, "acme", message_id))["state"] == "dead" and e)

    assert (dead["destination"], dead["messageId"], dead["type"]) == ("acme", message_id, "identify")
    assert dead["reason"].startswith("gave up after 1 attempts")
    assert ISO_UTC.match(dead["receivedAt"])
    assert dead["event"]["traits"] == {"email": "fate@example.com"}
    (attempt,) = dead["attempts"]
    assert ISO_UTC.match(attempt["at"]) and attempt["outcome"] == "retryable" and attempt["status"] == 500
    assert attempt["response"]  # Gainsight's answer, as it came
    request = attempt["request"]
    # The URL called: GSD_GAINSIGHT_BASE_URL sends it to the simulator, not to the tenant's domain.
    assert (request["method"], request["url"]) == ("PUT", f"{sim.base_url}/v1.0/api/people")
    assert request["headers"]["Accesskey"] == "***" and request["body"]["Email"] == "fate@example.com"

    (letter,) = [
        d
        for d in get_json(service, "/admin/dead-letters", headers=ADMIN)["deadLetters"]
        if d["messageId"] == message_id
    ]
    assert letter["attempts"] == len(dead["attempts"]) == 1
    replayed = httpx.post(
        service.base_url + "/admin/dead-letters/replay", json={"ids": [letter["id"]]}, headers=ADMIN
    )
    assert replayed.json() == {"replayed": 1}

    delivered = wait_for(
        lambda: (e := event_state(service, "acme", message_id))["state"] == "delivered" and e
    )
    assert [a["outcome"] for a in delivered["attempts"]] == ["retryable", "delivered"]  # history kept
    listed = get_json(service, "/admin/events?destination=acme&state=delivered&limit=1000", headers=ADMIN)
    (line,) = [e for e in listed["events"] if e["messageId"] == message_id]
    assert line["attempts"] == len(delivered["attempts"]) == 2  # one count everywhere


def test_events_are_paged_by_destination_and_state(service: Server) -> None:
    ids = [send(service, identify(f"page{i}@example.com")) for i in range(3)]
    wait_for(lambda: all(event_state(service, "acme", m)["state"] == "delivered" for m in ids))
    first = get_json(service, "/admin/events?destination=acme&state=delivered&limit=1", headers=ADMIN)
    assert len(first["events"]) == 1 and first["nextOffset"] == 1
    everything = get_json(service, "/admin/events?destination=acme&state=delivered&limit=1000", headers=ADMIN)
    assert set(ids) <= {e["messageId"] for e in everything["events"]}
    assert everything["nextOffset"] is None
    assert get_json(service, "/admin/events?destination=broken&state=queued", headers=ADMIN)["events"] == []


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/admin/events?state=lost", None),
        ("GET", "/admin/events?limit=0", None),
        ("GET", "/admin/dead-letters/abc", None),
        ("GET", "/admin/dead-letters/-1", None),
        ("POST", "/admin/dead-letters/replay", {"ids": ["x"]}),
        ("POST", "/admin/dead-letters/purge", {"all": True, "ids": [1]}),
        ("POST", "/admin/dead-letters/purge", {"everything": True}),
    ],
)
def test_bad_admin_input_is_a_4xx_naming_the_problem(
    service: Server, method: str, path: str, body: Any
) -> None:
    response = httpx.request(method, service.base_url + path, json=body, headers=ADMIN)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]


def test_ids_beyond_the_stores_integers_name_nothing(service: Server) -> None:
    for event_id in (2**63, 2**64):
        response = httpx.get(f"{service.base_url}/admin/dead-letters/{event_id}", headers=ADMIN)
        assert response.status_code == 404, response.text
        replay = httpx.post(
            service.base_url + "/admin/dead-letters/replay", json={"ids": [event_id]}, headers=ADMIN
        )
        assert replay.status_code == 200 and replay.json() == {"replayed": 0}


def test_an_empty_selection_replays_and_purges_nothing(service: Server) -> None:
    killed = send(service, identify("nothing@example.com"), key=BROKEN_KEY)
    wait_for(lambda: event_state(service, "broken", killed)["state"] == "dead")
    for verb, key in (("replay", "replayed"), ("purge", "purged")):
        for kwargs in ({"json": {}}, {"content": b""}, {"json": {"ids": []}}):
            response = httpx.post(f"{service.base_url}/admin/dead-letters/{verb}", headers=ADMIN, **kwargs)
            assert response.status_code == 200, response.text
            assert response.json()[key] == 0 and "nothing selected" in response.json()["message"]
    assert event_state(service, "broken", killed)["state"] == "dead"
    purged = httpx.post(
        service.base_url + "/admin/dead-letters/purge", json={"destination": "broken"}, headers=ADMIN
    )
    assert purged.json()["purged"] >= 1
    assert httpx.get(f"{service.base_url}/admin/events/broken/{killed}", headers=ADMIN).status_code == 404


def test_calls_redirected_by_the_base_url_are_said_so_at_start_up_and_on_the_page(
    service: Server, sim: Server
) -> None:
    banner = service.output().split("status page:", 1)[0]
    assert f"Listening on {service.base_url.replace('127.0.0.1', '0.0.0.0')}" in banner
    assert f"Gainsight calls are redirected to {sim.base_url} (GSD_GAINSIGHT_BASE_URL)" in banner
    page = httpx.get(service.base_url + "/status", auth=("ops", ADMIN_TOKEN))
    assert f'<span id="redirected">Gainsight calls go to {sim.base_url} ' in page.text


def test_a_destination_whose_calls_all_fail_is_degraded_yet_ready(service: Server) -> None:
    for i in range(3):
        send(service, identify(f"refused{i}@example.com"), key=BROKEN_KEY)
    wait_for(lambda: metric(service, "gsd_destination_degraded", destination="broken") == 1)
    assert metric(service, "gsd_destination_degraded", destination="acme") == 0
    assert httpx.get(service.base_url + "/ready").status_code == 200
    page = httpx.get(service.base_url + "/status", auth=("ops", ADMIN_TOKEN))
    assert page.status_code == 200 and "degraded" in page.text
    errors = get_json(service, "/admin/events?destination=broken&state=dead&limit=1000", headers=ADMIN)
    assert errors["events"] and all(e["attempts"] == 1 for e in errors["events"])


def test_logs_are_one_json_line_each_with_every_event_outcome_and_no_secret(service: Server) -> None:
    message_id = send(service, identify("logged@example.com"))
    track = {"type": "track", "userId": "u1", "messageId": f"t-{message_id}", "event": "Ticket Closed"}
    sent = httpx.post(service.base_url + "/v1/track", json=track, auth=(WRITE_KEY, ""), timeout=10)
    assert sent.status_code == 200, sent.text
    wait_for(lambda: event_state(service, "acme", message_id)["state"] == "delivered")
    wait_for(lambda: event_state(service, "acme", f"t-{message_id}")["state"] == "delivered")  # signed
    httpx.get(service.base_url + "/health")

    def records() -> list[dict[str, Any]]:
        lines = [line for line in service.output().splitlines() if line.startswith("{")]
        return [json.loads(line) for line in lines]

    outcome = wait_for(
        lambda: [r for r in records() if r.get("messageId") == message_id and r["message"] == "event outcome"]
    )
    assert outcome[-1] | {"latency": 0, "time": ""} == {
        "time": "",
        "level": "info",
        "logger": "destination.events",
        "message": "event outcome",
        "destination": "acme",
        "messageId": message_id,
        "type": "identify",
        "outcome": "delivered",
        "status": 200,
        "attempts": 1,
        "latency": 0,
        "userId": "***",  # an email address: logged only with GSD_LOG_PII=true
    }
    assert "logged@example.com" not in service.output()
    access = [r for r in records() if r["logger"] == "uvicorn.access" and r.get("path") == "/health"]
    assert access and access[-1]["status"] == 200 and access[-1]["method"] == "GET"
    # Everything the service wrote after its banner is JSON lines: no warning, no traceback, no secret.
    text = service.output()
    port = service.base_url.rsplit(":", 1)[1]
    assert f"status page: http://0.0.0.0:{port}/status" in text  # auth on: every interface
    after_banner = text.split("GSD_ADMIN_TOKEN as password)", 1)[1].splitlines()[1:]
    assert all(line.startswith("{") for line in after_banner if line.strip()), after_banner[:5]
    for secret in (sandbox_config()["accessKey"], sandbox_config()["sharedSecret"], ADMIN_TOKEN, WRITE_KEY):
        assert secret not in text
    assert "Warning" not in text and "py.warnings" not in text and "Traceback" not in text


def test_text_log_format_and_level_are_settings(workdir: Path, sim: Server, tmp_path: Path) -> None:
    destinations = [{"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config()}]
    with start_service(
        tmp_path, destinations, sim.base_url, GSD_LOG_FORMAT="text", GSD_LOG_LEVEL="warning"
    ) as server:
        httpx.get(server.base_url + "/health")
        message_id = send(server, identify("quiet@example.com"))
        wait_for(lambda: queue_idle(server))
    output = server.output()
    assert "admin routes and /status are off" not in output  # INFO: below the level
    assert message_id not in output and "uvicorn.access" not in output
    assert "{" not in output.split("Listening on", 1)[1]


def test_admin_routes_are_off_without_a_token(sim: Server, tmp_path: Path) -> None:
    destinations = [{"id": "acme", "writeKeys": [WRITE_KEY], "config": sandbox_config()}]
    with start_service(tmp_path, destinations, sim.base_url) as server:
        for path in ("/admin/dead-letters", "/admin/events", "/status"):
            response = httpx.get(server.base_url + path, headers={"Authorization": "Bearer anything"})
            assert response.status_code == 404
            assert "set GSD_ADMIN_TOKEN" in response.json()["error"]
    assert "admin routes and /status are off: set GSD_ADMIN_TOKEN" in server.output()


def test_docs_are_served_with_no_outside_asset(service: Server) -> None:
    page = httpx.get(service.base_url + "/docs")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    urls = re.findall(r"""https?://[^\s"'<>)]+""", page.text)
    outside = [u for u in urls if not u.startswith(service.base_url)]
    assert outside == [], outside
    assert "/admin/events/{destination_id}/{message_id}" in page.text
    assert httpx.get(service.base_url + "/openapi.json").json()["paths"]


# ---------------------------------------------------------------- serve's start-up


def serve_once(
    workdir: Path, *args: str, env: dict[str, str] | None = None, **popen: Any
) -> subprocess.CompletedProcess[str]:
    full_env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "GSD_STORE_URL": f"sqlite:///{workdir}/s.sqlite3",
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "destination", "serve", *args],
        cwd=workdir,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=30,
        **popen,
    )


def test_a_taken_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = serve_once(tmp_path, "--port", str(port))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(another process holds the port; choose another with --port or GSD_PORT)"
    ]
    assert "listening" not in result.stdout


@contextmanager
def unwritable(directory: Path) -> Iterator[None]:
    """The directory refuses new files to this user; root writes anywhere, so make it immutable."""
    if os.getuid() != 0:
        directory.chmod(0o555)
        yield
        directory.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode != 0:
        pytest.skip("running as root on a file system without chattr +i: cannot make a directory unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def test_an_unwritable_store_directory_names_the_uid_in_one_line(tmp_path: Path) -> None:
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    env = {"GSD_STORE_URL": f"sqlite:///{store_dir}/gsd.sqlite3"}
    with unwritable(store_dir):
        result = serve_once(tmp_path, "--port", str(free_port()), env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith(f"error: the store directory {store_dir} is not writable")
    assert f"uid {os.getuid()}" in lines[0]


def test_serve_refuses_the_in_memory_store_in_one_line(tmp_path: Path) -> None:
    result = serve_once(tmp_path, "--port", str(free_port()), env={"GSD_STORE_URL": "memory://"})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: store URL memory:// keeps nothing across a restart")


def test_listening_is_said_once_the_service_answers(tmp_path: Path) -> None:
    with running(
        ["serve"], ready_path="/health", workdir=tmp_path, env={"GSD_STORE_URL": f"sqlite:///{tmp_path}/s.db"}
    ) as server:
        wait_for(lambda: "listening" in server.output() or "SANDBOX MODE" in server.output())
        output = server.output()
        assert output.index("Application startup complete") < output.index("SANDBOX MODE")
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(20)


def test_validate_config_lists_every_problem_of_a_file_in_one_run(tmp_path: Path) -> None:
    config = {k: v for k, v in sandbox_config().items() if k != "tenantId"}
    config["accesskey"] = config.pop("accessKey")
    path = tmp_path / "destinations.json"
    path.write_text(
        json.dumps(
            {
                "destinations": [
                    {"id": "acme", "writeKeys": ["same"], "config": config},
                    {"id": "beta", "writeKeys": ["same"], "config": sandbox_config()},
                ]
            }
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "destination", "validate-config", "--destinations", str(path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    problems = [
        line.split(f"{path}: ", 1)[1] for line in result.stderr.splitlines() if line.startswith("error:")
    ]
    assert problems == [
        "destination acme: config.accesskey: unknown setting; did you mean accessKey?",
        "destination acme: identify and group events need accessKey, which is missing",
        "destination acme: track events need tenantId, which is missing",
        "a write key is shared by destinations acme, beta: each destination needs its own",
    ]
