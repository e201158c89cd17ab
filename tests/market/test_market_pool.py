"""Pool (central welfare optimum) against hand-computed KKT solutions and against the generic QP."""

import numpy as np
import pytest

from testbed.domain.market import clear


def ag(id_, lo, hi, a, b, **kw):
    return {"id": id_, "p_min_kw": lo, "p_max_kw": hi, "cost_a": a, "cost_b": b, **kw}


def test_two_agents_islanded():
    # KKT: p_g = (lam - 0.05)/0.02, p_l = (lam - 0.35)/0.02; p_g + p_l = 0 -> 2*lam = 0.40, lam = 0.20,
    # p_g = 7.5, p_l = -7.5. Cost rates: gen 0.5*0.02*7.5^2 + 0.05*7.5 = 0.9375, load
    # 0.5*0.02*7.5^2 - 0.35*7.5 = -2.0625; total -1.125/h * 0.25 h = -0.28125.
    # Payments: load pays 0.20*7.5*0.25 = 0.375, gen receives the same.
    case = {"interval_h": 0.25, "agents": [ag("g", 0, 20, 0.02, 0.05), ag("l", -20, 0, 0.02, 0.35)]}
    r = clear(case, "pool")
    assert r.price == pytest.approx(0.20, abs=1e-12)
    assert r.dispatch_kw == pytest.approx({"g": 7.5, "l": -7.5}, abs=1e-12)
    assert r.total_cost == pytest.approx(-0.28125, abs=1e-12)
    assert r.payments == pytest.approx({"g": -0.375, "l": 0.375}, abs=1e-12)
    assert r.grid_import_kw == 0 and r.operator_revenue == pytest.approx(0, abs=1e-12)


def test_grid_import_sets_the_price():
    # Gen capped at 5 kW; islanded the load would need lam = 0.25 (p_l = -5), but importing costs 0.22,
    # so lam = 0.22: p_l = (0.22 - 0.35)/0.02 = -6.5, gen 5, grid import 1.5 kW.
    # Cost rate: gen 0.5*0.02*25 + 0.05*5 = 0.5; load 0.5*0.02*42.25 - 0.35*6.5 = -1.8525;
    # grid 0.22*1.5 = 0.33; total -1.0225/h * 0.25 h = -0.255625.
    case = {"interval_h": 0.25, "grid": {"import_price": 0.22, "export_price": 0.04},
            "agents": [ag("g", 0, 5, 0.02, 0.05), ag("l", -20, 0, 0.02, 0.35)]}
    r = clear(case, "pool")
    assert r.price == pytest.approx(0.22)
    assert r.dispatch_kw == pytest.approx({"g": 5, "l": -6.5})
    assert r.grid_import_kw == pytest.approx(1.5)
    assert r.total_cost == pytest.approx(-0.255625)
    assert r.grid_purchases == pytest.approx(0.22 * 1.5 * 0.25)
    assert sum(r.payments.values()) - r.grid_purchases == pytest.approx(0, abs=1e-12)


def test_export_to_grid_sets_the_price():
    # Cheap generation 10 kW must-run, load takes at most 4 kW: 6 kW go out at the export price 0.05.
    # Load: p_l = clip((0.05 - 0.35)/0.01, -4, 0) = -4.
    case = {"interval_h": 1, "grid": {"import_price": 0.3, "export_price": 0.05},
            "agents": [ag("g", 10, 10, 0.0, 0.0), ag("l", -4, 0, 0.01, 0.35)]}
    r = clear(case, "pool")
    assert r.price == pytest.approx(0.05) and r.grid_import_kw == pytest.approx(-6)
    assert r.grid_sales == pytest.approx(0.3)


def test_linear_agents_merit_order():
    # gen1 0.10 (10 kW), gen2 0.20 (10 kW), fixed load 15 kW: gen1 full, gen2 marginal at 5 kW, lam = 0.20.
    case = {"interval_h": 1, "agents": [ag("g1", 0, 10, 0, 0.10), ag("g2", 0, 10, 0, 0.20),
                                         ag("l", -15, -15, 0, 0.5)]}
    r = clear(case, "pool")
    assert r.price == pytest.approx(0.20)
    assert r.dispatch_kw == pytest.approx({"g1": 10, "g2": 5, "l": -15})


def test_non_unique_price_uses_midpoint():
    # gen at 0.10 and load at 0.30, both 10 kW: every price in [0.10, 0.30] clears 10 kW; midpoint 0.20.
    case = {"interval_h": 1, "agents": [ag("g", 0, 10, 0, 0.10), ag("l", -10, 0, 0, 0.30)]}
    r = clear(case, "pool")
    assert r.price == pytest.approx(0.20) and r.dispatch_kw == pytest.approx({"g": 10, "l": -10})


@pytest.mark.parametrize("lo_hi", [((-5, -5), (0, 3)), ((2, 5), (0, 1))])
def test_islanded_infeasible_says_why(lo_hi):
    (l_lo, l_hi), (g_lo, g_hi) = lo_hi
    case = {"interval_h": 1, "agents": [ag("l", l_lo, l_hi, 0.01, 0.3), ag("g", g_lo, g_hi, 0.01, 0.1)]}
    r = clear(case, "pool")
    assert r.status == "infeasible" and "islanded" in r.reason
    assert r.dispatch_kw == {} and r.total_cost is None


def test_all_fixed_agents_have_no_price():
    case = {"interval_h": 1, "agents": [ag("l", -3, -3, 0.01, 0.3), ag("g", 3, 3, 0.01, 0.1)]}
    r = clear(case, "pool")
    assert r.status == "optimal" and r.price is None and r.payments == {"l": 0.0, "g": 0.0}


def _random_case(rng, n, grid):
    agents = []
    for i in range(n):
        lo = float(rng.uniform(-10, 5))
        hi = lo + float(rng.uniform(0, 10))
        a = 0.0 if rng.random() < 0.2 else float(rng.uniform(0.001, 0.05))
        agents.append(ag(f"a{i}", lo, hi, a, float(rng.uniform(0, 0.4))))
    case = {"interval_h": 0.25, "agents": agents}
    if grid:
        case["grid"] = {"import_price": 0.3, "export_price": 0.05}
    return case


@pytest.mark.parametrize("seed", range(12))
def test_exact_pool_matches_generic_qp(seed):
    # The breakpoint search and Clarabel solve the same QP: equal cost (1e-6 relative), dispatch within
    # 1e-4 kW (the QP's tolerance) where it is unique, and the same price when it is unique.
    rng = np.random.default_rng(seed)
    case = _random_case(rng, int(rng.integers(2, 40)), grid=bool(seed % 2))
    exact, qp = clear(case, "pool"), clear(case, "pool", solver="qp")
    assert exact.status == qp.status
    if exact.status != "optimal":
        return
    assert exact.total_cost == pytest.approx(qp.total_cost, rel=1e-6, abs=1e-6)
    assert exact.grid_import_kw == pytest.approx(qp.grid_import_kw, abs=1e-3)
    quad = [a["id"] for a in case["agents"] if a["cost_a"] > 0]
    for k in quad:
        assert exact.dispatch_kw[k] == pytest.approx(qp.dispatch_kw[k], abs=1e-3)
