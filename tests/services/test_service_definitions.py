"""Service curves against their published knee points, the IEEE 1547.1 accuracy band against a hand-worked
case, and OpenDER's published Volt-VAR values."""

import numpy as np
import pytest

from hil.behaviour import DerControls, DerRating
from hil.misbehaviour import TestedDer
from testbed.domain.errors import UserError
from testbed.domain.services.frequency import FREQUENCY_SERVICES, ResponseController, frequency_service, held_fraction
from testbed.domain.services.voltage import CHARACTERISTICS, accuracy_band, first_order

# (service, frequency [Hz], published response [fraction of contracted power]); sources in each definition.
KNEES = [
    ("gb-dc-low", 49.985, 0.0),
    ("gb-dc-low", 49.8, 0.05),
    ("gb-dc-low", 49.5, 1.0),
    ("gb-dc-low", 49.0, 1.0),
    ("gb-dc-low", 50.3, 0.0),
    ("gb-dc-high", 50.2, -0.05),
    ("gb-dc-high", 50.5, -1.0),
    ("gb-dc-high", 49.5, 0.0),
    ("gb-dc-low", 49.65, 0.05 + 0.95 * 0.5),  # halfway between the knees, linear
    ("entsoe-fcr", 49.8, 1.0),
    ("entsoe-fcr", 50.2, -1.0),
    ("entsoe-fcr", 49.9, 0.5),
    ("nordic-fcr-n", 49.9, 1.0),
    ("nordic-fcr-n", 50.05, -0.5),
    ("nordic-fcr-d-up", 49.9, 0.0),
    ("nordic-fcr-d-up", 49.7, 0.5),
    ("nordic-fcr-d-up", 49.5, 1.0),
    ("nordic-fcr-d-down", 50.5, -1.0),
    ("nordic-fcr-d-down", 49.5, 0.0),
    ("nordic-ffr-49.7", 49.71, 0.0),
    ("nordic-ffr-49.7", 49.7, 1.0),
    ("nordic-ffr-49.5", 49.6, 0.0),
    ("ieee1547-droop", 60.036, 0.0),
    ("ieee1547-droop", 60.036 + 1.5, -0.5),
    ("ieee1547-droop", 63.036, -1.0),
    ("ieee1547-droop-50hz", 50.030, 0.0),
    ("ieee1547-droop-50hz", 50.030 + 2.5, -1.0),
]


@pytest.mark.parametrize(("key", "f_hz", "expected"), KNEES)
def test_curve_knee_points(key, f_hz, expected):
    assert float(FREQUENCY_SERVICES[key].fraction(f_hz)) == pytest.approx(expected, abs=1e-9)


def test_published_timing():
    """NESO DC/DM/DR table; SO GL Annex V (FCR 30 s); Fingrid FFR (1.3/1.0/0.7 s) and FCR-D (5 s / 30 s)."""
    s = FREQUENCY_SERVICES
    assert [
        (s[k].initiation_s, s[k].full_delivery_s, s[k].duration_s) for k in ("gb-dc-low", "gb-dm-low", "gb-dr-low")
    ] == [(0.5, 1.0, 900.0), (0.5, 1.0, 1800.0), (2.0, 10.0, 3600.0)]
    assert s["entsoe-fcr"].full_delivery_s == 30.0 and s["entsoe-fcr"].accuracy_hz == 0.01
    assert [s[f"nordic-ffr-{hz}"].full_delivery_s for hz in ("49.7", "49.6", "49.5")] == [1.3, 1.0, 0.7]
    assert s["nordic-fcr-d-up"].milestones == ((0.5, 5.0),) and s["nordic-fcr-d-up"].full_delivery_s == 30.0
    assert not s["gb-dm-low"].verified and "UNVERIFIED" in s["gb-dm-low"].source


def test_ffr_holds_its_activation_for_the_support_time():
    svc = FREQUENCY_SERVICES["nordic-ffr-49.7"]
    ctl = ResponseController(svc, 10.0)
    assert ctl.response_kw(0.0, 49.69) == 10.0
    assert ctl.response_kw(4.9, 49.9) == 10.0  # recovered, still within the 5 s support
    assert ctl.response_kw(5.1, 49.9) == 0.0
    t = np.array([0.0, 1.0, 4.9, 5.1])
    assert held_fraction(svc, t, np.array([49.69, 49.9, 49.9, 49.9])).tolist() == [1.0, 1.0, 1.0, 0.0]


def test_unknown_service_names_the_known_ones():
    with pytest.raises(UserError) as err:
        frequency_service("gb-dx")
    assert "gb-dc-low" in err.value.render()


def test_volt_var_characteristics_knee_points():
    """1547-2018 Table 8 Cat B default (char. 1); 1547.1 Table 26 char. 2/3 in units of rated reactive power."""
    c1, c2, c3 = (CHARACTERISTICS[f"volt-var-{i}"] for i in (1, 2, 3))
    assert c1(np.array([0.92, 0.98, 1.0, 1.02, 1.08, 1.2])).tolist() == pytest.approx([0.44, 0, 0, 0, -0.44, -0.44])
    assert (c1.tr_s, c2.tr_s, c3.tr_s) == (5.0, 1.0, 90.0)
    assert c2(np.array([0.88, 1.04, 1.07, 1.10])).tolist() == pytest.approx([0.44, 0.22, 0.22, -0.44])
    assert c3(np.array([0.90, 0.93, 0.96, 1.10])).tolist() == pytest.approx([0.44, -0.22, -0.22, -0.44])
    vw = CHARACTERISTICS["volt-watt-1"]
    assert vw(np.array([1.06, 1.08, 1.10])).tolist() == pytest.approx([1.0, 0.6, 0.2])


def test_accuracy_band_hand_worked():
    """V = 0.95 pu, characteristic 1, MRA_V 0.01 pu, MRA_Q 0.05: Q(0.965) = 0.44·0.015/0.06 = 0.11 and
    Q(0.935) = 0.44·0.045/0.06 = 0.33, so the band is [0.11 − 0.075, 0.33 + 0.075] = [0.035, 0.405]."""
    lo, hi = accuracy_band(CHARACTERISTICS["volt-var-1"], 0.95, 0.01, 0.05)
    assert (float(lo), float(hi)) == pytest.approx((0.035, 0.405), abs=1e-12)
    # across a knee the band takes the curve's extreme inside V ± 1.5·MRA: at 0.98, Q(0.965) = 0.11 and 0
    lo, hi = accuracy_band(CHARACTERISTICS["volt-var-1"], 0.98, 0.01, 0.05)
    assert (float(lo), float(hi)) == pytest.approx((-0.075, 0.185), abs=1e-12)


def test_first_order_makes_90_percent_at_the_response_time():
    assert float(first_order(0.0, 1.0, 5.0, 5.0)) == pytest.approx(0.9)
    assert float(first_order(1.0, -1.0, 10.0, 5.0)) == pytest.approx(1.0 - 2.0 * 0.99)


# OpenDER v2.2.0 tests/opender/test_volt_var.py (100 kVA, 100 % DC input, Cat B curve, Q priority):
# V [pu] -> P, Q [% of rating].
OPENDER_VV = [
    (0.975, 99.9, 3.7),
    (0.95, 97.5, 22.0),
    (0.925, 91.5, 40.3),
    (0.915, 89.8, 44.0),
    (1.025, 99.9, -3.7),
    (1.05, 97.5, -22.0),
    (1.075, 91.5, -40.3),
    (1.085, 89.8, -44.0),
]


@pytest.mark.parametrize(("v", "p_pct", "q_pct"), OPENDER_VV)
def test_opender_published_volt_var_values(v, p_pct, q_pct):
    """Our curve and our emulated inverter (OpenDER in steady state) both give OpenDER's published values."""
    assert 100 * float(CHARACTERISTICS["volt-var-1"](v)) == pytest.approx(q_pct, abs=0.05)
    der = TestedDer(DerRating("pv", 100.0))
    der.controls = DerControls(volt_var_enabled=True, droop_enabled=False, volt_var_response_s=5.0)
    der.grid.vm_pu = v
    for _ in range(100):
        state = der.step(0.5)
    assert state.q_kvar == pytest.approx(q_pct, abs=0.05)
    assert state.p_kw == pytest.approx(p_pct, abs=0.05)
