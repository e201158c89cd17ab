"""Double auction (uniform price and pay-as-bid) against hand-computed books."""

import pytest

from testbed.domain.market import clear

TOL = 1e-9


def _agents():
    buyers = [{"id": f"b{k}", "p_min_kw": -10, "p_max_kw": 0, "cost_a": 0.0, "cost_b": 0.0} for k in "123"]
    sellers = [{"id": f"s{k}", "p_min_kw": 0, "p_max_kw": 10, "cost_a": 0.0, "cost_b": 0.0} for k in "123"]
    return buyers + sellers


def _case(orders, grid=None):
    book = [{"id": f"o{k}", "agent": a, "side": s, "quantity_kw": q, "price_per_kwh": p}
            for k, (a, s, q, p) in enumerate(orders)]
    return {"interval_h": 0.5, "grid": grid, "agents": _agents(), "orders": book}


BOOK = [("b1", "buy", 5, 0.30), ("b2", "buy", 3, 0.25), ("b3", "buy", 4, 0.10),
        ("s1", "sell", 4, 0.05), ("s2", "sell", 3, 0.20), ("s3", "sell", 5, 0.28)]


def test_uniform_price_with_partial_fill_of_marginal_bid():
    # Bid curve: 5 kW @0.30, then 3 @0.25, then 4 @0.10; ask curve: 4 @0.05, 3 @0.20, 5 @0.28.
    # Segments (0,4] .30>=.05, (4,5] .30>=.20, (5,7] .25>=.20 cross; (7,8] .25<.28 does not: Q = 7 kW.
    # Fills: b1 5, b2 2 of 3 (marginal, partly filled), s1 4, s2 3. Clearing interval:
    # low = max(marginal ask .20, partly filled bid .25) = .25; high = min(marginal bid .25, next ask .28)
    # = .25, so the price is 0.25.
    r = clear(_case(BOOK), "double-auction")
    assert r.status == "optimal"
    assert r.price == pytest.approx(0.25, abs=TOL)
    d = r.dispatch_kw
    assert (d["b1"], d["b2"], d["b3"]) == pytest.approx((-5, -2, 0), abs=TOL)
    assert (d["s1"], d["s2"], d["s3"]) == pytest.approx((4, 3, 0), abs=TOL)
    # payments over 0.5 h: b1 pays 5*0.25*0.5 = 0.625, s1 receives 4*0.25*0.5 = 0.5
    assert r.payments["b1"] == pytest.approx(0.625) and r.payments["s1"] == pytest.approx(-0.5)
    assert sum(r.payments.values()) == pytest.approx(0.0, abs=TOL)
    assert sum(t.p_kw for t in r.trades) == pytest.approx(7.0)


def test_pay_as_bid_keeps_the_spread():
    # Same fills. Buyers pay their bids: 5*0.30 + 2*0.25 = 2.0 /h; sellers get their asks:
    # 4*0.05 + 3*0.20 = 0.8 /h; over 0.5 h the platform keeps (2.0 - 0.8)*0.5 = 0.6.
    r = clear(_case(BOOK), "pay-as-bid")
    assert r.payments["b1"] == pytest.approx(5 * 0.30 * 0.5)
    assert r.payments["b2"] == pytest.approx(2 * 0.25 * 0.5)
    assert r.payments["s2"] == pytest.approx(-3 * 0.20 * 0.5)
    assert r.operator_revenue == pytest.approx(0.6)
    assert r.price is None
    for t in r.trades:
        assert t.seller_price_per_kwh is not None and t.seller_price_per_kwh <= t.price_per_kwh


def test_ties_at_the_margin_share_pro_rata():
    # Two bids of 4 kW at 0.30 against one ask of 6 kW at 0.10: each bid gets 6 * 4/8 = 3 kW.
    # Both bids are partly filled, so the price must be their limit 0.30 (low = max(.10, .30)).
    r = clear(_case([("b1", "buy", 4, 0.30), ("b2", "buy", 4, 0.30), ("s1", "sell", 6, 0.10)]),
              "double-auction")
    assert r.dispatch_kw["b1"] == pytest.approx(-3) and r.dispatch_kw["b2"] == pytest.approx(-3)
    assert r.price == pytest.approx(0.30)


def test_fully_matched_book_prices_at_midpoint_of_interval():
    # 5 kW bid @0.30 meets 5 kW ask @0.10: both fully filled, any price in [0.10, 0.30] clears;
    # the midpoint 0.20 is used.
    r = clear(_case([("b1", "buy", 5, 0.30), ("s1", "sell", 5, 0.10)]), "double-auction")
    assert r.price == pytest.approx(0.20)
    assert r.trades[0].p_kw == pytest.approx(5)


def test_book_that_does_not_cross_trades_nothing():
    r = clear(_case([("b1", "buy", 5, 0.10), ("s1", "sell", 5, 0.20)]), "double-auction")
    assert r.status == "optimal" and r.trades == [] and r.price is None
    assert all(v == 0 for v in r.dispatch_kw.values())
    assert "does not cross" in r.reason


def test_empty_book():
    agents = [{"id": "x", "p_min_kw": 0, "p_max_kw": 0, "cost_a": 0, "cost_b": 0.1}]
    r = clear({"interval_h": 1, "agents": agents}, "double-auction")
    assert r.status == "optimal" and r.trades == [] and r.total_cost == 0


def test_grid_caps_the_price_at_the_import_tariff():
    # Buyer 6 kW @0.40, seller 2 kW @0.05, grid sells at 0.25 and buys at 0.04. Q = 6 kW: the seller's
    # 2 kW and 4 kW of the grid's unlimited ask (partly filled, so the price is the grid's 0.25).
    r = clear(_case([("b1", "buy", 6, 0.40), ("s1", "sell", 2, 0.05)],
                    grid={"import_price": 0.25, "export_price": 0.04}), "double-auction")
    assert r.price == pytest.approx(0.25)
    assert r.grid_import_kw == pytest.approx(4)
    assert r.grid_purchases == pytest.approx(4 * 0.25 * 0.5)
    assert r.total_cost == pytest.approx(r.grid_purchases)  # agents' costs are zero here


def test_orders_derived_from_cost_curves():
    # One segment per side: seller [0,10] with marginal cost 0.01p+0.05 asks 10 kW at 0.01*5+0.05=0.10;
    # buyer [-10,0] with 0.01p+0.40 bids 10 kW at 0.01*(-5)+0.40 = 0.35. Both fill, price (0.10+0.35)/2.
    agents = [{"id": "g", "p_min_kw": 0, "p_max_kw": 10, "cost_a": 0.01, "cost_b": 0.05},
              {"id": "l", "p_min_kw": -10, "p_max_kw": 0, "cost_a": 0.01, "cost_b": 0.40}]
    r = clear({"interval_h": 1, "agents": agents}, "double-auction", segments=1)
    assert r.price == pytest.approx(0.225)
    assert r.dispatch_kw == pytest.approx({"g": 10, "l": -10})


def test_must_run_demand_that_cannot_be_met_is_infeasible():
    agents = [{"id": "l", "p_min_kw": -5, "p_max_kw": -5, "cost_a": 0, "cost_b": 0.3},
              {"id": "g", "p_min_kw": 0, "p_max_kw": 2, "cost_a": 0, "cost_b": 0.1}]
    r = clear({"interval_h": 1, "agents": agents}, "double-auction")
    assert r.status == "infeasible" and "5 kW" in r.reason


def test_derived_orders_approach_the_pool_as_segments_grow():
    # Finer pieces of the cost curves make the auction's welfare approach the pool optimum from above:
    # the gap shrinks monotonically here and is below 0.1% of |pool cost| at 64 pieces.
    agents = [{"id": "g1", "p_min_kw": 0, "p_max_kw": 10, "cost_a": 0.02, "cost_b": 0.05},
              {"id": "g2", "p_min_kw": 0, "p_max_kw": 8, "cost_a": 0.01, "cost_b": 0.10},
              {"id": "l1", "p_min_kw": -9, "p_max_kw": 0, "cost_a": 0.02, "cost_b": 0.40},
              {"id": "l2", "p_min_kw": -6, "p_max_kw": -1, "cost_a": 0.01, "cost_b": 0.30}]
    case = {"interval_h": 1, "agents": agents}
    pool = clear(case, "pool").total_cost
    gaps = [clear(case, "double-auction", segments=k).total_cost - pool for k in (1, 4, 16, 64)]
    assert all(g >= -1e-12 for g in gaps)
    assert gaps == sorted(gaps, reverse=True)
    assert gaps[-1] <= 1e-3 * abs(pool)


def test_result_round_trips_through_json():
    from testbed.domain.market import MarketResult

    r = clear(_case(BOOK), "pay-as-bid")
    assert MarketResult.model_validate_json(r.model_dump_json()) == r
