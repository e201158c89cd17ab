"""A run whose power flow fails for some steps goes on, records them and counts them in the KPIs."""

import json

import pyarrow.parquet as pq

from testbed.domain.scenario.loader import parse_scenario
from testbed.orchestration.plan import prepare
from testbed.orchestration.runner import run

SCENARIO = """\
schema_version: 1
name: overload
seed: 3
time: {start: 2016-07-24T16:00:00, duration_h: 3, resolution_s: 900}
grid: {network: "simbench:1-LV-rural3--0-sw"}
prosumers:
  - id: home
    bus: LV3.101 Bus 45
    load: {profile: H0-A, annual_kwh: 3500}
  - id: depot   # a 4 MW charger that no LV feeder can supply, plugged in at 18:00 until full
    bus: LV3.101 Bus 45
    load: {profile: H0-A, annual_kwh: 1000}
    ev: {capacity_kwh: 4000, charge_kw: 4000, charge_efficiency: 1.0, trip_kwh: 3000, depart_h: 8, arrive_h: 18, initial_soc: 1.0}
"""


def test_failed_steps_are_data(tmp_path):
    plan = prepare(parse_scenario(SCENARIO), base_dir=tmp_path)
    result = run(plan, tmp_path / "run", progress=False)
    t = pq.read_table(tmp_path / "run" / "timeseries.parquet").to_pandas()
    assert len(t) == 12
    # 16:00-17:45 converge; from 18:00 the charger draws 4 MW for the 45 min it needs (3000 kWh / 4000 kW).
    assert t.converged.tolist() == [1.0] * 8 + [0.0] * 3 + [1.0]
    assert t["vm_pu/LV3.101 Bus 45"].isna().tolist() == [False] * 8 + [True] * 3 + [False]
    k = json.loads((tmp_path / "run" / "kpis.json").read_text())
    assert k["non_converged_steps"] == 3 and k == result.kpis
    assert k["v_min_pu"] > 0.9  # extremes only over converged steps
