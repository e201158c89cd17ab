"""Year-long co-simulation against pandapower's bare time series on the same grid and profiles.

    .venv/bin/python benchmarks/foundation_year.py            # the whole of scenarios/year.yaml
    .venv/bin/python benchmarks/foundation_year.py --days 7   # a shorter window for a quick look

Both sides solve one power flow per 15-minute step on SimBench 1-LV-rural3--0-sw and log bus voltages and
line and transformer loadings:

- co-simulation: ``testbed.orchestration.runner.run`` on scenarios/year.yaml (mosaik world with the grid, the prosumer
  fleet with batteries and EVs, and the recorder writing Parquet and KPIs);
- bare: ``pandapower.timeseries.run_timeseries`` with one ``ConstControl`` per load table column (the same
  households' SimBench load profiles) and the fleet's PV as static generators with their profiles, logged
  by an ``OutputWriter`` (pandapower's own recycle and batch reading apply).

Prints both wall times and their ratio.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandapower as pp
import pandas as pd
from pandapower.control import ConstControl
from pandapower.timeseries import DFData, OutputWriter, run_timeseries

from simulators.prosumers.profiles import per_step, step_slots
from testbed.orchestration.plan import load_plan
from testbed.orchestration.runner import run

ROOT = Path(__file__).resolve().parents[1]


def bare_timeseries(plan, n_steps: int) -> float:
    """Wall time of pandapower's own time series for the plan's grid, loads and PV [s]."""
    sc = plan.scenario
    from simulators.grid.networks import load_pandapower

    net = load_pandapower(sc.grid.network)
    slots = step_slots(sc.time.start, n_steps, sc.time.resolution_s)
    profiles = plan.profiles
    loads = {gl.name: gl for gl in profiles.grid_loads}
    p = {}
    q = {}
    for idx, row in net.load.iterrows():
        gl = loads[row["name"]]
        p[idx] = per_step(profiles.load_p[gl.profile], slots) * gl.p_kw / 1000.0
        q[idx] = per_step(profiles.load_q[gl.profile], slots) * gl.q_kvar / 1000.0
    net.sgen["in_service"] = False
    bus_of = dict(zip(net.bus.name, net.bus.index, strict=True))
    pv = {}
    for pros in plan.prosumers:
        if pros.pv is not None:
            s = pp.create_sgen(net, bus=bus_of[pros.bus], p_mw=0.0, name=f"pv {pros.id}")
            pv[s] = per_step(profiles.pv[pros.pv.profile], slots) * pros.pv.kwp / 1000.0
    ds_p = DFData(pd.DataFrame(p))
    ds_q = DFData(pd.DataFrame(q))
    ds_pv = DFData(pd.DataFrame(pv))
    ConstControl(net, "load", "p_mw", element_index=list(p), data_source=ds_p, profile_name=list(p))
    ConstControl(net, "load", "q_mvar", element_index=list(q), data_source=ds_q, profile_name=list(q))
    ConstControl(net, "sgen", "p_mw", element_index=list(pv), data_source=ds_pv, profile_name=list(pv))
    out = tempfile.mkdtemp()
    ow = OutputWriter(net, time_steps=range(n_steps), output_path=out, output_file_type=".csv")
    ow.log_variable("res_bus", "vm_pu")
    ow.log_variable("res_line", "loading_percent")
    ow.log_variable("res_trafo", "loading_percent")
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_timeseries(net, time_steps=range(n_steps), verbose=False)
    wall = time.perf_counter() - t0
    vm = ow.output["res_bus.vm_pu"].to_numpy()
    print(f"bare: vm_pu range {np.nanmin(vm):.4f}..{np.nanmax(vm):.4f}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, help="simulate only this many days of the year scenario")
    args = parser.parse_args()
    plan = load_plan(ROOT / "scenarios" / "year.yaml")
    if args.days:
        window = plan.scenario.time.model_copy(update={"duration_h": args.days * 24})
        plan.scenario = plan.scenario.model_copy(update={"time": window})
    n_steps = plan.scenario.time.n_steps
    print(f"{n_steps} steps of {plan.scenario.time.resolution_s} s, {len(plan.prosumers)} prosumers")

    with tempfile.TemporaryDirectory() as tmp:
        result = run(plan, Path(tmp) / "run", progress=False)
    k = result.kpis
    print(f"co-simulation: {result.wall_s:.1f} s ({1000 * result.wall_s / n_steps:.2f} ms/step); "
          f"vm_pu {k['v_min_pu']:.4f}..{k['v_max_pu']:.4f}, non-converged {k['non_converged_steps']}")
    bare = bare_timeseries(plan, n_steps)
    print(f"bare pandapower run_timeseries: {bare:.1f} s ({1000 * bare / n_steps:.2f} ms/step)")
    print(f"ratio co-simulation / bare: {result.wall_s / bare:.2f}")


if __name__ == "__main__":
    main()
