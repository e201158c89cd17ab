"""A campaign's results: ``summary.parquet`` (one row per experiment: its parameters, status and KPIs) and
``campaign.html`` (the test description, each target metric against each swept parameter with the spread over
seeds, the hosting capacity when asked for, and every failure with its reason).

Both are written from the experiments' ``result.json`` files, so they always show each experiment once,
however often the campaign was interrupted and resumed.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from testbed.domain.campaign.analysis import exceeded, hosting_capacity
from testbed.domain.campaign.models import TargetMetric
from testbed.orchestration.campaign.engine import read_result
from testbed.orchestration.campaign.plan import CampaignPlan
from testbed.orchestration.charts import Limit, Spread, sweep_chart
from testbed.orchestration.report import page

MAX_LINES = 8  # more combinations of the other parameters than this: one series over all of them
RESERVED = ("experiment", "index", "status", "reason", "attempts", "verdict", "wall_s")


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | str | bool) else json.dumps(value, default=str)


def rows(plan: CampaignPlan) -> list[dict[str, Any]]:
    """One row per experiment of the plan, in its order: parameters, then status, then the KPIs."""
    out = []
    for exp in plan.experiments:
        result = read_result(plan.experiment_dir(exp)) or {"status": "not run", "reason": "not run yet", "kpis": {}}
        row: dict[str, Any] = {"experiment": exp.key, "index": exp.index}
        row |= {name: exp.parameters.get(name) for name in plan.swept}
        row |= {
            "status": result.get("status"), "reason": result.get("reason"), "attempts": result.get("attempts"),
            "verdict": result.get("verdict"), "wall_s": result.get("wall_s"),
        }
        for name, value in (result.get("kpis") or {}).items():
            row[name if name not in row else f"kpi.{name}"] = value
        out.append(row)
    return out


def summary_frame(plan: CampaignPlan, table: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(table)
    for name in plan.swept:  # a column of mixed or structured values is written as JSON text
        values = [v for v in frame[name] if v is not None]
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            frame[name] = [None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str))
                           for v in frame[name]]
    for col in frame.columns:
        if frame[col].dtype == object and col not in plan.swept:
            frame[col] = [_cell(v) for v in frame[col]]
            kinds = {type(v) for v in frame[col] if v is not None}
            if len(kinds) > 1:
                frame[col] = [None if v is None else str(v) for v in frame[col]]
    return frame


def write_results(plan: CampaignPlan) -> tuple[Path, Path]:
    """Write ``summary.parquet`` and ``campaign.html`` into the campaign's folder."""
    table = rows(plan)
    summary = plan.out_dir / "summary.parquet"
    tmp = summary.with_name(".summary.parquet.tmp")
    summary_frame(plan, table).to_parquet(tmp, index=False)
    tmp.replace(summary)
    report = plan.out_dir / "campaign.html"
    report.write_text(render(plan, table), encoding="utf-8")
    return summary, report


# --- the page ----------------------------------------------------------------------------------------------


def _esc(x: Any) -> str:
    return html.escape(str(x))


def _value_text(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, dict | list):
        return json.dumps(v, default=str) if len(json.dumps(v, default=str)) <= 40 else f"{type(v).__name__} …"
    return "none" if v is None else str(v)


def _description(plan: CampaignPlan) -> str:
    c = plan.campaign
    tc, ts, es = c.test_case, c.test_specification, c.experiment_specification
    metrics = "".join(
        f"<tr><th>{_esc(m.label)}</th><td><code>{_esc(m.kpi)}</code></td><td>{_esc(m.unit)}</td>"
        f"<td>{'' if m.min is None else f'&ge; {m.min:g}'} {'' if m.max is None else f'&le; {m.max:g}'}</td></tr>"
        for m in tc.target_metrics
    )
    inputs = "".join(
        f"<li><code>{_esc(k)}</code>: {_esc(json.dumps(v, default=str))}</li>" for k, v in ts.inputs.items()
    )
    seeds = "" if ts.seeds is None else f"<li>seeds: {_esc(ts.seeds)}</li>"
    design = ts.design.kind + (f", {ts.design.samples} samples, seed {ts.design.seed}" if ts.design.samples else "")
    return (
        f"<h3>Test case</h3><p><b>Purpose:</b> {_esc(tc.purpose)}<br><b>System under test:</b> "
        f"{_esc(tc.system_under_test)}<br><b>Functions under investigation:</b> "
        f"{_esc(', '.join(tc.functions_under_investigation))}<br><b>Domains:</b> "
        f"{_esc(', '.join(tc.domain_under_investigation))}</p>"
        f"<table><tr><th>target metric</th><th>KPI</th><th>unit</th><th>limit</th></tr>{metrics}</table>"
        f"<h3>Test specification</h3><p>{_esc(ts.test_system)}<br>base: <code>{_esc(plan.base_path.name)}</code> "
        f"({plan.kind}); design: {_esc(design)}</p><ul>{inputs}{seeds}</ul>"
        f"<h3>Experiment specification</h3><p>{_esc(es.setup)}"
        f"{'; ' + _esc(es.description) if es.description else ''}</p>"
    )


def _number(v: Any) -> float:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan


def _charts(plan: CampaignPlan, table: list[dict[str, Any]]) -> str:
    done = [r for r in table if r["status"] == "done"]
    if not done:
        return "<p>No experiment has finished.</p>"
    # the parameters that take more than one value (a list of one value fixes it for all: nothing to plot)
    params = [p for p in plan.swept if p != "seed" and len({_value_text(r.get(p)) for r in table}) > 1]
    if not params:
        params = ["seed"] if "seed" in plan.swept else []
    parts = []
    for metric in plan.campaign.test_case.target_metrics:
        limits = [Limit(f"limit {lim:g}", lim) for lim in (metric.min, metric.max) if lim is not None]
        for param in params:
            others = [p for p in params if p != param]
            keys = sorted({tuple(_value_text(r.get(p)) for p in others) for r in done})
            if len(keys) > MAX_LINES:
                others, keys = [], [()]
            xs_raw = []
            for r in done:
                if r.get(param) not in xs_raw:
                    xs_raw.append(r.get(param))
            numeric = all(isinstance(x, int | float) and not isinstance(x, bool) for x in xs_raw)
            xs = sorted(xs_raw) if numeric else xs_raw
            series = []
            for key in keys:
                label = ", ".join(f"{p}={k}" for p, k in zip(others, key, strict=True)) or "all experiments"
                mean, low, high = [], [], []
                for x in xs:
                    vals = [_number(r.get(metric.kpi)) for r in done if r.get(param) == x
                            and tuple(_value_text(r.get(p)) for p in others) == key]
                    vals = [v for v in vals if math.isfinite(v)]
                    mean.append(np.mean(vals) if vals else math.nan)
                    low.append(min(vals) if vals else math.nan)
                    high.append(max(vals) if vals else math.nan)
                x_axis = np.array(xs, dtype=float) if numeric else np.arange(len(xs), dtype=float)
                series.append(Spread(label, x_axis, np.array(mean), np.array(low), np.array(high)))
            parts.append(sweep_chart(
                f"{metric.label} against {param}", param, metric.unit or metric.kpi, series, limits,
                categories=None if numeric else [_value_text(x) for x in xs],
            ))
    charts = "\n".join(p for p in parts if p)
    note = ("<p>Each point is the mean over the experiments at that value (seeds and any parameter not in the "
            "legend); the band or bars show the lowest and highest.</p>")
    return note + (charts or "<p>No target metric has a number in the finished experiments.</p>")


def _hosting(plan: CampaignPlan, table: list[dict[str, Any]]) -> str:
    spec = plan.campaign.test_specification.hosting_capacity
    if spec is None:
        return ""
    done = [r for r in table if r["status"] == "done"]
    found = hosting_capacity(done, spec.parameter, spec.per, plan.campaign.test_case.target_metrics)
    rows_html = "".join(
        f"<tr><td>{_esc(', '.join(f'{k}={_value_text(v)}' for k, v in h.group.items()) or 'all')}</td>"
        f"<td>{_esc(h.describe())}</td></tr>"
        for h in found
    )
    return (f"<p>Hosting capacity in <code>{_esc(spec.parameter)}</code>: the largest value tried before any target "
            f"metric's limit is first exceeded, in any experiment of the strategy.</p>"
            f"<table><tr><th>strategy</th><th>hosting capacity</th></tr>{rows_html}</table>")


def _experiments(plan: CampaignPlan, table: list[dict[str, Any]]) -> str:
    outputs = [TargetMetric(kpi=k) for k in plan.campaign.test_specification.outputs]
    metrics = list(plan.campaign.test_case.target_metrics) + outputs
    head = "".join(f"<th>{_esc(p)}</th>" for p in plan.swept) + "".join(f"<th>{_esc(m.label)}</th>" for m in metrics)
    body = []
    for r in table[:500]:
        cells = "".join(f"<td>{_esc(_value_text(r.get(p)))}</td>" for p in plan.swept)
        for m in metrics:
            v = r.get(m.kpi)
            css = ' class="fail"' if exceeded(m, v) else ""
            cells += f'<td class="num"{css}>{_esc(_value_text(v))}</td>'
        body.append(f"<tr><td><code>{r['experiment']}</code></td><td>{_esc(r['status'])}</td>{cells}</tr>")
    return f"<table><tr><th>experiment</th><th>status</th>{head}</tr>{''.join(body)}</table>"


def render(plan: CampaignPlan, table: list[dict[str, Any]]) -> str:
    failed = [r for r in table if r["status"] != "done"]
    n_done = len(table) - len(failed)
    subtitle = _esc(f"{len(table)} experiments on {plan.base_path.name}: {n_done} finished, {len(failed)} failed "
                    "or not run. Figures of every experiment: summary.parquet; each experiment's run: "
                    "experiments/<key>/run/.")
    sections = [("Test description", _description(plan)), ("Target metrics", _charts(plan, table))]
    hosting = _hosting(plan, table)
    if hosting:
        sections.append(("Hosting capacity", hosting))
    if failed:
        items = "".join(
            f"<tr><td><code>{r['experiment']}</code></td><td>"
            f"{_esc(', '.join(f'{p}={_value_text(r.get(p))}' for p in plan.swept))}</td>"
            f"<td>{_esc(r.get('reason') or r['status'])}</td></tr>" for r in failed
        )
        sections.append(("Failures", f"<table><tr><th>experiment</th><th>parameters</th><th>reason</th></tr>"
                                     f"{items}</table>"))
    sections.append(("Experiments", _experiments(plan, table)))
    return page(f"campaign {plan.campaign.name}", "pass" if not failed else "fail", subtitle, sections)
