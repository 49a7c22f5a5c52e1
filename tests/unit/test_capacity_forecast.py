"""The capacity forecast (capacity.py): facts in, the DESIGN §6 answer out. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from destination.capacity import DAY, Budget, EventLoad, Facts, Route, forecast, lever_for
from destination.delivery.capacity_views import Arrival, Arrivals, CallCost

NOW = 1_796_515_200.0 + 6 * 3600  # 2026-12-06T06:00:00Z: early in a UTC day
BUDGET = Budget(per_day=50_000, per_minute=100, max_age_seconds=86_400.0)


def facts(
    destination: str = "acme",
    *,
    sample: tuple[Arrival, ...] = (),
    costs: tuple[CallCost, ...] = (),
    backlog: int = 0,
    oldest: float | None = None,
    calls_today: int = 0,
    tenant: str = "acme.gainsightcloud.com",
    routes: Mapping[str, Route] | None = None,
) -> Facts:
    """Arrivals over a whole day, so that `sample` counts are events a day."""
    total = sum(a.events for a in sample)
    return Facts(
        destination=destination,
        tenant=tenant,
        now=NOW,
        window_seconds=DAY,
        arrivals=Arrivals(total, sample),
        costs=costs,
        backlog=backlog,
        oldest_queued_at=oldest,
        calls_today=calls_today,
        routes=routes or {},
    )


def product_usage(**kwargs: object) -> Facts:
    """The issue's example: 1,000 users x 100 events a day, each published (one call)."""
    return facts(
        sample=(Arrival("track", "Report Exported", 100_000, 0),),
        costs=(CallCost("track", "Report Exported", 500, 500.0),),
        **kwargs,  # type: ignore[arg-type]
    )


def test_the_issue_example_does_not_fit_and_its_backlog_grows_by_a_day_of_budget() -> None:
    [answer] = forecast([product_usage()], BUDGET)
    assert answer["fits"] is False
    assert answer["callsNeededPerDay"] == 100_000
    assert answer["dailyBudget"] == 50_000
    assert answer["callsPerEvent"] == 1.0
    assert answer["arrivalPerMinute"] == pytest.approx(69.44, abs=0.01)
    assert answer["backlogClearsInSeconds"] is None
    assert answer["backlogGrowthPerDay"] == 50_000  # half of each day's events wait
    assert answer["byEvent"] == [
        {
            "type": "track",
            "event": "Report Exported",
            "eventsPerDay": 100_000.0,
            "callsPerDay": 100_000.0,
            "lever": "usage",
        }
    ]
    # Nothing queued yet: the wait reaches a day once a day's worth of events waits (one day
    # from now), and the first of those passes the age a day later.
    assert answer["agingOutAt"] == "2026-12-08T06:00:00.000Z"
    # 100,000 calls a day spend the 50,000 of the day in half a day.
    assert answer["dailyCapReachedAt"] == "2026-12-06T18:00:00.000Z"


def test_a_quiet_destination_fits_with_nothing_to_forecast() -> None:
    quiet = facts(
        sample=(Arrival("identify", None, 240, 0),),
        costs=(CallCost("identify", None, 100, 50.0),),  # person runs: two events a call
    )
    [answer] = forecast([quiet], BUDGET)
    assert answer["fits"] is True
    assert answer["callsPerEvent"] == 0.5
    assert answer["callsNeededPerDay"] == 120
    assert answer["backlogEvents"] == 0
    assert answer["backlogClearsInSeconds"] == 0
    assert answer["backlogGrowthPerDay"] == 0
    assert answer["dailyCapReachedAt"] is None
    assert answer["oldestQueuedAgeSeconds"] is None
    assert answer["agingOutAt"] is None
    assert answer["byEvent"][0]["lever"] is None  # identify: runs and unchanged-skipping cut it


def test_a_backlog_that_fits_is_sent_at_the_per_minute_limit() -> None:
    loaded = facts(
        sample=(Arrival("track", "Seat Added", 1_000, 0),),
        costs=(CallCost("track", "Seat Added", 10, 10.0),),
        backlog=49_000,
        oldest=NOW - 600,
    )
    [answer] = forecast([loaded], BUDGET)
    assert answer["fits"] is True
    # 144,000 calls a day at 100 a minute, 1,000 of them for what arrives meanwhile.
    assert answer["backlogClearsInSeconds"] == round(49_000 / 143_000 * DAY)
    assert answer["backlogGrowthPerDay"] == -143_000
    assert answer["oldestQueuedAgeSeconds"] == 600
    assert answer["agingOutAt"] is None
    assert answer["dailyCapReachedAt"] is None  # 49,343 calls, then 1,000 a day: not today


def test_a_backlog_past_the_day_window_waits_for_the_next_one() -> None:
    loaded = facts(
        sample=(Arrival("track", "Seat Added", 1_000, 0),),
        costs=(CallCost("track", "Seat Added", 10, 10.0),),
        backlog=80_000,
    )
    [answer] = forecast([loaded], BUDGET)
    # Today's 50,000 calls go in 500 minutes (06:00 to 14:20), then nothing until midnight;
    # what is left then (30,000 + 18 hours of arrivals) goes at 143,000 a day net.
    assert answer["dailyCapReachedAt"] == "2026-12-06T14:20:00.000Z"
    left = 80_000 - 50_000 + 1_000 * 18 / 24
    assert answer["backlogClearsInSeconds"] == round(18 * 3600 + left / 143_000 * DAY)
    assert answer["fits"] is True


def test_events_already_older_than_the_max_age_are_aging_out_now() -> None:
    stale = product_usage(backlog=10, oldest=NOW - 90_000)
    [answer] = forecast([stale], BUDGET)
    assert answer["agingOutAt"] == "2026-12-06T05:00:00.000Z"  # the oldest passed it an hour ago


def test_the_cap_already_spent_is_reached_now_and_unmeasured_events_cost_their_type() -> None:
    spent = facts(
        sample=(Arrival("track", "New Event", 10, 0),),
        costs=(CallCost("track", "Old Event", 4, 2.0),),
        calls_today=50_000,
    )
    [answer] = forecast([spent], BUDGET)
    assert answer["dailyCapReachedAt"] == "2026-12-06T06:00:00.000Z"
    assert answer["callsPerEvent"] == 0.5  # what a track cost lately


def test_destinations_of_one_tenant_share_its_budget() -> None:
    loud = product_usage()
    quiet = facts("quiet", sample=(Arrival("identify", None, 10, 0),))
    elsewhere = facts("elsewhere", sample=(Arrival("identify", None, 10, 0),), tenant="globex")
    answers = {a["destination"]: a for a in forecast([loud, quiet, elsewhere], BUDGET)}
    assert answers["acme"]["fits"] is False
    assert answers["quiet"]["fits"] is False  # its calls wait behind the loud one's
    assert answers["elsewhere"]["fits"] is True


def test_the_newest_arrivals_mix_scales_to_every_arrival() -> None:
    sampled = facts(sample=(Arrival("track", "A", 30, 0), Arrival("group", None, 10, 0)))
    sampled = replace(sampled, arrivals=Arrivals(400, sampled.arrivals.sample))  # 40 of 400 read
    [answer] = forecast([sampled], BUDGET)
    assert [(e["type"], e["eventsPerDay"]) for e in answer["byEvent"]] == [("track", 300.0), ("group", 100.0)]


def load(per_day: float, anonymous: float = 0.0, kind: str = "track", calls: float = 1.0) -> EventLoad:
    return EventLoad(kind, "E" if kind == "track" else None, per_day, calls, anonymous)


@pytest.mark.parametrize(
    ("event", "route", "lever"),
    [
        (load(5_000), "publish", "usage"),  # frequent: a count per company and day
        (load(100), "publish", "timeline"),  # rare: a CSM reads each one
        (load(5_000, anonymous=0.8), "publish", "filter"),  # no company to count it against
        (load(5_000), "usage", None),  # already counted
        (load(5_000), "usage+publish", "usage"),  # counted, and published too
        (load(10), "timeline+publish", "timeline"),
        (load(10), "timeline", None),
        (load(5_000, kind="identify"), "publish", None),
        (load(5_000, calls=0.0), "publish", None),  # costs nothing (filtered, unchanged)
    ],
)
def test_levers(event: EventLoad, route: Route, lever: str | None) -> None:
    assert lever_for(event, route) == lever


def test_counted_events_not_yet_measured_cost_no_call_of_their_own() -> None:
    counted = facts(
        sample=(Arrival("track", "Report Exported", 100_000, 0),), routes={"Report Exported": "usage"}
    )
    [answer] = forecast([counted], BUDGET)
    assert answer["fits"] is True
    assert answer["callsNeededPerDay"] == 0
    assert answer["byEvent"][0]["lever"] is None
    published = facts(sample=(Arrival("track", "Report Exported", 100_000, 0),))
    assert forecast([published], BUDGET)[0]["callsNeededPerDay"] == 100_000  # a call each, unmeasured


def test_a_new_published_track_costs_what_published_tracks_cost_not_counted_ones() -> None:
    mixed = facts(
        sample=(Arrival("track", "Signed Up", 1_000, 0),),
        costs=(
            CallCost("track", "Report Exported", 9_000, 0.0),
            CallCost("track", "Ticket Closed", 1_000, 1_000.0),
        ),
        routes={"Report Exported": "usage"},
    )
    [answer] = forecast([mixed], BUDGET)
    assert answer["callsNeededPerDay"] == 1_000  # one call each, not a tenth of one


@pytest.mark.parametrize(("counts_toward_day", "needed"), [(True, 2_000), (False, 500)])
def test_timeline_activities_spend_the_daily_budget_only_when_they_count_toward_it(
    counts_toward_day: bool, needed: int
) -> None:
    meetings = facts(
        sample=(Arrival("track", "Meeting Booked", 1_000, 0), Arrival("track", "Demo Given", 500, 0)),
        costs=(
            CallCost("track", "Meeting Booked", 100, 100.0),  # an activity each
            CallCost("track", "Demo Given", 100, 200.0),  # an activity and a publish each
        ),
        routes={"Meeting Booked": "timeline", "Demo Given": "timeline+publish"},
    )
    budget = replace(BUDGET, timeline_counts_toward_day=counts_toward_day)
    [answer] = forecast([meetings], budget)
    assert answer["callsNeededPerDay"] == needed  # 1,000 + 2 x 500, or the 500 publishes alone
    by_event = {e["event"]: e["callsPerDay"] for e in answer["byEvent"]}
    assert by_event == {"Meeting Booked": 1_000, "Demo Given": 1_000}  # every call, whatever its class
