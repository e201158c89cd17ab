"""Charts for the reports, drawn by matplotlib and embedded as inline SVG (no scripts, nothing fetched).

Every chart has a time axis in hours from the start of the run, gridlines, a legend and the unit on its
value axis. The SVG is deterministic (no date in its metadata, fixed ids), so the same data give the same
page: ``fpp report`` can rewrite a report and a test can compare it.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import dataclass

import matplotlib

matplotlib.use("Agg")  # no screen: render to files only

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

_STYLE = {
    "svg.fonttype": "none",  # text stays text: smaller pages, searchable labels
    "svg.hashsalt": "fpp-testbed",  # fixed clip-path ids: the same data give the same SVG
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


@dataclass(frozen=True)
class Line:
    """One series of a chart: ``y`` over the chart's hours, with its label; ``style`` is a matplotlib format
    (``"-"``, ``"--"``, ``"o"``)."""

    label: str
    y: np.ndarray
    color: str = "#1f5fa8"
    style: str = "-"


@dataclass(frozen=True)
class Limit:
    """A horizontal reference line (a voltage limit, a rating)."""

    label: str
    value: float
    color: str = "#999999"


def time_chart(
    title: str,
    unit: str,
    hours: Sequence[float],
    lines: Sequence[Line],
    limits: Sequence[Limit] = (),
    *,
    steps: bool = False,
    height_in: float = 2.6,
    x_label: str = "time since start [h]",
) -> str:
    """A chart of ``lines`` over ``hours`` (hours since the start of the run) as an inline ``<svg>`` element.

    ``steps`` draws each value as held until the next one (market intervals, step means). NaN points are
    left out (a step whose power flow failed). Returns ``""`` when there is nothing finite to draw.
    """
    hours = np.asarray(hours, dtype=float)
    if not any(np.isfinite(np.asarray(line.y, dtype=float)).any() for line in lines):
        return ""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7.6, height_in), layout="constrained")
        for line in lines:
            y = np.asarray(line.y, dtype=float)
            if steps:
                ax.step(hours, y, where="post", color=line.color, label=line.label, linewidth=1.2)
            else:
                ax.plot(hours, y, line.style, color=line.color, label=line.label, linewidth=1.2, markersize=3)
        for limit in limits:
            ax.axhline(limit.value, color=limit.color, linestyle="--", linewidth=1.0, label=limit.label)
        ax.set_title(title, loc="left")
        ax.set_ylabel(unit)
        ax.set_xlabel(x_label)
        if len(hours):
            ax.set_xlim(float(hours[0]), float(hours[-1]) if len(hours) > 1 else float(hours[0]) + 1.0)
        ax.legend(loc="best", fontsize=8, frameon=False)
        return figure_svg(fig)


def style():
    """The reports' matplotlib style, as a context in which to build a figure of one's own."""
    return plt.rc_context(_STYLE)


def figure_svg(fig) -> str:
    """A finished figure as an inline ``<svg>`` element (deterministic; the figure is closed)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.find("<svg"):]
    return re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)  # RDF boilerplate only


@dataclass(frozen=True)
class Spread:
    """One series of a sweep chart: at each ``x`` the mean of the experiments there, and the lowest and highest
    (the spread over seeds and whatever else is not on the chart)."""

    label: str
    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


_COLORS = ("#1f5fa8", "#b3361c", "#1b7a1b", "#7a3fa0", "#a86b00", "#333333", "#0e8a8a", "#c4458f")


def sweep_chart(
    title: str,
    x_label: str,
    unit: str,
    series: Sequence[Spread],
    limits: Sequence[Limit] = (),
    *,
    categories: Sequence[str] | None = None,
    height_in: float = 2.8,
) -> str:
    """A metric against a swept parameter: each series' mean as a line with markers and its spread as a band
    (error bars when the x axis is categorical; then ``x`` holds indices into ``categories``)."""
    if not any(np.isfinite(np.asarray(s.mean, dtype=float)).any() for s in series):
        return ""
    with plt.rc_context(_STYLE):
        fig, ax = plt.subplots(figsize=(7.6, height_in), layout="constrained")
        for i, s in enumerate(series):
            color = _COLORS[i % len(_COLORS)]
            x, mean = np.asarray(s.x, dtype=float), np.asarray(s.mean, dtype=float)
            low, high = np.asarray(s.low, dtype=float), np.asarray(s.high, dtype=float)
            if categories is not None:
                ax.errorbar(x, mean, yerr=[mean - low, high - mean], fmt="o-", color=color, label=s.label,
                            linewidth=1.2, markersize=4, capsize=3)
            else:
                ax.plot(x, mean, "o-", color=color, label=s.label, linewidth=1.2, markersize=4)
                if np.any(high > low):
                    ax.fill_between(x, low, high, color=color, alpha=0.18, linewidth=0)
        for limit in limits:
            ax.axhline(limit.value, color=limit.color, linestyle="--", linewidth=1.0, label=limit.label)
        if categories is not None:
            ax.set_xticks(range(len(categories)), list(categories), rotation=15 if len(categories) > 4 else 0)
        ax.set_title(title, loc="left")
        ax.set_ylabel(unit)
        ax.set_xlabel(x_label)
        ax.legend(loc="best", fontsize=8, frameon=False)
        return figure_svg(fig)
