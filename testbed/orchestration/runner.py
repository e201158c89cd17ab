"""Running a scenario: resolve it against its grid and profiles, build the mosaik world, write results.

A run folder holds ``scenario.yaml`` (the file as given), ``run.json`` (run id, seed, steps, wall time),
``versions.json`` (Python and package versions), ``timeseries.parquet`` and ``kpis.json``.
"""

from __future__ import annotations

import importlib
import json
import logging
import platform
import sys
import time as wallclock
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import mosaik

from simulators.prosumers.setup import build_fleet_setup
from testbed import __version__
from testbed.domain.errors import UserError
from testbed.domain.scenario.models import Scenario
from testbed.orchestration.parts.hil import hil_extensions
from testbed.orchestration.plan import RunPlan
from testbed.orchestration.report import write_report

log = logging.getLogger(__name__)

SIM_CONFIG = {
    "Grid": {"python": "simulators.grid.mosaik_sim:GridSimulator"},
    "Prosumers": {"python": "simulators.prosumers.mosaik_sim:FleetSimulator"},
    "Recorder": {"python": "simulators.recorder.mosaik_sim:RecorderSimulator"},
}
GRID_SERIES = ("vm_pu", "line_loading_pct", "trafo_loading_pct", "losses_kw", "ext_grid_p_kw", "ext_grid_q_kvar",
               "converged")
FLEET_SERIES = ("p_kw", "load_kw", "pv_kw", "ev_kw", "battery_kw", "soc", "ev_soc")
PACKAGES = ("mosaik", "mosaik-api-v3", "pandapower", "simbench", "lightsim2grid", "numpy", "pandas", "pydantic",
            "pyarrow", "opendssdirect.py")


@dataclass
class WorldContext:
    """What an extension sees while the world is built: the core entities and where the run writes."""

    world: mosaik.World
    plan: RunPlan
    run_dir: Path
    grid: object  # the Grid entity
    fleet: object  # the Fleet entity
    network: dict  # GridSimulator.network_info()
    prosumer_ids: tuple[str, ...]
    real_time: bool
    #: Extra array series for the recorder ({attr: element ids}); extensions add theirs before it is created.
    series: dict[str, list[str]]


class Extension:
    """A part of the world that only some scenarios have (the market, HIL devices).

    ``build`` adds simulators and connections, and returns the attributes it wants recorded as
    ``[(entity, [attr, ...]), ...]``; ``kpis`` returns extra KPIs merged into kpis.json after the run.
    """

    name = "extension"

    def build(self, ctx: WorldContext) -> list[tuple[object, list[str]]]:
        raise NotImplementedError

    def kpis(self, ctx: WorldContext) -> dict:
        return {}


#: Functions that look at a plan and return the extensions it needs (registered by the market and HIL).
EXTENSION_FACTORIES: list = [hil_extensions]
#: Modules that register their factories when imported (imported on first use: they pull in MQTT, and the
#: market extension subclasses Extension from this module).
EXTENSION_MODULES: tuple[str, ...] = ("testbed.orchestration.parts.market",)


def extensions_for(plan: RunPlan) -> list[Extension]:
    for name in EXTENSION_MODULES:
        importlib.import_module(name)
    return [ext for factory in EXTENSION_FACTORIES for ext in factory(plan)]


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    kpis: dict
    wall_s: float


def default_run_dir(scenario: Scenario) -> Path:
    """``<outputs.dir>/<name>-<UTC time>-seed<N>``; a second run within the same second gets ``-2``, ``-3``, ..."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    base = Path(scenario.outputs.dir) / f"{scenario.name}-{stamp}-seed{scenario.seed}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform(), "fpp-testbed": __version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def check_fresh_run_dir(run_dir: Path) -> None:
    """A run writes into a folder of its own: refuse one that already holds files (a previous run's results and
    ledger would mix with this run's, and be overwritten)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UserError(
            f"--out {run_dir}: already exists and is not an empty folder",
            ["a run never writes over another run's results: choose a new folder, or remove this one"],
        )


def run(plan: RunPlan, run_dir: Path | None = None, *, progress: bool = True, real_time: bool = False) -> RunResult:
    """Simulate the plan in a mosaik world and write the run folder.

    ``real_time`` paces the world at wall-clock speed (one step of ``time.resolution_s`` per as many seconds).
    """
    sc = plan.scenario
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(sc)
    check_fresh_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if plan.source is not None:
        (run_dir / "scenario.yaml").write_text(plan.source.read_text(encoding="utf-8"), encoding="utf-8")
    else:
        (run_dir / "scenario.yaml").write_text(json.dumps(sc.model_dump(mode="json"), indent=2), encoding="utf-8")
    (run_dir / "versions.json").write_text(json.dumps(package_versions(), indent=2) + "\n", encoding="utf-8")

    setup = build_fleet_setup(plan.prosumers, plan.profiles, sc.time)
    n_steps = sc.time.n_steps
    world = mosaik.World(
        SIM_CONFIG, time_resolution=float(sc.time.resolution_s), skip_greetings=True, configure_logging=False
    )
    t0 = wallclock.perf_counter()
    try:
        grid_sim = world.start("Grid", engine=plan.engine)
        grid = grid_sim.Grid()
        info = grid_sim.network_info()
        fleet = world.start("Prosumers", setup=setup, grid_bus_ids=info["bus_ids"]).Fleet()
        ctx = WorldContext(
            world=world, plan=plan, run_dir=run_dir, grid=grid, fleet=fleet, network=info,
            prosumer_ids=setup.ids, real_time=real_time, series={},
        )
        extensions = extensions_for(plan)
        recorded = [(ext, ext.build(ctx)) for ext in extensions]
        recorder = world.start(
            "Recorder",
            out_dir=str(run_dir),
            start=sc.time.start.isoformat(),
            resolution_s=sc.time.resolution_s,
            n_steps=n_steps,
            v_min_pu=sc.grid.v_min_pu,
            v_max_pu=sc.grid.v_max_pu,
            prosumer_ids=setup.ids,
            write_timeseries=sc.outputs.timeseries,
            progress=progress,
        ).Recorder(
            series={
                "vm_pu": info["bus_ids"],
                "line_loading_pct": info["line_ids"],
                "trafo_loading_pct": info["trafo_ids"],
                **{attr: list(setup.ids) for attr in FLEET_SERIES},
                **ctx.series,
            }
        )
        world.connect(fleet, grid, "bus_p_kw", "bus_q_kvar")
        world.connect(grid, recorder, *GRID_SERIES)
        world.connect(fleet, recorder, *FLEET_SERIES)
        for _ext, wanted in recorded:
            for entity, attrs in wanted:
                world.connect(entity, recorder, *attrs)
        world.run(until=n_steps, print_progress=False, rt_factor=1.0 if real_time else None)
    finally:
        if not getattr(world, "_shutdown_performed", True):
            world.shutdown()
    wall_s = wallclock.perf_counter() - t0
    kpis = json.loads((run_dir / "kpis.json").read_text(encoding="utf-8"))
    for ext in extensions:
        extra = ext.kpis(ctx)
        if extra:
            kpis[ext.name] = extra
    if extensions:
        (run_dir / "kpis.json").write_text(json.dumps(kpis, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    run_info = {
        "run_id": run_dir.name,
        "scenario": sc.name,
        "seed": sc.seed,
        "steps": n_steps,
        "resolution_s": sc.time.resolution_s,
        "prosumers": len(setup.ids),
        "engine": sc.grid.engine,
        "wall_s": round(wall_s, 3),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (run_dir / "run.json").write_text(json.dumps(run_info, indent=2) + "\n", encoding="utf-8")
    write_report(run_dir, sc.grid.v_min_pu, sc.grid.v_max_pu)
    return RunResult(run_dir=run_dir, kpis=kpis, wall_s=wall_s)
