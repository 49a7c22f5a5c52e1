"""The /status page's small charts, as inline SVG (no script, no outside asset): pure functions
from numbers to markup. Each chart is an image with a title and a description that says what it
shows in words (screen readers, and anyone who would rather read), and its numbers are in the
page's tables too."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 360.0, 120.0
LEFT, BOTTOM, TOP = 34.0, 16.0, 8.0  # room for the axis labels
OUTCOME_COLOURS = {
    "delivered": "#2f855a",
    "unchanged": "#68d391",
    "counted": "#3182ce",
    "filtered": "#a0aec0",
    "rejected": "#dd6b20",
    "dead": "#c53030",
}
OTHER_COLOUR = "#805ad5"


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: its stacked parts, bottom first, as (label, value, colour)."""

    parts: tuple[tuple[str, float, str], ...]

    @property
    def total(self) -> float:
        return sum(value for _, value, _ in self.parts)


def _frame(chart_id: str, title: str, description: str, body: str) -> Markup:
    return Markup(
        f'<svg class="chart" id="{escape(chart_id)}" role="img" viewBox="0 0 {WIDTH:g} {HEIGHT:g}" '
        f'width="{WIDTH:g}" height="{HEIGHT:g}" aria-labelledby="{escape(chart_id)}-title '
        f'{escape(chart_id)}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>'
        f'<desc id="{escape(chart_id)}-desc">{escape(description)}</desc>{body}</svg>'
    )


def _y(value: float, top: float) -> float:
    """The height of `value` on a plot whose top is `top`."""
    plot = HEIGHT - BOTTOM - TOP
    return HEIGHT - BOTTOM - (value / top * plot if top > 0 else 0.0)


def _axes(top: float, left_label: str, right_label: str) -> str:
    base = HEIGHT - BOTTOM
    return (
        f'<line x1="{LEFT:g}" y1="{base:g}" x2="{WIDTH:g}" y2="{base:g}" stroke="#8a94a6"/>'
        f'<text x="{LEFT - 3:g}" y="{TOP + 8:g}" font-size="9" text-anchor="end" fill="#4a5568">'
        f"{escape(_number(top))}</text>"
        f'<text x="{LEFT - 3:g}" y="{base:g}" font-size="9" text-anchor="end" fill="#4a5568">0</text>'
        f'<text x="{LEFT:g}" y="{HEIGHT - 3:g}" font-size="9" fill="#4a5568">{escape(left_label)}</text>'
        f'<text x="{WIDTH:g}" y="{HEIGHT - 3:g}" font-size="9" text-anchor="end" fill="#4a5568">'
        f"{escape(right_label)}</text>"
    )


def bars(
    chart_id: str,
    title: str,
    description: str,
    columns: Sequence[Bar],
    *,
    limit: float | None = None,
    limit_label: str = "",
    span: tuple[str, str] = ("", ""),
) -> Markup:
    """Stacked bars, one a column, optionally with a dashed limit line (the budget)."""
    top = max([*(c.total for c in columns), limit or 0.0, 1.0]) * 1.1
    width = (WIDTH - LEFT) / max(len(columns), 1)
    shapes = [_axes(top, *span)]
    for i, column in enumerate(columns):
        bottom = 0.0
        for label, value, colour in column.parts:
            if value <= 0:
                continue
            y_top, y_bottom = _y(bottom + value, top), _y(bottom, top)
            shapes.append(
                f'<rect x="{LEFT + i * width + 0.5:.1f}" y="{y_top:.1f}" width="{max(width - 1, 0.5):.1f}" '
                f'height="{y_bottom - y_top:.1f}" fill="{colour}"><title>{escape(label)}: '
                f"{escape(_number(value))}</title></rect>"
            )
            bottom += value
    if limit is not None:
        y = _y(limit, top)
        shapes.append(
            f'<line class="limit" x1="{LEFT:g}" y1="{y:.1f}" x2="{WIDTH:g}" y2="{y:.1f}" '
            f'stroke="#c53030" stroke-dasharray="4 3"/>'
            f'<text x="{WIDTH - 2:g}" y="{y - 2:.1f}" font-size="9" text-anchor="end" fill="#c53030">'
            f"{escape(limit_label)}</text>"
        )
    return _frame(chart_id, title, description, "".join(shapes))


def line(
    chart_id: str,
    title: str,
    description: str,
    past: Sequence[tuple[float, float]],
    future: Sequence[tuple[float, float]],
    *,
    span: tuple[str, str] = ("", ""),
) -> Markup:
    """A line through (x in 0..1, value) points: `past` solid, `future` dashed, from a marked now
    (the last of `past`, the first of `future`)."""
    top = max([v for _, v in (*past, *future)] + [1.0]) * 1.1

    def points(values: Sequence[tuple[float, float]]) -> str:
        return " ".join(f"{LEFT + x * (WIDTH - LEFT):.1f},{_y(v, top):.1f}" for x, v in values)

    now_x, now_v = future[0] if future else past[-1] if past else (0.0, 0.0)
    body = (
        _axes(top, *span) + f'<polyline class="history" points="{points(past)}" fill="none" stroke="#1d2430" '
        f'stroke-width="1.5"/>'
        + f'<polyline class="projection" points="{points(future)}" fill="none" stroke="#3182ce" '
        f'stroke-width="2" stroke-dasharray="5 3"/>'
        f'<circle cx="{LEFT + now_x * (WIDTH - LEFT):.1f}" cy="{_y(now_v, top):.1f}" r="3" fill="#1d2430">'
        f"<title>now: {escape(_number(now_v))}</title></circle>"
    )
    return _frame(chart_id, title, description, body)


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 10 or value == int(value) else f"{value:.1f}"
