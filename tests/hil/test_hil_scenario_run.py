"""``fpp run --real-time`` of a scenario whose prosumer has ``battery: {hil: ...}``: an emulated battery on
loopback takes the simulated battery's place.

What is checked (no timing assertions): the fleet's battery power of that prosumer is the device's measured
power of the step before (the time-shifted HIL -> fleet connection); the device followed the home
controller's setpoint (the model's battery power, as the self-consumption controller decided it) and its
SoC fell by the energy it delivered; kpis.json has the lateness figures; the samples and events are written.
A second run with the device unreachable and ``abort`` stops with one clear paragraph and exit code 3 (a fault).
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from hil.behaviour import DerRating
from hil.emulator import DeviceSpec, EmulatorThread

SCENARIO = """\
schema_version: 1
name: hil-battery
seed: 1
time: {{start: 2016-01-12T19:00:00, duration_h: 0.0025, resolution_s: 1}}
grid: {{network: "simbench:1-LV-rural3--0-sw"}}
prosumers:
  - id: lab
    bus: LV3.101 Bus 5
    load: {{profile: H0-A, annual_kwh: 20000}}
    battery:
      capacity_kwh: 0.2
      power_kw: 5
      round_trip_efficiency: 1.0
      hil: {{address: "{address}", unit: 1, fault_policy: {policy}{grid}}}
"""


def fpp(*args):
    return subprocess.run(
        [sys.executable, "-m", "testbed", *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.mark.realtime
@pytest.mark.slow
def test_real_time_run_with_an_emulated_battery(tmp_path):
    # 20 MWh/year on a January evening: the home draws a few kW, so the self-consumption controller
    # discharges the battery; 0.2 kWh makes the SoC move visibly in 9 s.
    spec = DeviceSpec(DerRating("battery", 5.0, capacity_kwh=0.2, soc_init=0.5, active_power_response_s=0.2))
    with EmulatorThread([spec], dt_s=0.05) as emu:
        grid = f', grid_simulator: "127.0.0.1:{emu.host.grid_port}", grid_channel: 1'
        path = tmp_path / "s.yaml"
        path.write_text(SCENARIO.format(address=f"127.0.0.1:{emu.ports[0]}", policy="hold", grid=grid))
        res = fpp("run", path, "--out", tmp_path / "out", "--no-progress", "--real-time")
        assert res.returncode == 0, res.stderr
    # docs/hil.md's worked example: no warning per step, and the run reports its lateness
    assert "too slow" not in res.stderr and "Warning" not in res.stderr
    assert "real time: warm-up" in res.stdout
    out = tmp_path / "out"
    rt = json.loads((out / "kpis.json").read_text())["real_time"]
    assert rt["steps"] == 9 and rt["missed_deadlines"] == 0
    kpis = json.loads((out / "kpis.json").read_text())["hil"]
    for key in (
        "hil_io_lateness_p50_s",
        "hil_io_lateness_p99_s",
        "hil_io_lateness_max_s",
        "hil_io_missed_deadlines",
        "step_lateness_p50_s",
        "step_lateness_p99_s",
        "step_lateness_max_s",
        "step_missed_deadlines",
    ):
        assert key in kpis
    assert kpis["hil_invalid_samples"] == 0 and kpis["hil_io_ticks"] > 9
    ts = pq.read_table(out / "timeseries.parquet").to_pandas()
    fleet_p = ts["battery_kw/lab"].to_numpy()
    device_p = ts["hil/lab.battery.p_kw"].to_numpy()
    # Time-shifted: the fleet at step k shows the device's power recorded at step k-1.
    np.testing.assert_allclose(fleet_p[1:], device_p[:-1], atol=1e-9)
    assert (ts["hil/lab.battery.valid"].to_numpy()[1:] == 1.0).all()
    # The device discharged to cover the home's deficit (> 0.5 kW by the last steps).
    assert device_p[-1] > 0.5
    samples = pq.read_table(out / "hil_samples.parquet").to_pandas()
    valid = samples[samples["valid"]]
    t, p = valid["t_wall"].to_numpy(), valid["p_kw"].to_numpy()
    energy_kwh = float(np.sum(p[:-1] * np.diff(t)) / 3600)
    soc_drop = valid["soc"].iloc[0] - valid["soc"].iloc[-1]
    # SoC register resolution 0.1 %, plus a tick of energy at each end: 0.3 % of SoC.
    assert soc_drop == pytest.approx(energy_kwh / 0.2, abs=0.003)
    assert json.loads((out / "hil_events.json").read_text())["events"] == []


@pytest.mark.slow
def test_abort_policy_ends_the_run_with_one_paragraph(tmp_path, refused_port):
    address = f"127.0.0.1:{refused_port}"  # nothing listens here
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.format(address=address, policy="abort", grid=""))
    res = fpp("run", path, "--out", tmp_path / "out", "--no-progress")
    assert res.returncode == 3  # a device fault, not a user mistake
    assert "fpp run: fault:" in res.stderr and "aborted by the fault policy" in res.stderr and address in res.stderr
    assert "Traceback" not in res.stderr
    # the run folder keeps what was recorded until the fault, with the fault as its verdict
    assert json.loads((tmp_path / "out" / "verdict.json").read_text())["status"] == "fault"
    assert (tmp_path / "out" / "report.html").is_file()


@pytest.mark.slow
def test_fallback_to_model_uses_the_fleet_battery_when_the_device_is_gone(tmp_path, refused_port):
    # Nothing listens at the address: every sample is invalid. With fallback-to-model the run uses the
    # simulated battery's own power (the self-consumption controller covering a January evening deficit, so
    # > 0), where `hold` would give 0 kW; the fleet shows it one step later, like a measurement.
    address = f"127.0.0.1:{refused_port}"
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.format(address=address, policy="fallback-to-model", grid=""))
    res = fpp("run", path, "--out", tmp_path / "out", "--no-progress")
    assert res.returncode == 0, res.stderr
    ts = pq.read_table(tmp_path / "out" / "timeseries.parquet").to_pandas()
    hil_p = ts["hil/lab.battery.p_kw"].to_numpy()
    assert (ts["hil/lab.battery.valid"].to_numpy() == 0.0).all()
    assert (hil_p > 0.5).all()
    np.testing.assert_allclose(ts["battery_kw/lab"].to_numpy()[1:], hil_p[:-1], atol=1e-9)
    events = json.loads((tmp_path / "out" / "hil_events.json").read_text())["events"]
    assert {"refused", "policy:fallback-to-model"} <= {e["kind"] for e in events}
    kpis = json.loads((tmp_path / "out" / "kpis.json").read_text())["hil"]
    assert kpis["hil_invalid_samples"] == kpis["hil_io_ticks"] > 0
