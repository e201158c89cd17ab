"""Per-step cost of each grid engine: bare solver call, engine step, and engine step inside a mosaik world.

For each grid (SimBench LV and a SimBench MV/LV grid of ~9,100 buses) and each engine:

- **bare**: the solver call the engine makes (pandapower: ``runpp`` with the engine's options, i.e. recycle +
  only_v_results + lightsim2grid where exact; OpenDSS: ``Solution.Solve()``), timed by a thin wrapper around
  that call *inside* the engine, so that every step yields its own bare time;
- **engine**: ``set_injections`` + ``solve`` (writes the injections, solves, builds the Snapshot);
- **co-simulation**: a mosaik world with the testbed's ``GridSimulator`` fed by a replay simulator that sends the
  per-bus injections the way the testbed's prosumer fleet does, as arrays in the grid's bus order (``bus_p_kw``,
  ``bus_q_kvar``; ``--dict-inputs`` sends ``{bus_id: p_kw}`` dicts instead); a step is the time between two
  calls of the replay simulator's ``step`` (mosaik, the inputs, the replay simulator and the grid step included).

Column ``write``: the part of the engine step spent in OpenDSS's batch writes of the injections (a bare OpenDSS
loop must write the loads too before each ``Solution.Solve``); ``cosim/(bare+write)`` relates the co-simulation
step to that pair. Row ``mosaik only``: the same replay simulator and inputs with a grid simulator that does
nothing, i.e. what mosaik itself costs per step.

Row ``opendss-rebuild``: the same OpenDSS engine with OpenDSS's default property setter, which rebuilds each
load's primitive admittance (and so the system Y matrix) whenever its power is written; the engine itself writes
with DSS C-API's ``AvoidFullRecalc`` flag, which avoids that. It shows what the "bare" ``Solution.Solve`` costs
when the injections are written the usual way.

The injections change every step (seeded): each step is a real solve. The machine (2 cores) is shared with other
jobs, so ratios are taken **per step** (step time / bare time of the same step) and the medians over all steps
and ``--repeats`` repeats are reported; the bare column is the median bare time over the engine and
co-simulation runs.

Run: ``.venv/bin/python benchmarks/grid_engines.py [--steps-lv 200] [--steps-mvlv 40] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import logging
import platform
import time

import mosaik
import mosaik_api_v3
import numpy as np
import pandapower
from dss.ISolution import ISolution

from simulators.grid.factory import build_engine
from simulators.grid.opendss_engine import OpenDSSEngine

GRIDS = {
    "LV": ("simbench:1-LV-rural3--0-sw", 2.0),
    "MV/LV": ("simbench:1-MVLV-semiurb-all-0-sw", 0.5),
}

_solver_times: list[float] = []
_write_times: list[float] = []  # OpenDSS's batch writes of the injections


@contextlib.contextmanager
def timed_solver():
    """Record the duration of every pandapower ``runpp`` / OpenDSS ``Solution.Solve`` call made meanwhile."""
    orig_runpp = pandapower.runpp
    orig_solve = ISolution.Solve

    def runpp(*args, **kwargs):
        t = time.perf_counter()
        try:
            return orig_runpp(*args, **kwargs)
        finally:
            _solver_times.append(time.perf_counter() - t)

    def solve(self):
        t = time.perf_counter()
        try:
            return orig_solve(self)
        finally:
            _solver_times.append(time.perf_counter() - t)

    orig_write = OpenDSSEngine._write_batch

    def write(self, *args):
        t = time.perf_counter()
        try:
            return orig_write(self, *args)
        finally:
            _write_times.append(time.perf_counter() - t)

    pandapower.runpp = runpp
    ISolution.Solve = solve
    OpenDSSEngine._write_batch = write
    try:
        yield
    finally:
        pandapower.runpp = orig_runpp
        ISolution.Solve = orig_solve
        OpenDSSEngine._write_batch = orig_write


def injections(n_bus: int, n_steps: int, scale_kw: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.normal(-scale_kw / 2, scale_kw, (n_steps, n_bus))
    return p, 0.3 * p


def engine_steps(eng, p, q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(step time, bare solver time, injection write time) per step."""
    step = np.zeros(len(p))
    bare = np.zeros(len(p))
    writes = np.zeros(len(p))
    for k in range(len(p)):
        _solver_times.clear()
        _write_times.clear()
        t = time.perf_counter()
        eng.set_injections(p[k], q[k])
        snap = eng.solve()
        step[k] = time.perf_counter() - t
        bare[k] = sum(_solver_times)
        writes[k] = sum(_write_times)
        if not snap.converged:
            raise RuntimeError(snap.message)
    return step, bare, writes


class Replay(mosaik_api_v3.Simulator):
    """Sends precomputed per-bus injections, one row per step, and time-stamps its steps."""

    last: Replay | None = None

    def __init__(self) -> None:
        super().__init__(
            {
                "api_version": "3.0",
                "type": "time-based",
                "models": {
                    "Replay": {
                        "public": True,
                        "params": [],
                        "attrs": ["bus_p_kw", "bus_q_kvar", "p_kw_by_bus", "q_kvar_by_bus"],
                    }
                },
            }
        )
        self.t = 0

    def init(self, sid, time_resolution=1.0, bus_ids=(), p=None, q=None):
        self.bus_ids, self.p, self.q = list(bus_ids), p, q
        self.stamps: list[float] = []
        self.solver: list[float] = []
        self.writes: list[float] = []
        Replay.last = self
        return self.meta

    def create(self, num, model, **params):
        return [{"eid": "replay", "type": model}]

    def step(self, t, inputs, max_advance):
        self.t = t
        self.stamps.append(time.perf_counter())  # one co-simulation step lies between two stamps
        self.solver.append(sum(_solver_times))  # solver time of the previous step
        self.writes.append(sum(_write_times))
        _solver_times.clear()
        _write_times.clear()
        return t + 1

    def get_data(self, outputs):
        row = self.t
        out = {}
        for attr in outputs["replay"]:
            if attr == "bus_p_kw":
                out[attr] = self.p[row].copy()
            elif attr == "bus_q_kvar":
                out[attr] = self.q[row].copy()
            else:
                values = self.p[row] if attr == "p_kw_by_bus" else self.q[row]
                out[attr] = dict(zip(self.bus_ids, values.tolist(), strict=True))
        return {"replay": out}


class NullGrid(mosaik_api_v3.Simulator):
    """Takes the grid's inputs and does nothing: a world with it measures mosaik's own cost per step."""

    def __init__(self) -> None:
        attrs = ["bus_p_kw", "bus_q_kvar", "p_kw_by_bus", "q_kvar_by_bus"]
        models = {"Grid": {"public": True, "params": [], "attrs": attrs}}
        super().__init__({"api_version": "3.0", "type": "time-based", "models": models})

    def create(self, num, model, **params):
        return [{"eid": "grid", "type": model}]

    def step(self, t, inputs, max_advance):
        return t + 1

    def get_data(self, outputs):
        return {}


def cosim_steps(eng, p, q, dict_inputs: bool = False, grid_sim: str = "simulators.grid.mosaik_sim:GridSimulator"):
    """(co-simulation step time, bare solver time, injection write time) per step."""
    config = {"Grid": {"python": grid_sim}, "Replay": {"python": "__main__:Replay"}}
    world = mosaik.World(config, skip_greetings=True)
    try:
        grid = world.start("Grid", engine=eng).Grid() if eng is not None else world.start("Grid").Grid()
        bus_ids = eng.info.bus_ids if eng is not None else [str(k) for k in range(p.shape[1])]
        replay = world.start("Replay", bus_ids=bus_ids, p=p, q=q).Replay()
        if dict_inputs:
            world.connect(replay, grid, "p_kw_by_bus", "q_kvar_by_bus")
        else:
            world.connect(replay, grid, "bus_p_kw", "bus_q_kvar")
        world.run(until=len(p), print_progress=False)
    finally:
        if not getattr(world, "_shutdown_performed", True):
            world.shutdown()
    rec = Replay.last
    # Stamp k+1 closes step k (replay k, grid k); the solver time of grid step k is recorded at stamp k+1.
    return np.diff(rec.stamps), np.asarray(rec.solver[1:]), np.asarray(rec.writes[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps-lv", type=int, default=200)
    ap.add_argument("--steps-mvlv", type=int, default=40)
    ap.add_argument("--grids", nargs="*", default=list(GRIDS), choices=list(GRIDS))
    ap.add_argument("--repeats", type=int, default=3, help="repeats of the engine and co-simulation runs")
    ap.add_argument(
        "--engines",
        nargs="*",
        default=["pandapower", "opendss", "opendss-rebuild"],
        choices=["pandapower", "opendss", "opendss-rebuild"],
    )
    ap.add_argument("--dict-inputs", action="store_true", help="feed the grid {bus_id: value} dicts, not arrays")
    args = ap.parse_args()
    logging.getLogger("mosaik").setLevel(logging.WARNING)
    with contextlib.suppress(ImportError):
        from loguru import logger

        logger.remove()
    print(
        f"# {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, {len(_cpus())} cores, "
        f"python {platform.python_version()}"
    )
    print(
        f"{'grid':<6} {'engine':<16} {'buses':>6} {'steps':>5} {'bare ms':>8} {'write ms':>8} {'engine ms':>9} "
        f"{'cosim ms':>9} {'engine/bare':>11} {'cosim/bare':>10} {'cosim/(bare+write)':>18}"
    )
    for label in args.grids:
        ref, scale = GRIDS[label]
        steps = args.steps_lv if label == "LV" else args.steps_mvlv
        n = 0
        for engine in args.engines:
            eng = build_engine(ref, engine=engine.split("-")[0], keep_elements=False)
            if engine == "opendss-rebuild":
                eng._setter_flags = 0  # OpenDSS's default setter: every kW/kvar write rebuilds the load's YPrim
            n = len(eng.info.bus_ids)
            p, q = injections(n, steps + 1, scale)
            with timed_solver():
                engine_steps(eng, p[:2], q[:2])  # warm-up: the first solve builds pandapower's structures
                runs = {"eng": ([], [], []), "co": ([], [], [])}
                for _ in range(args.repeats):
                    for kind, result in (
                        ("eng", engine_steps(eng, p, q)),
                        ("co", cosim_steps(eng, p, q, args.dict_inputs)),
                    ):
                        for acc, values in zip(runs[kind], result, strict=True):
                            acc.append(values)
            eng_step, eng_bare, eng_write = (np.concatenate(a) for a in runs["eng"])
            co_step, co_bare, co_write = (np.concatenate(a) for a in runs["co"])
            bare = np.median(np.concatenate([eng_bare, co_bare]))
            write = np.median(np.concatenate([eng_write, co_write]))
            floor_ratio = f"{np.median(co_step / (co_bare + co_write)):>18.2f}" if write > 0 else f"{'-':>18}"
            print(
                f"{label:<6} {engine:<16} {n:>6} {steps:>5} {bare * 1e3:>8.3f} {write * 1e3:>8.3f} "
                f"{np.median(eng_step) * 1e3:>9.3f} {np.median(co_step) * 1e3:>9.3f} "
                f"{np.median(eng_step / eng_bare):>11.2f} {np.median(co_step / co_bare):>10.2f} {floor_ratio}",
                flush=True,
            )
        # mosaik's own cost: the same replay simulator and inputs, a grid simulator that does nothing.
        p, q = injections(n, steps + 1, scale)
        floor = np.concatenate([cosim_steps(None, p, q, args.dict_inputs, "__main__:NullGrid")[0] for _ in range(3)])
        print(
            f"{label:<6} {'mosaik only':<16} {n:>6} {steps:>5} {'':>8} {'':>8} {'':>9} {np.median(floor) * 1e3:>9.3f}"
        )


def _cpus() -> set[int]:
    import os

    return os.sched_getaffinity(0)


if __name__ == "__main__":
    main()
