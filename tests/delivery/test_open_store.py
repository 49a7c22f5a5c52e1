"""open_store: which store a URL names."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from destination.delivery.sqlite import SQLiteStore
from destination.delivery.store import UnsupportedStoreURLError
from destination.delivery.stores import DEFAULT_STORE_URL, open_store, redacted

pytestmark = pytest.mark.anyio


async def test_default_url_is_a_relative_sqlite_file_whose_directory_is_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store(DEFAULT_STORE_URL)
    try:
        assert isinstance(store, SQLiteStore)
        assert (tmp_path / "data" / "gsd.sqlite3").is_file()
    finally:
        await store.close()


async def test_four_slashes_name_an_absolute_path(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "dir" / "queue.db"
    store = open_store(f"sqlite:///{target}")  # target is absolute: sqlite:////tmp/...
    try:
        assert isinstance(store, SQLiteStore) and store.path == target
        assert target.is_file()
    finally:
        await store.close()


def test_no_url_names_the_in_memory_test_double() -> None:
    with pytest.raises(UnsupportedStoreURLError, match="memory:// keeps nothing across a restart"):
        open_store("memory://")


@pytest.mark.parametrize("url", ["postgresql://gsd:secret@db/gsd", "postgres://db/gsd"])
async def test_postgresql_urls_open_the_postgresql_store_without_connecting(url: str) -> None:
    from destination.delivery.postgres import PostgresStore

    store = open_store(url, pool_size=3)
    assert isinstance(store, PostgresStore)
    await store.close()


def test_the_postgresql_driver_is_imported_only_for_a_postgresql_url() -> None:
    code = (
        "import sys; from destination.delivery.stores import open_store; "
        "open_store('sqlite:///' + sys.argv[1]); "
        "print('psycopg' in sys.modules, 'destination.delivery.postgres' in sys.modules)"
    )
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [sys.executable, "-c", code, f"{scratch}/q.db"], capture_output=True, text=True, check=True
        )
    assert done.stdout.split() == ["False", "False"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root:hunter2@db/gsd", "unknown store URL 'mysql://root:\\*\\*\\*@db/gsd'"),
        ("./data/gsd.sqlite3", "unknown store URL"),
        ("sqlite://host/file.db", "sqlite:///relative/path"),
        ("sqlite:///", "names no file"),
    ],
)
def test_malformed_urls_are_refused_with_the_expected_form(url: str, message: str) -> None:
    with pytest.raises(UnsupportedStoreURLError, match=message):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://gsd:s3cret@db/gsd?sslmode=require", "postgresql://gsd:***@db/gsd?sslmode=require"),
        (
            "postgresql://gsd@db/gsd?sslmode=require&password=s3cret",
            "postgresql://gsd@db/gsd?sslmode=require&password=***",
        ),
        ("postgresql://db/gsd?PASSWORD=s3cret&user=gsd", "postgresql://db/gsd?PASSWORD=***&user=gsd"),
    ],
)
def test_a_url_in_a_message_shows_no_password(url: str, shown: str) -> None:
    assert redacted(url) == shown


def test_an_unreachable_postgresql_store_names_the_cause_its_last_attempt_met() -> None:
    from destination.delivery.postgres import PostgresStore
    from destination.delivery.postgres_connections import DOWN_WAIT_SECONDS, WAIT_SECONDS
    from destination.delivery.store import StoreUnavailableError
    from tests.e2e.servers import free_port

    closed = free_port()
    store = PostgresStore(f"postgresql://gsd@127.0.0.1:{closed}/gsd", pool_size=1)
    assert store._wait_seconds() == WAIT_SECONDS

    async def count() -> StoreUnavailableError:
        try:
            with pytest.raises(StoreUnavailableError) as raised:
                await store.counts()
            return raised.value
        finally:
            await store.close()

    error = asyncio.run(count())
    assert error.message == "the PostgreSQL store cannot be reached"  # what a sender is told
    assert error.cause is not None and f"port {closed} failed: Connection refused" in error.cause
    assert store._wait_seconds() == DOWN_WAIT_SECONDS  # a known outage: shorter waits
