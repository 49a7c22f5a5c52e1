"""The sections of a destination's config that are this service's own, beyond RudderStack's
dashboard: `companyIdentity` (how companies are keyed, DESIGN §3.3), `timeline` (the track events a
CSM should see, as Timeline activities, §3.6) and `usage` (product usage as daily counts per company
in a Gainsight object, §3.7). `track_route` is the one rule that picks where a track event goes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from destination.gainsight.emails import looks_like_email
from destination.mapping.spec import default_specs

CUSTOM_SUFFIX = "__gc"
EVERY_TRACK = "*"


_TRAIT_SOURCE = re.compile(r"traits\.[^.\s]+")


class CompanyIdentity(BaseModel):
    """`companyIdentity` (DESIGN §3.3): the Company field that identifies a company, where a group
    event's value for it is, and whether an unknown one may be created. Without it: Name."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    field: str
    from_: str = Field("groupId", alias="from")
    create: bool = True

    @field_validator("field")
    @classmethod
    def _company_field(cls, value: str) -> str:
        value = value.strip()
        if not value.endswith(CUSTOM_SUFFIX) and value not in default_specs().company.standard_fields:
            raise ValueError(
                f"{value!r} must be a standard Company field (SfdcAccountId, say) or a custom one "
                f"ending in {CUSTOM_SUFFIX}"
            )
        if value == "Name":
            raise ValueError("Name is the default key: leave companyIdentity out to key companies by Name")
        return value

    @field_validator("from_")
    @classmethod
    def _source(cls, value: str) -> str:
        value = value.strip()
        if value != "groupId" and not _TRAIT_SOURCE.fullmatch(value):
            raise ValueError(f"expected groupId or traits.<name>, got {value!r}")
        return value

    @property
    def path(self) -> tuple[str, ...]:  # where a group event holds the key's value
        return tuple(self.from_.split(".", 1))


def _name(value: str, what: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError(f"{what} must not be empty")
    return value


class TimelineActivity(BaseModel):
    """One allow-listed track event and the tenant's activity type it becomes."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    event: str
    type: str
    also_publish: bool = Field(False, alias="alsoPublish")

    @field_validator("event", "type")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        return _name(value, "the name")


class TimelineConfig(BaseModel):
    """`timeline`: the track events written as Timeline activities, and their author."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)
    author: str
    activities: tuple[TimelineActivity, ...] = ()

    @field_validator("author")
    @classmethod
    def _email(cls, value: str) -> str:
        value = value.strip()
        if not looks_like_email(value):
            raise ValueError(f"expected the email of a Gainsight user, got {value!r}")
        return value

    @model_validator(mode="after")
    def _unique_events(self) -> TimelineConfig:
        seen: set[str] = set()
        for i, activity in enumerate(self.activities):
            if activity.event in seen:
                raise ValueError(f"activities[{i}].event: {activity.event!r} is listed twice")
            seen.add(activity.event)
        return self

    def activity(self, event_name: str) -> TimelineActivity | None:
        return next((a for a in self.activities if a.event == event_name), None)


class UsageFields(BaseModel):
    """The usage object's fields: the company lookup, the day, the metric (event name), the count."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    company: str
    date: str
    metric: str
    count: str

    @field_validator("company", "date", "metric", "count")
    @classmethod
    def _field(cls, value: str) -> str:
        return _name(value, "a field name")


class UsageConfig(BaseModel):
    """`usage`: track events counted per company and UTC day in a Low Volume custom object."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    object: str
    fields: UsageFields
    events: tuple[str, ...]
    publish: bool = False

    @field_validator("object")
    @classmethod
    def _custom_object(cls, value: str) -> str:
        value = value.strip()
        if not value.endswith(CUSTOM_SUFFIX):
            raise ValueError(f"expected a custom object's API name ending in {CUSTOM_SUFFIX}, got {value!r}")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = tuple(_name(v, "an event name") for v in value)
        if not names:
            raise ValueError('expected at least one event name, or ["*"] for every track event')
        if EVERY_TRACK in names and len(names) > 1:
            raise ValueError('"*" counts every track event: list it alone')
        return names

    def counts(self, event_name: str) -> bool:
        return self.events == (EVERY_TRACK,) or event_name in self.events


def overlap_problems(timeline: TimelineConfig | None, usage: UsageConfig | None) -> list[str]:
    """An event both written to Timeline and counted: a configuration error naming it."""
    if timeline is None or usage is None or usage.events == (EVERY_TRACK,):
        return []  # "*" counts every track that is not a Timeline activity
    return [
        f"usage.events: {a.event!r} is also a timeline activity; an event goes to one of them"
        for a in timeline.activities
        if a.event in usage.events
    ]


Sink = Literal["publish", "timeline", "usage"]


@dataclass(frozen=True, slots=True)
class TrackRoute:
    """Where one track event goes: its sink, whether it is also published to the Events
    Framework (§3.4), and its Timeline activity when the sink is Timeline."""

    sink: Sink
    publish: bool
    activity: TimelineActivity | None = None


PUBLISH_ONLY = TrackRoute("publish", True)


def track_route(timeline: TimelineConfig | None, usage: UsageConfig | None, event_name: str) -> TrackRoute:
    """A Timeline activity first (its alsoPublish), else a counted event (usage.publish), else
    published as the reference does."""
    activity = timeline.activity(event_name) if timeline is not None else None
    if activity is not None:
        return TrackRoute("timeline", activity.also_publish, activity)
    if usage is not None and usage.counts(event_name):
        return TrackRoute("usage", usage.publish)
    return PUBLISH_ONLY


def shared_usage_objects(destinations: Iterable[tuple[str, str | None, UsageConfig | None]]) -> list[str]:
    """Two destinations counting into one object of one tenant: each writes its own absolute
    counts to the same rows (company, date, metric), so each would overwrite the other's."""
    owners: dict[tuple[str, str], list[str]] = {}
    for destination_id, domain, usage in destinations:
        if usage is not None and domain:
            owners.setdefault((domain, usage.object), []).append(destination_id)
    return [
        f"destinations {', '.join(ids)} all count usage into {obj} on {domain}: their counts would "
        "overwrite each other's rows; count in one of them, or give each its own object"
        for (domain, obj), ids in owners.items()
        if len(ids) > 1
    ]
