"""Clearing time and ADMM iterations of every market mechanism for 10 to 10,000 agents.

Run: .venv/bin/python benchmarks/market_clearing.py [--quick]

Cases are random but seeded (seed 1): a third producers (0..2-10 kW, cost_b 0-0.1), a third consumers
(-2..-10 kW, cost_b 0.2-0.4), a third prosumers (+-1..5 kW, cost_b 0.1-0.2), cost_a 0.005-0.05, a grid at
0.30/0.05 per kWh; P2P/ADMM clear the same agents with green/local classes and a green premium (0-0.03)
for half of them, so their objective (cost - premium value) is at most the pool's on a full graph.
P2P and ADMM use every pair up to 100 agents and a sparse ring of 5 partners per agent from 1,000 agents.
Times are wall-clock medians (and minima for the order book) over repeats of ``clear`` on a validated
case (validation timed apart).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from testbed.domain.market import clear, parse_case


def make_case(n: int, seed: int = 1, prefs: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    rng_pref = np.random.default_rng(seed + 1000)  # so that the agents are the same with and without prefs
    agents = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            lo, hi, b = 0.0, rng.uniform(2, 10), rng.uniform(0.0, 0.1)
        elif kind == 1:
            lo, hi, b = -rng.uniform(2, 10), 0.0, rng.uniform(0.2, 0.4)
        else:
            lo, hi, b = -rng.uniform(1, 5), rng.uniform(1, 5), rng.uniform(0.1, 0.2)
        a = {"id": f"a{i}", "p_min_kw": float(lo), "p_max_kw": float(hi),
             "cost_a": float(rng.uniform(0.005, 0.05)), "cost_b": float(b)}
        if prefs:
            a["energy_class"] = "green" if i % 2 == 0 else "local"
            if rng_pref.random() < 0.5:
                a["preferences"] = {"class_premium": {"green": float(rng_pref.uniform(0, 0.03))}}
        agents.append(a)
    case = {"interval_h": 0.25, "grid": {"import_price": 0.30, "export_price": 0.05}, "agents": agents}
    if prefs:
        case["classes"] = {"green": {}, "local": {}}
    return case


def make_orders_case(n_orders: int, seed: int = 2) -> dict:
    rng = np.random.default_rng(seed)
    n_agents = n_orders // 2
    agents = [{"id": f"a{i}", "p_min_kw": -10.0, "p_max_kw": 10.0, "cost_a": 0.0, "cost_b": 0.1}
              for i in range(n_agents)]
    orders = [{"id": f"o{k}", "agent": f"a{k // 2}", "side": "sell" if k % 2 else "buy",
               "quantity_kw": float(rng.uniform(0.5, 10)),
               "price_per_kwh": float(round(rng.uniform(0.02, 0.40), 3))} for k in range(n_orders)]
    return {"interval_h": 0.25, "grid": {"import_price": 0.30, "export_price": 0.05}, "agents": agents,
            "orders": orders}


def timed(fn, repeats: int, with_min: bool = False):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    if with_min:
        return statistics.median(times), min(times), out
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="skip ADMM and central P2P at 10,000 agents")
    ap.add_argument("--orders-only", action="store_true", help="only the auction of explicit orders")
    args = ap.parse_args()
    print("== double auction of explicit orders ==")
    for n_orders in (10, 100, 1_000, 10_000):
        case = parse_case(make_orders_case(n_orders))
        dt, lo, r = timed(lambda c=case: clear(c, "double-auction"), 21, with_min=True)
        dt2, lo2, _ = timed(lambda c=case: clear(c, "pay-as-bid"), 21, with_min=True)
        print(f"orders={n_orders:>6}  uniform {dt * 1e3:8.2f} ms (min {lo * 1e3:.2f})  "
              f"pay-as-bid {dt2 * 1e3:8.2f} ms (min {lo2 * 1e3:.2f})  trades={len(r.trades)}  "
              f"price={r.price}")
    if args.orders_only:
        return
    print("== mechanisms on agent cases ==")
    print(f"{'agents':>7} {'mechanism':>15} {'graph':>6} {'time_s':>9} {'iters':>6} {'status':>8} "
          f"{'objective':>14} {'gap_vs_p2p':>10}")
    for n in (10, 100, 1_000, 10_000):
        t0 = time.perf_counter()
        plain = parse_case(make_case(n))
        t_parse = time.perf_counter() - t0
        prefs = parse_case(make_case(n, prefs=True))
        partners = None if n <= 100 else 5
        graph = "all" if partners is None else f"k={partners}"
        rep = 7 if n <= 1000 else 3
        rows = []
        for mech in ("double-auction", "pay-as-bid", "pool"):
            dt, r = timed(lambda m=mech, c=plain: clear(c, m), rep)
            rows.append((mech, "-", dt, r))
        dt, r = timed(lambda c=plain: clear(c, "pool", solver="qp"), 1 if n >= 1000 else 3)
        rows.append(("pool (QP)", "-", dt, r))
        central = None
        if not (args.quick and n >= 10_000):
            dt, central = timed(lambda c=prefs, k=partners: clear(c, "p2p", partners=k), 1)
            rows.append(("p2p (QP)", graph, dt, central))
            dt, r = timed(lambda c=prefs, k=partners: clear(c, "admm", partners=k), 1)
            rows.append(("admm", graph, dt, r))
        print(f"{n:>7} {'(validation)':>15} {'':>6} {t_parse:9.4f}")
        for mech, g, dt, r in rows:
            gap = ""
            if mech == "admm" and central is not None:
                gap = f"{abs(r.objective - central.objective) / abs(central.objective):.2e}"
            print(f"{n:>7} {mech:>15} {g:>6} {dt:9.4f} {r.iterations:>6} {r.status:>8} "
                  f"{r.objective:14.6f} {gap:>10}")


if __name__ == "__main__":
    main()
