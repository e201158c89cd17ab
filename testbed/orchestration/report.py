"""``report.html`` of a run folder: the verdict with every criterion's figure, the charts and the KPIs.

The page is one self-contained file (inline SVG drawn by matplotlib, no scripts, nothing fetched), written by
``fpp run`` at the end of every run from the verdict and KPIs it has in memory, and again by
``fpp report RUN_DIR`` from ``verdict.json`` and ``kpis.json`` (a folder written before verdicts were saved
gets its verdict recomputed from ``kpis.json`` and the scenario's limits). The charts read only the grid
columns of ``timeseries.parquet``, when the run wrote it.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from testbed.domain.errors import UserError
from testbed.domain.verdict import Verdict, grid_criteria, market_criteria
from testbed.orchestration.charts import Limit, Line, time_chart

_STATUS_WORD = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE", "fault": "FAULT"}
_STYLE = """body{font-family:sans-serif;max-width:800px;margin:2em auto;color:#222}
table{border-collapse:collapse}th,td{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1b7a1b}.fail,.fault{color:#b3361c;font-weight:bold}.inconclusive{color:#a86b00;font-weight:bold}
svg{max-width:100%;height:auto}"""


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def verdict_table(verdict: Verdict) -> str:
    """The verdict as an HTML table: one row per criterion with its outcome, figure, limit and detail."""
    rows = ["<table><tr><th></th><th>criterion</th><th>figure</th><th>limit</th><th>detail</th></tr>"]
    for c in verdict.criteria:
        css = {True: "pass", False: "fail", None: "inconclusive"}[c.passed]
        word = {True: "pass", False: "FAIL", None: "not judged"}[c.passed]
        unit = f" {html.escape(c.unit)}" if c.unit else ""
        rows.append(
            f'<tr><td class="{css}">{word}</td><th>{html.escape(c.name)}</th>'
            f'<td class="num">{_fmt(c.figure)}{unit if c.figure is not None else ""}</td>'
            f'<td class="num">{_fmt(c.limit)}{unit if c.limit is not None else ""}</td>'
            f"<td>{html.escape(c.detail)}</td></tr>"
        )
    rows.append("</table>")
    if verdict.fault:
        rows.append(f'<p class="fault">Fault: {html.escape(verdict.fault)}</p>')
    if verdict.inconclusive:
        rows.append(f'<p class="inconclusive">Inconclusive: {html.escape(verdict.inconclusive)}</p>')
    return "\n".join(rows)


def kpi_table(rows: Mapping[str, Any]) -> str:
    """The scalar KPIs of a section as an HTML table, sorted by name (as in ``kpis.json``)."""
    cells = []
    for key, value in sorted(rows.items()):
        if isinstance(value, dict | list):
            continue
        cells.append(f'<tr><th>{html.escape(str(key))}</th><td class="num">{html.escape(_fmt(value))}</td></tr>')
    return "<table>" + "".join(cells) + "</table>"


def page(title: str, status: str, subtitle: str, sections: list[tuple[str, str]]) -> str:
    """A self-contained HTML page: a title with the verdict's status, a line under it (HTML, escaped by the
    caller), then sections (heading, HTML body). Every report of the testbed is one."""
    word = _STATUS_WORD.get(status, status.upper())
    lines = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
        f"<style>{_STYLE}</style></head><body>",
        f'<h1>{html.escape(title)}: <span class="{status}">{word}</span></h1>',
        f"<p>{subtitle}</p>",
    ]
    for heading, body in sections:
        lines += [f"<h2>{html.escape(heading)}</h2>", body]
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


def _grid_charts(run_dir: Path, v_min_pu: float, v_max_pu: float, resolution_s: float) -> str:
    path = run_dir / "timeseries.parquet"
    if not path.exists():
        return "<p>No time series in this run folder (<code>outputs.timeseries: false</code>).</p>"
    import pyarrow.parquet as pq

    wanted = ("ext_grid_p_kw", "vm_pu/", "line_loading_pct/", "trafo_loading_pct/")
    names = [n for n in pq.read_schema(path).names if n.startswith(wanted)]
    table = pq.read_table(path, columns=names)

    def columns(prefix: str) -> np.ndarray:
        cols = [table.column(n).to_numpy() for n in names if n.startswith(prefix)]
        return np.column_stack(cols).astype(float) if cols else np.full((table.num_rows, 1), np.nan)

    def over_columns(fn, arr: np.ndarray) -> np.ndarray:
        out = np.full(len(arr), np.nan)
        rows = np.isfinite(arr).any(axis=1)
        out[rows] = fn(arr[rows], axis=1)
        return out

    hours = np.arange(table.num_rows) * resolution_s / 3600.0
    vm = columns("vm_pu/")
    loading = np.hstack([columns("line_loading_pct/"), columns("trafo_loading_pct/")])
    feeder = columns("ext_grid_p_kw")[:, 0]
    return "\n".join(
        [
            time_chart(
                "Lowest and highest bus voltage", "voltage [pu]", hours,
                [Line("lowest bus", over_columns(np.nanmin, vm), "#1f5fa8"),
                 Line("highest bus", over_columns(np.nanmax, vm), "#b3361c")],
                [Limit(f"limits {v_min_pu:g} / {v_max_pu:g} pu", v_min_pu), Limit("", v_max_pu)],
            ),
            time_chart(
                "Feeder exchange with the upstream grid (> 0 imports)", "power [kW]", hours,
                [Line("feeder import", feeder, "#333333")], [Limit("zero", 0.0)],
            ),
            time_chart(
                "Highest line or transformer loading", "loading [%]", hours,
                [Line("highest loading", over_columns(np.nanmax, loading), "#7a3fa0")], [Limit("rating", 100.0)],
            ),
        ]
    )


def _lateness_chart(run_dir: Path) -> str:
    """Step lateness over a real-time run, from ``lateness.json`` (written by the runner)."""
    path = run_dir / "lateness.json"
    if not path.is_file():
        return ""
    data = _read_json(path)
    minutes = np.asarray(data["step"], float) * float(data["step_s"]) / 60.0
    return time_chart(
        "Step lateness against the wall clock", "lateness [ms]", minutes,
        [Line("step start after its due time", np.asarray(data["lateness_ms"], float), "#1f5fa8")],
        [Limit("on time", 0.0)],
        x_label="time into the run [min]",
    )


def _response_section(run_dir: Path, fr: Mapping[str, Any]) -> str:
    """The coalition's summed response against the service's band (``frequency_response.parquet``) and its
    KPIs, each member's outcome in a table."""
    import pyarrow.parquet as pq

    from testbed.domain.services.frequency import FREQUENCY_SERVICES
    from testbed.orchestration.service_report import response_chart

    chart = ""
    path = run_dir / "frequency_response.parquet"
    service = FREQUENCY_SERVICES.get(str(fr.get("service")))
    if path.is_file() and service is not None:
        table = pq.read_table(path).to_pydict()
        if service.trigger_hz is None:
            service = service.with_nominal(float(fr.get("f_nom_hz", service.f_nom_hz)))
        chart = response_chart(service, table["t_s"], table["f_hz"], table["delivered_kw"],
                               float(fr["contracted_kw"]), label="members' response (sum)")
    flat = {k: v for k, v in fr.items() if k not in ("per_member", "criteria")}
    rows = "".join(
        f"<tr><td>{html.escape(m['prosumer'])}</td><td>{m['contracted_kw']:g}</td>"
        f"<td>{'pass' if m['passed'] else 'fail: ' + html.escape(', '.join(m['failed']))}</td></tr>"
        for m in fr.get("per_member", [])
    )
    members = f"<table><tr><th>member</th><th>contracted [kW]</th><th>own verdict</th></tr>{rows}</table>"
    return chart + kpi_table(flat) + members


def render(run_dir: Path, kpis: Mapping[str, Any], verdict: Verdict, info: Mapping[str, Any],
           v_min_pu: float, v_max_pu: float) -> str:
    """The report's HTML for a run folder."""
    subtitle = html.escape(
        f"run {info['run_id']}, seed {info['seed']}, {info['steps']} steps of {info['resolution_s']} s, "
        f"{info['prosumers']} prosumers, {info['engine']}, finished {info['finished_utc']} in {info['wall_s']:.1f} s"
    )
    sections = [
        ("Verdict", verdict_table(verdict)),
        ("Grid and homes", _grid_charts(run_dir, v_min_pu, v_max_pu, float(info["resolution_s"])) + kpi_table(kpis)),
    ]
    if isinstance(kpis.get("real_time"), dict):
        sections.append(("Real time", _lateness_chart(run_dir) + kpi_table(kpis["real_time"])))
    for name, heading in (("market", "Market"), ("hil", "HIL")):
        if isinstance(kpis.get(name), dict):
            sections.append((heading, kpi_table(kpis[name])))
    if isinstance(kpis.get("frequency_response"), dict):
        sections.append(("Frequency response", _response_section(run_dir, kpis["frequency_response"])))
    if isinstance(kpis.get("fpp"), dict):
        from testbed.orchestration.fpp_report import fpp_section
        from testbed.orchestration.plan import read_scenario

        start = read_scenario(run_dir / "scenario.yaml").time.start
        sections.append(("Federated power plant: grid-service contracts", fpp_section(kpis["fpp"], start)))
    sections.append(("Files", "<p>All figures: <code>kpis.json</code>, <code>verdict.json</code> and "
                              "<code>timeseries.parquet</code> in this folder.</p>"))
    return page(str(info["scenario"]), verdict.status, subtitle, sections)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{path.parent}: cannot read {path.name}", [str(exc)]) from None


def write_report(run_dir: Path, *, kpis: Mapping[str, Any] | None = None, verdict: Verdict | None = None) -> Path:
    """Write ``report.html`` into a run folder, from ``kpis`` and ``verdict`` when given, else from its files."""
    from testbed.orchestration.plan import read_scenario

    run_dir = Path(run_dir)
    missing = [n for n in ("kpis.json", "run.json") if not (run_dir / n).is_file()]
    if missing:
        raise UserError(f"{run_dir}: not a finished run folder", [f"{n} is missing" for n in missing])
    info = _read_json(run_dir / "run.json")
    kpis = _read_json(run_dir / "kpis.json") if kpis is None else kpis
    grid = read_scenario(run_dir / "scenario.yaml").grid
    if verdict is None:
        if (run_dir / "verdict.json").is_file():
            verdict = Verdict.from_dict(_read_json(run_dir / "verdict.json"))
        else:  # a folder from before verdict.json: the same criteria, from its KPIs
            market = market_criteria(kpis["market"]) if isinstance(kpis.get("market"), dict) else []
            verdict = Verdict(tuple(grid_criteria(kpis, grid.v_min_pu, grid.v_max_pu) + market))
    out = run_dir / "report.html"
    out.write_text(render(run_dir, kpis, verdict, info, grid.v_min_pu, grid.v_max_pu), encoding="utf-8")
    return out
