"""Service offers: the agent's decision from its battery and preferences, worked by hand, and the checks
that keep bad offers out."""

import math

import numpy as np
import pytest

from testbed.domain.errors import UserError
from testbed.domain.fpp import (
    BatteryLimits,
    Decline,
    OfferPreferences,
    ServiceOffer,
    decide_offer,
    parse_contract,
    parse_offer,
)
from testbed.domain.fpp.offer import headroom_kw, piecewise_linear_normal_moments

from .helpers import contract_data

# 13.5 kWh, 5 kW, round trip 0.81 (0.9 each way), SoC 0.6 at the window start, limits 0.1..0.95
BATTERY = BatteryLimits(capacity_kwh=13.5, power_kw=5.0, round_trip_efficiency=0.81, soc_min=0.1, soc_max=0.95,
                        soc=0.6)
PREFS = OfferPreferences(reserve_soc=0.2)


@pytest.mark.parametrize("direction, expected_kw", [
    # up: (0.6 - 0.2 reserve) * 13.5 kWh * 0.9 / 2 h = 2.43 kW (below the 5 kW inverter)
    ("up", 2.43),
    # down: (0.95 - 0.6) * 13.5 kWh / (0.9 * 2 h) = 2.625 kW
    ("down", 2.625),
    # both: the smaller of the two
    ("both", 2.43),
])
def test_headroom_by_hand(direction, expected_kw):
    assert headroom_kw(BATTERY, direction, 2.0, PREFS) == pytest.approx(expected_kw, rel=1e-12)


def test_short_window_is_power_limited():
    # 0.25 h: energy allows 0.4*13.5*0.9/0.25 = 19.44 kW, the inverter 5 kW, the owner 60 % of it = 3 kW
    assert headroom_kw(BATTERY, "up", 0.25, OfferPreferences(max_power_share=0.6)) == pytest.approx(3.0)


def test_offer_for_a_contract(contract):
    offer = decide_offer(contract, member="h1", bus="b2", battery=BATTERY,
                         prefs=OfferPreferences(reserve_soc=0.2, availability_premium_per_kw_h=0.01,
                                                degradation_cost_per_kwh=0.02))
    assert isinstance(offer, ServiceOffer)
    assert offer.capacity_kw == pytest.approx(2.43) and offer.capacity_sd_kw == 0.0
    # ask = premium 0.01 + degradation 0.02 * expected utilisation 1.0 = 0.03 per kW per h
    assert offer.price_per_kw_h == pytest.approx(0.03)
    assert offer.sensitivity == 0.8 and offer.id == "dso-1:h1"
    # cost = 0.03 * 2.43 kW * 2 h
    assert offer.cost(contract) == pytest.approx(0.1458)
    assert parse_offer(offer.model_dump(), {contract.id: contract}, sender="h1") == offer


def test_uncertain_state_of_charge_matches_monte_carlo(contract):
    # The offer's mean and sd are exact moments of the clipped headroom; check against 200,000 draws.
    offer = decide_offer(contract, member="h1", bus="b1", battery=BATTERY, prefs=PREFS, soc_sd=0.15,
                         net_load_sd_kw=0.3)
    rng = np.random.default_rng(7)
    socs = rng.normal(0.6, 0.15, 200_000)
    k = 13.5 * 0.9 / 2.0
    draws = np.clip((socs - 0.2) * k, 0, 5.0)
    assert offer.capacity_kw == pytest.approx(draws.mean(), abs=0.01)
    assert offer.capacity_sd_kw == pytest.approx(math.sqrt(draws.var() + 0.3**2), abs=0.01)


def test_piecewise_linear_moments_of_a_tent():
    # h = min(x, 2 - x) clipped at 0 on [0, 2]; X ~ N(1, 1e-9): h(1) = 1, no spread
    m, s = piecewise_linear_normal_moments([0, 1, 2], [0, 1, 0], 1.0, 1e-9)
    assert m == pytest.approx(1.0) and s == pytest.approx(0.0, abs=1e-6)
    # X ~ N(5, 1): far right of the tent, h = 0
    assert piecewise_linear_normal_moments([0, 1, 2], [0, 1, 0], 5.0, 0.1) == pytest.approx((0.0, 0.0), abs=1e-12)


@pytest.mark.parametrize("kwargs, reason", [
    ({"prefs": OfferPreferences(services=("frequency_response",))}, "does not take part in congestion_relief"),
    ({"bus": "b9"}, "bus 'b9' does not count"),
    ({"prefs": OfferPreferences(availability_premium_per_kw_h=0.3)}, "the contract pays 0.25 per kW·h, the owner asks 0.3"),
    ({"battery": BatteryLimits(13.5, 5.0, 0.81, 0.1, 0.95, soc=0.15), "prefs": OfferPreferences(reserve_soc=0.2)},
     "no headroom"),
])
def test_declines_with_a_reason(contract, kwargs, reason):
    args = {"member": "h1", "bus": "b1", "battery": BATTERY, "prefs": PREFS} | kwargs
    out = decide_offer(contract, **args)
    assert isinstance(out, Decline) and reason in out.reason, out


def test_declines_below_the_contracts_minimum():
    c = parse_contract(contract_data(min_offer_kw=3.0))
    out = decide_offer(c, member="h1", bus="b1", battery=BATTERY, prefs=PREFS)
    assert isinstance(out, Decline) and "below the contract's minimum 3 kW" in out.reason


def test_bad_battery_is_a_user_error(contract):
    with pytest.raises(UserError) as err:
        decide_offer(contract, member="h1", bus="b1", battery=BatteryLimits(-1, 5, 1.2, 0.5, 0.4, 2.0), prefs=PREFS,
                     soc_sd=-0.1)
    assert len(err.value.problems) == 5


def test_bad_offers_are_refused_with_every_reason(contract):
    known = {contract.id: contract}
    base = {"id": "o1", "contract_id": "dso-1", "member": "h1", "bus": "b1", "capacity_kw": 2.0,
            "capacity_sd_kw": 0.2, "price_per_kw_h": 0.01}
    with pytest.raises(UserError) as err:
        parse_offer(base | {"capacity_kw": -2.0, "capacity_sd_kw": -1}, known)
    assert [p.split(":")[0] for p in err.value.problems] == ["capacity_kw", "capacity_sd_kw"]
    with pytest.raises(UserError) as err:
        parse_offer(base | {"member": "h2", "window": {"start": "2026-07-01T17:00", "end": "2026-07-01T20:00"}},
                    known, sender="h1")
    assert err.value.problems[0] == "member: 'h2' is not the sender 'h1' (an offer is made by its member)"
    assert err.value.problems[1].startswith("window: [2026-07-01 17:00:00, 2026-07-01 20:00:00) lies outside")
    with pytest.raises(UserError, match="unknown contract 'nope'"):
        parse_offer(base | {"contract_id": "nope"}, known)
    with pytest.raises(UserError, match="bus: 'b7' is not eligible"):
        parse_offer(base | {"bus": "b7"}, known)
    with pytest.raises(UserError, match="sensitivity: 0.5 differs from the contract's 1.0"):
        parse_offer(base | {"sensitivity": 0.5}, known)


def test_window_limits_leave_the_home_its_own_use_first():
    from testbed.domain.fpp.offer import window_limits

    # 10 kWh at 0.8; the home's controller draws 2 kW then 1 kW over two 30-min steps (1.5 kWh = 0.15 of the
    # battery) and an earlier award used 0.1: 0.8 - 0.1 - 0.15 = 0.55; power left 5 - 2 = 3 kW
    lim = window_limits(capacity_kwh=10.0, power_kw=5.0, round_trip_efficiency=0.81, soc_min=0.1, soc_max=0.95,
                        soc_start=0.8, own_kw=np.array([2.0, 1.0]), step_h=0.5, committed_soc=-0.1)
    assert lim.soc == pytest.approx(0.55) and lim.power_kw == pytest.approx(3.0)
    # a home charging from its PV at 4 kW leaves 1 kW of power either way; the state of charge stays within 0..1
    lim = window_limits(capacity_kwh=10.0, power_kw=5.0, round_trip_efficiency=0.81, soc_min=0.0, soc_max=1.0,
                        soc_start=0.9, own_kw=np.array([-4.0, -4.0]), step_h=0.5)
    assert lim.soc == 1.0 and lim.power_kw == pytest.approx(1.0)
