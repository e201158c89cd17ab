"""Per-step cost of each grid engine: bare solver call, engine step, and engine step inside a mosaik world.

For each grid (SimBench LV and a SimBench MV/LV grid of ~9,100 buses) and each engine:

- **bare**: only the solver call the engine makes, on the same network and the same injections
  (pandapower: ``runpp`` with the engine's options, i.e. recycle + only_v_results + lightsim2grid where exact;
  OpenDSS: ``Solution.Solve()``); the injections are written before the clock starts;
- **engine**: ``set_injections`` + ``solve`` (writes the injections, solves, builds the Snapshot);
- **co-simulation**: a mosaik world with the testbed's ``GridSimulator`` fed by a replay simulator that sends the
  same per-bus injections as ``{bus_id: p_kw}`` dicts, wall time per step (mosaik, the dict inputs and the replay
  simulator included).

The injections change every step (seeded, the same for every variant): each step is a real solve. Each variant
runs ``--repeats`` times, interleaved, and the median step over all repeats is reported (the 2-core machine is
shared with other jobs; the median is robust to their bursts). Co-simulation steps are timed between consecutive
calls of the replay simulator's ``step``.

Run: ``.venv/bin/python benchmarks/grid_engines.py [--steps-lv 200] [--steps-mvlv 20]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import time
import warnings

import mosaik
import mosaik_api_v3
import numpy as np
import pandapower as pp

from simulators.grid.factory import build_engine

GRIDS = {
    "LV": ("simbench:1-LV-rural3--0-sw", 2.0),
    "MV/LV": ("simbench:1-MVLV-semiurb-all-0-sw", 0.5),
}


def injections(n_bus: int, n_steps: int, scale_kw: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.normal(-scale_kw / 2, scale_kw, (n_steps, n_bus))
    q = 0.3 * p
    return p, q


def bare_pandapower(eng, p, q) -> np.ndarray:
    net = eng.net
    idx = eng._inj_index
    opts = eng._options
    out = np.zeros(len(p))
    for k in range(len(p)):
        net.load.loc[idx, "p_mw"] = -p[k] / 1000.0
        net.load.loc[idx, "q_mvar"] = -q[k] / 1000.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            pp.runpp(net, **opts)
            out[k] = time.perf_counter() - t
    return out


def bare_opendss(eng, p, q) -> np.ndarray:
    solution = eng._dss.Solution
    out = np.zeros(len(p))
    for k in range(len(p)):
        eng.set_injections(p[k], q[k])
        t = time.perf_counter()
        solution.Solve()
        out[k] = time.perf_counter() - t
    return out


def engine_step(eng, p, q) -> np.ndarray:
    out = np.zeros(len(p))
    for k in range(len(p)):
        t = time.perf_counter()
        eng.set_injections(p[k], q[k])
        snap = eng.solve()
        out[k] = time.perf_counter() - t
        if not snap.converged:
            raise RuntimeError(snap.message)
    return out


class Replay(mosaik_api_v3.Simulator):
    """Sends precomputed per-bus injections, one row per step."""

    def __init__(self) -> None:
        super().__init__({"api_version": "3.0", "type": "time-based",
                          "models": {"Replay": {"public": True, "params": [],
                                                "attrs": ["p_kw_by_bus", "q_kvar_by_bus"]}}})
        self.t = 0

    def init(self, sid, time_resolution=1.0, bus_ids=(), p=None, q=None):
        self.bus_ids, self.p, self.q = list(bus_ids), p, q
        self.stamps: list[float] = []
        Replay.last = self
        return self.meta

    def create(self, num, model, **params):
        return [{"eid": "replay", "type": model}]

    def step(self, t, inputs, max_advance):
        self.t = t
        self.stamps.append(time.perf_counter())  # one co-simulation step lies between two stamps
        return t + 1

    def get_data(self, outputs):
        row = self.t
        return {"replay": {"p_kw_by_bus": dict(zip(self.bus_ids, self.p[row].tolist(), strict=True)),
                           "q_kvar_by_bus": dict(zip(self.bus_ids, self.q[row].tolist(), strict=True))}}


def cosim_step(eng, p, q) -> np.ndarray:
    config = {"Grid": {"python": "simulators.grid.mosaik_sim:GridSimulator"}, "Replay": {"python": "__main__:Replay"}}
    world = mosaik.World(config, skip_greetings=True)
    try:
        grid = world.start("Grid", engine=eng).Grid()
        replay = world.start("Replay", bus_ids=eng.info.bus_ids, p=p, q=q).Replay()
        world.connect(replay, grid, "p_kw_by_bus", "q_kvar_by_bus")
        world.run(until=len(p), print_progress=False)
    finally:
        if not getattr(world, "_shutdown_performed", True):
            world.shutdown()
    return np.diff(Replay.last.stamps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps-lv", type=int, default=200)
    ap.add_argument("--steps-mvlv", type=int, default=40)
    ap.add_argument("--grids", nargs="*", default=list(GRIDS))
    ap.add_argument("--repeats", type=int, default=3, help="repeats per variant (interleaved)")
    args = ap.parse_args()
    import logging

    logging.getLogger("mosaik").setLevel(logging.WARNING)
    try:
        from loguru import logger

        logger.remove()
    except ImportError:
        pass
    print(f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.processor() or platform.machine()}, "
          f"python {platform.python_version()}")
    print(f"{'grid':<6} {'engine':<10} {'buses':>6} {'steps':>5} {'bare ms':>9} {'engine ms':>9} {'cosim ms':>9} "
          f"{'engine/bare':>11} {'cosim/bare':>10}")
    for label in args.grids:
        ref, scale = GRIDS[label]
        steps = args.steps_lv if label == "LV" else args.steps_mvlv
        for engine in ("pandapower", "opendss"):
            eng = build_engine(ref, engine=engine, keep_elements=False)
            n = len(eng.info.bus_ids)
            p, q = injections(n, steps + 1, scale)
            engine_step(eng, p[:1], q[:1])  # warm-up (first solve builds pandapower's structures)
            bare_fn = bare_pandapower if engine == "pandapower" else bare_opendss
            # The machine is shared: interleave the variants over repeats and report each one's median step.
            samples = {"bare": [], "engine": [], "cosim": []}
            for _ in range(args.repeats):
                samples["bare"].append(bare_fn(eng, p, q))
                samples["engine"].append(engine_step(eng, p, q))
                samples["cosim"].append(cosim_step(eng, p, q))
            bare, step, co = (float(np.median(np.concatenate(samples[k]))) for k in ("bare", "engine", "cosim"))
            print(f"{label:<6} {engine:<10} {n:>6} {steps:>5} {bare * 1e3:>9.3f} {step * 1e3:>9.3f} {co * 1e3:>9.3f} "
                  f"{step / bare:>11.2f} {co / bare:>10.2f}", flush=True)


if __name__ == "__main__":
    main()
