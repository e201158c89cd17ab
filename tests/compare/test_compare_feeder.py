"""The central schedule against the real power flow of the demo feeder (SimBench 1-LV-rural3): the linearised
limits ignore the homes' reactive power and the curvature of the voltage drop, so with a band that binds the
first schedule fails the check, the failed limits are tightened, and the last schedule keeps the band in the
real power flow."""

import numpy as np
import pytest

from testbed.domain.compare.dispatch import InfeasibleLimits
from testbed.orchestration.compare import feeder
from testbed.orchestration.compare.inputs import flat_prices, homes_for
from testbed.orchestration.plan import load_plan


@pytest.fixture(scope="module")
def evening():
    plan = load_plan("scenarios/demo.yaml", overrides={"time.duration_h": 2, "time.start": "2016-07-24T18:00:00"})
    homes, q = homes_for(plan)
    return plan, homes, q


def test_failed_checks_tighten_the_limits_until_the_power_flow_holds(evening):
    plan, homes, q = evening
    # 1.0 pu at the far end binds in the evening (without limits the schedule goes down to 0.987 pu)
    schedule, report = feeder.checked_central_schedule(homes, flat_prices(plan), plan.engine, q, 1.0, 1.1)
    solves = report.as_dict()["iterations"]
    assert len(solves) >= 2
    assert solves[0]["violations"] and all(name.startswith("vm:") for name in solves[0]["violations"])
    assert solves[-1]["violations"] == {}
    assert feeder.power_flow_violations(plan.engine, homes, schedule.p_kw, q, 1.0, 1.1) == {}


def test_a_band_no_schedule_can_keep_names_its_limits(evening):
    plan, homes, q = evening
    with pytest.raises(InfeasibleLimits) as err:
        feeder.checked_central_schedule(homes, flat_prices(plan), plan.engine, q, 1.008, 1.1)
    names = [s.name for s in err.value.shortfalls]
    assert names and all(n.startswith("vm:") and n.endswith(" pu") for n in names)
    assert all(0 < s.excess < 0.02 for s in err.value.shortfalls)


def test_sensitivities_have_the_signs_of_a_radial_feeder(evening):
    plan, homes, _ = evening
    rows = feeder.feeder_rows(plan.engine, homes, 0.9, 1.1)
    vm = np.array([n.startswith("vm:") for n in rows.names])
    used = np.unique(homes.bus)
    assert np.all(rows.A[vm][:, used] >= -1e-12)  # injecting raises every voltage
    trafo = [i for i, n in enumerate(rows.names) if n.startswith("trafo:")]
    assert trafo and np.all(rows.A[trafo][:, used] < 0)  # consuming anywhere loads the transformer
