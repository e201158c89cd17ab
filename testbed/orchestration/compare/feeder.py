"""The feeder's limits for the central operator: linearised from the grid engine's own power flows, then every
schedule checked by the real power flow, with the limits tightened where the check fails.

Sensitivities (one power flow per bus that has homes, from the unloaded feeder): a kW consumed at bus ``b``
changes bus voltages by ``dv_dp[:, b]`` and the loading of each line and transformer by ``dl_dp[:, b]``
percent. With ``inj`` the net injection per bus (generator convention) the rows are

    v_min - v0 <= dv_dp @ inj <= v_max - v0      (every bus, ``vm:<bus> pu``)
    -100 % <= -dl_dp @ inj <= 100 %               (every line and transformer, ``line:<id> loading_pct``)

the loading row being the first-order signed flow of a radial feeder (it ignores the reactive part). They
become :class:`~testbed.domain.market.network.NetworkRows`, the market's form of linearised limits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from simulators.grid.engine import GridEngine
from testbed.domain.compare.dispatch import Schedule, community_schedule
from testbed.domain.compare.homes import Homes
from testbed.domain.compare.tariff import Prices
from testbed.domain.errors import UserError
from testbed.domain.market.network import NetworkRows

log = logging.getLogger(__name__)

PROBE_KW = 10.0  # consumption added at one bus to measure the sensitivities
MAX_TIGHTENINGS = 6
TOLERANCE = {"vm": 1e-4, "loading": 0.1}  # pu, percentage points: what counts as a violation


def feeder_rows(engine: GridEngine, homes: Homes, v_min_pu: float, v_max_pu: float) -> NetworkRows:
    """The linearised limits of the feeder (module docstring), from ``1 + buses with homes`` power flows."""
    info = engine.info
    n_bus = len(info.bus_ids)
    zero = np.zeros(n_bus)
    engine.set_injections(zero, zero)
    base = engine.solve()
    if not base.converged:
        raise UserError(f"central: the unloaded feeder's power flow does not converge ({base.message})")
    vm0 = base.vm_pu
    load0 = np.concatenate([base.line_loading_pct, base.trafo_loading_pct])
    dv = np.zeros((n_bus, n_bus))
    dl = np.zeros((len(load0), n_bus))
    for b in np.unique(homes.bus):
        p = zero.copy()
        p[b] = -PROBE_KW
        engine.set_injections(p, zero)
        snap = engine.solve()
        if not snap.converged:
            raise UserError(f"central: the power flow with {PROBE_KW} kW at bus {info.bus_ids[b]} does not converge")
        dv[:, b] = (snap.vm_pu - vm0) / -PROBE_KW  # per kW injected
        dl[:, b] = (np.concatenate([snap.line_loading_pct, snap.trafo_loading_pct]) - load0) / PROBE_KW
    monitored = np.isfinite(vm0)
    names = [f"vm:{b} pu" for b, m in zip(info.bus_ids, monitored, strict=True) if m]
    names += [f"line:{x} loading_pct" for x in info.line_ids] + [f"trafo:{x} loading_pct" for x in info.trafo_ids]
    A = np.vstack([dv[monitored], -dl])
    lower = np.concatenate([v_min_pu - vm0[monitored], np.full(len(load0), -100.0)])
    upper = np.concatenate([v_max_pu - vm0[monitored], np.full(len(load0), 100.0)])
    return NetworkRows(A, lower, upper, tuple(names))


@dataclass
class CheckReport:
    """What the power-flow checks of the central schedule found: one entry per solve of the optimisation."""

    iterations: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"solves": len(self.iterations), "iterations": self.iterations}


def power_flow_violations(
    engine: GridEngine, homes: Homes, p_kw: np.ndarray, q_kvar: np.ndarray, v_min_pu: float, v_max_pu: float
) -> dict[str, tuple[int, float]]:
    """Run the power flow of every step of the homes' net powers; ``{row name: (worst step, overshoot)}``
    for every limit exceeded (overshoot in pu for voltages, percentage points for loadings)."""
    info = engine.info
    n_bus = len(info.bus_ids)
    out: dict[str, tuple[int, float]] = {}

    def note(name: str, t: int, over: float) -> None:
        if name not in out or over > out[name][1]:
            out[name] = (t, over)

    elements = [f"line:{x} loading_pct" for x in info.line_ids] + [f"trafo:{x} loading_pct" for x in info.trafo_ids]
    for t in range(homes.n_steps):
        p_bus = np.bincount(homes.bus, weights=p_kw[t], minlength=n_bus)
        q_bus = np.bincount(homes.bus, weights=q_kvar[t], minlength=n_bus)
        engine.set_injections(p_bus, q_bus)
        snap = engine.solve()
        if not snap.converged:
            note("power flow convergence", t, float("inf"))
            continue
        for b, v in zip(info.bus_ids, snap.vm_pu, strict=True):
            if v > v_max_pu + TOLERANCE["vm"]:
                note(f"vm:{b} pu", t, v - v_max_pu)
            elif v < v_min_pu - TOLERANCE["vm"]:
                note(f"vm:{b} pu", t, v - v_min_pu)  # negative: below the band
        loading = np.concatenate([snap.line_loading_pct, snap.trafo_loading_pct])
        for name, value in zip(elements, loading, strict=True):
            if value > 100.0 + TOLERANCE["loading"]:
                note(name, t, value - 100.0)
    return out


def _tightened(rows: NetworkRows, violations: dict[str, tuple[int, float]]) -> NetworkRows:
    lower, upper = rows.lower.copy(), rows.upper.copy()
    index = {n: i for i, n in enumerate(rows.names)}
    for name, (_t, over) in violations.items():
        if name not in index:
            raise UserError(f"central: the power flow does not hold ({name}) and no linear limit can steer it")
        r = index[name]
        margin = 1.2 * abs(over)
        if name.startswith("vm:"):
            if over > 0:
                upper[r] -= margin
            else:
                lower[r] += margin
        else:
            upper[r] -= margin
            lower[r] += margin
    return NetworkRows(rows.A, lower, upper, rows.names)


def checked_central_schedule(
    homes: Homes, prices: Prices, engine: GridEngine, q_kvar: np.ndarray, v_min_pu: float, v_max_pu: float
) -> tuple[Schedule, CheckReport]:
    """The central optimum whose power flow keeps every limit: solve with the linearised limits, check every
    step with the real power flow, tighten the limits that failed by 1.2x their overshoot, solve again.
    :class:`~testbed.domain.compare.dispatch.InfeasibleLimits` when the (tightened) limits cannot hold,
    UserError when the check still fails after :data:`MAX_TIGHTENINGS` rounds (naming the limits)."""
    rows = feeder_rows(engine, homes, v_min_pu, v_max_pu)
    report = CheckReport()
    for _ in range(MAX_TIGHTENINGS + 1):
        schedule = community_schedule(homes, prices, rows)
        bad = power_flow_violations(engine, homes, schedule.p_kw, q_kvar, v_min_pu, v_max_pu)
        report.iterations.append(
            {"objective": round(schedule.objective, 6),
             "violations": {n: {"step": t, "overshoot": round(o, 6)} for n, (t, o) in sorted(bad.items())}}
        )
        if not bad:
            return schedule, report
        log.info("central: power flow exceeds %d limit(s), tightening: %s", len(bad), ", ".join(sorted(bad)))
        rows = _tightened(rows, bad)
    raise UserError(
        f"central: the power-flow check still fails after {MAX_TIGHTENINGS} tightenings of the linearised limits",
        [f"{n}: over by {o:.4g} at step {t}" for n, (t, o) in sorted(bad.items())],
    )
