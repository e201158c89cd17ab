"""The EMS bidding policy and setpoint rule, and the market KPIs, against hand-computed numbers."""

import pytest

from testbed.domain.der.battery import BatterySpec
from testbed.domain.der.ems import State, battery_limits, battery_setpoint_kw, bid
from testbed.domain.prosumer import Preferences, Tariff
from testbed.platform.clearing import imbalance_amount, retail_bill
from testbed.platform.kpis import market_kpis, provenance_record

IMP, EXP, H = 0.30, 0.08, 0.25  # retail tariff [currency/kWh], 15-minute interval [h]
TARIFF = Tariff(import_price_per_kwh=IMP, export_price_per_kwh=EXP)
# round-trip 0.81: 0.9 each way, so the hand figures stay round
BATTERY = BatterySpec(capacity_kwh=10.0, power_kw=3.0, round_trip_efficiency=0.81, soc_min=0.1, soc_max=0.9)


def order(s, prefs=None):
    return bid(s, prefs or Preferences(), TARIFF, H, agent="a", order_id="a-1")


def test_pv_surplus_sells_green_at_mid_spread():
    b = order(State(load_kw=0.5, pv_kw=4.0))
    # 4.0 - 0.5 = 3.5 kW at 0.08 + 0.5 * (0.30 - 0.08) = 0.19
    assert (b.side, b.quantity_kw, b.energy_class, b.agent, b.id) == ("sell", 3.5, "green", "a", "a-1")
    assert b.price_per_kwh == pytest.approx(0.19, abs=1e-9)


def test_preferences_move_quantity_and_price():
    s = State(load_kw=0.5, pv_kw=4.0)
    assert order(s, Preferences(risk_aversion=1.0)).quantity_kw == pytest.approx(1.75)
    assert order(s, Preferences(subsidy_share=1.0)).price_per_kwh == pytest.approx(0.08)
    buyer = State(load_kw=2.0, pv_kw=0.0)
    b = order(buyer, Preferences(class_premium_per_kwh={"green": 0.02}))
    assert (b.side, b.quantity_kw, b.energy_class) == ("buy", 2.0, None)
    assert b.price_per_kwh == pytest.approx(0.21)  # 0.19 + 0.02
    assert order(buyer, Preferences(class_premium_per_kwh={"green": 0.5})).price_per_kwh == pytest.approx(IMP)


def test_battery_covers_deficit_first():
    s = State(load_kw=2.0, pv_kw=0.0, soc=0.5, battery=BATTERY)
    assert order(s) is None  # 2 kW deficit fits the 3 kW discharge limit
    # the same battery model as the fleet's, losses included: (0.15 - 0.1) * 10 kWh * 0.9 / 0.25 h = 1.8 kW
    # discharge; (0.9 - 0.15) * 10 / 0.9 / 0.25 = 33 kW of charge, capped at 3 kW
    assert battery_limits(State(0, 0, 0.15, BATTERY), H) == pytest.approx((1.8, 3.0))


def test_setpoint_follows_the_trade_within_limits():
    s = State(load_kw=0.5, pv_kw=4.0, soc=0.5, battery=BATTERY)
    assert battery_setpoint_kw(s, 2.0, H) == pytest.approx(-1.5)  # sold 2 of 3.5 kW: charge 1.5 kW
    assert battery_setpoint_kw(s, 0.0, H) == pytest.approx(-3.0)  # no trade: self-consumption, capped


def test_imbalance_and_retail_bills():
    t = TARIFF
    assert imbalance_amount(0.875, 0.0, 0.5, t) == pytest.approx(-0.375 * 0.08)  # exported 0.375 kWh extra
    assert imbalance_amount(0.0, 0.6, -0.5, t) == pytest.approx(0.1 * 0.30)  # imported 0.1 kWh more
    assert imbalance_amount(0.2, 0.0, 0.5, t) == pytest.approx(0.3 * 0.30)  # delivered 0.3 kWh less
    assert imbalance_amount(1.0, 0.0, 0.0, None) == 0.0
    assert retail_bill(0.875, 0.0, t) == pytest.approx(-0.07)
    assert retail_bill(0.0, 0.5, t) == pytest.approx(0.15)


def test_kpis_from_hand_made_rows():
    # interval 0: a sells 2 kW (0.5 kWh) to b at 0.19; a exported 0.875 kWh, b imported 0.5 kWh
    trades = [(0, 0, "a", "b", 2.0, 0.5, 0.19, "green")]
    settlements = [
        (0, "a", "market", 2.0, 0.5, -0.095),
        (0, "a", "imbalance", 2.0, 0.375, -0.03),
        (0, "b", "market", -2.0, -0.5, 0.095),
        (0, "b", "imbalance", -2.0, 0.0, 0.0),
    ]
    provenance = [(0, 0, 0.0, "a", "bus1", "b", "bus2", 0.5)]
    telemetry = [("a", 0, 0.875, 0.0), ("b", 0, 0.0, 0.5)]
    k = market_kpis(trades, settlements, provenance, telemetry, [(0, "optimal")], TARIFF)
    assert k["traded_kwh"] == 0.5 and k["price_per_kwh"]["volume_weighted"] == pytest.approx(0.19)
    assert k["bills"]["a"] == pytest.approx({"platform": -0.125, "retail": -0.07, "saving": 0.055})
    assert k["bills"]["b"] == pytest.approx({"platform": 0.095, "retail": 0.15, "saving": 0.055})
    assert k["green_kwh"] == 0.5 and k["green_flows_kwh"] == {"bus1 -> bus2": 0.5}
    assert provenance_record(provenance[0]) == {
        "interval": 0,
        "t_s": 0.0,
        "seller": "a",
        "seller_bus": "bus1",
        "buyer": "b",
        "buyer_bus": "bus2",
        "e_kwh": 0.5,
    }


def test_bills_count_only_metered_intervals_across_interleaved_rows():
    """Rows are read once, interval by interval: settlements of an interval without a meter reading are not
    billed, readings without settlements are billed at retail only (hand-worked, tariff 0.30 / 0.08)."""
    settlements = [
        (0, "a", "market", 1.0, 0.25, -0.05), (0, "b", "market", -1.0, -0.25, 0.05),
        (1, "a", "market", 1.0, 0.25, -0.05),  # interval 1 has no reading: not billed
        (2, "a", "imbalance", 0.0, 0.1, -0.008), (2, "b", "imbalance", 0.0, -0.1, 0.03),  # b unread in 2
    ]
    telemetry = [("a", 0, 0.25, 0.0), ("b", 0, 0.0, 0.25), ("a", 2, 0.1, 0.0), ("c", 3, 0.0, 1.0)]
    k = market_kpis([], settlements, [], telemetry, [], TARIFF)
    assert k["bills"]["a"] == pytest.approx({"platform": -0.058, "retail": -0.028, "saving": 0.03})
    assert k["bills"]["b"] == pytest.approx({"platform": 0.05, "retail": 0.075, "saving": 0.025})
    assert k["bills"]["c"] == pytest.approx({"platform": 0.0, "retail": 0.30, "saving": 0.30})
    assert k["trades"] == 0 and k["price_per_kwh"]["volume_weighted"] is None
    with pytest.raises(ValueError, match="out of interval order"):
        market_kpis([], list(reversed(settlements)), [], [], [], TARIFF)
