"""Delivery and settlement arithmetic, worked by hand (contract of tests/fpp/helpers.py: 40 kW up for 2 h,
availability 0.05 per kW per h, utilisation 0.20 per kWh; 15-minute steps, 8 in the window)."""

import numpy as np
import pytest

from testbed.domain.errors import UserError
from testbed.domain.fpp import parse_contract, payouts, settle, settle_members
from testbed.domain.fpp.settlement import baseline_mean_kw, credited_kw, response_kw

from .helpers import contract_data

STEP_S = 900
# The DSO dispatches the full 40 kW in the second hour.
REQUIRED = np.array([0, 0, 0, 0, 40, 40, 40, 40], dtype=float)
# The coalition delivers 40, 40, 20, 20 kW: 30 kWh of the 40 kWh asked, pf = 0.75.
RESPONSE = np.array([0, 0, 0, 0, 40, 40, 20, 20], dtype=float)


def test_baseline_and_response():
    # A home imported 3 kW in the hour before (baseline -3 kW); its battery then discharges 5 kW, so its
    # meter shows +2 kW: a 5 kW response up, or -5 kW down.
    base = baseline_mean_kw(np.array([-2.5, -3.5, -3.0, -3.0]))
    assert base == -3.0
    assert response_kw(np.array([2.0]), base, "up")[0] == 5.0
    assert response_kw(np.array([2.0]), base, "down")[0] == -5.0
    with pytest.raises(ValueError, match="needs finite metered power"):
        baseline_mean_kw(np.array([]))


def test_crediting_ignores_over_delivery_and_the_wrong_direction():
    req = np.array([10.0, 10.0, -10.0, -10.0, 0.0])
    res = np.array([15.0, -3.0, -4.0, 2.0, 7.0])
    # 15 -> capped at 10; -3 up -> 0; -4 down -> 4; +2 when asked down -> 0; nothing asked -> 0
    assert credited_kw(req, res).tolist() == [10.0, 0.0, 4.0, 0.0, 0.0]


@pytest.mark.parametrize("penalty, penalty_paid, total", [
    # availability 0.05 * 40 kW * 2 h = 4.0; utilisation 0.20 * 30 kWh = 6.0
    ({"kind": "pro_rata"}, 1.0, 9.0),                                   # 4.0 * (1 - 0.75)
    ({"kind": "threshold", "pf_threshold": 0.8}, 4.0, 6.0),             # 0.75 < 0.8: availability forfeited
    ({"kind": "threshold", "pf_threshold": 0.7}, 0.0, 10.0),            # 0.75 >= 0.7: paid in full
    ({"kind": "per_kwh", "penalty_price_per_kwh": 0.5}, 5.0, 5.0),      # 0.5 * (40 - 30) kWh
])
def test_settlement_by_hand(penalty, penalty_paid, total):
    c = parse_contract(contract_data(penalty=penalty))
    s = settle(c, REQUIRED, RESPONSE, STEP_S)
    assert s.required_kwh == pytest.approx(40.0) and s.delivered_kwh == pytest.approx(30.0)
    assert s.performance_factor == pytest.approx(0.75)
    assert s.availability_payment == pytest.approx(4.0) and s.utilisation_payment == pytest.approx(6.0)
    assert s.penalty == pytest.approx(penalty_paid) and s.total == pytest.approx(total)


def test_held_but_never_dispatched_is_paid_availability(contract):
    s = settle(contract, np.zeros(8), np.zeros(8), STEP_S)
    assert s.performance_factor == 1.0 and s.total == pytest.approx(4.0)


def test_both_directions_signed():
    c = parse_contract(contract_data(direction="both", service={"kind": "frequency_response", "product": "fcr"},
                                     location=None, buyer="tso"))
    req = np.array([10, -10, 10, -10, 0, 0, 0, 0], dtype=float)
    res = np.array([10, -5, 5, 10, 0, 0, 0, 0], dtype=float)
    # credited 10, 5, 5, 0 -> 5 kWh of 10 kWh
    assert settle(c, req, res, STEP_S).performance_factor == pytest.approx(0.5)


def test_a_member_that_fails_pays_and_the_other_is_untouched(contract):
    # h1 at b1 (sensitivity 1.0) is awarded 24 kW, h2 at b2 (0.8) 16 kW counted (20 kW at its meter).
    # Second hour: h1 delivers its 24 kW throughout; h2 delivers 20 kW at its meter (16 counted) for
    # 30 min and then nothing.
    resp = {"h1": np.array([0, 0, 0, 0, 24, 24, 24, 24.0]), "h2": np.array([0, 0, 0, 0, 20, 20, 0, 0.0])}
    coalition, parts = settle_members(contract, {"h1": 24.0, "h2": 16.0}, {"h1": 1.0, "h2": 0.8}, REQUIRED, resp,
                                      STEP_S)
    # coalition: 40, 40, 24, 24 kW credited -> 32 kWh of 40, pf 0.8; penalty 4.0 * 0.2 = 0.8;
    # utilisation 0.20 * 32 = 6.4
    assert coalition.performance_factor == pytest.approx(0.8)
    assert coalition.penalty == pytest.approx(0.8) and coalition.utilisation_payment == pytest.approx(6.4)
    # h1: 24 kWh asked, 24 delivered; h2: 16 asked, 8 delivered, 8 short -> all the penalty is h2's
    assert parts["h1"].required_kwh == pytest.approx(24) and parts["h1"].performance_factor == pytest.approx(1.0)
    assert parts["h2"].delivered_kwh == pytest.approx(8) and parts["h2"].shortfall_kwh == pytest.approx(8)
    assert parts["h1"].penalty == 0.0 and parts["h2"].penalty == pytest.approx(0.8)
    # utilisation split 24 : 8 of 6.4 -> 4.8 and 1.6
    assert parts["h1"].utilisation_payment == pytest.approx(4.8)
    assert parts["h2"].utilisation_payment == pytest.approx(1.6)
    # payouts with costs 0.5 / 0.3 and surplus shares 2.0 / 1.2 (4.0 - 0.8 of costs = 3.2):
    # h1 = 0.5 + 2.0 + 4.8 = 7.3, h2 = 0.3 + 1.2 + 1.6 - 0.8 = 2.3; together the coalition's 9.6
    pay = payouts({"h1": 0.5, "h2": 0.3}, {"h1": 2.0, "h2": 1.2}, parts)
    assert pay == pytest.approx({"h1": 7.3, "h2": 2.3})
    assert sum(pay.values()) == pytest.approx(coalition.total)


def test_bad_series_are_user_errors(contract):
    with pytest.raises(UserError) as err:
        settle(contract, np.full(7, 40.0), np.full(8, np.nan), STEP_S)
    assert err.value.problems == ["required_kw: needs one value per 900 s step of the window (8), got shape (7,)",
                                  "response: must be finite"]
    with pytest.raises(UserError, match="not a whole number of 700 s steps"):
        settle(contract, np.zeros(8), np.zeros(8), 700)
    with pytest.raises(UserError, match="instructions of a contract up are >= 0"):
        settle(contract, -REQUIRED, RESPONSE, STEP_S)
    with pytest.raises(UserError) as err:
        settle_members(contract, {"h1": 10.0}, {}, REQUIRED, {"h9": RESPONSE}, STEP_S)
    assert len(err.value.problems) == 3
