"""Scoring a frequency-response service from 20 Hz samples. Pure.

The required response over time is a band: the curve evaluated at the applied frequency ± the measurement
accuracy, widened over time by the full-delivery time (between a frequency change and the full-delivery time
the response may lie anywhere between what was asked before and what is asked now), plus the tolerance. Every
figure is computed from the samples' own timestamps, so when a sample was taken late, it is judged at the time
it was taken, not at the time it was due.

Criteria (each a :class:`~testbed.domain.verdict.Criterion` with group ``service``):

- **initiation**: after each step of the signal, the time until the response has made 10 % of the requested
  change, against the service's initiation time;
- **full delivery**: the time until the response is within the tolerance of what is asked, against the
  full-delivery time; further **milestones** (e.g. 50 % within 15 s for FCR) likewise;
- **samples inside the band** [% of valid samples];
- **energy delivered** against the least energy the band requires [%];
- **performance** [%]: 100 × (1 − energy outside the band / energy the curve asks for);

and the verdict is refused (``inconclusive``) when the samples' lateness (p99) exceeds a tenth of the service's
tightest time, or when more than 1 % of the samples are invalid.

Thresholds not given by the services' rules (10 % for initiation, the acceptance shares) are the testbed's,
named in :class:`Acceptance`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from testbed.domain.services.frequency import FrequencyService, held_fraction
from testbed.domain.verdict import Criterion, Verdict

INITIATION_SHARE = 0.10  # the response has started once it made 10 % of the requested change (testbed)
MAX_INVALID_SHARE = 0.01


@dataclass(frozen=True)
class Acceptance:
    """The testbed's acceptance thresholds [%] (not published by the services' rules; a test file may set
    them)."""

    min_in_band_pct: float = 95.0
    min_energy_pct: float = 95.0
    min_performance_pct: float = 95.0


@dataclass(frozen=True)
class Record:
    """Samples of one test. ``t_s`` sample times from the test start [s] (the samples' own timestamps,
    ascending); ``f_hz`` the frequency applied at each sample [Hz]; ``p_kw``/``q_kvar`` measured power
    (generator convention); ``vm_pu`` applied voltage; ``valid`` whether the sample was read; ``lateness_s``
    how late each sample was taken [s] (zeros in simulated time); ``period_s`` the sampling period [s]."""

    t_s: np.ndarray
    f_hz: np.ndarray
    p_kw: np.ndarray
    valid: np.ndarray
    lateness_s: np.ndarray
    period_s: float
    q_kvar: np.ndarray | None = None
    vm_pu: np.ndarray | None = None
    available_pct: np.ndarray | None = None

    @classmethod
    def from_arrays(
        cls,
        t_s,
        f_hz,
        p_kw,
        *,
        period_s: float,
        valid=None,
        lateness_s=None,
        q_kvar=None,
        vm_pu=None,
        available_pct=None,
    ) -> Record:
        t = np.asarray(t_s, dtype=float)
        n = t.size

        def arr(x, fill):
            return np.full(n, fill, dtype=float) if x is None else np.asarray(x, dtype=float)

        return cls(
            t,
            arr(f_hz, np.nan),
            arr(p_kw, np.nan),
            np.ones(n, bool) if valid is None else np.asarray(valid, dtype=bool),
            arr(lateness_s, 0.0),
            float(period_s),
            None if q_kvar is None else arr(q_kvar, np.nan),
            None if vm_pu is None else arr(vm_pu, np.nan),
            None if available_pct is None else arr(available_pct, np.nan),
        )

    def __len__(self) -> int:
        return int(self.t_s.size)


@dataclass(frozen=True)
class Band:
    """Required response at each sample [kW]: ``ideal`` the curve at the applied frequency; ``lo``/``hi`` the
    band (timing and accuracy, without the tolerance); ``tol_kw`` the tolerance."""

    ideal: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    tol_kw: float


def _trailing(fn, x: np.ndarray, w: int) -> np.ndarray:
    if w <= 0:
        return x
    return fn(x, size=w + 1, origin=w - (w + 1) // 2, mode="nearest")


def required_band(service: FrequencyService, t_s: np.ndarray, f_hz: np.ndarray, contracted_kw: float) -> Band:
    """The band of :mod:`this module <testbed.domain.services.scoring>`'s docstring at the times ``t_s`` [s]."""
    t = np.asarray(t_s, dtype=float)
    f = np.asarray(f_hz, dtype=float)
    ideal = held_fraction(service, t, f) * contracted_kw
    if t.size == 0:
        return Band(ideal, ideal, ideal, service.tolerance * contracted_kw)
    dt = float(np.median(np.diff(t))) if t.size > 1 else 1.0
    dt = max(dt, 1e-3)
    n = int(np.floor((t[-1] - t[0]) / dt)) + 1
    grid = t[0] + dt * np.arange(n)
    idx = np.clip(np.searchsorted(t, grid, side="right") - 1, 0, t.size - 1)
    fg = f[idx]  # the frequency held since the latest sample
    a = held_fraction(service, grid, fg - service.accuracy_hz)
    b = held_fraction(service, grid, fg + service.accuracy_hz)
    w = int(round(service.full_delivery_s / dt))
    lo_g = _trailing(minimum_filter1d, np.minimum(a, b), w)
    hi_g = _trailing(maximum_filter1d, np.maximum(a, b), w)
    k = np.clip(np.floor((t - t[0]) / dt + 1e-9).astype(int), 0, n - 1)
    return Band(ideal, lo_g[k] * contracted_kw, hi_g[k] * contracted_kw, service.tolerance * contracted_kw)


@dataclass(frozen=True)
class EventTiming:
    """Timing of the response to one step: times [s] after the step (None: not reached before the next step or
    the end of the record, ``span_s`` later)."""

    t_event_s: float
    requested_kw: float
    initiation_s: float | None
    full_delivery_s: float | None
    milestones_s: tuple[float | None, ...]
    span_s: float


def event_timings(
    service: FrequencyService, rec: Record, band: Band, events_s, baseline_kw: float
) -> list[EventTiming]:
    """Timing after each event whose requested change is a step larger than twice the tolerance."""
    t, ok = rec.t_s, rec.valid & np.isfinite(rec.p_kw)
    resp = rec.p_kw - baseline_kw
    out = []
    evs = sorted(e for e in events_s if t.size and t[0] <= e < t[-1])
    for i, te in enumerate(evs):
        t_next = evs[i + 1] if i + 1 < len(evs) else t[-1] + 1e-9
        seg = (t >= te) & (t < t_next)
        before = np.flatnonzero((t < te) & ok)
        if not seg.any():
            continue
        seg_idx = np.flatnonzero(seg)
        y1 = band.ideal[seg_idx[-1]]
        ideal_before = band.ideal[before[-1]] if before.size else 0.0
        delta = y1 - ideal_before
        if abs(delta) < 2 * band.tol_kw or np.min(np.abs(band.ideal[seg_idx[:3]] - y1)) > band.tol_kw:
            continue  # no step worth timing, or not a step (a ramp, a sine)
        r0 = resp[before[-1]] if before.size else 0.0
        good = seg_idx[ok[seg_idx]]
        moved = (resp[good] - r0) * np.sign(delta)

        def first(mask, good=good, te=te):
            hit = np.flatnonzero(mask)
            return None if hit.size == 0 else float(t[good[hit[0]]] - te)

        out.append(
            EventTiming(
                te,
                float(delta),
                first(moved >= INITIATION_SHARE * abs(delta)),
                first(np.abs(resp[good] - y1) <= band.tol_kw),
                tuple(first(moved >= frac * abs(delta)) for frac, _ in service.milestones),
                float(t_next - te),
            )
        )
    return out


def allowed_lateness_s(service: FrequencyService) -> float:
    """The sample lateness (p99) the service's timing allows: a tenth of its tightest time [s]."""
    return 0.1 * min(service.initiation_s, service.full_delivery_s)


def _timing_criterion(name: str, times: list[float | None], spans: list[float], limit_s: float) -> Criterion:
    missed = [i for i, x in enumerate(times) if x is None]
    worst = max((x for x in times if x is not None), default=None)
    if missed:
        figure = max(spans[i] for i in missed)
        return Criterion(
            name,
            False,
            figure,
            limit_s,
            "s",
            f"not reached within {figure:.2f} s after {len(missed)} of {len(times)} steps",
            "service",
        )
    return Criterion(
        name,
        worst <= limit_s,
        worst,
        limit_s,
        "s",
        f"worst of {len(times)} steps {worst:.2f} s (limit {limit_s:g} s)",
        "service",
    )


def score_frequency_service(
    service: FrequencyService,
    rec: Record,
    contracted_kw: float,
    events_s=(),
    *,
    baseline_kw: float = 0.0,
    acceptance: Acceptance | None = None,
) -> Verdict:
    """Every criterion of the module docstring, gathered in a :class:`Verdict`."""
    acc = acceptance or Acceptance()
    band = required_band(service, rec.t_s, rec.f_hz, contracted_kw)
    ok = rec.valid & np.isfinite(rec.p_kw)
    n, n_ok = len(rec), int(ok.sum())
    crit: list[Criterion] = []
    resp = np.where(ok, rec.p_kw - baseline_kw, 0.0)
    timings = event_timings(service, rec, band, events_s, baseline_kw)
    if timings:
        spans = [e.span_s for e in timings]
        crit.append(
            _timing_criterion(
                f"initiation within {service.initiation_s:g} s",
                [e.initiation_s for e in timings],
                spans,
                service.initiation_s,
            )
        )
        crit.append(
            _timing_criterion(
                f"full delivery within {service.full_delivery_s:g} s",
                [e.full_delivery_s for e in timings],
                spans,
                service.full_delivery_s,
            )
        )
        for k, (frac, limit) in enumerate(service.milestones):
            crit.append(
                _timing_criterion(
                    f"{100 * frac:g} % of the change within {limit:g} s",
                    [e.milestones_s[k] for e in timings],
                    spans,
                    limit,
                )
            )
    lo, hi = band.lo - band.tol_kw, band.hi + band.tol_kw
    outside = np.where(ok, np.maximum(lo - resp, 0.0) + np.maximum(resp - hi, 0.0), 0.0)
    inside_pct = 100.0 * float(np.count_nonzero((outside <= 1e-9) & ok)) / n_ok if n_ok else None
    crit.append(
        Criterion(
            f"samples inside the required band ≥ {acc.min_in_band_pct:g} %",
            None if inside_pct is None else inside_pct >= acc.min_in_band_pct,
            inside_pct,
            acc.min_in_band_pct,
            "%",
            "no valid sample"
            if inside_pct is None
            else f"{inside_pct:.2f} % of {n_ok} valid samples inside (tolerance ±{band.tol_kw:g} kW)",
            "service",
        )
    )
    dt = np.diff(rec.t_s, append=rec.t_s[-1] + rec.period_s) if n else np.zeros(0)
    dt = np.where(ok, dt, 0.0)
    need = np.maximum(band.lo, 0.0) - np.minimum(band.hi, 0.0)  # least magnitude the band requires
    sign = np.where(band.lo > 0, 1.0, np.where(band.hi < 0, -1.0, 0.0))
    req_kwh = float(np.sum(need * dt)) / 3600.0
    if req_kwh > 0:
        got_kwh = float(np.sum(np.where(sign != 0, resp * sign, 0.0) * dt)) / 3600.0
        pct = 100.0 * got_kwh / req_kwh
        crit.append(
            Criterion(
                f"energy delivered ≥ {acc.min_energy_pct:g} % of required",
                pct >= acc.min_energy_pct,
                pct,
                acc.min_energy_pct,
                "%",
                f"{got_kwh:.4f} kWh delivered against {req_kwh:.4f} kWh required",
                "service",
            )
        )
    asked = float(np.sum(np.abs(band.ideal) * dt))
    denom = asked if asked > 0 else contracted_kw * float(np.sum(dt))
    if denom > 0:
        perf = 100.0 * (1.0 - float(np.sum(outside * dt)) / denom)
        crit.append(
            Criterion(
                f"performance ≥ {acc.min_performance_pct:g} %",
                perf >= acc.min_performance_pct,
                perf,
                acc.min_performance_pct,
                "%",
                "100 × (1 − energy outside the band / energy the curve asks for)",
                "service",
            )
        )
    return _refuse_if_untimely(Verdict(tuple(crit)), rec, allowed_lateness_s(service), service.name)


def _refuse_if_untimely(verdict: Verdict, rec: Record, allowed_s: float, what: str) -> Verdict:
    """Keep the figures but judge nothing when the samples were too late or too few were valid."""
    n = len(rec)
    late_p99 = float(np.percentile(rec.lateness_s, 99)) if n else 0.0
    invalid = n - int(np.count_nonzero(rec.valid))
    notes = (
        f"sample lateness p99 {1000 * late_p99:.1f} ms, max {1000 * float(rec.lateness_s.max()) if n else 0:.1f} "
        f"ms (allowed p99 {1000 * allowed_s:.0f} ms)",
        f"{invalid} of {n} samples invalid",
    )
    why = None
    if n == 0:
        why = "no samples"
    elif late_p99 > allowed_s:
        why = (
            f"sample lateness p99 {1000 * late_p99:.1f} ms exceeds the {1000 * allowed_s:.0f} ms that the timing of "
            f"{what} allows"
        )
    elif invalid > MAX_INVALID_SHARE * n:
        why = f"{invalid} of {n} samples invalid (more than {100 * MAX_INVALID_SHARE:g} %)"
    if why is None:
        return Verdict(verdict.criteria, notes=notes)
    unjudged = tuple(Criterion(c.name, None, c.figure, c.limit, c.unit, c.detail, c.group) for c in verdict.criteria)
    return Verdict(unjudged, inconclusive=why, notes=notes)
