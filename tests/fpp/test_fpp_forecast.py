"""The forecast power flow that finds the DSO's needs, on scenarios/fpp.yaml's grid and fleet."""

from pathlib import Path

import numpy as np
import pytest

from testbed.orchestration.fpp_forecast import forecast_power_flow, member_forecast
from testbed.orchestration.plan import load_plan

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def plan():
    return load_plan(ROOT / "scenarios" / "fpp.yaml", overrides={"grid.v_min_pu": 0.975})


def test_the_evening_overload_becomes_a_contract_sized_from_it(plan):
    members = member_forecast(plan)
    buses = sorted({p.bus for p in plan.prosumers if p.battery is not None})
    dso = plan.scenario.services.dso
    flow = forecast_power_flow(plan, members, dso, "EUR", buses)
    f = flow.forecast
    trafo = [c for c in flow.contracts if c.service.kind == "congestion_relief"]
    assert len(trafo) == 1
    c = trafo[0]
    # capacity = the worst overload in the window * (1 + margin), in kW of the transformer's 400 kVA rating
    over = f.flow_kw[:, 0] - f.limit_kw[0]
    assert f.limit_kw[0] == pytest.approx(400.0)
    assert c.capacity_kw == pytest.approx(over.max() * (1 + dso.margin), rel=1e-6)
    # the window is the run of overloaded steps (15 min each from 12:00), merged over gaps up to an hour
    steps = np.flatnonzero(over > 0)
    assert c.window.start.hour * 4 + c.window.start.minute // 15 - 48 == steps[0]
    assert (c.window.end - c.window.start).total_seconds() == (steps[-1] + 1 - steps[0]) * 900
    # every bus with a battery can help a radial feeder's transformer: relief ~1 kW per kW (losses and var aside)
    assert set(c.location.eligible_buses) == set(buses) and min(c.location.eligible_buses.values()) > 0.9
    assert c.direction == "up" and "MV1.101-LV3.101-Trafo" in c.origin
    # with the band raised to 0.975 pu the evening's low voltages ask for voltage support, up, most at the far end
    volt = [c for c in flow.contracts if c.service.kind == "voltage_support"]
    assert volt and all(v.direction == "up" for v in volt)
    assert float(np.nanmin(f.vm_pu)) < 0.975
    best = max(volt[0].location.eligible_buses.values())
    assert best == pytest.approx(1.0)
