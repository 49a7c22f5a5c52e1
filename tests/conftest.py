from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from destination.app import create_app
from destination.config import DestinationConfig, parse_destination_config
from destination.delivery.memory import MemoryStore
from destination.mapping.spec import Specs, default_specs
from destination.settings import Settings
from tests import pg
from tests.gainsight_fake import StrictGainsight

DOMAIN = "acme.gainsightcloud.com"

BASE_CONFIG: dict[str, Any] = {
    "domain": DOMAIN,
    "accessKey": "ak-123",
    "sharedSecret": "ss-456",
    "tenantId": "tenant-1",
    "topicName": "Support",
    "eventNameMap": [{"from": "Ticket Closed", "to": "ticket_closed"}],
    "eventVersionMap": [{"from": "Ticket Closed", "to": "1.0"}],
    "personMap": [{"from": "seats", "to": "Seats__gc"}, {"from": "a.b", "to": "Dotted__gc"}],
    "companyMap": [{"from": "region", "to": "Region__gc"}],
}


def memory_app(settings: Settings | None = None, **options: Any) -> FastAPI:
    """The service on the in-memory store (the test double: no store URL names it)."""
    return create_app(settings, store=MemoryStore(), **options)


def make_config(**overrides: Any) -> DestinationConfig:
    return parse_destination_config({**BASE_CONFIG, **overrides})


@pytest.fixture(scope="session")
def specs() -> Specs:
    return default_specs()


@pytest.fixture
def config() -> DestinationConfig:
    return make_config()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for the whole session (see tests/pg.py); skipped without one."""
    try:
        url, cluster = pg.server_url()
    except pg.Unavailable as exc:
        pg.missing(str(exc))
        raise  # not reached: missing() skips or fails
    try:
        yield url
    finally:
        if cluster is not None:
            cluster.destroy()


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A store URL on the session's server, in a schema of this test's own."""
    return pg.new_schema(postgres_server)


@pytest.fixture
def postgres_cluster() -> Iterator[pg.Cluster]:
    """A throwaway cluster of this test's own, which the test may stop and start."""
    if os.environ.get(pg.URL_ENV):
        pytest.skip(f"stops and restarts its own server; {pg.URL_ENV} names a shared one")
    try:
        cluster = pg.Cluster()
    except pg.Unavailable as exc:
        pg.missing(str(exc))
        raise
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def strict_transport() -> Iterator[Callable[[], httpx.MockTransport]]:
    """Makes transports to a Gainsight that answers only the service's own calls (tests/gainsight_fake.py);
    any other call a worker makes during the test fails it at teardown."""
    fakes: list[StrictGainsight] = []

    def make() -> httpx.MockTransport:
        fakes.append(StrictGainsight())
        return fakes[-1].transport()

    yield make
    assert [call for fake in fakes for call in fake.unexpected] == []
