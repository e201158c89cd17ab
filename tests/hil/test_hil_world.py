"""The HIL mosaik simulator in tiny mosaik worlds of its own: a driver simulator sends setpoints and grid
values and records what the HIL simulator outputs; devices are emulated on loopback.

The real-time test paces the world with ``rt_factor=1.0``; its assertions are on energy and SoC, never on
timing (lateness figures are only checked to be reported).
"""

from __future__ import annotations

import mosaik
import mosaik_api_v3
import pytest
from mosaik.starters import PythonStarter

from hil.behaviour import DerRating
from hil.emulator import DeviceSpec, EmulatorThread
from hil.errors import HilAbort


class Driver(mosaik_api_v3.Simulator):
    """Sends ``p_set_kw`` (from a schedule by step), ``vm_pu``, ``f_hz``; records every input it gets."""

    def __init__(self, schedule: dict[int, float], log: list):
        super().__init__(
            {
                "api_version": "3.0",
                "type": "time-based",
                "models": {
                    "D": {
                        "public": True,
                        "params": [],
                        "attrs": [
                            "p_set_kw",
                            "vm_pu",
                            "f_hz",
                            "p_kw",
                            "q_kvar",
                            "soc",
                            "valid",
                            "p_kw_by_bus",
                        ],
                    }
                },
            }
        )
        self.schedule = schedule
        self.log = log
        self.t = 0

    def create(self, num, model):
        return [{"eid": "d", "type": "D"}]

    def step(self, time, inputs, max_advance):
        self.t = time
        flat = {attr: next(iter(src.values())) for attr, src in inputs.get("d", {}).items()}
        self.log.append((time, flat))
        return time + 1

    def get_data(self, outputs):
        p = self.schedule[max(t for t in self.schedule if t <= self.t)] if self.schedule else 0.0
        return {"d": {"p_set_kw": p, "vm_pu": 1.0, "f_hz": 50.0}}


def _world(address: str, *, policy: str, schedule, log, grid=None, rt=None, resolution=0.1):
    world = mosaik.World(
        {
            "HIL": {"python": "hil.mosaik_sim:HilSimulator"},
            "Drv": PythonStarter(Driver, kwargs={"schedule": schedule, "log": log}),
        },
        time_resolution=resolution,
    )
    hil = world.start(
        "HIL", step_size=1, rt_factor=rt, first_sample_timeout_s=1.0, timeout_s=0.2, connect_timeout_s=0.3
    )
    params = dict(
        kind="battery",
        address=address,
        unit=1,
        prosumer_id="p1",
        bus="bus7",
        rated_kw=5.0,
        fault_policy=policy,
    )
    if grid:
        params |= {"grid_address": grid, "grid_channel": 1}
    dev = hil.Device(**params)
    drv = world.start("Drv").D()
    world.connect(drv, dev, "p_set_kw", "vm_pu", "f_hz")
    world.connect(
        dev,
        drv,
        "p_kw",
        "q_kvar",
        "soc",
        "valid",
        "p_kw_by_bus",
        time_shifted=True,
        initial_data={"p_kw": 0.0, "q_kvar": 0.0, "soc": 0.5, "valid": False, "p_kw_by_bus": {}},
    )
    return world, hil


@pytest.mark.realtime
def test_real_time_run_with_one_emulated_battery():
    # 0.1 kWh battery at SoC 0.5 discharging 3 kW for ~3 s: 3 kW × 3 s = 2.5 Wh = 2.5 % of SoC. The check is
    # the energy balance: the SoC drop equals the energy in the recorded 20 Hz samples (∑ p·Δt) / capacity,
    # within 0.3 % SoC (SoC register resolution 0.1 %, plus one tick of energy at each end).
    log: list = []
    with EmulatorThread(
        [DeviceSpec(DerRating("battery", 5.0, capacity_kwh=0.1, soc_init=0.5, active_power_response_s=0.2))],
        dt_s=0.05,
    ) as emu:
        address = f"127.0.0.1:{emu.ports[0]}"
        world, hil = _world(
            address,
            policy="hold",
            schedule={0: 0.0, 5: 3.0},
            log=log,
            grid=f"127.0.0.1:{emu.host.grid_port}",
            rt=1.0,
        )
        world.run(until=40, rt_factor=1.0, shutdown=False)
        kpis = hil.kpis()
        samples = hil.samples()
        report = hil.report()
        world.shutdown()
    outs = [x for _, x in log[1:]]
    assert all(o["valid"] for o in outs[2:])
    assert outs[-1]["p_kw"] == pytest.approx(3.0, abs=0.01)
    assert outs[-1]["p_kw_by_bus"] == {"bus7": pytest.approx(outs[-1]["p_kw"])}
    valid = [s for s in samples if s["valid"]]
    pairs = zip(valid, valid[1:], strict=False)
    energy_kwh = sum(a["p_kw"] * (b["t_wall"] - a["t_wall"]) / 3600 for a, b in pairs)
    assert energy_kwh > 0.001  # it did discharge (≥ 1 Wh)
    soc_drop = valid[0]["soc"] - valid[-1]["soc"]
    assert soc_drop == pytest.approx(energy_kwh / 0.1, abs=0.003)
    for key in (
        "hil_io_lateness_p50_s",
        "hil_io_lateness_p99_s",
        "hil_io_lateness_max_s",
        "hil_io_missed_deadlines",
        "step_lateness_p50_s",
        "step_lateness_p99_s",
        "step_missed_deadlines",
    ):
        assert key in kpis
    assert kpis["hil_io_ticks"] == len(samples) > 40
    assert report["events"] == [] and kpis["hil_invalid_samples"] == 0




def test_hold_policy_with_a_refused_device(refused_port):
    log: list = []
    world, hil = _world(f"127.0.0.1:{refused_port}", policy="hold", schedule={0: 2.0}, log=log)
    world.run(until=5, shutdown=False)
    report = hil.report()
    world.shutdown()
    outs = [x for _, x in log[1:]]
    assert all(not o["valid"] for o in outs)
    assert all(o["p_kw"] == 0.0 for o in outs)  # nothing valid ever arrived: hold gives 0
    kinds = [e["kind"] for e in report["events"]]
    assert "refused" in kinds and "policy:hold" in kinds


def test_fallback_to_model_follows_the_setpoint(refused_port):
    # Ideal battery stand-in: p = setpoint within ±5 kW; SoC is unknown (no valid sample ever) so stays None.
    log: list = []
    world, hil = _world(f"127.0.0.1:{refused_port}", policy="fallback-to-model", schedule={0: 2.0, 2: -7.0}, log=log)
    world.run(until=5, shutdown=False)
    world.shutdown()
    ps = [x["p_kw"] for _, x in log[1:]]
    assert ps[:2] == [2.0, 2.0] and ps[-1] == -5.0


def test_abort_policy_stops_the_run(refused_port):
    log: list = []
    world, hil = _world(f"127.0.0.1:{refused_port}", policy="abort", schedule={0: 1.0}, log=log)
    try:
        with pytest.raises(HilAbort, match="abort"):
            world.run(until=5, shutdown=False)
    finally:
        world.shutdown()  # finalize stops the I/O thread


class PvDriver(mosaik_api_v3.Simulator):
    """Sends a fleet-like array of model PV powers and a grid-like array of bus voltages."""

    def __init__(self, log: list):
        super().__init__(
            {
                "api_version": "3.0",
                "type": "time-based",
                "models": {
                    "D": {"public": True, "params": [], "attrs": ["pv_model_kw", "vm_pu", "p_kw", "q_kvar", "valid"]}
                },
            }
        )
        self.log = log

    def create(self, num, model):
        return [{"eid": "d", "type": "D"}]

    def step(self, time, inputs, max_advance):
        self.log.append({attr: next(iter(src.values())) for attr, src in inputs.get("d", {}).items()})
        return time + 1

    def get_data(self, outputs):
        # element 1 is our prosumer / bus; the others belong to someone else
        return {"d": {"pv_model_kw": [9.0, 4.0, 1.0], "vm_pu": [1.0, 1.05, 0.95]}}


@pytest.mark.realtime
def test_emulated_pv_follows_the_model_and_the_bus_voltage():
    # The model says 4 kW available of 10 kWp -> the grid simulator's DC source is set to 40 %; the bus is at
    # 1.05 pu. With Volt-VAR off (the default), OpenDER gives P = 4 kW and Q = 0; the grid simulator's
    # registers show what the adapter wrote (1.05 pu -> 10500, 40 % -> 400).
    log: list = []
    with EmulatorThread([DeviceSpec(DerRating("pv", 10.0, active_power_response_s=0.2))], dt_s=0.05) as emu:
        world = mosaik.World(
            {"HIL": {"python": "hil.mosaik_sim:HilSimulator"}, "Drv": PythonStarter(PvDriver, kwargs={"log": log})},
            time_resolution=0.1,
        )
        hil = world.start("HIL", step_size=1, rt_factor=1.0, first_sample_timeout_s=1.0)
        dev = hil.Device(
            kind="pv",
            address=f"127.0.0.1:{emu.ports[0]}",
            unit=1,
            prosumer_id="p2",
            bus="b2",
            rated_kw=10.0,
            fault_policy="hold",
            grid_address=f"127.0.0.1:{emu.host.grid_port}",
            grid_channel=1,
            fleet_index=1,
            bus_index=1,
        )
        drv = world.start("Drv").D()
        world.connect(drv, dev, ("pv_model_kw", "p_model_kw"), "vm_pu")
        world.connect(
            dev,
            drv,
            "p_kw",
            "q_kvar",
            "valid",
            time_shifted=True,
            initial_data={"p_kw": 0.0, "q_kvar": 0.0, "valid": False},
        )
        world.run(until=30, rt_factor=1.0)
        grid_regs = emu.call(lambda h: h._grid_image()[100:104])
    assert grid_regs == [10500, 50000, 400, 50]
    assert log[-1]["valid"] and log[-1]["p_kw"] == pytest.approx(4.0, abs=0.01)
    assert log[-1]["q_kvar"] == pytest.approx(0.0, abs=0.01)
