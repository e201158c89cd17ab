"""Sharing a contract coalition's surplus: exact Shapley for 20 members (target < 1 s), sampled Shapley for
1,000 members to a standard error under 1 % of the mean share (target < 10 s), nucleolus and least core
for 16 (their limit).

Run: .venv/bin/python benchmarks/fpp_sharing.py

Members are random but seeded: counted capacity 2-5 kW, forecast-error sd 10-40 % of it, asks 0.01-0.03 per
kW·h; the contract (2 h, 95 %, 0.05 per kW·h, pro rata) asks for 97 % of the coalition's firm capacity, so
every member matters and the cap binds near the end of each order. The characteristic function is
:func:`testbed.domain.fpp.games.contract_game`. Sampled Shapley doubles the number of orders from 1,000 until
the largest standard error is under 1 % of the mean share v(N)/n; the time reported is that last run alone
(and the search in total). Times are wall-clock medians of 3 runs where stated.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from testbed.domain.fpp import ServiceOffer, contract_game, parse_contract
from testbed.domain.fpp.pooling import firm_capacity_kw
from testbed.domain.fpp.sharing import least_core, nucleolus, shapley, shapley_sampled


def coalition(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    mean = rng.uniform(2, 5, n)
    sd = mean * rng.uniform(0.1, 0.4, n)
    ask = rng.uniform(0.01, 0.03, n)
    need = 0.97 * firm_capacity_kw(mean, sd, 0.95)
    contract = parse_contract({
        "id": "bench", "buyer": "tso", "service": {"kind": "frequency_response", "product": "bench"},
        "window": {"start": "2026-07-01T18:00", "end": "2026-07-01T20:00"}, "direction": "up",
        "capacity_kw": round(need, 6), "confidence": 0.95, "availability_price_per_kw_h": 0.05,
        "utilisation_price_per_kwh": 0.0, "penalty": {"kind": "pro_rata"}, "currency": "EUR",
    })
    offers = [ServiceOffer(id=f"o{i}", contract_id="bench", member=f"m{i}", bus="b", capacity_kw=float(mean[i]),
                           capacity_sd_kw=float(sd[i]), price_per_kw_h=float(ask[i])) for i in range(n)]
    return contract_game(contract, offers)


def median_time(fn, repeats: int = 3):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    g20 = coalition(20)
    dt, a = median_time(lambda: shapley(g20))
    print(f"exact Shapley, 20 members: {dt:.3f} s (median of 3); v(N) = {g20.grand_value:.4f}, "
          f"sum of shares {sum(a.shares):.4f}")
    g16 = coalition(16)
    dt_n, nu = median_time(lambda: nucleolus(g16), 1)
    dt_l, lc = median_time(lambda: least_core(g16), 1)
    print(f"nucleolus, 16 members: {dt_n:.2f} s; least core: {dt_l:.2f} s (e* = {lc.max_excess:.4g})")
    g1000 = coalition(1000)
    mean_share = g1000.grand_value / g1000.n
    samples, total = 1000, 0.0
    while True:
        t0 = time.perf_counter()
        a = shapley_sampled(g1000, samples, seed=1)
        dt = time.perf_counter() - t0
        total += dt
        ratio = max(a.standard_error) / mean_share
        print(f"sampled Shapley, 1,000 members, {samples:>6} orders: {dt:.2f} s, largest standard error "
              f"{ratio:.2%} of the mean share {mean_share:.4f}")
        if ratio < 0.01:
            break
        samples *= 2
    print(f"-> {samples} orders reach a standard error under 1 % in {dt:.2f} s ({total:.2f} s with the search)")


if __name__ == "__main__":
    main()
