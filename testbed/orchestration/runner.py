"""Running a plan: compose the world from the parts the scenario enables, run it, then compute the KPIs and
the verdict once, in memory, and write the run folder.

The life of a run (docs/architecture.md draws it):

1. :func:`parts_for` chooses the parts: grid and fleet always, a schedule when the plan carries one (``fpp
   compare``), market, grid-service contracts (``services:``) and HIL when the scenario has them;
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
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mosaik

from simulators.pacing import WallClock
from simulators.rates import ticks_per_step
from testbed.domain.errors import Fault
from testbed.domain.verdict import Verdict, at_most
from testbed.orchestration.parts.fleet import FleetPart
from testbed.orchestration.parts.fpp import FppPart
from testbed.orchestration.parts.grid import GridPart
from testbed.orchestration.parts.hil import HilPart
from testbed.orchestration.parts.market import MarketPart
from testbed.orchestration.parts.response import ResponsePart
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
    #: The fault that ended the run early (the verdict's status is then ``fault``), else None.
    fault: Fault | None = None


def parts_for(plan: RunPlan) -> list[Part]:
    """The parts of a run, in the order they are built (each may use what the earlier ones provide)."""
    sc = plan.scenario
    parts: list[Part] = [GridPart(sc.grid.v_min_pu, sc.grid.v_max_pu), FleetPart()]
    if plan.schedule is not None:
        parts.append(SchedulePart(plan.schedule[1], plan.schedule[2], plan.schedule[0]))
    if sc.market is not None:
        parts.append(MarketPart(sc.market))
    if sc.services is not None:
        parts.append(FppPart(sc.services))
    if sc.frequency_response is not None:
        parts.append(ResponsePart(sc.frequency_response))
    hil = HilPart.for_plan(plan)
    if hil is not None:
        parts.append(hil)
    return parts


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run, raised after its folder was written with what had been recorded."""

    def __init__(self, run_dir: Path, what: str) -> None:
        super().__init__(f"{what}; the run folder {run_dir} keeps what was recorded (fpp report {run_dir})")
        self.run_dir = run_dir


def _fault_in(exc: BaseException) -> Fault | None:
    """The :class:`Fault` that ended a run, also when mosaik wrapped it in its own exception."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, Fault):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def run(plan: RunPlan, run_dir: Path | None = None, *, progress: bool = True, real_time: bool = False,
        max_lateness_ms: float | None = None) -> RunResult:
    """Simulate the plan in a mosaik world and write the run folder (a new one under ``outputs.dir`` unless
    ``run_dir`` is given, which must be new or empty).

    ``real_time`` paces the world at wall-clock speed (one step of ``time.resolution_s`` per as many
    seconds, :mod:`simulators.pacing`); ``kpis.json`` then has a ``real_time`` section with the warm-up and
    the step lateness. ``max_lateness_ms`` (default: the scenario's ``time.max_lateness_ms``) ends a
    real-time run as a fault at the first step later than it.

    A fault during the run (a device, a lateness budget) ends the world early; the run folder still gets
    the KPIs of what was recorded and a verdict with status ``fault`` (exit 3). Ctrl-C does the same with an
    ``inconclusive`` verdict, then raises :class:`Interrupted` (a ``KeyboardInterrupt``).
    """
    sc = plan.scenario
    run_dir = claim_run_dir(run_dir, sc)
    write_inputs(run_dir, sc, plan.source, plan.overrides)
    # The world's tick: the scenario's step, or the fast step of frequency_response (mixed rates, where the
    # grid, fleet, market and recorder step every `ticks` ticks: simulators.rates).
    tick_s = float(sc.time.resolution_s)
    if sc.frequency_response is not None:
        tick_s = sc.frequency_response.step_s
    ticks = ticks_per_step(sc.time.resolution_s, tick_s)
    # With mixed rates mosaik's output cache is off: it keeps every fast output until the slowest simulator
    # steps again and rebuilds the cache at every tick, which made a 15-minute step of 18,000 ticks take twice
    # as long as 18 steps of 1 s (measured: 300 s against 153 s for 36,000 ticks). Without it the data is
    # pushed; 3 minutes of the example gave identical time series, samples and KPIs either way (2026-12-07).
    world = mosaik.World({}, time_resolution=tick_s, skip_greetings=True, configure_logging=False,
                         cache=ticks == 1)
    budget_ms = max_lateness_ms if max_lateness_ms is not None else sc.time.max_lateness_ms
    clock = None
    if real_time:
        clock = WallClock(tick_s, None if budget_ms is None else budget_ms / 1000)
    builder = WorldBuilder(world=world, plan=plan, run_dir=run_dir, real_time=real_time, clock=clock,
                           ticks_per_step=ticks)
    parts = parts_for(plan)
    sink: dict[str, Any] = {}
    fault: Fault | None = None
    interrupted = False
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
            try:
                with warnings.catch_warnings():
                    # Real-time runs are paced by the clock (simulators.pacing); mosaik's rt_factor only keeps
                    # simulators from running ahead of it, and its per-step "too slow" warning is replaced by
                    # the measured lateness in kpis.json and one line in the summary.
                    warnings.filterwarnings("ignore", message="Simulation too slow for real-time factor")
                    world.run(until=sc.time.n_steps * ticks, print_progress=False, rt_factor=1.0 if real_time else None)
            except KeyboardInterrupt:
                interrupted = True  # Ctrl-C: keep what was recorded, then let the interrupt go on
            except Exception as exc:
                fault = _fault_in(exc)
                if fault is None:
                    raise
                log.error("run %s ended early: %s", run_dir.name, fault)
            wall_s = wallclock.perf_counter() - t0
        finally:
            # Every simulator finalizes (the recorder's KPIs and time series, the bridge's clients), also after
            # a fault or Ctrl-C ended world.run early; after a normal run mosaik has done it (a no-op here).
            world.shutdown()
        kpis = dict(sink.get("kpis") or {})
        if clock is not None:
            clock.close()
            kpis["real_time"] = clock.kpis()
            if ticks > 1:  # the steps of the slow simulators among the ticks
                kpis["real_time"]["slow_steps"] = clock.kpis(every=ticks)
            write_json(run_dir / "lateness.json", {
                "step_s": clock.seconds_per_step,
                "step": [t for t, _ in clock.lateness],
                "lateness_ms": [round(late * 1000, 3) for _, late in clock.lateness],
            })
        for part in parts:
            section = part.kpis(builder)
            if section:
                kpis[part.name] = section
    finally:
        if clock is not None:
            clock.close()
        for part in parts:
            part.close()
    criteria = tuple(c for part in parts for c in part.criteria(kpis)) if "steps" in kpis else ()
    if clock is not None and fault is None:
        criteria += (_on_time(kpis["real_time"]),)
    stopped = None
    if interrupted:
        stopped = f"interrupted (Ctrl-C) after {kpis.get('steps', 0)} of {sc.time.n_steps} steps"
    verdict = Verdict(criteria, fault=None if fault is None else fault.render(), inconclusive=stopped)
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
            "tick_s": tick_s,
            "prosumers": len(builder.prosumer_ids),
            "engine": sc.grid.engine,
            "parts": [p.name for p in parts],
            "wall_s": round(wall_s, 3),
            "real_time": real_time,
            "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    write_report(run_dir, kpis=kpis, verdict=verdict)
    log.info("run %s: %s", run_dir.name, verdict.summary())
    if interrupted:
        raise Interrupted(run_dir, stopped)
    return RunResult(run_dir=run_dir, kpis=kpis, verdict=verdict, wall_s=wall_s, fault=fault)


def _on_time(rt: dict[str, Any]) -> Any:
    """A real-time run's criterion: no step started a whole step length late (a missed deadline)."""
    return at_most(
        "real-time deadlines", rt["missed_deadlines"], 0, "steps",
        f"steps at least one step length ({rt['step_s']:g} s) late; lateness p99 {rt['lateness_p99_ms']:.1f} ms, "
        f"max {rt['lateness_max_ms']:.1f} ms",
        group="real time",
    )
