"""Finding a DSO's needs from forecast arrays and the market's network sensitivities, worked by hand."""

from datetime import datetime

import numpy as np
import pytest

from testbed.domain.errors import UserError
from testbed.domain.fpp import DsoTerms, find_dso_contracts
from testbed.domain.fpp.opportunities import Forecast, forecast_from_network, runs
from testbed.domain.market.case import LineLimit, Network, VoltageLimit

START = datetime(2026, 7, 1, 16, 0)
TERMS = DsoTerms(availability_price_per_kw_h=0.1, utilisation_price_per_kwh=0.3, penalty={"kind": "pro_rata"},
                 currency="EUR", confidence=0.9)

# A feeder behind a 400 kW transformer: the transformer flow is positive into the feeder, so exporting 1 kW at
# a feeder bus lowers it by ~1 kW (PTDF -1 at b1, b2; -0.3 at b3, a bus mostly fed elsewhere; 0 at the
# upstream bus b0). The voltage at b3 falls by 1e-4 pu per kW drawn at b1, 2e-4 at b2, 4e-4 at b3.
NETWORK = Network(
    lines=[LineLimit(id="trafo:0", ptdf={"b0": 0.0, "b1": -1.0, "b2": -1.0, "b3": -0.3}, limit_kw=400.0)],
    voltages=[VoltageLimit(bus="b3", v0_pu=1.0, dv_dp_pu_per_kw={"b1": 1e-4, "b2": 2e-4, "b3": 4e-4},
                           v_min_pu=0.9, v_max_pu=1.1)],
)


def forecast(flow, vm):
    return forecast_from_network(NETWORK, START, 900, np.array(flow, float)[:, None], np.array(vm, float)[:, None])


def test_evening_overload_becomes_a_congestion_contract():
    # 16:00-18:00 in 15-minute steps; 410 and 450 kW at 17:15 and 17:30
    flow = [300, 350, 380, 390, 399, 410, 450, 399]
    contracts = find_dso_contracts(forecast(flow, [1.0] * 8), TERMS)
    assert len(contracts) == 1
    c = contracts[0]
    assert c.id == "dso-congestion-relief-trafo:0-20260701T1715" and c.buyer == "dso" and c.direction == "up"
    assert (c.window.start, c.window.end) == (datetime(2026, 7, 1, 17, 15), datetime(2026, 7, 1, 17, 45))
    # sized on the worst overload, 450 - 400 = 50 kW of relief; b3 relieves 0.3 kW per kW, below 0.5
    assert c.capacity_kw == pytest.approx(50.0)
    assert c.location.eligible_buses == {"b1": 1.0, "b2": 1.0}
    assert "trafo:0 carries 450.0 kW against a rating of 400.0 kW (112%)" in c.origin


def test_overloads_one_step_apart_merge_with_a_gap():
    # overloads at 17:15-17:45 and 18:00-18:15, 399 kW in between
    flow = [300, 350, 380, 390, 399, 410, 450, 399, 405, 300]
    assert len(find_dso_contracts(forecast(flow, [1.0] * 10), TERMS)) == 2
    merged = find_dso_contracts(forecast(flow, [1.0] * 10), TERMS.model_copy(update={"merge_gap_s": 900,
                                                                                       "margin": 0.1}))
    assert len(merged) == 1
    assert (merged[0].window.start, merged[0].window.end) == (datetime(2026, 7, 1, 17, 15),
                                                              datetime(2026, 7, 1, 18, 15))
    assert merged[0].capacity_kw == pytest.approx(55.0)  # 50 kW * (1 + 10 %)


def test_reverse_overload_asks_for_more_consumption():
    # midday PV: -430 kW (out of the feeder); importing more at b1/b2 relieves it
    contracts = find_dso_contracts(forecast([-200, -430, -380], [1.0] * 3), TERMS)
    assert [(c.direction, c.capacity_kw) for c in contracts] == [("down", pytest.approx(30.0))]


def test_under_voltage_becomes_a_voltage_contract():
    # b3 at 0.88 pu at 16:30: 0.02 pu short; best bus b3 (4e-4 pu/kW) -> 50 kW at b3; b2 counts half, b1 a
    # quarter (below min_sensitivity 0.5, so not eligible)
    contracts = find_dso_contracts(forecast([300, 300, 300], [0.95, 0.91, 0.88]), TERMS)
    assert len(contracts) == 1
    c = contracts[0]
    assert c.service.kind == "voltage_support" and c.service.buses == ["b3"] and c.direction == "up"
    assert c.capacity_kw == pytest.approx(50.0)
    assert c.location.eligible_buses == {"b2": 0.5, "b3": 1.0}
    # over-voltage asks for consumption
    over = find_dso_contracts(forecast([300, 300, 300], [1.11, 1.0, 1.0]), TERMS)
    assert over[0].direction == "down" and over[0].capacity_kw == pytest.approx(25.0)


def test_no_bus_can_help_no_contract():
    net = Network(lines=[LineLimit(id="line:7", ptdf={"b1": -0.1}, limit_kw=100.0)])
    f = forecast_from_network(net, START, 900, np.array([[150.0]]))
    assert find_dso_contracts(f, TERMS) == []


def test_runs():
    assert runs([0, 1, 1, 0, 0, 1, 0, 1]) == [(1, 3), (5, 6), (7, 8)]
    assert runs([0, 1, 1, 0, 0, 1, 0, 1], max_gap_steps=1) == [(1, 3), (5, 8)]
    assert runs([0, 0]) == []


def test_bad_arrays_are_named():
    f = Forecast(START, 900, ["trafo:0"], np.ones((4, 2)), np.array([-1.0]), ["b1"], np.ones((1, 1)), ["b1"],
                 np.full((4, 1), np.nan), np.ones((1, 1)))
    with pytest.raises(UserError) as err:
        find_dso_contracts(f, TERMS)
    assert err.value.problems == ["flow_kw: shape (4, 2), expected (4, 1)", "vm_pu: must be finite",
                                  "limit_kw: ratings must be > 0"]
