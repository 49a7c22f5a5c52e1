"""Properties: any JSON object as `message` gives an output or a 4xx error item, never a 5xx or an
exception; and the same event always gives the same plan."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from destination.delivery.memory import MemoryStore
from destination.errors import GsdError
from destination.gainsight.client import Credentials, GainsightClient
from destination.gainsight.executor import Executor
from destination.gainsight.plan import plan_event
from destination.gainsight.render import describe_plan
from destination.gainsight.transformer import AllowedDomains, RudderTransformer
from destination.mapping.spec import default_specs
from tests.conftest import BASE_CONFIG, make_config

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "email",
        "name",
        "firstName",
        "lastName",
        "seats",
        "a.b",
        "location",
        "masterAvatarTypeCode",
        "employees",
        "region",
    ]
)
traits = st.dictionaries(keys | st.text(max_size=8), json_values, max_size=6)
messages = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["identify", "group", "track", "TRACK", "page", "", None, 3])
        | st.text(max_size=6),
        "event": st.sampled_from(["Ticket Closed", "Other", ""]) | json_values,
        "traits": traits | json_values,
        "context": st.fixed_dictionaries(
            {}, optional={"traits": traits | json_values, "externalId": json_values}
        )
        | json_values,
        "properties": st.dictionaries(st.text(max_size=8), json_values, max_size=5) | json_values,
        "messageId": st.text(max_size=10) | json_values,
    },
) | st.dictionaries(st.text(max_size=8), json_values, max_size=6)


def gainsight(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/query/Company"):
        return httpx.Response(200, json={"result": True, "data": {"records": []}})
    return httpx.Response(200, json={"result": True, "data": {"records": [{"Gsid": "G1"}]}})


def transformer() -> RudderTransformer:
    client = GainsightClient(httpx.AsyncClient(transport=httpx.MockTransport(gainsight)))
    executor = Executor(client, MemoryStore(), unchanged_ttl_seconds=0, clock=time.time)
    return RudderTransformer(default_specs(), client, executor, AllowedDomains(["*"]))


# Items whose settings lack some of what events need (a Config without a domain, say).
configs = st.sets(st.sampled_from(sorted(BASE_CONFIG))).map(
    lambda left_out: {k: v for k, v in BASE_CONFIG.items() if k not in left_out}
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(messages, st.one_of(st.just(BASE_CONFIG), configs)), min_size=1, max_size=5))
def test_any_message_gives_output_or_4xx(batch: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    items = [
        {"message": m, "destination": {"Config": config}, "metadata": {"i": i}}
        for i, (m, config) in enumerate(batch)
    ]
    answers = asyncio.run(transformer().process(items))
    assert len(answers) == len(items)
    for i, answer in enumerate(answers):
        assert answer["metadata"] == {"i": i}
        if "output" in answer:
            assert answer["statusCode"] == 200
        else:
            assert 400 <= answer["statusCode"] < 500, answer
            assert isinstance(answer["error"], str) and answer["error"]


@settings(max_examples=300, deadline=None)
@given(messages)
def test_same_event_same_plan(message: dict[str, Any]) -> None:
    config, specs = make_config(), default_specs()
    credentials = Credentials.of("acme", config)
    try:
        first = describe_plan(plan_event(message, config, specs), credentials)
    except GsdError as exc:
        try:
            plan_event(message, config, specs)
        except GsdError as again:
            assert (type(again), again.message) == (type(exc), exc.message)
            return
        raise AssertionError("second planning succeeded where the first failed") from None
    assert describe_plan(plan_event(message, config, specs), credentials) == first
