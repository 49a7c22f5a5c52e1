"""Faults that need a real server: a dropped TCP connection and a client-side timeout."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from destination.simulator import SimulatorConfig, create_simulator_app
from tests.simulator.helpers import ACCESS, EVENTS, PEOPLE, event_headers

MOUNT = "/gainsight"


def served_app(layout: str) -> FastAPI:
    simulator = create_simulator_app(SimulatorConfig.sandbox())
    if layout == "standalone":
        return simulator
    parent = FastAPI()  # as the service embeds it in sandbox mode
    parent.mount(MOUNT, simulator)
    return parent


@pytest.fixture(scope="module", params=["standalone", "mounted"])
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    layout: str = request.param
    app = served_app(layout)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="info", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}" + (MOUNT if layout == "mounted" else "")
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def http(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=5) as client:
        client.post("/__sim/reset")
        yield client


def test_dropped_connection_closes_tcp_without_any_http_response(
    http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    http.post("/__sim/faults", json={"drop_next": 1, "drop_scope": "people"})
    with (
        caplog.at_level(logging.INFO),
        pytest.raises(httpx.RemoteProtocolError, match="without sending a response"),
    ):
        http.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com"})
    assert http.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com"}).status_code == 200
    [dropped, answered] = http.get("/__sim/requests").json()
    assert (dropped["status"], dropped["outcome"]) == (None, "fault:drop")
    assert answered["status"] == 200
    # The server noticed the connection was gone: it neither wrote nor logged a 500 of its own.
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_dropped_connection_at_the_raw_socket_level(base_url: str, http: httpx.Client) -> None:
    http.post("/__sim/faults", json={"drop_next": 1})
    address = httpx.URL(base_url)
    assert address.host and address.port
    with socket.create_connection((address.host, address.port), timeout=5) as raw:
        request_line = f"GET {address.path.rstrip('/')}{PEOPLE} HTTP/1.1"
        raw.sendall(f"{request_line}\r\nHost: x\r\nAccesskey: {ACCESS['Accesskey']}\r\n\r\n".encode())
        try:
            received = raw.recv(1024)
        except ConnectionResetError:
            received = b""
    assert received == b""


def test_scoped_drop_spares_other_kinds(http: httpx.Client) -> None:
    http.post("/__sim/faults", json={"drop_next": 1, "drop_scope": "events"})
    assert http.get(PEOPLE, headers=ACCESS).status_code == 200
    with pytest.raises(httpx.RemoteProtocolError):
        http.post(EVENTS, headers=event_headers(), json={"a": 1})
    assert http.get("/__sim/events").json() == []


def test_timeout_fault_outlasts_the_client_while_the_call_lands(base_url: str, http: httpx.Client) -> None:
    http.post("/__sim/faults", json={"timeout_next": 1, "hang_seconds": 0.5})
    with httpx.Client(base_url=base_url, timeout=0.1) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.put(PEOPLE, headers=ACCESS, json={"Email": "ada@example.com"})
    assert [p["Email"] for p in http.get("/__sim/people").json()] == ["ada@example.com"]
    assert http.get(PEOPLE, headers=ACCESS).status_code == 200
