"""P2P with product differentiation: central QP and ADMM negotiation, against hand-computed cases."""

import numpy as np
import pytest

from testbed.domain.market import clear
from testbed.domain.market.admm import agent_problems, agent_step, negotiate
from testbed.domain.market.case import parse_case
from testbed.domain.market.p2p import build_graph


def ag(id_, lo, hi, a, b, **kw):
    return {"id": id_, "p_min_kw": lo, "p_max_kw": hi, "cost_a": a, "cost_b": b, **kw}


def _two_sellers(**buyer_kw):
    return {"interval_h": 0.5, "classes": {"green": {}},
            "agents": [ag("sg", 0, 10, 0.02, 0.10, energy_class="green", bus="n1"),
                       ag("sn", 0, 10, 0.02, 0.10, bus="n2"),
                       ag("b", -10, -10, 0.0, 0.5, bus="n1", **buyer_kw)]}


def _trade(r, seller, buyer):
    found = [t for t in r.trades if t.seller == seller and t.buyer == buyer]
    assert len(found) == 1, r.trades
    return found[0]


@pytest.mark.parametrize("mech", ["p2p", "admm"])
def test_green_premium_shifts_trades_and_prices(mech):
    # Buyer needs 10 kW and values green at +0.02/kWh. Minimise 0.01 sg^2 + 0.1 sg + 0.01 sn^2 + 0.1 sn
    # - 0.02 sg with sg + sn = 10: 0.02 sg + 0.08 = 0.02 sn + 0.10 -> sg - sn = 1: sg = 5.5, sn = 4.5.
    # Trade prices = sellers' marginal costs: green 0.02*5.5 + 0.1 = 0.21, other 0.02*4.5 + 0.1 = 0.19
    # (buyer side: 0.19 + 0.02 premium = 0.21, consistent). Buyer pays (5.5*0.21 + 4.5*0.19)*0.5 = 1.005.
    r = clear(_two_sellers(preferences={"class_premium": {"green": 0.02}}), mech)
    tol = 1e-5 if mech == "p2p" else 2e-3
    assert r.status == "optimal"
    assert _trade(r, "sg", "b").p_kw == pytest.approx(5.5, abs=tol)
    assert _trade(r, "sn", "b").p_kw == pytest.approx(4.5, abs=tol)
    assert _trade(r, "sg", "b").price_per_kwh == pytest.approx(0.21, abs=tol)
    assert _trade(r, "sn", "b").price_per_kwh == pytest.approx(0.19, abs=tol)
    assert _trade(r, "sg", "b").energy_class == "green"
    assert r.payments["b"] == pytest.approx(1.005, abs=10 * tol)
    # objective = total cost - premium value: costs 0.01*5.5^2+0.55 + 0.01*4.5^2+0.45 = 1.505/h,
    # buyer's cost 0.5*10*(-1)... b has cost_b 0.5: -5/h; premium 0.02*5.5 = 0.11/h
    assert r.total_cost == pytest.approx((1.505 - 5.0) * 0.5, abs=10 * tol)
    assert r.objective == pytest.approx((1.505 - 5.0 - 0.11) * 0.5, abs=10 * tol)


@pytest.mark.parametrize("mech", ["p2p", "admm"])
def test_network_charge_by_distance(mech):
    # Buyer at n1; sn sits at n2, distance 2, charge 0.01/kWh per unit distance -> each side pays
    # 0.5*0.01*2 = 0.01/kWh on the sn trade (0.02 in total). As above, sg - sn = 1: 5.5 and 4.5 kW.
    # Prices: sg trade 0.21 (no charge); sn trade = sn's marginal 0.19 + its charge 0.01 = 0.20
    # (= buyer's marginal 0.21 - its charge 0.01). Per hour the buyer pays 5.5*0.21 + 4.5*0.20 + 0.045
    # (its charge) = 2.1; the operator gets 2 * 0.045 = 0.09/h -> 0.045 for the half hour.
    case = _two_sellers()
    case["network"] = {"charge_per_kwh_per_distance": 0.01, "distance": {"n1": {"n2": 2.0}}}
    r = clear(case, mech)
    tol = 1e-5 if mech == "p2p" else 2e-3
    assert _trade(r, "sn", "b").p_kw == pytest.approx(4.5, abs=tol)
    assert _trade(r, "sn", "b").price_per_kwh == pytest.approx(0.20, abs=tol)
    assert r.payments["b"] == pytest.approx(2.1 * 0.5, abs=10 * tol)
    assert r.operator_revenue == pytest.approx(0.045, abs=10 * tol)


def test_eligibility_reserves_subsidised_energy():
    # Cheap subsidised PV may only sell to 'poor'; 'rich' must buy from the dearer seller.
    case = {"interval_h": 1, "classes": {"sub": {"eligible_buyers": ["poor"]}},
            "agents": [ag("pv", 0, 10, 0.0, 0.01, energy_class="sub"), ag("gen", 0, 10, 0.02, 0.10),
                       ag("poor", -4, -4, 0, 0.5), ag("rich", -4, -4, 0, 0.5)]}
    r = clear(case, "p2p")
    assert r.dispatch_kw["pv"] == pytest.approx(4, abs=1e-6)
    assert all(t.buyer == "poor" for t in r.trades if t.seller == "pv")
    rp = clear(case, "pool")  # the pool ignores classes: pv would cover both
    assert rp.dispatch_kw["pv"] == pytest.approx(8)


def _random_case(rng, n, grid=True, prefs=True):
    agents = []
    classes = ["green", "local"]
    for i in range(n):
        kind = i % 3
        if kind == 0:
            lo, hi = 0.0, float(rng.uniform(2, 10))
        elif kind == 1:
            lo, hi = -float(rng.uniform(2, 10)), 0.0
        else:
            lo, hi = -float(rng.uniform(1, 5)), float(rng.uniform(1, 5))
        a = {"id": f"a{i}", "p_min_kw": lo, "p_max_kw": hi, "cost_a": float(rng.uniform(0.005, 0.05)),
             "cost_b": float(rng.uniform(0.02, 0.4)), "bus": f"n{i % 3}",
             "energy_class": classes[i % 2]}
        if prefs and rng.random() < 0.5:
            a["preferences"] = {"class_premium": {"green": float(rng.uniform(0, 0.05))},
                                "partner_premium": {f"a{(i + 1) % n}": float(rng.uniform(-0.02, 0.03))}}
        agents.append(a)
    case = {"interval_h": 0.25, "agents": agents, "classes": {c: {} for c in classes}}
    if grid:
        case["grid"] = {"import_price": 0.3, "export_price": 0.05}
    if prefs:
        case["network"] = {"charge_per_kwh_per_distance": 0.005,
                           "distance": {"n0": {"n1": 1.0, "n2": 2.0}, "n1": {"n2": 1.0}}}
    return case


@pytest.mark.parametrize("seed", range(6))
def test_no_preferences_p2p_equals_pool(seed):
    # Without premiums, charges or restrictions the P2P optimum is the pool optimum (same feasible
    # injections, same costs): equal welfare within the QP tolerance, and the ADMM within 1e-3.
    rng = np.random.default_rng(seed)
    case = _random_case(rng, int(rng.integers(3, 12)), grid=seed % 2 == 0, prefs=False)
    for a in case["agents"]:
        a.pop("energy_class")
    pool, p2p, admm = clear(case, "pool"), clear(case, "p2p"), clear(case, "admm")
    assert pool.status == p2p.status == admm.status
    if pool.status != "optimal":
        return
    assert p2p.total_cost == pytest.approx(pool.total_cost, rel=1e-6, abs=1e-6)
    assert abs(admm.objective - p2p.objective) <= 1e-3 * abs(p2p.objective) + 1e-6
    if pool.price is not None and seed % 2 == 0:
        trade_prices = [t.price_per_kwh for t in p2p.trades]
        assert trade_prices == pytest.approx([pool.price] * len(trade_prices), abs=1e-4)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("partners", [None, 2])
def test_admm_agrees_with_central_qp(seed, partners):
    # Stopping tolerances: rms(p_ij + p_ji) <= 1e-5 kW and rho*rms(change) <= 1e-7 /kWh.
    # Agreement target: relative welfare gap <= 1e-3.
    rng = np.random.default_rng(100 + seed)
    case = _random_case(rng, int(rng.integers(4, 16)), grid=seed % 3 != 0)
    central, admm = clear(case, "p2p", partners=partners), clear(case, "admm", partners=partners)
    assert central.status == admm.status
    if central.status != "optimal":
        return
    gap = abs(admm.objective - central.objective) / max(abs(central.objective), 1e-9)
    assert gap <= 1e-3
    assert admm.primal_residual <= 1e-5 and admm.iterations > 0


def test_agent_step_is_the_batch_round():
    # One agent's step (what a separate process would run with its own data and its partners' offers)
    # gives the same offers as the vectorised round over all agents, to 1e-9 kW, for 25 rounds.
    rng = np.random.default_rng(7)
    case = parse_case(_random_case(rng, 6))
    g = build_graph(case)
    rho = 0.02
    batch = negotiate(g, rho=rho, max_iter=25, adapt_rho=False, tol_kw=1e-30, tol_price=1e-30)
    probs, edges = agent_problems(g)
    m2 = 2 * len(g.pi)
    rev = np.arange(m2) ^ 1
    offers = np.zeros(m2)
    price = np.full(m2, float(np.median(g.b[: g.n_agents])))
    for _ in range(25):
        new_offers, new_price = np.zeros(m2), np.zeros(m2)
        for prob, ix in zip(probs, edges, strict=True):
            o, p = agent_step(prob, offers[ix], offers[rev[ix]], price[ix], rho)
            new_offers[ix], new_price[ix] = o, p
        offers, price = new_offers, new_price
    np.testing.assert_allclose(offers, batch.offers_kw, atol=1e-9)


def test_admm_reports_not_converged():
    rng = np.random.default_rng(3)
    r = clear(_random_case(rng, 8), "admm", max_iter=3)
    assert r.status == "not_converged" and "residual" in r.reason and r.iterations == 3


def test_islanded_p2p_infeasible():
    case = {"interval_h": 1, "agents": [ag("l", -5, -5, 0, 0.3), ag("g", 0, 2, 0.01, 0.1)]}
    for mech in ("p2p", "admm"):
        r = clear(case, mech)
        assert r.status == "infeasible" and "islanded" in r.reason


def test_worked_example_p2p_prices():
    # docs/market.md: chp is interior at 2 kW, so its marginal cost 0.12 pins the chain of prices.
    # chp->flat = 0.12 + chp's charge 0.5*0.01*1 = 0.125; the flat's marginal value is then 0.125 + its
    # own 0.005 = 0.13, so commpv->flat (same bus) = 0.13 and pv->flat = 0.13 - 0.01 (flat's half of the
    # distance-2 charge) = 0.12; pv's marginal value is 0.12 - 0.01 = 0.11 and pv->house = 0.11 + 0.005.
    # Operator: (6*0.01 + 4*0.02 + 2*0.01)*0.25 = 0.04; objective = -1.05875 - 0.03*6*0.25 + 0.04.
    from pathlib import Path

    from testbed.cli.market import read_case

    case = read_case(Path(__file__).parent / "cases" / "community.yaml")
    r = clear(case, "p2p")
    prices = {(t.seller, t.buyer): t.price_per_kwh for t in r.trades}
    assert prices == pytest.approx({("pv", "house"): 0.115, ("pv", "flat"): 0.12, ("chp", "flat"): 0.125,
                                    ("commpv", "flat"): 0.13}, abs=1e-6)
    assert r.operator_revenue == pytest.approx(0.04, abs=1e-6)
    assert r.objective == pytest.approx(-1.06375, abs=1e-6)
