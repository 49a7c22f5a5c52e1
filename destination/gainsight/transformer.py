"""RudderStack's transformer protocol without the HTTP (the routes: api/rudder.py): one output
or error per item, so rudder-server can use this service as its Gainsight transformer (DESIGN §4.2).

Identify and track outputs are made straight from the event; as the reference does, a group's
Company calls are made while transforming (by the same executor as the workers,
gainsight/executor.py, shared across concurrent requests: company_batches.py), and its output is
the final association request. Every output envelope is made by render.py. Company calls only go
to allowed domains, and spend at most half of the tenant's rate budget (the `transformer` pool
of the governor), so delivery is never starved. The answers match the reference's, item for item
(its own test vectors: tests/parity/); errors read as it writes them (transformer_errors.py).
Outputs carry no X-Payload-Signature: rudder-server sends them later, re-serialised and retried
with the same messageId, so neither the body hash, the expiry nor the replay check would hold.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Iterable
from typing import Any

import orjson

from destination.config import DestinationConfig, parse_destination_config
from destination.delivery.governor import TRANSFORMER_POOL, budget_pool
from destination.errors import ConfigError, EventError, GsdError
from destination.gainsight.client import Credentials, GainsightClient
from destination.gainsight.company_batches import CompanyBatcher
from destination.gainsight.endpoints import EVENT_PATH, PEOPLE_PATH, public_url
from destination.gainsight.executor import Executor
from destination.gainsight.plan import GroupPlan, identify_record, message_type, plan_event
from destination.gainsight.render import rest_output, rudder_output
from destination.gainsight.requests import person_upsert
from destination.gainsight.track_plan import plan_track, track_parts
from destination.gainsight.transformer_errors import error_status, error_text, stat_tags
from destination.jsonutil import trimmed
from destination.mapping.spec import Specs
from destination.sized_cache import SizedCache

METRICS_LABEL = "transformer"  # these routes have no destination id; their calls count under this

# The caches are bounded by estimated bytes held, not by count (issue 19). A parsed Config
# holds about 14 times its JSON (measured), the key its JSON once more: configs whose JSON is
# over 16 KiB are parsed for each request instead of kept; 4 MiB hold ~256 of 1 KiB.
_CONFIG_BYTES_PER_JSON_BYTE = 16
_CONFIGS_BYTES = 4 * 1024 * 1024
_CONFIG_MAX_BYTES = 16 * 1024 * _CONFIG_BYTES_PER_JSON_BYTE
# Track headers, per destination: a header set is ~500 bytes plus its event's own values.
_HEADERS_BYTES = 1024 * 1024
_HEADERS_MAX_BYTES = 16 * 1024
CACHE_MAX_BYTES = _CONFIGS_BYTES + _HEADERS_BYTES


class AllowedDomains:
    """Shell-style patterns (`*.gainsightcloud.com`) of domains the transformer routes may call."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(p.lower() for p in patterns)

    def check(self, domain: str) -> None:
        if not any(fnmatch.fnmatchcase(domain.lower(), p) for p in self.patterns):
            raise ConfigError(
                f"domain {domain} is not allowed for the transformer routes "
                "(set GSD_ALLOWED_DOMAINS to allow it)"
            )


_NO_CONFIG: tuple[Any, DestinationConfig | ConfigError] = (object(), ConfigError("unset"))
Result = dict[str, Any] | GsdError


class _Direct:
    """What the outputs of one destination share, made once per destination by the client from
    a plan, as for any plan: the credentials, the endpoints, the identify headers, and the track
    headers per (event name, version, contract id), the only parts of a track they depend on.
    Outputs share these header dicts; nothing mutates them. Made only for settings that passed
    an event's checks (the domain is set)."""

    __slots__ = (
        "_client",
        "config",
        "credentials",
        "identify_endpoint",
        "identify_headers",
        "track",
        "track_endpoint",
    )

    def __init__(self, config: DestinationConfig, client: GainsightClient) -> None:
        assert config.domain is not None
        self.config = config
        self.credentials = Credentials.of(METRICS_LABEL, config)
        self._client = client
        self.identify_endpoint = public_url(config.domain, PEOPLE_PATH)
        self.identify_headers = client.headers_for(person_upsert(config.domain, {}), self.credentials)
        self.track_endpoint = public_url(config.domain, EVENT_PATH)
        self.track: SizedCache[tuple[str, str, str | None], dict[str, str]] = SizedCache(
            _HEADERS_BYTES, _HEADERS_MAX_BYTES
        )

    def make_track_headers(self, message: dict[str, Any], key: tuple[str, str, str | None]) -> dict[str, str]:
        """The headers of a track whose (name, version, contract id) are `key`, kept if small."""
        plan = plan_track(message, self.config, signed=False)
        headers = self._client.headers_for(plan.request, self.credentials)
        name, version, contract = key
        self.track.put(key, headers, 512 + 2 * (len(name) + len(version) + len(contract or "")))
        return headers


class RudderTransformer:
    def __init__(
        self,
        specs: Specs,
        client: GainsightClient,
        executor: Executor,
        allowed: AllowedDomains,
    ) -> None:
        self._specs = specs
        self._client = client
        self._allowed = allowed
        self._configs: SizedCache[bytes, DestinationConfig | ConfigError] = SizedCache(
            _CONFIGS_BYTES, _CONFIG_MAX_BYTES
        )
        self._companies = CompanyBatcher(executor.write_companies)
        # The last item's Config as it came, and its parse: the next request's first item
        # nearly always carries an equal one. Kept past its request only when the cache kept it.
        self._last_config: tuple[Any, DestinationConfig | ConfigError] = _NO_CONFIG
        self._last_kept = False
        self._last_direct: _Direct | None = None

    @property
    def cache_bytes(self) -> int:
        """The estimated bytes the caches hold: at most CACHE_MAX_BYTES."""
        direct = self._last_direct
        return self._configs.bytes + (direct.track.bytes if direct is not None else 0)

    def _config(self, raw: Any) -> DestinationConfig | ConfigError:
        """An item's destination Config parsed, once per distinct Config: the key is its JSON as
        it came (key order kept: rudder-server writes one destination's Config the same way each
        time; equal bytes mean equal settings, and a reordered copy merely parses once more)."""
        if not isinstance(raw, dict):
            self._last_kept = False  # it may be large: an array, say
            return ConfigError("destination.Config is required and must be a JSON object")
        key = trimmed(orjson.dumps(raw, option=orjson.OPT_NON_STR_KEYS))  # kept by the cache
        cached = self._configs.get(key)
        if cached is None:
            try:
                cached = parse_destination_config(raw)
            except ConfigError as exc:
                cached = exc
            self._last_kept = self._configs.put(key, cached, len(key) * _CONFIG_BYTES_PER_JSON_BYTE)
        else:
            self._last_kept = True
        return cached

    def _direct(self, config: DestinationConfig) -> _Direct:
        """The shared parts of the destination's outputs: call once the event's checks passed."""
        direct = self._last_direct
        if direct is None or direct.config is not config:
            direct = self._last_direct = _Direct(config, self._client)
        return direct

    def _remember(self, raw: Any, config: DestinationConfig | ConfigError) -> None:
        """Keep the request's last Config for the next request, unless it is too large to keep
        (then neither it nor its shared parts outlive the request)."""
        self._last_config = (raw, config) if self._last_kept else _NO_CONFIG
        direct = self._last_direct
        if direct is not None and direct.config is not self._last_config[1]:
            self._last_direct = None

    async def _group_outputs(self, plans: list[GroupPlan], credentials: Credentials) -> list[Result]:
        """The association outputs of group plans sharing a tenant: their Companies written in
        calls shared with concurrent requests (DESIGN §6), as the reference does while
        transforming."""
        gsids = await self._companies.resolve(plans, credentials)
        outputs: list[Result] = []
        for plan, gsid in zip(plans, gsids, strict=True):
            if isinstance(gsid, GsdError):
                outputs.append(gsid)
            else:
                request = plan.association_request(gsid)
                outputs.append(rudder_output(request, self._client.headers_for(request, credentials)))
        return outputs

    async def outputs(self, items: list[Any]) -> list[Result]:
        """One output or error per item, in order. Only group items wait on Gainsight."""
        with budget_pool(TRANSFORMER_POOL):
            return await self._outputs(items)

    async def _outputs(self, items: list[Any]) -> list[Result]:
        # rudder-server sends this for every event: identify and track outputs are made here,
        # straight from the event (what `rudder_output` makes of their plan, without the plan),
        # and an item's settings are looked up only when its Config differs from the last one's
        # (the items of a request nearly always share one: then the same object, see
        # api/transformer_body.py).
        results: list[Result] = []
        groups: dict[tuple[str, Credentials], list[tuple[int, GroupPlan]]] = {}
        specs = self._specs
        last_raw, config = self._last_config
        direct: _Direct | None = None  # the shared parts of `config`, once an event needs them
        for index, item in enumerate(items):
            try:
                if not isinstance(item, dict):
                    raise ConfigError("each input must be an object with message, destination and metadata")
                destination = item.get("destination")
                raw = destination.get("Config") if isinstance(destination, dict) else None
                if raw is not last_raw and (raw is None or raw != last_raw):
                    config = self._config(raw)
                    last_raw, direct = raw, None
                if isinstance(config, ConfigError):
                    raise config
                message = item.get("message")
                if not isinstance(message, dict):
                    raise EventError("message must be a JSON object")
                kind = message.get("type")
                if kind != "identify" and kind != "track":
                    kind = message_type(message)
                if kind == "identify":
                    body = identify_record(message, config, specs, diagnose=False).fields
                    direct = direct or self._direct(config)
                    results.append(
                        rest_output("PUT", direct.identify_endpoint, direct.identify_headers, body)
                    )
                elif kind == "track":
                    name, version, contract, body = track_parts(message, config)
                    direct = direct or self._direct(config)
                    key = (name, version, contract)
                    headers = direct.track.get(key) or direct.make_track_headers(message, key)
                    results.append(rest_output("POST", direct.track_endpoint, headers, body))
                else:
                    plan = plan_event(message, config, specs, signed=False)
                    assert isinstance(plan, GroupPlan)  # identify and track are made above
                    self._allowed.check(plan.domain)
                    direct = direct or self._direct(config)
                    credentials = direct.credentials
                    groups.setdefault((plan.domain, credentials), []).append((index, plan))
                    results.append({})
            except GsdError as exc:
                results.append(exc)
        self._remember(last_raw, config)
        await self._write_groups(groups, results)
        return results

    async def _write_groups(
        self, groups: dict[tuple[str, Credentials], list[tuple[int, GroupPlan]]], results: list[Result]
    ) -> None:
        """Each group item's output in its place, the tenants' Company writes made at once."""
        tenants = list(groups.items())
        written = await asyncio.gather(
            *(self._group_outputs([p for _, p in g], credentials) for (_, credentials), g in tenants)
        )
        for (_, group), outputs in zip(tenants, written, strict=True):
            for (index, _), output in zip(group, outputs, strict=True):
                results[index] = output

    async def process(self, items: list[Any]) -> list[dict[str, Any]]:
        """The processor answer: `{output|error, statusCode, statTags?, metadata}` per item."""
        answers = []
        for item, result in zip(items, await self.outputs(items), strict=True):
            answer: dict[str, Any]
            if isinstance(result, GsdError):
                answer = {
                    "error": error_text(result),
                    "statusCode": error_status(result),
                    "statTags": stat_tags(result, "processor"),
                }
            else:
                result["userId"] = ""  # a fresh dict per item
                answer = {"output": result, "statusCode": 200}
            if isinstance(item, dict) and "metadata" in item:  # absent stays absent, as the reference
                answer["metadata"] = item["metadata"]
            answers.append(answer)
        return answers

    async def route(self, items: list[Any]) -> list[dict[str, Any]]:
        """The router answer: one unbatched `batchedRequest` (or error) per input."""
        answers = []
        for item, result in zip(items, await self.outputs(items), strict=True):
            metadata = item.get("metadata") if isinstance(item, dict) else None
            destination = item.get("destination") if isinstance(item, dict) else None
            answer: dict[str, Any] = {"metadata": [metadata], "batched": False, "destination": destination}
            if isinstance(result, GsdError):
                answer.update(
                    statusCode=error_status(result),
                    error=error_text(result),
                    statTags=stat_tags(result, "router"),
                )
            else:
                answer.update(batchedRequest=result, statusCode=200)
            answers.append(answer)
        return answers
