"""The /status charts (charts.py, status_capacity.py): accessible inline SVG from numbers."""

from __future__ import annotations

import re

from destination.capacity_facts import History
from destination.charts import HEIGHT, Bar, bars
from destination.status_capacity import (
    backlog_chart,
    backlog_history,
    calls_chart,
    duration,
    finished_chart,
    projected,
)

NOW = 1_796_558_400.0  # 2026-12-06T18:00:00Z, a minute and an hour boundary


def test_a_chart_is_an_image_named_by_its_title_and_description_escaped() -> None:
    svg = str(bars("x-1", "Calls <a>", "1 & 2", [Bar((("calls", 3.0, "#000"),))]))
    assert svg.startswith('<svg class="chart" id="x-1" role="img"')
    assert 'aria-labelledby="x-1-title x-1-desc"' in svg
    assert '<title id="x-1-title">Calls &lt;a&gt;</title>' in svg
    assert '<desc id="x-1-desc">1 &amp; 2</desc>' in svg
    assert "href" not in svg and "<script" not in svg


def test_the_budget_line_sits_at_the_limit_above_the_bars_below_it() -> None:
    past = History(60.0, {NOW - 60: 50, NOW: 100}, 100, NOW - 23 * 3600, {}, {})
    svg = str(calls_chart("acme", past, NOW))
    assert svg.count("<rect") == 2  # minutes without a call draw nothing
    limit_y = float(re.search(r'class="limit" x1="[\d.]+" y1="([\d.]+)"', svg).group(1))  # type: ignore[union-attr]
    tops = sorted(float(y) for y in re.findall(r'<rect x="[\d.]+" y="([\d.]+)"', svg))
    assert tops[0] == limit_y  # the full minute reaches the line
    assert tops[1] > limit_y and tops[1] < HEIGHT  # half of it: below
    assert "150 calls in the last hour; at most 100 in one minute" in svg


def test_finished_bars_stack_by_outcome() -> None:
    finished = {(23, "delivered"): 5, (23, "dead"): 1, (0, "rejected"): 2}
    past = History(60.0, {}, 100, NOW - 23 * 3600, finished, {})
    svg = str(finished_chart("acme", past))
    assert "Finished in the last day: 5 delivered, 2 rejected, 1 dead." in svg
    assert svg.count("<rect") == 3
    assert "<title>dead: 1</title>" in svg


def test_the_backlog_projection_grows_or_clears() -> None:
    assert projected(100, None, 2400, 3600) == 200
    assert projected(100, 7200, -1200, 3600) == 50
    assert projected(100, 7200, -1200, 7200) == 0
    quiet = History(60.0, {}, 100, NOW - 23 * 3600, {}, {})
    grows = {"backlogEvents": 100, "backlogClearsInSeconds": None, "backlogGrowthPerDay": 2400}
    growing = str(backlog_chart("acme", grows, quiet, NOW))
    assert "100 events queued now; it grows by 2,400 a day: 2,500 in 24 hours." in growing
    clears = {"backlogEvents": 100, "backlogClearsInSeconds": 4000, "backlogGrowthPerDay": -2160}
    assert "it clears in 1 h 6 min" in str(backlog_chart("acme", clears, quiet, NOW))


def test_the_backlog_of_the_last_day_is_now_less_what_arrived_plus_what_finished() -> None:
    # 40 stored in the hour before last, 10 finished in it, 5 finished in the current hour.
    past = History(60.0, {}, 100, NOW - 23 * 3600, {(22, "delivered"): 10, (23, "dead"): 5}, {22: 40})
    assert backlog_history(25.0, past, NOW)[-3:] == [(NOW - 3600, 0.0), (NOW, 30.0), (NOW, 25.0)]
    svg = str(
        backlog_chart(
            "acme", {"backlogEvents": 25, "backlogClearsInSeconds": 60, "backlogGrowthPerDay": 0}, past, NOW
        )
    )
    assert 'class="history"' in svg and 'class="projection"' in svg
    assert "At most 30 queued in the last 24 hours" in svg


def test_durations_for_people() -> None:
    assert [duration(s) for s in (None, 40, 720, 12_000, 190_000)] == [
        "never",
        "40 s",
        "12 min",
        "3 h 20 min",
        "2 d 4 h",
    ]
