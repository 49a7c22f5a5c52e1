"""track → Timeline activity (DESIGN §3.6), the plan: pure, as plan.py is.

One record for `POST /v1/ant/es/activity`: `ExternalId` = the messageId, `ContextName` Company,
`TypeName` the configured type, `Subject` the event name, `Notes` the properties as `key: value`
lines (keys sorted; objects and arrays as compact JSON), `ActivityDate` the event's time in epoch
ms (event_time.py: `timestamp`, else `originalTimestamp`, else when it was received), `Author` the
configured user. The company's Gsid is found at delivery (track_company.py); with `alsoPublish`,
the §3.4 publish too. What performs the plan is timeline_writer.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from destination.config import DestinationConfig
from destination.config_sections import TrackRoute
from destination.errors import ConfigError, EventError, UnmappedEventError
from destination.event_time import event_time_ms
from destination.gainsight import endpoints as ep
from destination.gainsight.company_source import CompanySource, company_source
from destination.gainsight.outcomes import Answer
from destination.gainsight.requests import Kind, Request, Step
from destination.gainsight.track_plan import TrackPlan, plan_track, track_properties
from destination.jsonutil import js_json_text
from destination.mapping.engine import Diagnostic

ACTIVITY_STEP: Step = "timeline activity"  # the budget gate sends these calls to Timeline's class
_JSON_HEADERS: Mapping[str, str] = MappingProxyType({"Content-Type": ep.JSON_CONTENT_TYPE})
# Words a refusal of a duplicate ExternalId is recognised by, beside the ExternalId itself: the
# exact code Gainsight answers with is not documented (reference §8 [U]).
_DUPLICATE_WORDS = ("already exist", "duplicate", "unique")


def timeline_activity(domain: str, record: Mapping[str, Any]) -> Request:
    """Save one Timeline activity (reference §8): one record a call, no lookups (the record
    carries the company's Gsid itself)."""
    body = {"records": [dict(record)], "lookups": {}}
    return Request(ACTIVITY_STEP, "POST", domain, ep.ACTIVITY_PATH, _JSON_HEADERS, body)


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

    def request(self, gsid: str, received_at: float | None) -> Request:
        """The call, on the company found; an event without a time is dated when received (the
        dry run, which has not received it, says so)."""
        record = {**self.record, "GsCompanyId": gsid}
        if record["ActivityDate"] is None:
            record["ActivityDate"] = "when received" if received_at is None else round(received_at * 1000)
        return timeline_activity(self.domain, record)


def notes(properties: Mapping[str, Any]) -> str:
    """The properties as `key: value` lines, keys sorted; a string as it is, anything else
    (objects, arrays, numbers, true/false/null) as compact JSON, as JSON.stringify writes it."""
    return "\n".join(
        f"{key}: {value if isinstance(value, str) else js_json_text(value)}"
        for key, value in sorted(properties.items())
    )


def _external_id(event: Mapping[str, Any]) -> str:
    message_id = event.get("messageId")
    if isinstance(message_id, bool) or not isinstance(message_id, str | int) or message_id == "":
        raise EventError("messageId is required for a Timeline activity: it is the activity's ExternalId")
    return str(message_id)


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
    properties = track_properties(event)
    record: dict[str, Any] = {
        "ExternalId": _external_id(event),
        "ContextName": "Company",
        "TypeName": activity.type,
        "Subject": activity.event,
        "ActivityDate": event_time_ms(event),  # None: when received (ActivityPlan.request)
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
    # As sent, or escaped as JSON (ASCII-only or not) or a repr would quote it
    quoted = (js_json_text(external_id), json.dumps(external_id), repr(external_id))
    spellings = {external_id, *(q[1:-1] for q in quoted)}
    named = any(re.search(rf"(?<![\w-]){re.escape(s)}(?![\w-])", text) for s in spellings if s)
    return named and any(word in text.lower() for word in _DUPLICATE_WORDS)
