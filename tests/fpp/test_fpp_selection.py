"""Coalition selection (MILP by HiGHS) against brute-force enumeration, unfilled contracts, eligibility."""

import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest

from testbed.domain.fpp import ServiceOffer, parse_contract, select_coalition
from testbed.domain.fpp.selection import _outer_approximation, firm_kw, least_cost, max_firm_coalition

from .helpers import contract_data


def brute_force(a, w, c, z, need):
    """Cheapest coalition meeting the exact quantile, and the largest firm capacity, over all 2^n subsets."""
    best_cost, best_firm = math.inf, 0.0
    for bits in itertools.product((0.0, 1.0), repeat=a.size):
        x = np.array(bits)
        f = firm_kw(a, w, z, x)
        best_firm = max(best_firm, f)
        if f >= need - 1e-5:
            best_cost = min(best_cost, float(c @ x))
    return best_cost, best_firm


def random_instance(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 13))
    a = rng.uniform(0.5, 6.0, n)
    w = (a * rng.uniform(0.0, 0.6, n)) ** 2
    c = a * rng.uniform(0.02, 0.2, n)
    if seed % 4 == 0:
        w[: n // 2] = 0.0  # some members without forecast error
    if seed % 7 == 0:
        c[0] = 0.0  # a free offer
    z = NormalDist().inv_cdf(float(rng.uniform(0.5, 0.99)))
    return a, w, c, z, rng


@pytest.mark.parametrize("seed", range(40))
def test_least_cost_equals_brute_force(seed):
    a, w, c, z, rng = random_instance(seed)
    need = max_firm_coalition(a, w, z)[0] * float(rng.uniform(0.2, 1.0))
    cost, _ = brute_force(a, w, c, z, need)
    x, lower, _ = least_cost(a, w, c, z, need, mip_rel_gap=1e-9)
    assert firm_kw(a, w, z, x) >= need - 1e-5
    assert float(c @ x) == pytest.approx(cost, rel=1e-7, abs=1e-9)
    assert lower <= cost + 1e-9


def test_without_forecast_error_it_is_a_plain_knapsack():
    # no uncertainty anywhere: F(x) = a.x; offers 4, 3, 3, 2 kW at costs 4.1, 3, 3, 2.2; need 6 kW -> 3 + 3 for 6.0
    a = np.array([4.0, 3.0, 3.0, 2.0])
    c = np.array([4.1, 3.0, 3.0, 2.2])
    x, lower, _ = least_cost(a, np.zeros(4), c, 1.6449, 6.0, mip_rel_gap=1e-9)
    assert x.tolist() == [0, 1, 1, 0] and c @ x == pytest.approx(6.0) and lower <= 6.0 + 1e-9


@pytest.mark.parametrize("seed", range(40, 60))
def test_max_firm_coalition_is_a_prefix_and_exact(seed):
    a, w, _, z, _ = random_instance(seed)
    f_max, members = max_firm_coalition(a, w, z)
    x = np.zeros(a.size)
    x[members] = 1
    assert f_max == pytest.approx(brute_force(a, w, np.zeros(a.size), z, math.inf)[1], abs=1e-9)
    assert firm_kw(a, w, z, x) == pytest.approx(f_max)


def random_book(n, seed=11):
    """``n`` offers of 1-5 kW with forecast sd 5-40 % of it, asks 0.02-0.10 per kW·h; z at 95 %."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(1, 5, n)
    return a, (a * rng.uniform(0.05, 0.4, n)) ** 2, rng.uniform(0.02, 0.1, n) * a, NormalDist().inv_cdf(0.95)


def test_large_book_meets_the_quantile_within_the_gap():
    # 3,000 offers: the core fixing must keep HiGHS small; the coalition meets the exact quantile and its cost
    # is within the 1e-4 gap of the proven lower bound.
    a, w, c, z = random_book(3000)
    x, lower, stats = least_cost(a, w, c, z, 600.0)
    assert firm_kw(a, w, z, x) >= 600.0 - 1e-5
    assert lower <= c @ x <= lower * (1 + 1.01e-4)
    assert stats.free_offers <= 400


def test_the_bounds_fix_nothing_they_should_not():
    # 600 offers: the selection (bounds, then a MILP on the few free offers) costs what HiGHS finds on the whole
    # book without any fixing (breakpoints over the whole range of V, gap 1e-6).
    a, w, c, z = random_book(600)
    x, lower, stats = least_cost(a, w, c, z, a.sum() / 5, mip_rel_gap=1e-6)
    assert stats.free_offers < 200
    b = np.concatenate([[0.0], np.geomspace(w.sum() * 1e-4, w.sum(), 30)])
    whole, _, _, _ = _outer_approximation(a, w, c, z, a.sum() / 5, np.arange(600), np.zeros(0, int), b, 1e-6)
    assert c @ x == pytest.approx(c @ whole, rel=2e-6)
    assert lower <= c @ whole + 1e-9


def offer(member, bus, kw, sd, price, **kw_args):
    return ServiceOffer(id=f"o-{member}", contract_id="dso-1", member=member, bus=bus, capacity_kw=kw,
                        capacity_sd_kw=sd, price_per_kw_h=price, **kw_args)


def test_selection_counts_sensitivity_and_rejects_with_reasons(contract):
    offers = [
        offer("h1", "b1", 20.0, 2.0, 0.010),
        offer("h2", "b2", 25.0, 2.0, 0.008),   # counts 0.8 * 25 = 20 kW with sd 1.6 kW
        offer("h3", "b1", 15.0, 1.0, 0.030),
        offer("h4", "b9", 50.0, 0.0, 0.001),   # not eligible
        offer("h1", "b1", 30.0, 0.0, 0.001).model_copy(update={"id": "o-h1-again"}),  # second offer of h1
    ]
    sel = select_coalition(contract, offers)
    assert sel.status == "filled"
    # h1 + h2: 40 kW counted, sd sqrt(4 + 2.56) = 2.561 kW, firm 40 - 1.645*2.561 = 35.79 < 40: not enough;
    # adding h3 (cheapest way to the requirement): 55 kW, sd sqrt(7.56) = 2.750, firm 50.48 kW.
    # h1+h3: 35 kW mean < 40; h2+h3: 35 kW < 40. So the least-cost coalition is all three.
    assert sel.members == ("o-h1", "o-h2", "o-h3")
    assert sel.mean_kw == pytest.approx(55.0)
    assert sel.sd_kw == pytest.approx(math.sqrt(7.56))
    assert sel.firm_kw == pytest.approx(55 - NormalDist().inv_cdf(0.95) * math.sqrt(7.56))
    # costs: 0.010*20*2 + 0.008*25*2 + 0.030*15*2 = 0.4 + 0.4 + 0.9 = 1.7; revenue 0.05*40*2 = 4.0
    assert sel.cost == pytest.approx(1.7) and sel.revenue == pytest.approx(4.0) and sel.surplus == pytest.approx(2.3)
    reasons = {r.offer_id: r.reason for r in sel.rejected}
    assert reasons == {"o-h4": "bus: 'b9' is not eligible for contract 'dso-1'",
                       "o-h1-again": "member 'h1' already offered for this contract"}
    assert sel.pooling.gain_kw > 0


def test_unfilled_contract_reports_the_shortfall(contract):
    # Best coalition: both offers, 30 kW mean, sd sqrt(1 + 1) -> firm 30 - 1.645*1.414 = 27.674 kW of 40.
    sel = select_coalition(contract, [offer("h1", "b1", 15.0, 1.0, 0.01), offer("h2", "b1", 15.0, 1.0, 0.01)])
    assert sel.status == "unfilled"
    assert sel.shortfall_kw == pytest.approx(40 - (30 - NormalDist().inv_cdf(0.95) * math.sqrt(2)))
    assert sel.members == ("o-h1", "o-h2")
    assert math.isnan(sel.cost_lower_bound)
    assert select_coalition(contract, []).status == "unfilled"


def test_pooling_fills_what_no_member_alone_could(contract):
    # Ten independent members of 5 kW +- 1.5 kW: alone each firms 5 - 2.467 = 2.533 kW, 25.3 kW in total,
    # below the 40 kW asked; pooled, ten firm 50 - 1.645*sqrt(22.5) = 42.2 kW.
    sel = select_coalition(contract, [offer(f"h{i}", "b1", 5.0, 1.5, 0.01) for i in range(10)])
    assert sel.status == "filled" and len(sel.members) == 10
    assert sel.pooling.sum_individual_firm_kw == pytest.approx(10 * (5 - 1.5 * NormalDist().inv_cdf(0.95)))
    assert sel.pooling.sum_individual_firm_kw < 40 <= sel.firm_kw
    assert sel.pooling.gain_kw == pytest.approx(sel.firm_kw - sel.pooling.sum_individual_firm_kw)


def test_same_offers_same_coalition(contract):
    rng = np.random.default_rng(5)
    offers = [offer(f"h{i}", ["b1", "b2"][i % 2], float(rng.uniform(1, 6)), float(rng.uniform(0, 1.5)),
                    float(rng.uniform(0.005, 0.05))) for i in range(60)]
    first = select_coalition(contract, offers)
    assert first.status == "filled"
    assert select_coalition(contract, offers) == first


def test_energy_block_without_location_counts_every_bus():
    c = parse_contract(contract_data(service={"kind": "energy_block"}, location=None, capacity_kw=10.0,
                                     confidence=0.5))
    sel = select_coalition(c, [offer("h1", "anywhere", 6.0, 1.0, 0.02), offer("h2", "elsewhere", 6.0, 1.0, 0.01)])
    # at 50 % confidence z = 0: the firm capacity is the mean, 12 kW >= 10 kW
    assert sel.status == "filled" and sel.firm_kw == pytest.approx(12.0)
