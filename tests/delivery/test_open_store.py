"""open_store: which store a URL names."""

from __future__ import annotations

from pathlib import Path

import pytest

from destination.delivery.memory import MemoryStore
from destination.delivery.sqlite import SQLiteStore
from destination.delivery.store import UnsupportedStoreURLError
from destination.delivery.stores import DEFAULT_STORE_URL, open_store

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


async def test_memory_url_opens_the_in_memory_store() -> None:
    store = open_store("memory://")
    assert isinstance(store, MemoryStore)
    await store.close()


@pytest.mark.parametrize("url", ["postgresql://gsd:secret@db/gsd", "postgres://db/gsd"])
def test_postgresql_is_refused_as_not_supported_yet(url: str) -> None:
    with pytest.raises(UnsupportedStoreURLError, match="not supported yet") as raised:
        open_store(url)
    assert "secret" not in str(raised.value)


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
