"""The fleet's energy identity and controller, and the mapping of profiles onto simulation steps."""

from datetime import datetime

import numpy as np
import pytest

from simulators.prosumers.fleet import FleetSetup, ProsumerFleet
from simulators.prosumers.profiles import SLOTS_PER_YEAR, per_step, step_slots


def setup(n_steps=4, battery_capacity=(10.0, 0.0), pv_kwp=(5.0, 0.0)):
    n = 2
    zeros = np.zeros(n)
    return FleetSetup(
        ids=("a", "b"),
        buses=("bus 1", "bus 1"),
        start=datetime(2016, 6, 1),
        resolution_s=900,
        load_p_profiles=np.full((n_steps, 1), 0.5),
        load_q_profiles=np.full((n_steps, 1), 0.1),
        load_index=np.zeros(n, dtype=int),
        load_p_scale_kw=np.array([2.0, 4.0]),  # a: 1 kW, b: 2 kW
        load_q_scale_kvar=np.array([1.0, 1.0]),
        pv_profiles=np.full((n_steps, 1), 0.6),
        pv_index=np.zeros(n, dtype=int),
        pv_kwp=np.array(pv_kwp),  # a: 3 kW of PV
        battery=dict(capacity_kwh=np.array(battery_capacity), power_kw=np.array([1.5, 0.0]),
                     round_trip_efficiency=np.ones(n), initial_soc=np.full(n, 0.5), soc_min=zeros,
                     soc_max=np.ones(n)),
        ev=dict(capacity_kwh=zeros, charge_kw=zeros, charge_efficiency=np.ones(n), trip_kwh=zeros,
                depart_h=zeros, arrive_h=np.ones(n), initial_soc=zeros),
    )


def test_self_consumption_and_identity():
    fleet = ProsumerFleet(setup())
    s = fleet.step(0)
    # a: PV 3 kW - load 1 kW = 2 kW surplus; battery charges at its 1.5 kW limit; exports 0.5 kW.
    assert s.pv_kw.tolist() == pytest.approx([3.0, 0.0])
    assert s.battery_kw.tolist() == pytest.approx([-1.5, 0.0])
    assert s.p_kw.tolist() == pytest.approx([0.5, -2.0])
    assert s.q_kvar.tolist() == pytest.approx([-0.1, -0.1])
    np.testing.assert_allclose(s.p_kw, s.pv_kw - s.load_kw - s.ev_kw + s.battery_kw)
    # Both on one bus: the grid sees their sum.
    assert fleet.by_bus(s.p_kw) == {"bus 1": pytest.approx(-1.5)}


def test_setpoint_overrides_controller_within_limits():
    fleet = ProsumerFleet(setup())
    s = fleet.step(0, battery_setpoint_kw=np.array([1.0, np.nan]))  # discharge 1 kW despite the surplus
    assert s.battery_kw[0] == pytest.approx(1.0)
    assert s.p_kw[0] == pytest.approx(3.0)
    s = fleet.step(1, battery_setpoint_kw=np.array([9.0, np.nan]))  # beyond the 1.5 kW limit
    assert s.battery_kw[0] == pytest.approx(1.5)


def test_net_target_is_followed_with_this_steps_values_within_limits():
    # a: PV 3 kW, load 1 kW (net +2 kW before the battery); battery 10 kWh, 1.5 kW, half full.
    fleet = ProsumerFleet(setup())
    # Sold 1 kW: the battery charges the other 1 kW and the home exports exactly its trade.
    s = fleet.step(0, net_target_kw=np.array([1.0, np.nan]))
    assert s.battery_kw[0] == pytest.approx(-1.0)
    assert s.p_kw[0] == pytest.approx(1.0)
    # Sold 3 kW: the battery discharges 1 kW on top of the 2 kW surplus.
    s = fleet.step(1, net_target_kw=np.array([3.0, np.nan]))
    assert s.battery_kw[0] == pytest.approx(1.0)
    assert s.p_kw[0] == pytest.approx(3.0)
    # Bought 2 kW: it would take 4 kW of charging, the battery stops at its 1.5 kW; the home exports 0.5 kW.
    s = fleet.step(2, net_target_kw=np.array([-2.0, np.nan]))
    assert s.battery_kw[0] == pytest.approx(-1.5)
    assert s.p_kw[0] == pytest.approx(0.5)
    # b has no battery: a target cannot move it (net stays -2 kW); a battery setpoint wins over a target.
    s = fleet.step(3, battery_setpoint_kw=np.array([0.5, np.nan]), net_target_kw=np.array([3.0, 1.0]))
    assert s.battery_kw.tolist() == pytest.approx([0.5, 0.0])
    assert s.p_kw.tolist() == pytest.approx([2.5, -2.0])


def test_step_outside_window_is_an_error():
    with pytest.raises(IndexError):
        ProsumerFleet(setup(n_steps=2)).step(2)


def test_step_slots_hand_computed():
    # 2016-06-21 is day 173 of the leap year 2016: (173 - 1) * 96 = 16512.
    slots = step_slots(datetime(2016, 6, 21), 3, 900)
    assert slots[:, 0].tolist() == [16512, 16513, 16514]
    # Any year maps onto 2016 by month, day and time: 2023-06-21 12:00 -> 16512 + 48.
    assert step_slots(datetime(2023, 6, 21, 12), 1, 900)[0, 0] == 16560
    # 5-minute steps hold each 15-minute value three times.
    assert step_slots(datetime(2016, 1, 1), 4, 300)[:, 0].tolist() == [0, 0, 0, 1]
    # Hourly steps average four slots; the last hour of the year wraps to the start.
    hourly = step_slots(datetime(2016, 12, 31, 23), 2, 3600)
    assert hourly[0].tolist() == [SLOTS_PER_YEAR - 4, SLOTS_PER_YEAR - 3, SLOTS_PER_YEAR - 2, SLOTS_PER_YEAR - 1]
    assert hourly[1].tolist() == [0, 1, 2, 3]
    profile = np.arange(SLOTS_PER_YEAR, dtype=float)
    assert per_step(profile, step_slots(datetime(2016, 1, 1), 1, 3600))[0] == pytest.approx(1.5)
