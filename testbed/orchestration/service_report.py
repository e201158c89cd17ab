"""``report.html`` of a service test: one self-contained page (matplotlib charts as inline SVG, no scripts,
nothing fetched) with the verdict, a table of every criterion with its figure, and the charts:

- frequency services: the applied frequency, and the measured response against the required band over time;
- IEEE 1547.1 step tests (Volt-VAR, Volt-Watt): the measured points (input, output at each step's steady
  state) against the curve with the ±1.5·MRA accuracy band, and the output over time.
"""

from __future__ import annotations

import html
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from testbed.domain.services.scoring import required_band
from testbed.domain.services.scoring_1547 import judge_steps, volt_var_curve, volt_watt_curve
from testbed.domain.services.voltage import MRA_P, MRA_Q, MRA_V_PU, accuracy_band
from testbed.orchestration.charts import figure_svg, style
from testbed.orchestration.report import page, verdict_table

_MAX_POINTS = 20000


def _svg(fig) -> str:
    fig.set_layout_engine("constrained")
    return figure_svg(fig)


def _thin(n: int) -> slice:
    return slice(None, None, max(1, n // _MAX_POINTS))


def frequency_chart(result) -> str:
    rec, test = result.record, result.test
    return response_chart(test.frequency_service(), rec.t_s, rec.f_hz, rec.p_kw, test.contracted, test.baseline_kw,
                          "measured P")


def response_chart(service, t_s, f_hz, p_kw, contracted_kw: float, baseline_kw: float = 0.0,
                   label: str = "measured P") -> str:
    """The applied frequency over time, and the power ``p_kw`` against the service's required band around
    ``baseline_kw`` (its tolerance included) for ``contracted_kw``."""
    t_s, f_hz, p_kw = (np.asarray(x, dtype=float) for x in (t_s, f_hz, p_kw))
    band = required_band(service, t_s, f_hz, contracted_kw)
    sl = _thin(len(t_s))
    t = t_s[sl]
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    a1.plot(t, f_hz[sl], color="tab:blue", lw=1)
    a1.set_ylabel("f [Hz]")
    a1.grid(alpha=0.3)
    lo = (band.lo - band.tol_kw)[sl] + baseline_kw
    hi = (band.hi + band.tol_kw)[sl] + baseline_kw
    a2.fill_between(t, lo, hi, color="tab:green", alpha=0.25, step="post", label="required band")
    a2.plot(t, band.ideal[sl] + baseline_kw, color="tab:green", lw=0.8, ls="--", label="curve")
    a2.plot(t, p_kw[sl], color="tab:red", lw=1, label=label)
    a2.set_ylabel("P [kW]")
    a2.set_xlabel("t [s]")
    a2.legend(loc="best", fontsize=8)
    a2.grid(alpha=0.3)
    fig.suptitle(f"{service.name}: frequency and response")
    return _svg(fig)


def voltage_curve_charts(result) -> str:
    """IEEE 1547.1 Volt-VAR (Q / S_rated) or Volt-Watt (P / P_rated) step test: the steady-state points against
    the curve and its ±1.5·MRA band, then the voltage and the output over time."""
    rec, test = result.record, result.test
    c = test.characteristic()
    if c.quantity == "q":
        y, curve, mra_y, label = rec.q_kvar / test.device.kva, volt_var_curve(c), MRA_Q, "Q / S_rated"
    else:
        y, curve, label = rec.p_kw / test.device.rated_kw, volt_watt_curve(c), "P / P_rated"
        mra_y = MRA_P * test.device.kva / test.device.rated_kw
    steady, _ = judge_steps(curve, result.steps, rec.t_s, rec.vm_pu, y, rec.valid, c.tr_s, MRA_V_PU, mra_y)
    v = np.linspace(min(c.v_points) - 0.05, max(c.v_points) + 0.05, 400)
    lo, hi = accuracy_band(c, v, MRA_V_PU, mra_y)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.fill_between(v, lo, hi, color="tab:green", alpha=0.25, label="±1.5·MRA band")
    ax.plot(v, c(v), color="tab:green", lw=1, label=c.name)
    xs = [r.x for r in steady]
    ys = [r.y for r in steady]
    bad = [r.excess > 1e-12 for r in steady]
    ax.scatter([x for x, b in zip(xs, bad, strict=True) if not b], [y for y, b in zip(ys, bad, strict=True) if not b],
               color="tab:blue", s=18, label="steady state (pass)", zorder=3)
    ax.scatter([x for x, b in zip(xs, bad, strict=True) if b], [y for y, b in zip(ys, bad, strict=True) if b],
               color="tab:red", s=22, marker="x", label="steady state (fail)", zorder=3)
    ax.set_xlabel("V [pu]")
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    curve_svg = _svg(fig)
    sl = _thin(len(rec))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    a1.plot(rec.t_s[sl], rec.vm_pu[sl], lw=1)
    a1.set_ylabel("V [pu]")
    a1.grid(alpha=0.3)
    a2.plot(rec.t_s[sl], y[sl], color="tab:red", lw=1, label="measured")
    a2.plot(rec.t_s[sl], c(rec.vm_pu[sl]), color="tab:green", lw=0.8, ls="--", label="curve")
    a2.set_ylabel(label)
    a2.set_xlabel("t [s]")
    a2.grid(alpha=0.3)
    a2.legend(fontsize=8)
    return curve_svg + _svg(fig)


def power_chart(result) -> str:
    rec = result.record
    sl = _thin(len(rec))
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    a1.plot(rec.t_s[sl], rec.f_hz[sl], lw=1)
    a1.set_ylabel("f [Hz]")
    a1.grid(alpha=0.3)
    a2.plot(rec.t_s[sl], rec.p_kw[sl], color="tab:red", lw=1)
    a2.set_ylabel("P [kW]")
    a2.set_xlabel("t [s]")
    a2.grid(alpha=0.3)
    return _svg(fig)


def render(result) -> str:
    v, test = result.verdict, result.test
    esc = html.escape
    if len(result.record) == 0:
        charts = "<p>No samples were recorded.</p>"
    else:
        with style():
            if test.characteristic() is not None:
                charts = voltage_curve_charts(result)
            elif test.control_mode == "droop":
                charts = power_chart(result)
            else:
                charts = frequency_chart(result)
    notes = "".join(f"<li>{esc(n)}</li>" for n in v.notes)
    subtitle = (
        f"Service <code>{esc(test.service)}</code>; device: {esc(str(result.info.get('device')))}; "
        f"signal: {esc(result.signal.name)} ({result.signal.duration_s:g} s, {len(result.record)} samples at "
        f"{test.step_s:g} s)."
    )
    return page(test.name, v.status, subtitle, [
        ("Verdict", verdict_table(v) + (f"<ul>{notes}</ul>" if notes else "")),
        ("Charts", charts),
    ])


def write_report(result, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(render(result), encoding="utf-8")
    return path
