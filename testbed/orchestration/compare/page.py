"""``comparison.html``: the feeder exchange over the day per strategy, bars of cost, welfare efficiency and
peak, the homes' gains over retail as a distribution per strategy, and the table; failed strategies named.
Charts by matplotlib (:mod:`testbed.orchestration.charts`), inline SVG, no scripts."""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from testbed.orchestration.charts import Line, figure_svg, style, time_chart
from testbed.orchestration.report import page

COLORS = {"retail": "#555555", "tou": "#d08c00", "central": "#1f5fa8", "p2p": "#2a9d4b", "fpp": "#b3361c"}

ROWS = (
    ("community cost", "cost", "currency"),
    ("welfare efficiency", "welfare_efficiency", ""),
    ("peak import at the transformer", "peak_import_kw", "kW"),
    ("peak export at the transformer", "peak_export_kw", "kW"),
    ("highest loading", "highest_loading_pct", "%"),
    ("minutes outside limits", "minutes_outside_limits", "min"),
    ("self-sufficiency", "self_sufficiency", ""),
    ("contracts fulfilled", "contracts_fulfilled", ""),
    ("Gini of gains over retail", ("gains", "gini"), ""),
    ("homes worse off than retail", ("gains", "homes_worse_off"), ""),
    ("worst loss against retail", ("gains", "worst_loss"), "currency"),
    ("messages exchanged", ("coordination", "messages"), ""),
    ("private parameters revealed per home (mean)", ("coordination", "private_parameters_per_home_mean"), ""),
    ("bill under the TOU tariff itself", "tou_tariff_cost", "currency"),
    ("wall time", "wall_s", "s"),
)


def _get(r: Mapping[str, Any], key) -> Any:
    if isinstance(key, tuple):
        inner = r.get(key[0]) or {}
        return inner.get(key[1])
    return r.get(key)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    return html.escape(str(v))


def _table(ok: dict[str, dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in ok)
    rows = [f"<table><tr><th></th>{head}</tr>"]
    for label, key, unit in ROWS:
        values = [_get(r, key) for r in ok.values()]
        if all(v is None for v in values) and key in ("tou_tariff_cost",):
            continue
        cells = "".join(f'<td class="num">{_fmt(v)}</td>' for v in values)
        rows.append(f"<tr><th>{html.escape(label)}{f' [{unit}]' if unit else ''}</th>{cells}</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _bars(ok: dict[str, dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    names = list(ok)
    colors = [COLORS.get(n, "#777777") for n in names]
    panels = (("community cost [currency]", "cost"), ("welfare efficiency", "welfare_efficiency"),
              ("peak import [kW]", "peak_import_kw"))
    with style():
        fig, axes = plt.subplots(1, 3, figsize=(7.6, 2.6), layout="constrained")
        for ax, (title, key) in zip(axes, panels, strict=True):
            values = [np.nan if ok[n].get(key) is None else float(ok[n][key]) for n in names]
            ax.bar(names, np.nan_to_num(values), color=colors)
            ax.set_title(title, loc="left", fontsize=9)
            ax.tick_params(axis="x", labelrotation=30)
        return figure_svg(fig)


def _gains(ok: dict[str, dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt

    retail = ok.get("retail")
    if retail is None:
        return ""
    ids = list(retail["bills"])
    names = [n for n in ok if n != "retail"]
    if not names:
        return ""
    data = [[retail["bills"][i] - ok[n]["bills"][i] for i in ids] for n in names]
    with style():
        fig, ax = plt.subplots(figsize=(7.6, 2.8), layout="constrained")
        ax.boxplot(data, tick_labels=names, showmeans=True)
        ax.axhline(0.0, color="#999999", linestyle="--", linewidth=1.0)
        ax.set_title("each home's gain over retail (retail bill - bill)", loc="left")
        ax.set_ylabel("currency")
        return figure_svg(fig)


def render(c: Mapping[str, Any]) -> str:
    results = c["results"]
    ok = {n: r for n, r in results.items() if r["status"] == "ok"}
    sections: list[tuple[str, str]] = []
    if c["failed"]:
        items = "".join(
            f"<li><b>{html.escape(n)}</b> failed: <pre>{html.escape(results[n]['error'])}</pre></li>"
            for n in c["failed"]
        )
        sections.append(("Failed strategies", f'<ul class="fail">{items}</ul>'))
    if c["notes"]:
        sections.append(("Notes", "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in c["notes"]) + "</ul>"))
    if ok:
        n_steps = max(len(r["series"]["ext_grid_p_kw"]) for r in ok.values())
        hours = np.arange(n_steps) * c["resolution_s"] / 3600.0
        lines = [
            Line(n, np.array([np.nan if x is None else x for x in r["series"]["ext_grid_p_kw"]], float),
                 color=COLORS.get(n, "#777777"))
            for n, r in ok.items()
        ]
        sections.append(("Feeder exchange", time_chart(
            "power from the upstream grid at the transformer (> 0 imports)", "kW", hours, lines, steps=True)))
        sections.append(("Cost, efficiency and peak", _bars(ok)))
        sections.append(("How the gains are spread", _gains(ok)))
        sections.append(("Side by side", _table(ok)))
    desc = "".join(
        f"<li><b>{html.escape(n)}</b>: {html.escape(d)}</li>" for n, d in c["strategy_descriptions"].items()
    )
    sections.append(("Strategies", f"<ul>{desc}</ul><p>{html.escape(c['price_basis'])}.</p>"))
    status = "fail" if c["failed"] else "pass"
    subtitle = html.escape(
        f"{c['scenario']}: {c['homes']} homes ({c['batteries']} batteries, {c['evs']} EVs), {c['steps']} steps of "
        f"{c['resolution_s']} s from {c['start']}, seed {c['seed']}; {len(results)} strategies on {c['workers']} "
        f"worker(s) in {c['wall_s']:.1f} s"
    )
    return page(f"Comparison of {c['scenario']}", status, subtitle, sections)


def write_page(path: Path, comparison: Mapping[str, Any]) -> Path:
    path.write_text(render(comparison), encoding="utf-8")
    return path
