"""The day-ahead forecast power flow that finds the DSO's needs (orchestration: it runs the fleet model and the
grid engine; the sizing of contracts is the pure :func:`testbed.domain.fpp.find_dso_contracts`).

1. The members' forecasts: the fleet model (:class:`simulators.prosumers.fleet.ProsumerFleet`) is stepped over
   the whole run with the scenario's profiles, each home under its own self-consumption controller: every
   home's net power and its battery's state of charge per step. The forecast is the profile itself (perfect
   foresight of the profiles); the members' forecast errors enter their offers as ``soc_sd`` and
   ``net_load_sd_kw`` (``services.members``).
2. A power flow per forecast step (every 15 minutes, or every step when the resolution is coarser) on the
   grid engine gives each transformer's and line's loading and every bus voltage.
3. The network sensitivities at the forecast's worst step: one extra power flow per bus where a member with a
   battery sits, with 1 kW more injected there (a finite-difference PTDF and dV/dP on the full AC power flow).
   An element's flow is its loading expressed in kW of its rating (``loading_pct / 100 * rating_kva``), so
   its limit is ``limit_pct / 100 * rating_kva``; ratings come from the pandapower network (transformers:
   ``sn_mva``; lines: ``sqrt(3) * vn_kv * max_i_ka * df * parallel``).

The engine is the run's own (its injections are replaced at every solve, so the run is not affected).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from simulators.prosumers.fleet import ProsumerFleet
from simulators.prosumers.setup import build_fleet_setup
from testbed.domain.errors import UserError
from testbed.domain.fpp import Contract, DsoTerms, Forecast, PenaltyRule, find_dso_contracts
from testbed.domain.scenario.models import DsoOpportunities
from testbed.orchestration.plan import RunPlan

FORECAST_STEP_S = 900
SENSITIVITY_KW = 1.0


@dataclass(frozen=True)
class MemberForecast:
    """Every prosumer's forecast per step of the run: net power [kW, generator convention] and the state of
    charge at the *start* of each step [0..1]."""

    ids: tuple[str, ...]
    buses: tuple[str, ...]
    resolution_s: int
    p_kw: np.ndarray  # (n_steps, n)
    soc_start: np.ndarray  # (n_steps + 1, n): soc before step k; the last row is the end of the run
    load_kvar: np.ndarray  # (n_steps, n)
    battery_kw: np.ndarray  # (n_steps, n): the battery's own power under the home's controller (> 0 discharges)


def member_forecast(plan: RunPlan) -> MemberForecast:
    """Step the fleet model over the run with every home's own controller (module docstring, 1)."""
    window = plan.scenario.time
    setup = build_fleet_setup(plan.prosumers, plan.profiles, window)
    fleet = ProsumerFleet(setup)
    n_steps = setup.n_steps
    p = np.zeros((n_steps, fleet.n))
    q = np.zeros((n_steps, fleet.n))
    b = np.zeros((n_steps, fleet.n))
    soc = np.zeros((n_steps + 1, fleet.n))
    for k in range(n_steps):
        soc[k] = fleet.batteries.soc
        st = fleet.step(k)
        p[k], q[k], b[k] = st.p_kw, st.load_kvar, st.battery_kw
    soc[n_steps] = fleet.batteries.soc
    return MemberForecast(setup.ids, setup.buses, window.resolution_s, p, soc, q, b)


def _ratings_kva(engine) -> tuple[np.ndarray, np.ndarray]:
    net = getattr(engine, "net", None)
    if net is None:
        raise UserError("services.dso: the forecast power flow needs the pandapower engine",
                        ["grid.engine: set pandapower to let the platform find DSO contracts"])
    trafo = np.concatenate([net.trafo.sn_mva.to_numpy(float), net.trafo3w.sn_hv_mva.to_numpy(float)]) * 1000.0
    vn = net.bus.vn_kv.reindex(net.line.from_bus).to_numpy(float)
    line = (math.sqrt(3) * vn * net.line.max_i_ka.to_numpy(float) * net.line.df.to_numpy(float)
            * net.line.parallel.to_numpy(float) * 1000.0)
    return trafo, line


@dataclass(frozen=True)
class ForecastFlow:
    """The forecast power flow (module docstring): element loadings [kW of rating], limits, voltages, and the
    contracts it calls for."""

    forecast: Forecast
    elements: tuple[str, ...]
    trafo_loading_pct: np.ndarray  # (forecast steps, n_trafo)
    contracts: list[Contract]


def forecast_power_flow(plan: RunPlan, members: MemberForecast, dso: DsoOpportunities, currency: str,
                        candidate_buses: list[str]) -> ForecastFlow:
    """Run the forecast power flow and find the DSO contracts it calls for (module docstring, 2 and 3)."""
    engine = plan.engine
    info = engine.info
    trafo_kva, line_kva = _ratings_kva(engine)
    res = members.resolution_s
    stride = max(1, FORECAST_STEP_S // res) if res < FORECAST_STEP_S else 1
    pos = np.array([info.bus_index(b) for b in members.buses], dtype=np.int64)
    nb = len(info.bus_ids)

    def solve(p_bus: np.ndarray, q_bus: np.ndarray):
        engine.set_injections(p_bus, q_bus)
        snap = engine.solve()
        if not snap.converged:
            raise UserError("services.dso: the forecast power flow did not converge", [snap.message])
        flows = np.concatenate([snap.trafo_loading_pct / 100.0 * trafo_kva, snap.line_loading_pct / 100.0 * line_kva])
        return flows, snap.vm_pu, snap.trafo_loading_pct

    steps = range(0, members.p_kw.shape[0], stride)
    injections = []
    flows, vms, trafo_pct = [], [], []
    for k in steps:
        p_bus = np.bincount(pos, weights=members.p_kw[k:k + stride].mean(axis=0), minlength=nb)
        q_bus = np.bincount(pos, weights=-members.load_kvar[k:k + stride].mean(axis=0), minlength=nb)
        f, v, t = solve(p_bus, q_bus)
        injections.append((p_bus, q_bus))
        flows.append(f)
        vms.append(v)
        trafo_pct.append(t)
    flow = np.array(flows)
    vm = np.array(vms)
    limit = np.concatenate([trafo_kva * dso.trafo_limit_pct / 100.0, line_kva * dso.line_limit_pct / 100.0])
    elements = tuple(f"trafo:{t.removeprefix('trafo ')}" for t in info.trafo_ids) + tuple(
        f"line:{x.removeprefix('line ')}" for x in info.line_ids)
    v_min, v_max = plan.scenario.grid.v_min_pu, plan.scenario.grid.v_max_pu
    # sensitivities at the worst step (the largest overload against its limit, or the worst voltage)
    over = flow / limit
    dev = np.maximum(v_min - vm, vm - v_max)
    worst = int(np.argmax(np.maximum(over.max(axis=1) - 1.0, dev.max(axis=1) if dso.voltage else -1.0)))
    base_p, base_q = injections[worst]
    ptdf = np.zeros((len(elements), len(candidate_buses)))
    dvdp = np.zeros((nb, len(candidate_buses)))
    for j, bus in enumerate(candidate_buses):
        p_bus = base_p.copy()
        p_bus[info.bus_index(bus)] += SENSITIVITY_KW
        f, v, _ = solve(p_bus, base_q)
        ptdf[:, j] = (f - flow[worst]) / SENSITIVITY_KW
        dvdp[:, j] = (v - vm[worst]) / SENSITIVITY_KW
    forecast = Forecast(
        start=plan.scenario.time.start, step_s=float(stride * res), elements=elements, flow_kw=flow, limit_kw=limit,
        buses=list(candidate_buses), ptdf=ptdf,
        monitored_buses=list(info.bus_ids) if dso.voltage else [], vm_pu=vm if dso.voltage else None,
        dvdp_pu_per_kw=dvdp if dso.voltage else None, v_min_pu=v_min, v_max_pu=v_max,
    )
    terms = DsoTerms(
        availability_price_per_kw_h=dso.availability_price_per_kw_h,
        utilisation_price_per_kwh=dso.utilisation_price_per_kwh, penalty=PenaltyRule.model_validate(dso.penalty),
        currency=currency, confidence=dso.confidence, min_sensitivity=dso.min_sensitivity, margin=dso.margin,
        merge_gap_s=dso.merge_gap_s,
    )
    contracts = [] if not candidate_buses else find_dso_contracts(forecast, terms)
    contracts = [c.model_copy(update={"id": re.sub(r"[^A-Za-z0-9_.:-]", "_", c.id)[:128]}) for c in contracts]
    return ForecastFlow(forecast, elements, np.array(trafo_pct), contracts)
