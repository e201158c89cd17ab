"""IEEE 1547.1-2020 pass/fail rules for step tests (Volt-VAR §5.14.4, Volt-Watt §5.14.6, frequency droop
§5.15), from samples with their own timestamps. Pure.

For each held step of the signal:

- **steady state** (at the last valid sample of the step): the measured output lies in
  ``[min Y over x ± 1.5·MRA_x − 1.5·MRA_y, max Y over x ± 1.5·MRA_x + 1.5·MRA_y]`` where ``x`` is the input
  measured at that sample;
- **open-loop response time** (at the first valid sample at or after one response time ``Tr``, taken at
  ``d`` seconds after the step): the output of a first-order response making 90 % of its change at ``Tr``,
  evaluated at ``d ∓ 1.5·MRA_T·d``, ± 1.5·MRA_y. Judging at the sample's own ``d`` is what makes the verdict
  independent of when the sample was due.

The verdict is refused (``inconclusive``) when the samples' lateness (p99) exceeds the time accuracy the rule
allows, ``1.5·MRA_T·Tr``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from testbed.domain.services.frequency import FrequencyService
from testbed.domain.services.scoring import Record, _refuse_if_untimely
from testbed.domain.services.signals import HeldStep
from testbed.domain.services.voltage import MRA_F_HZ, MRA_P, MRA_Q, MRA_T, MRA_V_PU, Characteristic, first_order
from testbed.domain.verdict import Criterion, Verdict

#: y(step, x) [per unit]: the output the curve asks for at input x during ``step`` (its power level).
Curve = Callable[[HeldStep, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class StepResult:
    label: str
    x: float
    y: float
    lo: float
    hi: float
    t_s: float  # time of the judged sample after the step start [s]

    @property
    def excess(self) -> float:
        return max(self.lo - self.y, self.y - self.hi, 0.0)


def _span(curve: Curve, step: HeldStep, x: float, a: float) -> tuple[float, float]:
    """Least and largest y over [x − a, x + a] (the curves here are monotone between their knee points, which
    :meth:`Characteristic.span` also visits)."""
    xs = np.linspace(x - a, x + a, 41)
    ys = curve(step, xs)
    return float(ys.min()), float(ys.max())


def judge_steps(
    curve: Curve,
    steps: Sequence[HeldStep],
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    valid: np.ndarray,
    tr_s: float,
    mra_x: float,
    mra_y: float,
) -> tuple[list[StepResult], list[StepResult]]:
    """(steady-state results, response-time results), one per step that holds a valid sample."""
    ok = valid & np.isfinite(y) & np.isfinite(x)
    steady, timing = [], []
    for st in steps:
        inside = np.flatnonzero(ok & (t >= st.t_start_s) & (t < st.t_end_s))
        if inside.size == 0:
            continue
        k = inside[-1]
        lo, hi = _span(curve, st, float(x[k]), 1.5 * mra_x)
        steady.append(
            StepResult(
                st.label, float(x[k]), float(y[k]), lo - 1.5 * mra_y, hi + 1.5 * mra_y, float(t[k] - st.t_start_s)
            )
        )
        before = np.flatnonzero(ok & (t < st.t_start_s))
        at_tr = inside[t[inside] >= st.t_start_s + tr_s]
        if before.size == 0 or at_tr.size == 0:
            continue
        j = at_tr[0]
        d = float(t[j] - st.t_start_s)
        y0 = float(y[before[-1]])
        y_ss = float(curve(st, np.array([st.x]))[0])
        a = first_order(y0, y_ss, d - 1.5 * MRA_T * d, tr_s)
        b = first_order(y0, y_ss, d + 1.5 * MRA_T * d, tr_s)
        timing.append(
            StepResult(
                st.label, float(x[j]), float(y[j]), float(min(a, b)) - 1.5 * mra_y, float(max(a, b)) + 1.5 * mra_y, d
            )
        )
    return steady, timing


def _criterion(name: str, results: list[StepResult], unit_name: str, n_steps: int) -> Criterion:
    if not results:
        return Criterion(name, None, None, 0.0, "% of rating", "no step held a valid sample", "service")
    bad = [r for r in results if r.excess > 1e-12]
    worst = max(results, key=lambda r: r.excess)
    detail = f"{len(results) - len(bad)} of {len(results)} judged steps inside (of {n_steps})"
    if bad:
        detail += (
            f"; worst {worst.label}: {unit_name} {worst.y:.4f} outside [{worst.lo:.4f}, {worst.hi:.4f}] "
            f"at {worst.t_s:.2f} s"
        )
    passed = not bad and len(results) == n_steps
    if not bad and len(results) < n_steps:
        passed = None
        detail += "; steps without a valid sample cannot be judged"
    return Criterion(name, passed, 100.0 * worst.excess, 0.0, "% of rating", detail, "service")


def score_steps(
    curve: Curve,
    steps: Sequence[HeldStep],
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    rec: Record,
    tr_s: float,
    mra_x: float,
    mra_y: float,
    what: str,
    unit_name: str,
) -> Verdict:
    steady, timing = judge_steps(curve, steps, t, x, y, rec.valid, tr_s, mra_x, mra_y)
    crit = (
        _criterion(f"{what}: steady state within ±1.5·MRA at every step", steady, unit_name, len(steps)),
        _criterion(
            f"{what}: 90 % of the change at one response time ({tr_s:g} s)",
            timing,
            unit_name,
            sum(1 for st in steps if st.t_end_s - st.t_start_s > tr_s and st.t_start_s > t[0]),
        ),
    )
    return _refuse_if_untimely(Verdict(crit), rec, 1.5 * MRA_T * tr_s, what)


def volt_var_curve(c: Characteristic) -> Curve:
    return lambda step, v: c(v)


def volt_watt_curve(c: Characteristic) -> Curve:
    """P/P_rated: the characteristic, capped by what the power level makes available."""
    return lambda step, v: np.minimum(c(v), step.level)


def droop_curve(service: FrequencyService) -> Curve:
    """P/P_rated under frequency droop from a starting level: ``level + response``, within 0..1 (a PV DER
    cannot raise its output above what is available, nor go below zero)."""
    return lambda step, f: np.clip(step.level + service.fraction(f), 0.0, step.level)


def score_volt_var(c: Characteristic, steps: Sequence[HeldStep], rec: Record, s_rated_kva: float) -> Verdict:
    """Volt-VAR: x = applied voltage [pu], y = Q / S_rated."""
    return score_steps(
        volt_var_curve(c),
        steps,
        rec.t_s,
        rec.vm_pu,
        rec.q_kvar / s_rated_kva,
        rec,
        c.tr_s,
        MRA_V_PU,
        MRA_Q,
        c.name,
        "Q/S",
    )


def score_volt_watt(
    c: Characteristic, steps: Sequence[HeldStep], rec: Record, p_rated_kw: float, s_rated_kva: float
) -> Verdict:
    """Volt-Watt: x = applied voltage [pu], y = P / P_rated; MRA_P is 5 % of S_rated."""
    return score_steps(
        volt_watt_curve(c),
        steps,
        rec.t_s,
        rec.vm_pu,
        rec.p_kw / p_rated_kw,
        rec,
        c.tr_s,
        MRA_V_PU,
        MRA_P * s_rated_kva / p_rated_kw,
        c.name,
        "P/Prated",
    )


def score_droop(
    service: FrequencyService, steps: Sequence[HeldStep], rec: Record, p_rated_kw: float, s_rated_kva: float
) -> Verdict:
    """Frequency droop: x = applied frequency [Hz], y = P / P_rated; response time = the service's
    open-loop response time."""
    return score_steps(
        droop_curve(service),
        steps,
        rec.t_s,
        rec.f_hz,
        rec.p_kw / p_rated_kw,
        rec,
        service.full_delivery_s,
        MRA_F_HZ,
        MRA_P * s_rated_kva / p_rated_kw,
        service.name,
        "P/Prated",
    )
