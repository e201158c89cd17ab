"""Running a plan: compose the world from the parts the scenario enables, run it, then compute the KPIs and
the verdict once, in memory, and write the run folder.

The life of a run (docs/architecture.md draws it):

1. :func:`parts_for` chooses the parts: grid and fleet always, a schedule when the plan carries one (``fpp
   compare``), market and HIL when the scenario has them;
2. each part adds itself to the world through one :class:`~testbed.orchestration.world.WorldBuilder`; the
   recorder comes last, with every attribute the parts asked to record;
3. mosaik runs the world; the recorder accumulates the grid and fleet KPIs;
4. each part adds its section of the KPIs and its criteria; :class:`~testbed.domain.verdict.Verdict` is
   their conjunction;
5. ``kpis.json``, ``verdict.json``, ``run.json`` and ``report.html`` are written once.
"""

from __future__ import annotations

import logging
import time as wallclock
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mosaik

from testbed.domain.verdict import Verdict
from testbed.orchestration.parts.fleet import FleetPart
from testbed.orchestration.parts.grid import GridPart
from testbed.orchestration.parts.hil import HilPart
from testbed.orchestration.parts.market import MarketPart
from testbed.orchestration.parts.schedule import SchedulePart
from testbed.orchestration.plan import RunPlan
from testbed.orchestration.report import write_report
from testbed.orchestration.run_folder import claim_run_dir, write_inputs, write_json
from testbed.orchestration.world import Part, WorldBuilder

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    """What a run gives back: its folder, its KPIs (as in ``kpis.json``), its verdict and its wall time [s]."""

    run_dir: Path
    kpis: dict[str, Any]
    verdict: Verdict
    wall_s: float


def parts_for(plan: RunPlan) -> list[Part]:
    """The parts of a run, in the order they are built (each may use what the earlier ones provide)."""
    sc = plan.scenario
    parts: list[Part] = [GridPart(sc.grid.v_min_pu, sc.grid.v_max_pu), FleetPart()]
    if plan.schedule is not None:
        parts.append(SchedulePart(plan.schedule[1], plan.schedule[2], plan.schedule[0]))
    if sc.market is not None:
        parts.append(MarketPart(sc.market))
    hil = HilPart.for_plan(plan)
    if hil is not None:
        parts.append(hil)
    return parts


def run(plan: RunPlan, run_dir: Path | None = None, *, progress: bool = True, real_time: bool = False) -> RunResult:
    """Simulate the plan in a mosaik world and write the run folder (a new one under ``outputs.dir`` unless
    ``run_dir`` is given, which must be new or empty).

    ``real_time`` paces the world at wall-clock speed (one step of ``time.resolution_s`` per as many seconds).
    """
    sc = plan.scenario
    run_dir = claim_run_dir(run_dir, sc)
    write_inputs(run_dir, sc, plan.source, plan.overrides)
    world = mosaik.World({}, time_resolution=float(sc.time.resolution_s), skip_greetings=True,
                         configure_logging=False)
    builder = WorldBuilder(world=world, plan=plan, run_dir=run_dir, real_time=real_time)
    parts = parts_for(plan)
    sink: dict[str, Any] = {}
    t0 = wallclock.perf_counter()
    try:
        try:
            for part in parts:
                part.build(builder)
            recorder = builder.start(
                "Recorder",
                "simulators.recorder.mosaik_sim:RecorderSimulator",
                out_dir=str(run_dir),
                start=sc.time.start.isoformat(),
                resolution_s=sc.time.resolution_s,
                n_steps=sc.time.n_steps,
                v_min_pu=sc.grid.v_min_pu,
                v_max_pu=sc.grid.v_max_pu,
                prosumer_ids=builder.prosumer_ids,
                write_timeseries=sc.outputs.timeseries,
                progress=progress,
                kpi_sink=sink,
            ).Recorder(series=builder.series)
            for entity, attrs in builder.recorded:
                world.connect(entity, recorder, *attrs)
            world.run(until=sc.time.n_steps, print_progress=False, rt_factor=1.0 if real_time else None)
            wall_s = wallclock.perf_counter() - t0
        finally:
            if not getattr(world, "_shutdown_performed", True):
                world.shutdown()  # every simulator finalizes: the recorder's KPIs, the bridge's clients
        kpis = dict(sink["kpis"])
        for part in parts:
            section = part.kpis(builder)
            if section:
                kpis[part.name] = section
    finally:
        for part in parts:
            part.close()
    verdict = Verdict(tuple(c for part in parts for c in part.criteria(kpis)))
    write_json(run_dir / "kpis.json", kpis)
    write_json(run_dir / "verdict.json", verdict.as_dict())
    write_json(
        run_dir / "run.json",
        {
            "run_id": run_dir.name,
            "scenario": sc.name,
            "source": str(plan.source) if plan.source else None,
            "overrides": plan.overrides,
            "seed": sc.seed,
            "steps": sc.time.n_steps,
            "resolution_s": sc.time.resolution_s,
            "prosumers": len(builder.prosumer_ids),
            "engine": sc.grid.engine,
            "parts": [p.name for p in parts],
            "wall_s": round(wall_s, 3),
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    write_report(run_dir, kpis=kpis, verdict=verdict)
    log.info("run %s: %s", run_dir.name, verdict.summary())
    return RunResult(run_dir=run_dir, kpis=kpis, verdict=verdict, wall_s=wall_s)
