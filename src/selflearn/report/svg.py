"""Tiny inline-SVG charts for the static report: a line chart (one or more series over the same
labelled x positions) and a horizontal bar chart. No plotting library, no script, no network:
the markup is computed here and pasted into the page.

Every chart is ``<svg class="plot" data-points="N" ...>`` with ``N`` the number of data points
drawn, a ``<title>`` (the chart's name, read by screen readers) and one ``<title>`` per point
(a browser shows it on hover).

>>> svg = bar_chart([("kitchen", 0.25), ("bedroom", 0.5)], title="defect rate by area")
>>> 'data-points="2"' in svg and "<title>defect rate by area</title>" in svg
True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ("#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#bc4c00", "#0550ae", "#6e7781")
"""Series colours, in order (readable on white, distinct for the common colour blindnesses
in the first four)."""


@dataclass(frozen=True)
class Series:
    """One line of a :func:`line_chart`."""

    name: str
    """Shown in the legend and in each point's hover title."""
    values: Sequence[float | None]
    """One value per x label (``None``: no data there; the line is broken)."""


def _fmt(value: float, percent: bool) -> str:
    return f"{value:.1%}" if percent else f"{value:,.3g}"


def _tick(value: float, percent: bool) -> str:
    if percent and abs(value * 100 - round(value * 100)) < 1e-9:
        return f"{value:.0%}"
    return _fmt(value, percent)


def _nice_max(top: float, percent: bool) -> float:
    """A round upper bound of the y axis at or above ``top``."""
    if top <= 0:
        return 1.0
    if percent:  # four grid steps of whole percents
        for step in (0.04, 0.08, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0):
            if top <= step:
                return step
        return top
    magnitude = float(10 ** len(str(int(top))))  # a power of ten above
    for fraction in (0.1, 0.2, 0.25, 0.5, 1.0):
        if top <= magnitude * fraction:
            return magnitude * fraction
    return float(magnitude)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    percent: bool = True,
    width: int = 720,
    height: int = 240,
) -> str:
    """A line chart of ``series`` over the x positions ``labels`` (e.g. days), y from 0."""
    left, right, top, bottom = 52, 12, 12, 40
    places = _legend(series, left, width - right) if len(series) > 1 else []
    legend = 18 * (1 + max((row for _, row in places), default=-1)) if places else 0
    plot_w, plot_h = width - left - right, height - top - bottom - legend
    values = [v for s in series for v in s.values if v is not None]
    y_max = _nice_max(max(values, default=0.0), percent)
    n = len(labels)

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n if n else 0.0)

    def y(v: float) -> float:
        return top + plot_h - plot_h * min(v, y_max) / y_max

    parts: list[str] = []
    for k in range(5):  # grid lines and y labels
        tick = y_max * k / 4
        yy = y(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{yy + 4:.1f}" text-anchor="end">{_tick(tick, percent)}</text>')
    step = max(1, -(-n // 8))  # at most ~8 x labels
    for i, label in enumerate(labels):
        if i % step == 0 or i == n - 1:
            parts.append(
                f'<text x="{x(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle">{escape(label)}</text>'
            )
    drawn = 0
    for s_i, s in enumerate(series):
        color = PALETTE[s_i % len(PALETTE)]
        runs: list[list[tuple[float, float]]] = [[]]
        for i, v in enumerate(s.values):
            if v is None:
                runs.append([])
                continue
            runs[-1].append((x(i), y(v)))
        for run in runs:
            if len(run) > 1:
                path = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
                parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in enumerate(s.values):
            if v is None:
                continue
            drawn += 1
            tip = escape(f"{s.name}: {labels[i]}: {_fmt(v, percent)}")
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="3" fill="{color}"><title>{tip}</title></circle>'
            )
        if places:
            lx, row = places[s_i]
            ly = height - legend + 18 * row + 10
            parts.append(f'<rect x="{lx}" y="{ly - 9}" width="10" height="10" fill="{color}"/>')
            parts.append(f'<text x="{lx + 14}" y="{ly}">{escape(s.name)}</text>')
    return _svg(title, width, height, drawn, parts)


def _legend(series: Sequence[Series], start: int, end: int) -> list[tuple[int, int]]:
    """(x, row) of each series' legend entry, wrapping to a new row when one is full."""
    out, x, row = [], start, 0
    for s in series:
        width = 14 + int(6.5 * len(s.name)) + 18
        if x + width > end and x > start:
            x, row = start, row + 1
        out.append((x, row))
        x += width
    return out


def bar_chart(
    bars: Sequence[tuple[str, float]],
    *,
    title: str,
    percent: bool = True,
    width: int = 720,
    bar_height: int = 18,
    label_width: int = 220,
) -> str:
    """Horizontal bars, one per ``(label, value)``, in the given order."""
    top, gap, right = 6, 4, 70
    height = top * 2 + len(bars) * (bar_height + gap)
    plot_w = width - label_width - right
    x_max = _nice_max(max((v for _, v in bars), default=0.0), percent)
    parts: list[str] = []
    for i, (label, value) in enumerate(bars):
        yy = top + i * (bar_height + gap)
        w = plot_w * max(0.0, min(value, x_max)) / x_max
        shown = label if len(label) <= 34 else label[:33] + "…"
        tip = escape(f"{label}: {_fmt(value, percent)}")
        parts.append(
            f'<text x="{label_width - 6}" y="{yy + bar_height - 5}" text-anchor="end">{escape(shown)}</text>'
        )
        parts.append(
            f'<rect x="{label_width}" y="{yy}" width="{w:.1f}" height="{bar_height}" fill="{PALETTE[0]}">'
            f"<title>{tip}</title></rect>"
        )
        parts.append(
            f'<text x="{label_width + w + 4:.1f}" y="{yy + bar_height - 5}">{_fmt(value, percent)}</text>'
        )
    return _svg(title, width, height, len(bars), parts)


def _svg(title: str, width: int, height: int, points: int, parts: list[str]) -> str:
    # No xmlns: inline SVG in HTML needs none, and the page names no network address at all.
    return (
        f'<svg class="plot" data-points="{points}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )
