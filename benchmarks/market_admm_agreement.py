"""ADMM against the central P2P QP on many random cases: worst relative welfare gap and rounds.

Run: .venv/bin/python benchmarks/market_admm_agreement.py

Set 1 (80 cases, seeds 0-79): 2-24 agents with random bounds, 30% linear costs, premiums by class and by
partner (some negative), a class reserved for half of the agents, distance charges, a grid in 70% of the
cases, every pair or a ring of 1-3 partners. Set 2 (30 cases): 3-14 agents on 4 buses with one line (random
PTDFs) and one voltage row, limits that bind in about half of the cases.
"""

from __future__ import annotations

import time

import numpy as np

from testbed.domain.market import clear


def preference_case(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 25))
    agents = []
    for i in range(n):
        lo = float(rng.uniform(-10, 5))
        hi = lo + float(rng.uniform(0, 10))
        a = 0.0 if rng.random() < 0.3 else float(rng.uniform(0.001, 0.05))
        ag = {"id": f"a{i}", "p_min_kw": lo, "p_max_kw": hi, "cost_a": a,
              "cost_b": float(rng.uniform(0, 0.4)), "energy_class": ["green", "local", "sub"][i % 3],
              "bus": f"n{i % 4}"}
        if rng.random() < 0.5:
            partner = {f"a{(i + 2) % n}": float(rng.uniform(-0.03, 0.03))} if n > 2 else {}
            ag["preferences"] = {"class_premium": {"green": float(rng.uniform(-0.02, 0.05))},
                                 "partner_premium": partner}
        agents.append(ag)
    case = {"interval_h": 0.25, "agents": agents,
            "classes": {"green": {}, "local": {},
                        "sub": {"eligible_buyers": [f"a{k}" for k in range(0, n, 2)]}},
            "network": {"charge_per_kwh_per_distance": float(rng.uniform(0, 0.01)),
                        "distance": {f"n{u}": {f"n{v}": abs(u - v) * 1.0 for v in range(4) if v != u}
                                     for u in range(4)}}}
    if rng.random() < 0.7:
        imp = float(rng.uniform(0.1, 0.5))
        case["grid"] = {"import_price": imp, "export_price": imp * float(rng.random())}
    partners = None if rng.random() < 0.5 else int(rng.integers(1, 4))
    return case, partners


def network_case(seed: int):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 15))
    agents = []
    for i in range(n):
        lo, hi = [(0.0, rng.uniform(2, 10)), (-rng.uniform(2, 10), 0.0),
                  (-rng.uniform(1, 5), rng.uniform(1, 5))][i % 3]
        ag = {"id": f"a{i}", "p_min_kw": float(lo), "p_max_kw": float(hi),
              "cost_a": float(rng.choice([0.0, rng.uniform(0.005, 0.05)])),
              "cost_b": float(rng.uniform(0.02, 0.4)), "bus": f"n{int(rng.integers(4))}",
              "energy_class": "green" if i % 2 else "local"}
        if rng.random() < 0.5:
            ag["preferences"] = {"class_premium": {"green": float(rng.uniform(0, 0.04))}}
        agents.append(ag)
    buses = sorted({a["bus"] for a in agents})
    net = {"lines": [{"id": "l1", "ptdf": {b: float(rng.uniform(-1, 1)) for b in buses},
                      "limit_kw": float(rng.uniform(1, 6))}],
           "voltages": [{"bus": buses[0], "v0_pu": 1.0, "v_min_pu": 0.97, "v_max_pu": 1.02,
                         "dv_dp_pu_per_kw": {b: float(rng.uniform(0, 0.004)) for b in buses}}]}
    case = {"interval_h": 0.25, "agents": agents, "classes": {"green": {}, "local": {}}, "network": net}
    if rng.random() < 0.7:
        case["grid"] = {"import_price": 0.3, "export_price": 0.05}
    return case, None


def run(name: str, make, seeds) -> None:
    t0 = time.perf_counter()
    worst, rounds, mismatched, optimal = 0.0, [], [], 0
    for seed in seeds:
        case, k = make(seed)
        central, admm = clear(case, "p2p", partners=k), clear(case, "admm", partners=k)
        if central.status != admm.status:
            mismatched.append(seed)
            continue
        if central.status == "optimal":
            optimal += 1
            worst = max(worst, abs(admm.objective - central.objective) / max(abs(central.objective), 1e-12))
            rounds.append(admm.iterations)
    print(f"{name}: {len(seeds)} cases, {optimal} optimal, status mismatches {mismatched}, worst gap "
          f"{worst:.2e}, rounds median {int(np.median(rounds))} max {max(rounds)}, "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    run("premiums/eligibility/charges", preference_case, range(80))
    run("network limits", network_case, range(30))
