"""Network-aware clearing: PTDF line limits and dV/dP voltage limits that bind and change the dispatch."""

import numpy as np
import pytest

from testbed.market import clear
from testbed.market.case import parse_case
from testbed.market.network import network_rows


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


@pytest.mark.parametrize("network", [LINE, VOLT], ids=["line", "voltage"])
def test_p2p_limit_binds(network):
    # Same constrained dispatch; trades stay bilateral: the load buys 5 kW from each generator, both
    # at the price of the unconstrained seller's marginal cost 0.25 (no nodal rent in P2P).
    r = clear(_case(network), "p2p")
    assert r.dispatch_kw == pytest.approx({"gen1": 5.0, "gen2": 5.0, "load": -10.0}, abs=1e-5)
    assert [t.price_per_kwh for t in r.trades] == pytest.approx([0.25, 0.25], abs=1e-5)
    assert r.operator_revenue == pytest.approx(0.0, abs=1e-9)


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


def test_admm_refuses_network_limits():
    from testbed.errors import UserError

    with pytest.raises(UserError, match="network limits"):
        clear(_case(LINE), "admm")
