"""One strategy of a comparison, run as a complete co-simulation (in its own process when ``fpp compare``
runs several at once), and its figures read back from its run folder.

Every strategy runs the same scenario (feeder, day, homes, seed); only the coordination differs:

- ``retail``: the scenario without its market: each home's self-consumption controller;
- ``tou``: without the market, each home's battery and EV follow its own optimum against the time-of-use
  signal (:func:`~testbed.domain.compare.dispatch.home_schedules`), given to the fleet as setpoints;
- ``central``: without the market, every battery and EV follow the operator's optimum, checked by the power
  flow (:func:`~testbed.orchestration.compare.feeder.checked_central_schedule`);
- ``p2p``: the scenario with its market (the market's defaults when it has none).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time as wallclock
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from testbed.domain.compare import coordination
from testbed.domain.compare.bills import (
    community_bills,
    exchange_peaks,
    market_bills,
    meter_bills,
    minutes_outside_limits,
)
from testbed.domain.compare.dispatch import home_schedules
from testbed.domain.compare.tariff import Prices, tou_prices
from testbed.domain.errors import Fault, UserError
from testbed.domain.scenario.models import Market, Scenario
from testbed.orchestration.compare.feeder import checked_central_schedule
from testbed.orchestration.compare.inputs import basis_tariff, flat_prices, homes_for
from testbed.orchestration.plan import RunPlan, prepare, read_scenario
from testbed.orchestration.runner import run as run_plan
from testbed.platform.ledger import Ledger

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_solver_banner():
    """HiGHS prints its banner on the process's standard output from native code at every solve; keep it off
    the command's output (file descriptor 1 points at /dev/null meanwhile)."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def strategy_plan(path: Path, overrides: dict[str, Any], strategy: str) -> tuple[RunPlan, dict[str, Any]]:
    """The scenario at ``path`` as ``strategy`` runs it (see the module docstring), and what was found while
    planning it (``homes``, the central schedule's power-flow ``check``)."""
    sc = read_scenario(path, overrides)
    outputs = sc.outputs.model_copy(update={"timeseries": True})  # the comparison reads the series back
    market = (sc.market or Market()) if strategy in ("p2p", "fpp") else None
    services = sc.services if strategy == "fpp" else None
    if strategy == "fpp" and services is None:
        raise UserError(f"{path}: strategy fpp needs the grid-service contracts of a services: section "
                        "(docs/fpp.md); this scenario has none")
    sc = Scenario.model_validate({**sc.model_dump(exclude_none=True), "market": None, "services": None,
                                  "outputs": outputs.model_dump()})
    if market is not None or services is not None:
        sc = sc.model_copy(update={"market": market, "services": services})
    plan = prepare(sc, base_dir=path.parent, source=path, overrides=overrides)
    found: dict[str, Any] = {}
    if strategy in ("tou", "central"):
        homes, q = homes_for(plan)
        g, w = sc.grid, sc.time
        with _quiet_solver_banner():
            if strategy == "tou":
                prices = tou_prices(basis_tariff(plan), w.start, w.n_steps, w.resolution_s)
                schedule, check = home_schedules(homes, prices), None
            else:
                schedule, check = checked_central_schedule(
                    homes, flat_prices(plan), plan.engine, q, g.v_min_pu, g.v_max_pu
                )
        battery = np.where(homes.has_battery, schedule.battery_kw, np.nan)
        ev = np.where(homes.has_ev, schedule.ev_kw, np.nan)
        plan.schedule = (strategy, battery, ev)
        found = {"homes": homes, "check": check.as_dict() if check else None}
    return plan, found


def _columns(table, prefix: str, ids: list[str]) -> np.ndarray:
    names = set(table.column_names)
    cols = [f"{prefix}/{i}" for i in ids]
    if not all(c in names for c in cols):
        return np.zeros((table.num_rows, len(ids)))
    return np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in cols]).astype(float)


def _prefixed(table, prefix: str) -> np.ndarray:
    cols = [c for c in table.column_names if c.startswith(prefix + "/")]
    if not cols:
        return np.zeros((table.num_rows, 0))
    return np.column_stack([table.column(c).to_numpy(zero_copy_only=False) for c in cols]).astype(float)


MARKET_KINDS = ("order", "offer", "telemetry")
#: What a member sends for grid-service contracts (testbed/platform/services_protocol.py: PROSUMER_KINDS).
SERVICE_KINDS = ("service_offer", "baseline", "delivery")


def _market_coordination(run_dir: Path, ids: list[str], kinds: tuple[str, ...] = MARKET_KINDS) -> dict[str, Any]:
    from testbed.orchestration.parts.market import platform_ids

    to_pid = platform_ids(ids)
    ledger = Ledger(f"sqlite:///{run_dir / 'ledger.db'}")
    try:
        inbound = [(m.sender, m.payload) for kind in kinds for m in ledger.messages_of_kind(kind)]
        cleared = len(ledger.intervals())
    finally:
        ledger.close()
    return coordination.market_messages(inbound, [to_pid[i] for i in ids], outbound=cleared * len(ids))


def _service_payouts(fpp: dict[str, Any], ids: list[str]) -> np.ndarray:
    """Each home's payout from the settled contracts (``kpis.json`` section ``fpp``), in the order of ``ids``."""
    index = {pid: i for i, pid in enumerate(ids)}
    out = np.zeros(len(ids))
    for contract in (fpp.get("contracts") or {}).values():
        for pid, member in (contract.get("members") or {}).items():
            if pid in index:
                out[index[pid]] += float(member.get("payout") or 0.0)
    return out


def _contracts_fulfilled(kpis: dict[str, Any]) -> str | None:
    totals = (kpis.get("fpp") or {}).get("totals")
    return None if not totals else f"{totals['filled']} of {totals['contracts']}"


def figures(
    strategy: str, plan: RunPlan, run_dir: Path, kpis: dict[str, Any], found: dict[str, Any]
) -> dict[str, Any]:
    """A finished run's figures: bills at the price basis, the feeder exchange, limits, coordination."""
    sc = plan.scenario
    w = sc.time
    dt_h = w.resolution_s / 3600.0
    ids = [p.id for p in plan.prosumers]
    table = pq.read_table(run_dir / "timeseries.parquet")
    p_kw = _columns(table, "p_kw", ids)
    basis = Prices.flat(basis_tariff(plan), table.num_rows)
    extra: dict[str, Any] = {}
    if strategy == "central":
        bills = community_bills(p_kw, basis, dt_h)
    elif strategy in ("p2p", "fpp"):
        trade = _columns(table, "p_trade_kw", ids)
        price = table.column("price_per_kwh").to_numpy(zero_copy_only=False).astype(float)
        bills = market_bills(p_kw, trade, price, basis, dt_h)
        extra["traded_kwh"] = float(np.abs(trade).sum() * dt_h / 2)
        if strategy == "fpp":  # each member's payout from the contracts its coalition delivered
            payouts = _service_payouts(kpis.get("fpp") or {}, ids)
            bills = bills - payouts
            extra["service_revenue"] = float(payouts.sum())
    else:
        bills = meter_bills(p_kw, basis, dt_h)
    if strategy == "tou":
        tou = tou_prices(basis_tariff(plan), w.start, table.num_rows, w.resolution_s)
        extra["tou_tariff_cost"] = float(meter_bills(p_kw, tou, dt_h).sum())
    ext = table.column("ext_grid_p_kw").to_numpy(zero_copy_only=False).astype(float)
    loading = np.hstack([_prefixed(table, "line_loading_pct"), _prefixed(table, "trafo_loading_pct")])
    coord = {
        "retail": lambda: coordination.no_coordination(len(ids)),
        "tou": lambda: coordination.tariff_signal(len(ids)),
        "central": lambda: coordination.central_operator(found["homes"]),
        "p2p": lambda: _market_coordination(run_dir, ids),
        "fpp": lambda: _market_coordination(run_dir, ids, MARKET_KINDS + SERVICE_KINDS),
    }[strategy]()
    peaks = exchange_peaks(ext)
    return {
        "cost": float(bills.sum()),
        "bills": dict(zip(ids, (round(float(b), 9) for b in bills), strict=True)),
        **peaks,
        "highest_loading_pct": max(
            (v for v in (kpis.get("peak_line_loading_pct"), kpis.get("peak_trafo_loading_pct")) if v is not None),
            default=None,
        ),
        "minutes_outside_limits": minutes_outside_limits(
            _prefixed(table, "vm_pu"), loading, sc.grid.v_min_pu, sc.grid.v_max_pu, dt_h
        ),
        "self_sufficiency": kpis.get("self_sufficiency"),
        "grid_import_kwh": kpis.get("grid_import_kwh"),
        "grid_export_kwh": kpis.get("grid_export_kwh"),
        "contracts_fulfilled": _contracts_fulfilled(kpis) if strategy == "fpp" else None,
        "coordination": coord,
        "series": {"ext_grid_p_kw": [None if not np.isfinite(x) else round(float(x), 6) for x in ext]},
        **extra,
    }


def run_strategy(path: str, overrides: dict[str, Any], strategy: str, out_dir: str) -> dict[str, Any]:
    """Run ``strategy`` on the scenario at ``path`` into ``out_dir``; never raises: a failure comes back as
    ``{"status": "failed", "error": ...}`` so that the other strategies still finish."""
    t0 = wallclock.perf_counter()
    try:
        plan, found = strategy_plan(Path(path), dict(overrides), strategy)
        result = run_plan(plan, Path(out_dir), progress=False)
        out = {
            "strategy": strategy,
            "status": "ok",
            "run_dir": str(result.run_dir),
            "verdict": result.verdict.status,
            "wall_s": round(wallclock.perf_counter() - t0, 3),
            **figures(strategy, plan, result.run_dir, result.kpis, found),
        }
        if found.get("check") is not None:
            out["central_check"] = found["check"]
        return out
    except (UserError, Fault) as exc:
        error = exc.render()
    except Exception as exc:  # a failing strategy must not stop the others; the page names it
        log.exception("strategy %s failed", strategy)
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
    return {"strategy": strategy, "status": "failed", "error": error,
            "wall_s": round(wallclock.perf_counter() - t0, 3)}
