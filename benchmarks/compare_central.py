"""The central operator's optimisation for 1,000 homes with batteries over 96 steps (target: under 10 s).

Run: .venv/bin/python benchmarks/compare_central.py [--homes N] [--steps T] [--rows R] [--distinct]

Homes are random but seeded: PV 0-8 kWp on a clear-sky bell, loads 0.2-2.5 kW, every home a 10 kWh / 5 kW
battery (round trip 0.9) as a scenario's ``fleet:`` section gives them (with ``--distinct`` every battery
a different size, 5-15 kWh, so no two are alike and none are solved as one), a fifth an EV (40 kWh, 7 kW,
away 07:30-17:15). Feeder limits: ``R`` linearised rows over 50 buses (one transformer row, the rest
voltage rows with random sensitivities), tight enough that some bind. The time is the whole
:func:`community_schedule` call (cvxpy building the problem, HiGHS solving it, the schedule read back),
wall clock, one run after building the inputs.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime

import numpy as np

from testbed.domain.compare.dispatch import community_schedule
from testbed.domain.compare.homes import Homes, ev_day
from testbed.domain.compare.tariff import Prices
from testbed.domain.market.network import NetworkRows


def make(n: int, T: int, n_rows: int, seed: int = 7, distinct: bool = False) -> tuple[Homes, NetworkRows]:
    rng = np.random.default_rng(seed)
    dt_h = 24 / T
    hours = np.arange(T) * dt_h
    pv = np.clip(np.sin((hours - 6) / 12 * np.pi), 0, None)[:, None] * rng.uniform(0, 8, n)
    load = rng.uniform(0.2, 2.5, (T, n))
    has_e = rng.random(n) < 0.2
    ev = {"capacity_kwh": np.where(has_e, 40.0, 0), "charge_kw": np.where(has_e, 7.0, 0),
          "charge_efficiency": np.where(has_e, 0.95, 1.0), "trip_kwh": np.where(has_e, rng.uniform(4, 12, n), 0),
          "depart_h": np.where(has_e, 7.5, 0), "arrive_h": np.where(has_e, 17.25, 1.0),
          "initial_soc": np.where(has_e, 0.5, 0)}
    day = ev_day(ev, datetime(2016, 7, 24), T, int(dt_h * 3600))
    n_bus = 50
    homes = Homes(
        dt_h=dt_h, net_kw=pv - load, bus=rng.integers(0, n_bus, n), n_bus=n_bus,
        battery={"capacity_kwh": rng.uniform(5, 15, n) if distinct else np.full(n, 10.0), "power_kw": np.full(n, 5.0),
                 "round_trip_efficiency": np.full(n, 0.9), "initial_soc": np.full(n, 0.3),
                 "soc_min": np.zeros(n), "soc_max": np.ones(n)},
        ev_capacity_kwh=ev["capacity_kwh"], ev_charge_kw=ev["charge_kw"], ev_efficiency=ev["charge_efficiency"],
        ev_initial_kwh=ev["initial_soc"] * ev["capacity_kwh"], ev_home=day["home"], ev_trip_kwh=day["trip_kwh"],
        ev_ref_kw=day["ref_kw"],
    )
    A = np.vstack([np.ones(n_bus), rng.uniform(0, 2e-5, (n_rows - 1, n_bus))])
    peak = float((load - pv + day["ref_kw"]).sum(axis=1).max())  # uncontrolled peak import
    rows = NetworkRows(A, np.concatenate([[-0.8 * peak], np.full(n_rows - 1, -0.06)]),
                       np.concatenate([[0.8 * peak], np.full(n_rows - 1, 0.06)]),
                       ("trafo:T kw", *(f"vm:{i} pu" for i in range(n_rows - 1))))
    return homes, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--homes", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("--distinct", action="store_true", help="every battery a different size")
    args = ap.parse_args()
    homes, rows = make(args.homes, args.steps, args.rows, distinct=args.distinct)
    prices = Prices(np.full(args.steps, 0.30), np.full(args.steps, 0.08))
    t0 = time.perf_counter()
    s = community_schedule(homes, prices, rows)
    wall = time.perf_counter() - t0
    binding = int(np.sum(np.isclose(s.p_kw.sum(axis=1), rows.lower[0], atol=1e-3)))
    print(f"{args.homes} homes x {args.steps} steps, {args.rows} feeder rows{' distinct' if args.distinct else ''}: "
          f"{wall:.2f} s "
          f"(objective {s.objective:.2f}, transformer limit binding at {binding} steps)")


if __name__ == "__main__":
    main()
