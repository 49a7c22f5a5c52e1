"""A store that cannot be used at start-up stops `serve` with one line naming the cause (exit 2,
no traceback, no "listening"); later outages leave it running, and /ready names their cause."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests import pg
from tests.e2e.servers import free_port, start_service, wait_for

ROOT = Path(__file__).resolve().parents[2]


def serve_with_store(workdir: Path, store_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GSD_STORE_URL": store_url, "GSD_DESTINATIONS": ""}
    return subprocess.run(
        [sys.executable, "-m", "destination", "serve", "--port", str(free_port())],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "istening" not in result.stdout + result.stderr
    return lines[0]


def test_a_wrong_port_stops_serve_with_one_line(tmp_path: Path, postgres_server: str) -> None:
    parts = urlsplit(postgres_server)
    closed = free_port()
    url = parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{closed}").geturl()
    line = one_line_error(serve_with_store(tmp_path, url))
    assert line.startswith(f"error: cannot reach the store {url}: ")
    assert f"port {closed} failed: Connection refused" in line


def test_a_wrong_password_stops_serve_with_one_line_and_no_password(
    tmp_path: Path, postgres_cluster: pg.Cluster
) -> None:
    url = postgres_cluster.password_role("gsd_pw", "right-password")
    wrong = url.replace("gsd_pw@", "gsd_pw:wrong-password@")
    line = one_line_error(serve_with_store(tmp_path, wrong))
    assert 'password authentication failed for user "gsd_pw"' in line
    assert "wrong-password" not in line and "gsd_pw:***@" in line


def test_sslmode_require_against_a_server_without_ssl_stops_serve(
    tmp_path: Path, postgres_cluster: pg.Cluster
) -> None:
    line = one_line_error(serve_with_store(tmp_path, postgres_cluster.url + "?sslmode=require"))
    assert "server does not support SSL, but SSL was required" in line


def test_a_sqlite_path_that_cannot_be_created_stops_serve(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("not a directory")
    line = one_line_error(serve_with_store(tmp_path, f"sqlite:///{tmp_path}/a-file/gsd.sqlite3"))
    assert line.startswith(f"error: cannot create the store directory {tmp_path}/a-file:")


def test_a_file_that_is_not_a_database_stops_serve(tmp_path: Path) -> None:
    (tmp_path / "gsd.sqlite3").write_bytes(b"not a database, but long enough to be read as one" * 40)
    line = one_line_error(serve_with_store(tmp_path, f"sqlite:///{tmp_path}/gsd.sqlite3"))
    assert "is not a usable SQLite database: file is not a database" in line


def test_an_outage_after_start_keeps_serving_and_ready_names_the_cause(
    tmp_path: Path, postgres_cluster: pg.Cluster
) -> None:
    with start_service(tmp_path, None, None, GSD_STORE_URL=postgres_cluster.url) as service:
        assert httpx.get(service.base_url + "/ready", timeout=10).status_code == 200
        postgres_cluster.stop()
        try:

            def refused() -> list[str] | None:
                answer = httpx.get(service.base_url + "/ready", timeout=10)
                problems: list[str] = answer.json()["problems"]
                # Until the pool has met the outage itself, /ready may answer "no answer within
                # 4.5 s" (naming the workers' last failure): wait for the pool's own answer.
                down = answer.status_code == 503 and "Connection refused" in str(problems)
                return problems if down and "within" not in str(problems) else None

            (problem,) = wait_for(refused, timeout=60)
            assert problem.startswith("store: the PostgreSQL store cannot be reached: connection failed")
            assert service.process.poll() is None
        finally:
            postgres_cluster.start()
        wait_for(lambda: httpx.get(service.base_url + "/ready", timeout=10).status_code == 200, timeout=60)


@pytest.mark.parametrize("scheme", ["mysql", "sqlite"])
def test_a_store_url_of_no_known_form_stops_serve(tmp_path: Path, scheme: str) -> None:
    line = one_line_error(serve_with_store(tmp_path, f"{scheme}://db.internal/gsd"))
    assert "sqlite:///relative/path" in line
