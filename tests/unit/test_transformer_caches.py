"""The transformer routes' caches are bounded by the bytes they hold, not by their count (issue 19):
requests with large and distinct Configs and event shapes leave each cache within its bound, and
the memory they keep alive, as tracemalloc counts it, stays within the bounds too (the count-bound
caches kept about 6 MB per request of this test)."""

from __future__ import annotations

import asyncio
import gc
import time
import tracemalloc
from collections.abc import Iterable
from typing import Any

import httpx

from destination.delivery.memory import MemoryStore
from destination.gainsight import transformer as transformer_module
from destination.gainsight.client import GainsightClient
from destination.gainsight.executor import Executor
from destination.gainsight.transformer import AllowedDomains, RudderTransformer
from destination.mapping import engine
from destination.mapping.spec import default_specs
from tests.conftest import BASE_CONFIG

REQUESTS = 30
# Kept alive at most: the bounds, plus the last custom map too large to keep, compiled.
HELD_BOUND = transformer_module.CACHE_MAX_BYTES + engine.CACHE_MAX_BYTES + 8 * 1024 * 1024


def no_call(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected Gainsight call {request.method} {request.url}")


def make_transformer() -> RudderTransformer:
    client = GainsightClient(httpx.AsyncClient(transport=httpx.MockTransport(no_call)))
    executor = Executor(client, MemoryStore(), unchanged_ttl_seconds=0, clock=time.time)
    return RudderTransformer(default_specs(), client, executor, AllowedDomains(["*"]))


def identify(config: dict[str, Any], traits: dict[str, Any]) -> dict[str, Any]:
    message = {"type": "identify", "traits": {"email": "ada@example.com", **traits}}
    return {"message": message, "destination": {"Config": config}}


def config_with(rows: int, tag: str) -> dict[str, Any]:
    person_map = [{"from": f"{tag}-trait-{k}", "to": f"Field{k}__gc"} for k in range(rows)]
    return {**BASE_CONFIG, "personMap": person_map}


def request(i: int) -> list[dict[str, Any]]:
    """A Config just small enough to keep, one far too large, and distinct event shapes: eight
    of 400 traits and one of 10,000, each sent twice (the second sighting makes a recipe)."""
    kept, large = config_with(200, f"kept{i}"), config_with(4000, f"large{i}")
    items = []
    for shape in range(8):
        traits = {f"r{i}-{shape}-{k}": k for k in range(400)}
        items += [identify(kept, traits), identify(kept, traits)]
    huge = {f"h{i}-{k}": k for k in range(10_000)}
    return [*items, identify(large, huge), identify(large, huge)]


def held_after(transformer: RudderTransformer, requests: Iterable[list[dict[str, Any]]]) -> int:
    """The bytes that the requests' answers leave allocated (tracemalloc), every cache checked
    against its bound after each request."""
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for items in requests:
            answers = asyncio.run(transformer.process(items))
            assert [a["statusCode"] for a in answers] == [200] * len(answers)
            assert transformer.cache_bytes <= transformer_module.CACHE_MAX_BYTES
            assert engine.cache_bytes() <= engine.CACHE_MAX_BYTES
            del answers, items
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_large_distinct_configs_and_shapes_stay_within_the_caches_bounds() -> None:
    transformer = make_transformer()
    held = held_after(transformer, (request(i) for i in range(REQUESTS)))
    assert transformer.cache_bytes > 0 and engine.cache_bytes() > 0  # what is small is still kept
    assert held < HELD_BOUND, f"{held / 1e6:.0f} MB kept alive by {REQUESTS} requests"


def test_a_config_too_large_to_keep_does_not_outlive_its_request() -> None:
    """Its parse (about 17 MB for 20,000 personMap rows) is let go; the compiled custom map
    alone stays, until another one takes its place (about 4 MB)."""
    held = held_after(make_transformer(), ([identify(config_with(20_000, "large"), {})] * 2,))
    assert held < 8 * 1024 * 1024, f"{held / 1e6:.0f} MB kept alive"
