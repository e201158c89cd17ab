"""Coalition selection time for 100 to 10,000 offers (target: 10,000 offers in under 1 s).

Run: .venv/bin/python benchmarks/fpp_selection.py [--seeds N] [--gap G]

Offers are random but seeded: counted capacity 1-5 kW, forecast-error sd 5-40 % of it, asks 0.02-0.10 per
kW·h, all at buses that count fully; the contract asks for a fifth of the offered mean capacity at 95 %, for
2 h. ``select`` is the whole of :func:`select_coalition` (eligibility checks, arrays, bounds, MILPs by HiGHS);
``least_cost`` its optimisation part alone. Times are wall-clock medians over the seeds (one run each after a
warm-up); ``gap`` is (cost - proven lower bound) / cost.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from testbed.domain.fpp import ServiceOffer, parse_contract, select_coalition
from testbed.domain.fpp.pooling import z_score
from testbed.domain.fpp.selection import firm_kw, least_cost, offer_arrays


def make(n: int, seed: int):
    rng = np.random.default_rng(seed)
    mean = rng.uniform(1, 5, n)
    contract = parse_contract({
        "id": "bench", "buyer": "tso", "service": {"kind": "frequency_response", "product": "bench"},
        "window": {"start": "2026-07-01T18:00", "end": "2026-07-01T20:00"}, "direction": "up",
        "capacity_kw": round(float(mean.sum()) / 5, 3), "confidence": 0.95, "availability_price_per_kw_h": 0.2,
        "utilisation_price_per_kwh": 0.0, "penalty": {"kind": "pro_rata"}, "currency": "EUR",
    })
    sd = mean * rng.uniform(0.05, 0.4, n)
    price = rng.uniform(0.02, 0.1, n)
    offers = [ServiceOffer(id=f"o{i}", contract_id="bench", member=f"m{i}", bus="b", capacity_kw=float(mean[i]),
                           capacity_sd_kw=float(sd[i]), price_per_kw_h=float(price[i])) for i in range(n)]
    return contract, offers


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--gap", type=float, default=1e-4, help="HiGHS relative gap (default 1e-4, the library's)")
    args = ap.parse_args()
    make(50, 0)  # warm-up: imports, HiGHS
    select_coalition(*make(50, 0))
    print(f"{'offers':>7} {'select_s':>9} {'max_s':>7} {'least_cost_s':>12} {'members':>8} {'milps':>6} "
          f"{'free':>5} {'gap':>9} {'firm-need_kW':>12}")
    for n in (100, 1_000, 10_000):
        rows = []
        for seed in range(1, args.seeds + 1):
            contract, offers = make(n, seed)
            t0 = time.perf_counter()
            sel = select_coalition(contract, offers, mip_rel_gap=args.gap)
            t_select = time.perf_counter() - t0
            a, w, c = offer_arrays(contract, offers)
            z = z_score(contract.confidence)
            t0 = time.perf_counter()
            x, lower, stats = least_cost(a, w, c, z, contract.capacity_kw, mip_rel_gap=args.gap)
            t_core = time.perf_counter() - t0
            assert sel.status == "filled" and firm_kw(a, w, z, x) >= contract.capacity_kw - 1e-5
            rows.append((t_select, t_core, len(sel.members), stats.milp_solves, stats.free_offers,
                         (sel.cost - sel.cost_lower_bound) / sel.cost, sel.firm_kw - sel.required_kw))
        med = [statistics.median(r[k] for r in rows) for k in range(7)]
        print(f"{n:>7} {med[0]:9.3f} {max(r[0] for r in rows):7.3f} {med[1]:12.3f} {med[2]:8.0f} {med[3]:6.0f} "
              f"{med[4]:5.0f} {med[5]:9.2e} {med[6]:12.4f}")


if __name__ == "__main__":
    main()
