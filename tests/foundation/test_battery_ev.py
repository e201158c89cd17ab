"""Battery and EV models against hand-computed values."""

import numpy as np
import pytest

from testbed.domain.der.battery import BatteryBank
from testbed.domain.der.ev import EVFleet


def bank(**kw):
    spec = dict(capacity_kwh=[10.0], power_kw=[5.0], round_trip_efficiency=[0.81], initial_soc=[0.5],
                soc_min=[0.1], soc_max=[0.9])
    spec.update(kw)
    return BatteryBank(**{k: np.array(v) for k, v in spec.items()})


def test_charge_stores_sqrt_eta_of_the_energy():
    b = bank()
    used = b.apply(np.array([-4.0]), dt_h=0.5)  # 4 kW for 30 min = 2 kWh at the terminals
    assert used[0] == -4.0
    # sqrt(0.81) = 0.9 -> 1.8 kWh stored: 5.0 + 1.8 = 6.8 kWh
    assert b.e_kwh[0] == pytest.approx(6.8, abs=1e-12)
    assert b.soc[0] == pytest.approx(0.68, abs=1e-12)


def test_discharge_draws_energy_over_sqrt_eta():
    b = bank()
    b.apply(np.array([1.8]), dt_h=1.0)  # 1.8 kWh delivered needs 1.8 / 0.9 = 2 kWh from the cells
    assert b.e_kwh[0] == pytest.approx(3.0, abs=1e-12)


def test_round_trip_returns_eta():
    b = bank(initial_soc=[0.1])
    b.apply(np.array([-5.0]), dt_h=1.0)  # 5 kWh in -> 4.5 kWh stored (1.0 + 4.5 = 5.5)
    out = 0.0
    for _ in range(10):
        out += b.apply(np.array([5.0]), dt_h=0.25)[0] * 0.25
    assert b.e_kwh[0] == pytest.approx(1.0, abs=1e-12)
    assert out == pytest.approx(0.81 * 5.0, abs=1e-12)  # 4.05 kWh back out of 5 kWh put in


def test_power_and_energy_limits():
    b = bank(initial_soc=[0.85])
    lo, hi = b.limits_kw(dt_h=1.0)
    # Room to soc_max: 0.5 kWh stored -> 0.5 / 0.9 = 0.5556 kW for an hour; power limit 5 kW.
    assert lo[0] == pytest.approx(-0.5 / 0.9, abs=1e-12)
    assert hi[0] == 5.0
    used = b.apply(np.array([-3.0]), dt_h=1.0)
    assert used[0] == pytest.approx(-0.5 / 0.9, abs=1e-12)
    assert b.soc[0] == pytest.approx(0.9, abs=1e-12)
    # Energy limit on discharge: (9.0 - 1.0) kWh * 0.9 = 7.2 kWh deliverable; in 1 h the 5 kW limit binds.
    assert b.apply(np.array([50.0]), dt_h=1.0)[0] == 5.0


def test_absent_battery_gives_nothing():
    b = bank(capacity_kwh=[0.0])
    assert b.apply(np.array([3.0]), dt_h=1.0)[0] == 0.0
    assert np.isnan(b.soc[0])


def ev(**kw):
    spec = dict(capacity_kwh=[40.0], charge_kw=[10.0], charge_efficiency=[0.8], trip_kwh=[12.0],
                depart_h=[8.0], arrive_h=[17.0], initial_soc=[1.0])
    spec.update(kw)
    return EVFleet(**{k: np.array(v) for k, v in spec.items()})


def test_ev_day_trip_and_recharge():
    car = ev()
    drawn = []
    for h in range(24):  # hourly steps of one day
        drawn.append(car.step(float(h), dt_h=1.0)[0])
    # Home and full until 8:00, away 8..17, back at 17:00 with 40 - 12 = 28 kWh.
    # Recharge 12 kWh at 80%: 15 kWh from the grid, 10 kW in the 17:00 hour, 5 kW in the 18:00 hour.
    assert drawn[:17] == [0.0] * 17
    assert drawn[17] == pytest.approx(10.0)
    assert drawn[18] == pytest.approx(5.0)
    assert sum(drawn[19:]) == 0.0
    assert car.soc[0] == pytest.approx(1.0)


def test_ev_overnight_absence_and_unserved_energy():
    car = ev(depart_h=[22.0], arrive_h=[6.0], initial_soc=[0.2], trip_kwh=[10.0])
    assert not car.at_home(23.0)[0] and not car.at_home(3.0)[0] and car.at_home(12.0)[0]
    car.step(21.0, dt_h=1.0)  # home: charges 10 kW * 0.8 = 8 kWh -> 16 kWh
    car.step(22.0, dt_h=1.0)  # leaves
    car.step(6.0, dt_h=1.0)  # back: 16 - 10 = 6 kWh, then charges 8 kWh -> 14 kWh
    assert car.e_kwh[0] == pytest.approx(14.0)
    assert car.unserved_kwh[0] == 0.0
    small = ev(capacity_kwh=[10.0], trip_kwh=[10.0], initial_soc=[0.3], depart_h=[1.0], arrive_h=[2.0])
    small.step(1.0, dt_h=1.0)
    small.step(2.0, dt_h=1.0)  # trip needs 10 kWh, the car had 3: 7 kWh unserved
    assert small.unserved_kwh[0] == pytest.approx(7.0)
