"""``report.html`` of a run folder: the verdict against the network's limits, the KPIs and three charts.

The page is one self-contained file (inline SVG, no scripts, nothing fetched), written by ``fpp run`` at the
end of every run and again by ``fpp report RUN_DIR``. It reads only the run folder: ``kpis.json``,
``run.json``, the scenario copy (for the voltage limits) and, when the run wrote it, ``timeseries.parquet``.

The verdict and the chart geometry are pure functions (:func:`checks`, :func:`polyline`); the rest reads files
and assembles HTML.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from testbed.domain.errors import UserError

#: Market interval outcomes that are not a failure of the market (an interval without orders is normal).
MARKET_OK = frozenset({"optimal", "cleared", "no_orders"})
_W, _H, _PAD = 720, 200, 44  # chart size and left/bottom margin [px]


@dataclass(frozen=True)
class Check:
    """One line of the verdict."""

    name: str
    passed: bool
    detail: str


def checks(kpis: dict, v_min_pu: float, v_max_pu: float) -> list[Check]:
    """The run's verdict: power flow, voltage band, thermal limits and, with a market, its intervals."""
    out = [
        Check(
            "power flow converged at every step",
            kpis["non_converged_steps"] == 0,
            f"{kpis['non_converged_steps']} of {kpis['steps']} steps did not converge",
        ),
        Check(
            f"voltages within {v_min_pu:g}..{v_max_pu:g} pu",
            kpis["minutes_outside_voltage_limits"] == 0,
            f"{kpis['v_min_pu']:.4f}..{kpis['v_max_pu']:.4f} pu; "
            f"{kpis['minutes_outside_voltage_limits']:g} min outside the limits",
        ),
        Check(
            "lines within their rating",
            _at_most(kpis.get("peak_line_loading_pct"), 100.0),
            f"peak loading {_fmt(kpis.get('peak_line_loading_pct'))} %",
        ),
        Check(
            "transformers within their rating",
            _at_most(kpis.get("peak_trafo_loading_pct"), 100.0),
            f"peak loading {_fmt(kpis.get('peak_trafo_loading_pct'))} %",
        ),
    ]
    market = kpis.get("market")
    if market:
        status = market.get("interval_status", {})
        bad = {s: n for s, n in status.items() if s not in MARKET_OK}
        out.append(
            Check(
                "every market interval cleared",
                not bad,
                ", ".join(f"{n} {s}" for s, n in sorted(status.items())) or "no intervals",
            )
        )
    return out


def _at_most(value, limit: float) -> bool:
    """NaN or missing (no lines, or every step failed) is not a pass."""
    return value is not None and not math.isnan(value) and value <= limit


def _fmt(value) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f}"


def polyline(values: np.ndarray, y_min: float, y_max: float) -> str:
    """SVG ``points`` for ``values`` over the chart's plot area; NaN steps are left out."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    span = (y_max - y_min) or 1.0
    xs = _PAD + (np.arange(n) / max(n - 1, 1)) * (_W - _PAD - 8)
    ys = 8 + (y_max - values) / span * (_H - _PAD - 8)
    return " ".join(f"{x:.1f},{y:.1f}" for x, y, v in zip(xs, ys, values, strict=True) if np.isfinite(v))


def _chart(title: str, unit: str, series: list[tuple[str, np.ndarray, str]], limits=(), times=("", "")) -> str:
    finite = [v[np.isfinite(v)] for _, v, _ in series]
    data = np.concatenate([*finite, np.asarray(limits, dtype=float)])
    if data.size == 0:
        return ""
    lo, hi = float(data.min()), float(data.max())
    pad = (hi - lo) * 0.05 or abs(hi) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    parts = [
        f"<figure><figcaption>{html.escape(title)} [{html.escape(unit)}]</figcaption>",
        f'<svg viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img">',
        f'<text x="{_PAD - 4}" y="14" text-anchor="end">{hi:.4g}</text>',
        f'<text x="{_PAD - 4}" y="{_H - _PAD}" text-anchor="end">{lo:.4g}</text>',
        f'<text x="{_PAD}" y="{_H - _PAD + 16}">{html.escape(times[0])}</text>',
        f'<text x="{_W - 8}" y="{_H - _PAD + 16}" text-anchor="end">{html.escape(times[1])}</text>',
        f'<rect x="{_PAD}" y="8" width="{_W - _PAD - 8}" height="{_H - _PAD - 8}" class="frame"/>',
    ]
    for limit in limits:
        y = 8 + (hi - limit) / (hi - lo) * (_H - _PAD - 8)
        parts.append(f'<line x1="{_PAD}" x2="{_W - 8}" y1="{y:.1f}" y2="{y:.1f}" class="limit"/>')
    for k, (label, values, color) in enumerate(series):
        parts.append(f'<polyline points="{polyline(values, lo, hi)}" stroke="{color}" class="series"/>')
        parts.append(f'<text x="{_PAD + 8 + 140 * k}" y="{_H - 8}" fill="{color}">{html.escape(label)}</text>')
    parts.append("</svg></figure>")
    return "\n".join(parts)


def _charts(run_dir: Path, v_min_pu: float, v_max_pu: float) -> str:
    path = run_dir / "timeseries.parquet"
    if not path.exists():
        return "<p>No time series in this run folder (<code>outputs.timeseries: false</code>).</p>"
    import pyarrow.parquet as pq

    wanted = ("time", "ext_grid_p_kw", "vm_pu/", "line_loading_pct/", "trafo_loading_pct/")
    names = [n for n in pq.read_schema(path).names if n.startswith(wanted)]
    df = pq.read_table(path, columns=names).to_pandas()  # not the per-prosumer columns
    times = (str(df["time"].iloc[0]), str(df["time"].iloc[-1])) if len(df) else ("", "")

    def columns(prefix: str) -> np.ndarray:
        cols = [c for c in df.columns if c.startswith(prefix)]
        return df[cols].to_numpy(dtype=float) if cols else np.full((len(df), 1), np.nan)

    def over_columns(fn, arr: np.ndarray) -> np.ndarray:
        out = np.full(len(arr), np.nan)
        rows = np.isfinite(arr).any(axis=1)
        out[rows] = fn(arr[rows], axis=1)
        return out

    vm = columns("vm_pu/")
    loading = np.hstack([columns("line_loading_pct/"), columns("trafo_loading_pct/")])
    return "\n".join(
        [
            _chart(
                "Lowest and highest bus voltage",
                "pu",
                [
                    ("lowest", over_columns(np.nanmin, vm), "#1f5fa8"),
                    ("highest", over_columns(np.nanmax, vm), "#b3361c"),
                ],
                limits=(v_min_pu, v_max_pu),
                times=times,
            ),
            _chart(
                "Feeder import (> 0) or export (< 0)",
                "kW",
                [("ext_grid_p_kw", df["ext_grid_p_kw"].to_numpy(dtype=float), "#333333")],
                limits=(0.0,),
                times=times,
            ),
            _chart(
                "Highest line or transformer loading",
                "%",
                [("peak loading", over_columns(np.nanmax, loading), "#7a3fa0")],
                limits=(100.0,),
                times=times,
            ),
        ]
    )


def _table(rows: dict) -> str:
    cells = []
    for key, value in rows.items():
        if isinstance(value, dict | list):
            continue
        shown = f"{value:.6g}" if isinstance(value, float) else str(value)
        cells.append(f"<tr><th>{html.escape(str(key))}</th><td>{html.escape(shown)}</td></tr>")
    return "<table>" + "".join(cells) + "</table>"


_STYLE = """body{font-family:sans-serif;max-width:760px;margin:2em auto;color:#222}
table{border-collapse:collapse}th,td{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}
.pass{color:#1b7a1b}.fail{color:#b3361c;font-weight:bold}svg text{font-size:11px}
.frame{fill:none;stroke:#999}.limit{stroke:#999;stroke-dasharray:4 3}.series{fill:none;stroke-width:1.5}"""


def render(run_dir: Path, v_min_pu: float, v_max_pu: float) -> str:
    """The report's HTML for a run folder."""
    kpis = json.loads((run_dir / "kpis.json").read_text(encoding="utf-8"))
    info = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    verdict = checks(kpis, v_min_pu, v_max_pu)
    passed = all(c.passed for c in verdict)
    lines = [
        "<!DOCTYPE html>",
        f'<html lang="en"><head><meta charset="utf-8"><title>{html.escape(info["run_id"])}</title>',
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(info['scenario'])}: {'PASS' if passed else 'FAIL'}</h1>",
        f"<p>run {html.escape(info['run_id'])}, seed {info['seed']}, {info['steps']} steps of "
        f"{info['resolution_s']} s, {info['prosumers']} prosumers, {html.escape(info['engine'])}, "
        f"finished {html.escape(info['finished_utc'])} in {info['wall_s']:.1f} s</p>",
        "<h2>Verdict</h2><table>",
    ]
    for c in verdict:
        css, word = ("pass", "pass") if c.passed else ("fail", "FAIL")
        lines.append(
            f'<tr><td class="{css}">{word}</td><th>{html.escape(c.name)}</th><td>{html.escape(c.detail)}</td></tr>'
        )
    lines += ["</table>", "<h2>Grid and homes</h2>", _charts(run_dir, v_min_pu, v_max_pu), _table(kpis)]
    for section in ("market", "hil"):
        if isinstance(kpis.get(section), dict):
            lines += [f"<h2>{section.upper() if section == 'hil' else 'Market'}</h2>", _table(kpis[section])]
    lines.append("<p>All figures: <code>kpis.json</code> and <code>timeseries.parquet</code> in this folder.</p>")
    lines.append("</body></html>")
    return "\n".join(lines) + "\n"


def write_report(run_dir: Path, v_min_pu: float | None = None, v_max_pu: float | None = None) -> Path:
    """Write ``report.html`` into a run folder; the voltage limits default to the scenario copy's."""
    run_dir = Path(run_dir)
    missing = [n for n in ("kpis.json", "run.json") if not (run_dir / n).is_file()]
    if missing:
        raise UserError(f"{run_dir}: not a finished run folder", [f"{n} is missing" for n in missing])
    if v_min_pu is None or v_max_pu is None:
        from testbed.orchestration.plan import read_scenario

        grid = read_scenario(run_dir / "scenario.yaml").grid
        v_min_pu, v_max_pu = grid.v_min_pu, grid.v_max_pu
    out = run_dir / "report.html"
    out.write_text(render(run_dir, v_min_pu, v_max_pu), encoding="utf-8")
    return out
