"""The real `serve` process under hostile connections, on loopback (destination/connections.py):
idle and slowloris connections, an oversize head, too many connections, a body never read.

Each test bounds its own time (socket timeouts, polling) and measures /health while the attack
is held; `bench/hostile.py` runs the full-size attack (2,000 idle + 200 slowloris) and prints figures.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.servers import Server, start_service, wait_for

IDLE = 400
SLOWLORIS = 50


def _rss_mib(server: Server) -> float:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _need_files(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        if hard != resource.RLIM_INFINITY and hard < count:
            pytest.skip(f"needs {count} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))


def _connect(server: Server) -> socket.socket:
    port = int(server.base_url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return sock


def _health_seconds(server: Server) -> float:
    """One /health on a fresh connection; fails the test if it is not answered within 10 s."""
    started = time.monotonic()
    response = httpx.get(server.base_url + "/health", timeout=10.0, headers={"Connection": "close"})
    assert response.status_code == 200, response.text
    return time.monotonic() - started


def _answer(sock: socket.socket, timeout: float = 15.0) -> bytes:
    """Everything the server sends until it closes the connection (within `timeout`)."""
    sock.settimeout(timeout)
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A service whose limits let the attack's connections stay open while /health is measured."""
    _need_files(IDLE + SLOWLORIS + 200)
    env = {"GSD_HEADER_TIMEOUT_SECONDS": "60", "GSD_MAX_CONNECTIONS": "1000"}
    with start_service(tmp_path_factory.mktemp("held"), None, None, **env) as server:
        yield server


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A service with short timeouts and few connections, to see each limit act."""
    env = {
        "GSD_HEADER_TIMEOUT_SECONDS": "1",
        "GSD_KEEP_ALIVE_SECONDS": "1",
        "GSD_MAX_CONNECTIONS": "40",
        "GSD_MAX_HEADER_BYTES": "8192",
    }
    with start_service(tmp_path_factory.mktemp("strict"), None, None, **env) as server:
        yield server


def test_health_answers_while_idle_and_slowloris_connections_are_held(held: Server) -> None:
    before = _rss_mib(held)
    idle = [_connect(held) for _ in range(IDLE)]
    slow = [_connect(held) for _ in range(SLOWLORIS)]
    stop = threading.Event()

    def trickle() -> None:
        for sock in slow:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        while not stop.wait(0.2):
            for sock in slow:
                sock.sendall(b"X-a: b\r\n")

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        latencies = [_health_seconds(held) for _ in range(10)]
        grown = _rss_mib(held) - before
    finally:
        stop.set()
        trickler.join(10)
        for sock in idle + slow:
            sock.close()
    print(
        f"/health under {IDLE} idle + {SLOWLORIS} slowloris: max {max(latencies):.3f} s, RSS +{grown:.0f} MiB"
    )
    assert grown < 200, f"RSS grew {grown:.0f} MiB while connections were held"


def test_a_20_mb_head_is_refused_431_without_being_read(held: Server) -> None:
    before = _rss_mib(held)
    sock = _connect(held)
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (20 * 1024 * 1024) + b"\r\n\r\n"

    def send() -> None:
        with contextlib.suppress(OSError):  # the server closes the connection: what is expected
            sock.sendall(head)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    answer = _answer(sock)
    sender.join(15)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert b"65536" in answer  # the default GSD_MAX_HEADER_BYTES, named
    assert _rss_mib(held) - before < 50
    assert _health_seconds(held) < 10


def test_idle_and_partial_head_connections_get_408_and_are_closed(strict: Server) -> None:
    idle = _connect(strict)
    partial = _connect(strict)
    partial.sendall(b"POST /v1/track HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    for sock in (idle, partial):
        answer = _answer(sock)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
        assert b"request head not received within 1 seconds" in answer


def test_a_slowloris_that_keeps_sending_is_still_cut_off(strict: Server) -> None:
    sock = _connect(strict)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    closed_at = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"X-a: b\r\n")
        except OSError:
            closed_at = time.monotonic()
            break
        time.sleep(0.1)
    sock.close()
    assert closed_at is not None, "a head trickled for 20 s was never cut off"


def test_a_kept_alive_connection_is_closed_when_idle(strict: Server) -> None:
    sock = _connect(strict)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = _answer(sock)  # the answer, then the close after GSD_KEEP_ALIVE_SECONDS
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1") == 1


def test_a_head_over_the_configured_size_gets_431(strict: Server) -> None:
    sock = _connect(strict)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n")
    answer = _answer(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431 ") and b"8192 bytes (GSD_MAX_HEADER_BYTES)" in answer
    ok = httpx.get(strict.base_url + "/health", headers={"X-Fine": "a" * 4000}, timeout=10)
    assert ok.status_code == 200


def test_connections_beyond_the_limit_get_503_and_are_closed(strict: Server) -> None:
    held = [_connect(strict) for _ in range(40)]
    try:
        wait_for(lambda: _answer(_connect(strict), 10).startswith(b"HTTP/1.1 503 "), timeout=10)
        over = _answer(_connect(strict))
        assert b"GSD_MAX_CONNECTIONS" in over
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: httpx.get(strict.base_url + "/health", timeout=10).status_code == 200)


def test_a_body_answered_before_it_was_read_is_not_awaited_for_ever(strict: Server) -> None:
    sock = _connect(strict)
    sock.sendall(
        b"POST /admin/dead-letters/purge HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Length: 100000000\r\n\r\n" + b"x" * 65536
    )
    sock.settimeout(15)
    assert sock.recv(65536).startswith(b"HTTP/1.1 404 ")
    cut_off = False
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not cut_off:  # the rest of the body, trickled
        try:
            sock.sendall(b"x")
        except OSError:
            cut_off = True
        time.sleep(0.1)
    sock.close()
    assert cut_off, "a body trickled for 20 s after its answer was never cut off"
