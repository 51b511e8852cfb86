"""A small SVG chart of a results DataFrame: rows per status and send times.

Plain SVG needs no plotting library and no display call, so the thread that
shows a batch's progress can put it into an HTML widget.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from ..results import STATUSES

__all__ = ["STATUS_COLORS", "results_chart_svg"]

STATUS_COLORS = {
    "sent": "#26a269",
    "failed": "#c01c28",
    "deferred": "#e5a50a",
    "partial": "#c64600",
    "unknown": "#613583",
    "skipped": "#77767b",
}

_BAR_HEIGHT = 18
_LABEL_WIDTH = 70
_PLOT_WIDTH = 220
_HISTOGRAM_BINS = 12


def _status_bars(counts: dict[str, int]) -> tuple[str, int]:
    largest = max(counts.values(), default=0) or 1
    items = []
    y = 20
    for status in STATUSES:
        count = counts.get(status, 0)
        width = _PLOT_WIDTH * count / largest
        items.append(
            f'<text x="{_LABEL_WIDTH - 6}" y="{y + 13}" text-anchor="end">{status}</text>'
            f'<rect class="mailkit-bar-{status}" x="{_LABEL_WIDTH}" y="{y}" '
            f'width="{width:.1f}" height="{_BAR_HEIGHT - 4}" '
            f'fill="{STATUS_COLORS[status]}"/>'
            f'<text x="{_LABEL_WIDTH + width + 4:.1f}" y="{y + 13}">{count}</text>'
        )
        y += _BAR_HEIGHT
    title = '<text x="0" y="12" font-weight="bold">Rows per status</text>'
    return title + "".join(items), y


def _duration_histogram(durations: pd.Series, x0: int) -> str:
    title = f'<text x="{x0}" y="12" font-weight="bold">Send time per message (s)</text>'
    values = durations.dropna().to_numpy(dtype=float)
    if len(values) == 0:
        return title + f'<text x="{x0}" y="36">no message was sent</text>'
    low, high = float(values.min()), float(values.max())
    if high <= low:
        high = low + 1e-3
    counts, edges = np.histogram(values, bins=_HISTOGRAM_BINS, range=(low, high))
    tallest = int(counts.max()) or 1
    plot_height = 100
    width = _PLOT_WIDTH / _HISTOGRAM_BINS
    bars = []
    for index, count in enumerate(counts):
        height = plot_height * int(count) / tallest
        bars.append(
            f'<rect x="{x0 + index * width:.1f}" y="{20 + plot_height - height:.1f}" '
            f'width="{width - 1:.1f}" height="{height:.1f}" fill="#1a5fb4">'
            f"<title>{int(count)} message(s) took {edges[index]:.3f} to "
            f"{edges[index + 1]:.3f} s</title></rect>"
        )
    axis_y = 20 + plot_height + 14
    axis = (
        f'<text x="{x0}" y="{axis_y}">{low:.3f}</text>'
        f'<text x="{x0 + _PLOT_WIDTH}" y="{axis_y}" text-anchor="end">{high:.3f}</text>'
        f'<text x="{x0 + _PLOT_WIDTH / 2:.1f}" y="{axis_y + 14}" text-anchor="middle">'
        f"median {np.median(values):.3f} s, max {high:.3f} s</text>"
    )
    return title + "".join(bars) + axis


def results_chart_svg(results: pd.DataFrame) -> str:
    """Return an SVG element with the count of rows per status and a histogram
    of ``duration_s`` of the rows that were tried."""
    counts = {str(k): int(v) for k, v in results["status"].value_counts().items()}
    bars, bars_bottom = _status_bars(counts)
    x0 = _LABEL_WIDTH + _PLOT_WIDTH + 60
    histogram = _duration_histogram(results["duration_s"], x0)
    height = max(bars_bottom, 20 + 100 + 34) + 6
    width = x0 + _PLOT_WIDTH + 10
    label = html.escape(
        ", ".join(f"{count} {status}" for status, count in counts.items() if count)
    )
    return (
        f'<svg class="mailkit-chart" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="12" '
        f'role="img" aria-label="{label}">{bars}{histogram}</svg>'
    )
