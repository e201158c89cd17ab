"""``fpp compare``: run the strategies of one scenario (in parallel processes where cores allow), then put
their figures side by side in ``comparison.json`` and ``comparison.html``.

Each strategy writes its own run folder ``<out>/<strategy>/`` (the usual ``kpis.json``, ``report.html``,
``timeseries.parquet``). A strategy that fails does not stop the others: the comparison names it and the
command exits 1. Welfare efficiency and the spread of gains need ``retail`` and ``central``, which are
always run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time as wallclock
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from testbed.domain.compare.bills import spread_of_gains, welfare_efficiency
from testbed.domain.compare.strategies import STRATEGIES, parse_strategies
from testbed.domain.errors import UserError
from testbed.orchestration.compare.page import write_page
from testbed.orchestration.compare.strategy_run import run_strategy
from testbed.orchestration.plan import load_plan
from testbed.orchestration.run_folder import write_json

log = logging.getLogger(__name__)


def _claim(out: Path) -> Path:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out}: exists and is not an empty folder; give a new one")
    out.mkdir(parents=True, exist_ok=True)
    return out


def scenario_notes(path: Path, overrides: Mapping[str, Any], strategies: Sequence[str] = ()
                   ) -> tuple[list[str], dict[str, Any]]:
    """Check the scenario once (every problem at once, exit 2) and say what there is to coordinate."""
    plan = load_plan(path, overrides=overrides)
    if "fpp" in strategies and plan.scenario.services is None:
        raise UserError(f"{path}: strategy fpp compares the market with grid-service contracts, and this "
                        "scenario has no services: section (docs/fpp.md; scenarios/fpp.yaml has one)")
    n = len(plan.prosumers)
    batteries = sum(1 for p in plan.prosumers if p.battery is not None)
    evs = sum(1 for p in plan.prosumers if p.ev is not None)
    notes = []
    if batteries == 0 and evs == 0:
        notes.append("the scenario has no batteries and no EVs: nothing to coordinate, so every strategy gives the "
                     "same dispatch; costs differ only by who settles with whom")
    elif batteries == 0:
        notes.append("the scenario has no batteries: only EV charging can be coordinated")
    info = {"scenario": plan.scenario.name, "homes": n, "batteries": batteries, "evs": evs,
            "steps": plan.scenario.time.n_steps, "resolution_s": plan.scenario.time.resolution_s,
            "start": plan.scenario.time.start.isoformat(), "seed": plan.scenario.seed}
    return notes, info


def summarise(results: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Add welfare efficiency and the spread of gains over retail to every finished strategy."""
    retail, central = results.get("retail"), results.get("central")
    both = retail and central and retail["status"] == "ok" and central["status"] == "ok"
    out = {}
    for name, r in results.items():
        r = dict(r)
        if r["status"] == "ok" and both:
            r["welfare_efficiency"] = welfare_efficiency(retail["cost"], r["cost"], central["cost"])
            ids = list(retail["bills"])
            r["gains"] = spread_of_gains(
                np.array([r["bills"][i] for i in ids]), np.array([retail["bills"][i] for i in ids])
            )
        elif r["status"] == "ok":
            r["welfare_efficiency"] = None
            r["gains"] = None
        out[name] = r
    return out


def compare(
    scenario: str | Path,
    strategies: str | Sequence[str],
    out: str | Path,
    *,
    overrides: Mapping[str, Any] | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Run ``strategies`` on ``scenario`` into ``out`` (new or empty) and write the comparison; returns what
    ``comparison.json`` holds. ``workers``: processes at once (default: one per core, at most one per
    strategy; 1 runs them one after the other in this process)."""
    names = parse_strategies(strategies)
    path = Path(scenario)
    overrides = dict(overrides or {})
    notes, info = scenario_notes(path, overrides, names)
    out = _claim(Path(out))
    workers = max(1, min(workers or os.cpu_count() or 1, len(names)))
    t0 = wallclock.perf_counter()
    if workers == 1:
        results = {n: run_strategy(str(path), overrides, n, str(out / n)) for n in names}
    else:
        ctx = multiprocessing.get_context("spawn")  # a clean interpreter per worker: no inherited threads
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            futures = {n: pool.submit(run_strategy, str(path), overrides, n, str(out / n)) for n in names}
            results = {n: f.result() for n, f in futures.items()}
    wall_s = wallclock.perf_counter() - t0
    results = summarise(results)
    failed = [n for n, r in results.items() if r["status"] != "ok"]
    comparison = {
        **info,
        "source": str(path),
        "overrides": overrides,
        "strategies": list(names),
        "strategy_descriptions": {n: STRATEGIES[n].description for n in names},
        "price_basis": "every strategy's energy valued at the scenario's retail tariff (see docs/compare.md)",
        "notes": notes,
        "failed": failed,
        "results": results,
        "workers": workers,
        "wall_s": round(wall_s, 3),
        "finished_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    write_json(out / "comparison.json", comparison)
    write_page(out / "comparison.html", comparison)
    log.info("compare: %d strategies in %.1f s, failed: %s", len(names), wall_s, ", ".join(failed) or "none")
    return comparison


