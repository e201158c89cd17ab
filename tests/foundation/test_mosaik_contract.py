"""The simulators' mosaik API called directly, as mosaik would call it."""


import numpy as np
import pyarrow.parquet as pq
import pytest

from simulators.grid.mosaik_sim import GridSimulator
from simulators.prosumers.mosaik_sim import FleetSimulator
from simulators.recorder.mosaik_sim import RecorderSimulator

from .test_fleet_profiles import setup as fleet_setup


def test_grid_simulator_contract():
    sim = GridSimulator()
    meta = sim.init("Grid-0", time_resolution=900.0, network="pandapower:case33bw", keep_elements=True)
    assert meta["models"]["Grid"]["public"] and "network_info" in meta["extra_methods"]
    assert sim.create(1, "Grid") == [{"eid": "grid", "type": "Grid"}]
    with pytest.raises(ValueError):
        sim.create(1, "Grid")
    assert sim.step(0, {}, 10) == 1
    base = sim.get_data({"grid": ["ext_grid_p_kw", "converged", "vm_pu"]})["grid"]
    assert base["converged"] and len(base["vm_pu"]) == 33
    # Two sources inject at bus 17 (index 17, the weakest bus); the grid sums them (generator convention).
    inputs = {"grid": {"p_kw_by_bus": {"Fleet-0.fleet": {"17": 150.0}, "HIL-0.dev": {"17": 50.0}}}}
    assert sim.step(1, inputs, 10) == 2
    out = sim.get_data({"grid": ["ext_grid_p_kw", "vm_pu", "losses_kw"]})["grid"]
    assert out["vm_pu"][17] > base["vm_pu"][17]
    # Slack power falls by the 200 kW injected, less the change in losses.
    base_losses = 202.677
    assert out["ext_grid_p_kw"] == pytest.approx(
        base["ext_grid_p_kw"] - 200.0 + (out["losses_kw"] - base_losses), abs=0.01
    )
    with pytest.raises(ValueError, match="bus 'nope'"):
        sim.step(2, {"grid": {"p_kw_by_bus": {"x": {"nope": 1.0}}}}, 10)
    assert sim.network_info()["bus_ids"][:2] == ["0", "1"]


def test_grid_simulator_sums_array_and_dict_inputs():
    """Array inputs (one value per bus, network order) and dict inputs add up at the same bus."""
    sim = GridSimulator()
    sim.init("Grid-0", network="pandapower:case33bw", keep_elements=True)
    sim.create(1, "Grid")
    n = len(sim.network_info()["bus_ids"])
    arr = np.zeros(n)
    arr[17] = 120.0
    sim.step(0, {"grid": {"bus_p_kw": {"Fleet-0.fleet": arr}, "p_kw_by_bus": {"HIL-0.dev": {"17": 80.0}}}}, 10)
    both = sim.get_data({"grid": ["vm_pu", "ext_grid_p_kw"]})["grid"]
    arr[17] = 200.0
    sim.step(1, {"grid": {"bus_p_kw": {"Fleet-0.fleet": arr}}}, 10)
    alone = sim.get_data({"grid": ["vm_pu", "ext_grid_p_kw"]})["grid"]
    # The same 200 kW at bus 17, once split over two kinds of input and once as one array: the same solve.
    assert both["ext_grid_p_kw"] == pytest.approx(alone["ext_grid_p_kw"], abs=1e-6)
    np.testing.assert_allclose(both["vm_pu"], alone["vm_pu"], atol=1e-9)
    with pytest.raises(ValueError, match=r"bus_q_kvar from x has shape \(3,\); it needs one value per bus \(33\)"):
        sim.step(2, {"grid": {"bus_q_kvar": {"x": np.zeros(3)}}}, 10)


def test_fleet_simulator_bus_arrays_follow_the_grid_order():
    sim = FleetSimulator()
    sim.init("Prosumers-0", time_resolution=900.0, setup=fleet_setup(), grid_bus_ids=["bus 0", "bus 1", "bus 2"])
    sim.create(1, "Fleet")
    sim.step(0, {}, 4)
    out = sim.get_data({"fleet": ["bus_p_kw", "bus_q_kvar", "p_kw_by_bus", "q_kvar_by_bus"]})["fleet"]
    # Both prosumers sit on "bus 1": position 1 of the grid's order holds their sum, the other buses 0.
    assert out["bus_p_kw"].tolist() == pytest.approx([0.0, out["p_kw_by_bus"]["bus 1"], 0.0])
    assert out["bus_q_kvar"].tolist() == pytest.approx([0.0, out["q_kvar_by_bus"]["bus 1"], 0.0])
    with pytest.raises(ValueError, match=r"grid does not have: \['bus 1'\]"):
        FleetSimulator().init("P", setup=fleet_setup(), grid_bus_ids=["bus 0"])
    bare = FleetSimulator()
    bare.init("P", setup=fleet_setup())
    bare.create(1, "Fleet")
    bare.step(0, {}, 4)
    with pytest.raises(ValueError, match="needs the grid's bus order"):
        bare.get_data({"fleet": ["bus_p_kw"]})


def test_fleet_simulator_contract():
    sim = FleetSimulator()
    sim.init("Prosumers-0", time_resolution=900.0, setup=fleet_setup())
    assert sim.create(1, "Fleet") == [{"eid": "fleet", "type": "Fleet"}]
    assert sim.step(0, {}, 4) == 1
    out = sim.get_data({"fleet": ["p_kw_by_bus", "p_kw", "soc"]})["fleet"]
    assert out["p_kw_by_bus"] == {"bus 1": pytest.approx(-1.5)}
    assert out["p_kw"].tolist() == pytest.approx([0.5, -2.0])
    sim.step(1, {"fleet": {"battery_p_set_kw": {"Market-0.bridge": {"a": 1.0}}}}, 4)
    assert sim.get_data({"fleet": ["p_kw"]})["fleet"]["p_kw"][0] == pytest.approx(3.0)
    # A net target of 1 kW for a (PV 3 kW, load 1 kW): its battery charges the other 1 kW.
    sim.step(2, {"fleet": {"p_net_target_kw": {"Market-0.bridge": {"a": 1.0}}}}, 4)
    out = sim.get_data({"fleet": ["p_kw", "battery_kw"]})["fleet"]
    assert out["p_kw"][0] == pytest.approx(1.0) and out["battery_kw"][0] == pytest.approx(-1.0)
    assert sim.prosumer_ids() == ["a", "b"]


def test_recorder_simulator_contract(tmp_path):
    sim = RecorderSimulator()
    sink: dict = {}
    sim.init(
        "Recorder-0",
        out_dir=str(tmp_path),
        start="2016-06-01T00:00:00",
        resolution_s=900,
        n_steps=2,
        prosumer_ids=("a", "b"),
        progress=False,
        kpi_sink=sink,
    )
    sim.create(1, "Recorder", series={"vm_pu": ["b0", "b1"], "p_kw": ["a", "b"]})
    for t in range(2):
        sim.step(
            t,
            {
                "recorder": {
                    "vm_pu": {"Grid-0.grid": np.array([1.0, 0.98 - t / 100])},
                    "converged": {"Grid-0.grid": True},
                    "ext_grid_p_kw": {"Grid-0.grid": 4.0},
                    "p_kw": {"Prosumers-0.fleet": np.array([1.0, -5.0])},
                }
            },
            2,
        )
    sim.finalize()
    table = pq.read_table(tmp_path / "timeseries.parquet")
    assert table.column_names == ["time", "converged", "ext_grid_p_kw", "p_kw/a", "p_kw/b", "vm_pu/b0", "vm_pu/b1"]
    assert table.column("vm_pu/b1").to_pylist() == pytest.approx([0.98, 0.97])
    assert str(table.column("time")[1].as_py()) == "2016-06-01 00:15:00"
    kpis = sink["kpis"]  # the runner writes kpis.json once, with every part's section
    assert kpis == sim.kpis()
    assert kpis["grid_import_kwh"] == pytest.approx(2.0) and kpis["v_min_pu"] == pytest.approx(0.97)
    assert kpis["prosumers"]["b"]["import_kwh"] == pytest.approx(2.5)
