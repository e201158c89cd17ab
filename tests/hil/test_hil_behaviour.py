"""Emulated DER behaviour (OpenDER inside) against IEEE 1547 published values.

Sources: IEEE 1547-2018 Table 8 (Category B Volt-VAR default curve: 0.92/+44 %, 0.98/0, 1.02/0, 1.08/−44 % of
rated kVA, open-loop response time 5 s) and §6.5.2 frequency droop defaults (deadband 0.036 Hz, 5 % droop),
as gathered in /work/shared/reference/grid-services.md; 1547.1-2020 §5.14.4: at one open-loop response time
the output has made 90 % of its change.
"""

from __future__ import annotations

import pytest

from hil.behaviour import CAT_B_VOLT_VAR, DerBehaviour, DerControls, DerRating, GridInputs
from testbed.domain.errors import UserError


def _settle(dev: DerBehaviour, seconds: float, dt: float = 0.1):
    state = dev.state
    for _ in range(round(seconds / dt)):
        state = dev.step(dt)
    return state


@pytest.mark.parametrize(("v_pu", "q_pu"), [(0.90, 0.44), (0.95, 0.22), (1.00, 0.0), (1.05, -0.22), (1.09, -0.44)])
def test_volt_var_steady_state_is_category_b(v_pu, q_pu):
    # Hand-computed from the Cat B curve: 0.95 pu lies halfway between 0.92 (+0.44) and 0.98 (0) -> +0.22;
    # 1.05 halfway between 1.02 (0) and 1.08 (−0.44) -> −0.22; beyond V1/V4 the curve saturates (1.09, not
    # 1.10: at 1.10 pu the Cat III OV1 trip (1.10 pu, 13 s) disconnects the device, as it should).
    rating = DerRating("pv", rated_kw=10.0)
    dev = DerBehaviour(rating, DerControls(volt_var_enabled=True), GridInputs(vm_pu=v_pu, available_pct=50.0))
    state = _settle(dev, 40.0)  # 8 open-loop response times
    # 1547-2018 Table 3 accuracy: Q within ±5 % of rated S; we hold the model to 0.5 %.
    assert state.q_kvar / rating.kva == pytest.approx(q_pu, abs=0.005)
    assert state.p_kw == pytest.approx(5.0, abs=0.05)


def test_volt_var_step_makes_90_percent_of_its_change_in_one_response_time():
    dev = DerBehaviour(
        DerRating("pv", 10.0), DerControls(volt_var_enabled=True), GridInputs(vm_pu=1.0, available_pct=50.0)
    )
    _settle(dev, 10.0)
    dev.grid.vm_pu = 1.05
    q_final = -0.22 * 10.0
    early = _settle(dev, 1.0)
    assert abs(early.q_kvar) < 0.9 * abs(q_final)  # still moving after 1 s: a real first-order response
    at_olrt = _settle(dev, 4.0)  # 5 s after the step = Cat B open-loop response time
    assert abs(at_olrt.q_kvar) >= 0.9 * abs(q_final) - 0.015 * 10.0  # 90 % ± 1.5 MRA (Q: 5 % of S × 1.5 / 5)


def test_frequency_droop_of_a_battery_on_a_50_hz_system():
    # f = 49.8 Hz on 50 Hz -> OpenDER sees 60 × 49.8 / 50 = 59.76 Hz; ΔP = (0.24 − 0.036) / (60 × 0.05)
    # = 0.068 pu of 10 kW = +0.68 kW (discharge) from an idle battery.
    dev = DerBehaviour(DerRating("battery", 10.0, capacity_kwh=20.0), DerControls(p_set_enabled=True))
    _settle(dev, 5.0)
    dev.grid.f_hz = 49.8
    state = _settle(dev, 40.0)
    assert state.p_kw == pytest.approx(0.68, abs=0.01)


def test_active_power_limit_within_its_response_time():
    dev = DerBehaviour(DerRating("pv", 10.0, active_power_response_s=1.0), grid=GridInputs(available_pct=100.0))
    assert _settle(dev, 5.0).p_kw == pytest.approx(10.0, abs=0.01)
    dev.controls = DerControls(limit_enabled=True, limit_pct=50.0)
    state = _settle(dev, 1.0)  # one response time: at least 90 % of the 5 kW change made
    assert state.p_kw <= 10.0 - 0.9 * 5.0 + 1e-6
    assert _settle(dev, 5.0).p_kw == pytest.approx(5.0, abs=0.01)


def test_battery_soc_follows_the_energy_it_delivers():
    # 5 kW discharge for 360 s = 0.5 kWh of a 10 kWh battery at unit efficiency -> SoC 0.5 -> 0.45.
    dev = DerBehaviour(
        DerRating("battery", 5.0, capacity_kwh=10.0, soc_init=0.5, active_power_response_s=0.1),
        DerControls(p_set_enabled=True, p_set_kw=5.0),
    )
    energy_kwh = 0.0
    for _ in range(3600):
        state = dev.step(0.1)
        energy_kwh += state.p_kw * 0.1 / 3600
    assert energy_kwh == pytest.approx(0.5, abs=0.005)
    assert state.soc == pytest.approx(0.5 - energy_kwh / 10.0, abs=1e-3)


def test_curve_defaults_are_category_b():
    assert CAT_B_VOLT_VAR == ((0.92, 0.44), (0.98, 0.0), (1.02, 0.0), (1.08, -0.44))


def test_bad_rating_lists_every_problem():
    with pytest.raises(UserError) as err:
        DerBehaviour(DerRating("battery", rated_kw=-1.0, soc_init=2.0))
    text = str(err.value)
    assert "rated_kw" in text and "capacity_kwh" in text and "soc_init" in text
