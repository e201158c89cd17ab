"""The mosaik bridge in a small world of its own: a toy fleet, the bridge, and the platform as a process."""

import sys

import mosaik
import mosaik_api_v3
import pytest

from testbed.platform.launch import PlatformProcess
from testbed.platform.ledger import Ledger

FLEET = {  # constant load and PV per prosumer [kW]; p01 and p03 have a battery
    "p00": {"load_kw": 0.5, "pv_kw": 4.0, "capacity_kwh": 0.0},
    "p01": {"load_kw": 2.0, "pv_kw": 0.0, "capacity_kwh": 0.0},
    "p02": {"load_kw": 1.0, "pv_kw": 0.0, "capacity_kwh": 0.0},
    "p03": {"load_kw": 1.5, "pv_kw": 3.0, "capacity_kwh": 0.0},
}


class ToyFleet(mosaik_api_v3.Simulator):
    """Prosumers with constant load and PV; net p = pv - load + battery setpoint (none here)."""

    def __init__(self):
        super().__init__(
            {
                "type": "time-based",
                "models": {
                    "Fleet": {
                        "public": True,
                        "params": [],
                        "attrs": ["load_kw", "pv_kw", "soc", "p_kw", "p_batt_set_kw"],
                    }
                },
            }
        )
        self.p_trade_seen = []

    def create(self, num, model):
        return [{"eid": "fleet", "type": model}]

    def step(self, time, inputs, max_advance):
        return time + 1

    def get_data(self, outputs):
        out = {
            "load_kw": {k: v["load_kw"] for k, v in FLEET.items()},
            "pv_kw": {k: v["pv_kw"] for k, v in FLEET.items()},
            "soc": {k: 0.5 for k in FLEET},
            "p_kw": {k: v["pv_kw"] - v["load_kw"] for k, v in FLEET.items()},
        }
        return {"fleet": {a: out[a] for a in outputs["fleet"]}}


sys.modules.setdefault("fpp_test_toy_fleet", sys.modules[__name__])


@pytest.mark.parametrize("mechanism", ["double-auction"])
def test_bridge_runs_a_market_each_interval_in_simulation_time(broker, tmp_path, mechanism):
    url = f"sqlite:///{tmp_path}/ledger.db"
    prosumers = [
        {"id": pid, "bus": f"bus{i}", "energy_class": "green" if v["pv_kw"] else None}
        for i, (pid, v) in enumerate(FLEET.items())
    ]
    with PlatformProcess(
        prosumers,
        ledger_url=url,
        broker_url=broker.address.url,
        mechanism=mechanism,
        interval_s=900.0,
        workdir=tmp_path / "platform",
    ):
        world = mosaik.World(
            {
                "Fleet": {"python": "fpp_test_toy_fleet:ToyFleet"},
                "Bridge": {"python": "simulators.market_bridge.sim:MarketBridgeSim"},
            },
            debug=False,
        )
        fleet = world.start("Fleet", time_resolution=60.0).Fleet()
        bridge_sim = world.start("Bridge", time_resolution=60.0)
        bridge = bridge_sim.MarketBridge(
            agents=[{"pid": pid} for pid in FLEET],
            broker_url=broker.address.url,
            interval_s=900.0,
            import_price=0.30,
            export_price=0.08,
            run_id="t1",
        )
        world.connect(fleet, bridge, "load_kw", "pv_kw", "soc", "p_kw")
        world.connect(bridge, fleet, "p_batt_set_kw", time_shifted=True, initial_data={"p_batt_set_kw": {}})
        world.run(until=4 * 15 * 60 // 60 * 1)  # 60 steps of 60 s: intervals 0..3
        steps = (
            world.sims[bridge_sim._sid]._inner._sim.steps
            if hasattr(world.sims[bridge_sim._sid], "_inner")
            else None
        )
    led = Ledger(url)
    intervals = led.intervals()
    assert [row[0] for row in intervals] == [0, 1, 2, 3]
    del steps
