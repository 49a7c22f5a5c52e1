"""JSON the service keeps holds only its length (DESIGN §8, the soak's RSS bar).

orjson (3.12 on) hands back its working buffer, at least 4 KiB, whatever the text's length; a
track body held by a plan in flight, a payload waiting for its commit, an attempt's request and
answer then cost 4 KiB each. What is measured: the bytes tracemalloc sees freed when the values
are let go."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Callable
from typing import Any

from destination import jsonutil
from destination.gainsight.plan import plan_event
from destination.gainsight.track_plan import TrackPlan
from destination.mapping.spec import Specs
from tests.conftest import make_config

COUNT = 200


def bytes_held(make: Callable[[int], bytes]) -> float:
    """The memory that each of COUNT values made by `make` keeps alive, on average."""
    gc.collect()
    tracemalloc.start()
    try:
        values = [make(i) for i in range(COUNT)]
        kept = tracemalloc.get_traced_memory()[0]
        lengths = sum(len(value) for value in values)
        values.clear()
        freed = kept - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert lengths < COUNT * 100  # short texts: a 4 KiB buffer would be most of what they hold
    return freed / COUNT


def small(i: int) -> dict[str, Any]:
    return {"ticketId": f"T-{i}", "n": i, "status": "resolved"}


def test_dumps_holds_about_its_length() -> None:
    assert bytes_held(lambda i: jsonutil.dumps(small(i))) < 200


def test_canonical_json_holds_about_its_length() -> None:
    assert bytes_held(lambda i: jsonutil.canonical_json(small(i))) < 200


def test_a_track_plans_body_holds_about_its_length(specs: Specs) -> None:
    config = make_config()

    def body(i: int) -> bytes:
        message = {"type": "track", "event": "Ticket Closed", "messageId": f"m-{i}", "properties": small(i)}
        plan = plan_event(message, config, specs)
        assert isinstance(plan, TrackPlan) and plan.request.body_bytes is not None
        return plan.request.body_bytes

    assert bytes_held(body) < 200


def test_trimmed_keeps_the_text() -> None:
    text = jsonutil.canonical_json({"b": [1, 2.5, "é"], "a": None})
    assert text == b'{"a":null,"b":[1,2.5,"\xc3\xa9"]}'
    assert jsonutil.loads(jsonutil.dumps({"b": 1})) == {"b": 1}
