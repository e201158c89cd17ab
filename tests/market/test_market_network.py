"""Network-aware clearing: PTDF line limits and dV/dP voltage limits that bind and change the dispatch."""

import numpy as np
import pytest

from testbed.domain.market import clear
from testbed.domain.market.case import parse_case
from testbed.domain.market.network import network_rows


def _case(network):
    # gen1 (cheap) at b1 behind a line to b2; gen2 (dearer) and a fixed 10 kW load at b2; islanded.
    # Unconstrained: (lam-0.05)/0.02 + (lam-0.15)/0.02 = 10 -> lam = 0.20, gen1 7.5 kW, gen2 2.5 kW.
    return {"interval_h": 1.0, "network": network, "agents": [
        {"id": "gen1", "p_min_kw": 0, "p_max_kw": 20, "cost_a": 0.02, "cost_b": 0.05, "bus": "b1"},
        {"id": "gen2", "p_min_kw": 0, "p_max_kw": 20, "cost_a": 0.02, "cost_b": 0.15, "bus": "b2"},
        {"id": "load", "p_min_kw": -10, "p_max_kw": -10, "cost_a": 0.0, "cost_b": 0.5, "bus": "b2"}]}


LINE = {"lines": [{"id": "l12", "ptdf": {"b1": 1.0, "b2": 0.0}, "limit_kw": 5.0}]}
# v(b1) = 1.0 + 0.004 pu/kW * injection at b1 <= 1.02  ->  injection at b1 <= 5 kW
VOLT = {"voltages": [{"bus": "b1", "v0_pu": 1.0, "dv_dp_pu_per_kw": {"b1": 0.004}, "v_min_pu": 0.95,
                      "v_max_pu": 1.02}]}


def test_unconstrained_reference():
    r = clear(_case(None), "pool")
    assert r.dispatch_kw["gen1"] == pytest.approx(7.5) and r.price == pytest.approx(0.20)


@pytest.mark.parametrize("network", [LINE, VOLT], ids=["line", "voltage"])
def test_pool_limit_binds_with_nodal_prices(network):
    # The limit caps gen1 at 5 kW, so gen2 makes 5 kW. Nodal prices = marginal costs:
    # b1: 0.02*5 + 0.05 = 0.15, b2: 0.02*5 + 0.15 = 0.25. The load pays 0.25*10 = 2.5, the generators
    # receive 0.15*5 + 0.25*5 = 2.0: the congestion rent 0.5 goes to the network operator.
    r = clear(_case(network), "pool")
    assert r.status == "optimal"
    assert r.dispatch_kw == pytest.approx({"gen1": 5.0, "gen2": 5.0, "load": -10.0}, abs=1e-6)
    assert r.agent_prices["gen1"] == pytest.approx(0.15, abs=1e-6)
    assert r.agent_prices["load"] == pytest.approx(0.25, abs=1e-6)
    assert r.operator_revenue == pytest.approx(0.5, abs=1e-5)
    rows = network_rows(parse_case(_case(network)))
    assert rows.violations(np.array([5.0, 5.0, -10.0]), tol=1e-6) == []
    assert len(rows.violations(np.array([7.5, 2.5, -10.0]), tol=1e-6)) == 1


@pytest.mark.parametrize("mech", ["p2p", "admm"])
@pytest.mark.parametrize("network", [LINE, VOLT], ids=["line", "voltage"])
def test_p2p_limit_binds(network, mech):
    # Same constrained dispatch; trades stay bilateral: the load buys 5 kW from each generator, both
    # at the price of the unconstrained seller's marginal cost 0.25 (no nodal rent in P2P). ADMM gets
    # there with the network operator's copy of the injections (tolerance 1e-5 kW -> 1e-4 here).
    r = clear(_case(network), mech)
    tol = 1e-5 if mech == "p2p" else 1e-4
    assert r.dispatch_kw == pytest.approx({"gen1": 5.0, "gen2": 5.0, "load": -10.0}, abs=tol)
    assert [t.price_per_kwh for t in r.trades] == pytest.approx([0.25, 0.25], abs=tol)
    assert r.operator_revenue == pytest.approx(0.0, abs=1e-9)


def _random_network_case(seed):
    rng = np.random.default_rng(seed)
    n, buses = int(rng.integers(3, 12)), ["n0", "n1", "n2", "n3"]
    agents = []
    for i in range(n):
        sides = [(0.0, rng.uniform(2, 10)), (-rng.uniform(2, 10), 0.0),
                 (-rng.uniform(1, 5), rng.uniform(1, 5))]
        lo, hi = sides[i % 3]
        agents.append({"id": f"a{i}", "p_min_kw": float(lo), "p_max_kw": float(hi),
                       "cost_a": float(rng.choice([0.0, rng.uniform(0.005, 0.05)])),
                       "cost_b": float(rng.uniform(0.02, 0.4)), "bus": buses[int(rng.integers(4))]})
    used = sorted({a["bus"] for a in agents})
    net = {"lines": [{"id": "l1", "ptdf": {b: float(rng.uniform(-1, 1)) for b in used},
                      "limit_kw": float(rng.uniform(1, 6))}],
           "voltages": [{"bus": used[0], "v0_pu": 1.0, "dv_dp_pu_per_kw": {b: float(rng.uniform(0, 0.004))
                                                                             for b in used},
                         "v_min_pu": 0.97, "v_max_pu": 1.02}]}
    case = {"interval_h": 0.25, "agents": agents, "network": net}
    if seed % 3:
        case["grid"] = {"import_price": 0.3, "export_price": 0.05}
    return case


@pytest.mark.parametrize("seed", range(8))
def test_admm_with_network_limits_agrees_with_central(seed):
    # Random limits (a line through every bus, a voltage row) that bind in about half of the cases:
    # the negotiation with the network operator's block reaches the central QP's welfare within 1e-3
    # (relative) and respects the limits within its 1e-5 kW tolerance (1e-4 in the row's unit here).
    case = _random_network_case(seed)
    central, admm = clear(case, "p2p"), clear(case, "admm")
    assert central.status == admm.status
    if central.status != "optimal":
        return
    assert abs(admm.objective - central.objective) <= 1e-3 * abs(central.objective) + 1e-9
    rows = network_rows(parse_case(case))
    p = np.array([admm.dispatch_kw[a["id"]] for a in case["agents"]])
    assert rows.violations(p, tol=1e-4) == []


def test_unmeetable_limit_is_infeasible():
    net = {"voltages": [{"bus": "b2", "v0_pu": 0.96, "dv_dp_pu_per_kw": {"b2": 0.001}, "v_min_pu": 0.95,
                         "v_max_pu": 1.05}]}
    # With gen2 capped at 0 kW, v(b2) = 0.96 + 0.001*(0 - 10) = 0.95 whatever gen1 does (b1 does not
    # move b2 here), below v_min 0.955: no dispatch meets the limit.
    case = _case(net)
    case["agents"][1]["p_max_kw"] = 0
    case["network"]["voltages"][0]["v_min_pu"] = 0.955
    for mech in ("pool", "p2p"):
        r = clear(case, mech)
        assert r.status == "infeasible" and "network limits" in r.reason
