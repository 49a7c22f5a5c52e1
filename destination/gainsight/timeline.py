"""track → Timeline activity (DESIGN §3.6): the plan, and the sink that performs it.

The plan (pure): one record for `POST /v1/ant/es/activity` — `ExternalId` = the messageId,
`ContextName` Company, `TypeName` the configured type, `Subject` the event name, `Notes` the
properties as `key: value` lines (keys sorted; objects and arrays as compact JSON), `ActivityDate`
the event's `timestamp` (else `originalTimestamp`) in epoch ms, `Author` the configured user. The
company's Gsid is found at delivery (CompanyFinder); with `alsoPublish`, the §3.4 publish too.

The sink (`ActivityWriter`), for one event in its place in the person's order:

    activity written by an earlier try (Progress)        → skip to the publish
    no company found                                     → rejected, "no company: …"
    activity saved                                       → written
    refused as a duplicate ExternalId                    → written by an earlier try whose answer
                                                           was lost (a timeout, a crash): delivered
    any other failure                                    → that failure (retried or dead)
    written, alsoPublish                                 → one publish; should it fail, the next
                                                           try remembers the activity is written

Gainsight keeps ExternalId unique per tenant, so an activity is never written twice; the publish is
made once the activity is written and only then, and a try that delivers it finishes the event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from destination.config import DestinationConfig
from destination.config_track import TrackRoute
from destination.errors import ConfigError, EventError, GainsightError, OverBudget, UnmappedEventError
from destination.gainsight import endpoints as ep
from destination.gainsight.jobs import Batch, Call, Caller, Fate, Job, Progress
from destination.gainsight.outcomes import Answer, classify, describe
from destination.gainsight.plan import Kind, Request, TrackPlan, plan_track
from destination.gainsight.track_company import CompanyFinder, CompanySource, company_source
from destination.jsonutil import js_json_text
from destination.mapping.engine import Diagnostic

_JSON_HEADERS: Mapping[str, str] = MappingProxyType({"Content-Type": ep.JSON_CONTENT_TYPE})
# Words a refusal of a duplicate ExternalId is recognised by, beside the ExternalId itself: the
# exact code Gainsight answers with is not documented (reference §8 [U]).
_DUPLICATE_WORDS = ("already exist", "duplicate", "unique")


def timeline_activity(domain: str, record: Mapping[str, Any]) -> Request:
    """Save one Timeline activity (reference §8): one record a call, no lookups (the record
    carries the company's Gsid itself)."""
    body = {"records": [dict(record)], "lookups": {}}
    return Request("timeline activity", "POST", domain, ep.ACTIVITY_PATH, _JSON_HEADERS, body)


@dataclass(frozen=True, slots=True)
class ActivityPlan:
    """Write one Timeline activity on the person's company, then publish it too when configured."""

    domain: str
    record: Mapping[str, Any]  # every field but GsCompanyId, which is found at delivery
    company: CompanySource
    publish: TrackPlan | None  # alsoPublish: the §3.4 publish, made once the activity is written
    kind: Kind = "track"
    diagnostics: tuple[Diagnostic, ...] = ()

    @property
    def external_id(self) -> str:
        return str(self.record["ExternalId"])

    def request(self, gsid: str) -> Request:
        return timeline_activity(self.domain, {**self.record, "GsCompanyId": gsid})


def notes(properties: Mapping[str, Any]) -> str:
    """The properties as `key: value` lines, keys sorted; a string as it is, anything else
    (objects, arrays, numbers, true/false/null) as compact JSON, as JSON.stringify writes it."""
    return "\n".join(
        f"{key}: {value if isinstance(value, str) else js_json_text(value)}"
        for key, value in sorted(properties.items())
    )


def activity_date(event: Mapping[str, Any]) -> int:
    """The event's `timestamp` (else `originalTimestamp`: when the SDK saw it) in epoch ms. ISO
    8601 text (an offset or Z; none means UTC) or epoch milliseconds."""
    for name in ("timestamp", "originalTimestamp"):
        value = event.get(name)
        if value is None or value == "":
            continue
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                when = datetime.fromisoformat(value.strip())
            except ValueError:
                raise EventError(f"{name} must be an ISO 8601 time, got {value!r:.60}") from None
            when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
            return round(when.timestamp() * 1000)
        raise EventError(f"{name} must be an ISO 8601 time or epoch milliseconds, got {value!r:.60}")
    raise EventError("timestamp is required for a Timeline activity: it is the activity's date")


def _external_id(event: Mapping[str, Any]) -> str:
    message_id = event.get("messageId")
    if isinstance(message_id, bool) or not isinstance(message_id, str | int) or message_id == "":
        raise EventError("messageId is required for a Timeline activity: it is the activity's ExternalId")
    return str(message_id)


def _properties(event: Mapping[str, Any]) -> Mapping[str, Any]:
    properties = event.get("properties")
    if properties is None:
        return {}
    if not isinstance(properties, dict):
        raise EventError(f"properties must be a JSON object, got {type(properties).__name__}")
    return properties


def _also_published(event: Mapping[str, Any], config: DestinationConfig) -> TrackPlan:
    try:
        return plan_track(event, config)
    except UnmappedEventError as exc:
        # Asked for by the timeline config: a setting to fix, not an event to filter.
        raise ConfigError(f"timeline alsoPublish: {exc.message}") from None


def plan_activity(event: Mapping[str, Any], config: DestinationConfig, route: TrackRoute) -> ActivityPlan:
    """The plan of a track that `route` sends to the Timeline; EventError / ConfigError when it
    cannot be planned."""
    activity, timeline = route.activity, config.timeline
    assert activity is not None and timeline is not None
    if not config.access_key:
        raise ConfigError("accessKey is required for Timeline activities")
    if not config.domain:
        raise ConfigError("domain is required for Timeline activities")
    properties = _properties(event)
    record: dict[str, Any] = {
        "ExternalId": _external_id(event),
        "ContextName": "Company",
        "TypeName": activity.type,
        "Subject": activity.event,
        "ActivityDate": activity_date(event),
        "Author": timeline.author,
    }
    if properties:
        record["Notes"] = notes(properties)
    publish = _also_published(event, config) if route.publish else None
    return ActivityPlan(config.domain, MappingProxyType(record), company_source(event, config), publish)


def refused_as_duplicate(answer: Answer, external_id: str) -> bool:
    """Whether Gainsight refused the insert because an activity with this ExternalId exists: a
    4xx whose error text names the ExternalId and says so (the code is undocumented, [U])."""
    if answer.status is None or not 400 <= answer.status < 500 or answer.status in (401, 403, 429):
        return False
    text = " ".join(t for t in (answer.error_code, answer.error_desc) if t)
    return external_id in text and any(word in text.lower() for word in _DUPLICATE_WORDS)


def _no_company(source: CompanySource) -> GainsightError:
    if source.key_field is None or source.key_value is None:
        why = "the person was never associated with a company by a group event"
    else:
        why = (
            "the person was never associated with a company by a group event, and no single "
            f"Company has {source.key_field} = {source.key_value} (context.groupId)"
        )
    return GainsightError(f"no company: {why}", outcome="aborted")


class ActivityWriter:
    """The Timeline sink: a track's activity, then its publish when asked for (module docstring)."""

    def __init__(self, caller: Caller, finder: CompanyFinder) -> None:
        self._caller = caller
        self._finder = finder

    async def deliver(self, batch: Batch, job: Job) -> Fate:
        plan = job.plan
        assert isinstance(plan, ActivityPlan)
        note: str | None = None
        call: Call | None = None
        if not job.progress.activity_written:
            gsid = await self._finder.find(batch, job, plan.company)
            if gsid is None:
                return Fate("rejected", error=_no_company(plan.company))
            call = await self._caller.call(batch, plan.request(gsid))
            if refused_as_duplicate(call.answer, plan.external_id):
                note = f"saved by an earlier attempt; refused now as a duplicate: {describe(call.answer)}"
            elif classify(call.answer) != "delivered":
                return self._caller.failed(call)
        if plan.publish is None:
            return Fate("delivered", call, note=note)
        return await self._publish(batch, plan.publish, note)

    async def _publish(self, batch: Batch, publish: TrackPlan, note: str | None) -> Fate:
        """The publish of an event whose activity is written: a later try only publishes."""
        written = Progress(activity_written=True)
        try:
            call = await self._caller.call(batch, publish.request)
        except OverBudget as exc:
            return Fate("deferred", progress=written, retry_at=exc.retry_at)
        if classify(call.answer) == "delivered":
            return Fate("delivered", call, note=note)
        failed = self._caller.failed(call)
        return Fate(failed.outcome, call, failed.error, progress=written)
