"""Mixed rates in one world (simulators/rates.py, scenario ``frequency_response:``): batteries answer a frequency
at 20 Hz while the grid, the fleet and the recorder step every second.

- a slow simulator wrapped in ``SlowStepped`` sees its own step indices and step length, and exchanges data
  with a fast one in the world's ticks as hand-worked below;
- the coalition model: the baseline is the home's wish within what the contract leaves, the response follows
  the service's curve, the fleet sees the mean power over its step;
- ``fpp run`` on a two-home scenario: 20 ticks per step, the fleet's battery power is each second's mean of
  the 20 Hz powers, the verdict passes for a compliant inverter and fails (exit 1) for a slow one; the closed
  loop lifts the nadir of a small system; bad sections exit 2 before anything runs; a real-time run records
  the lateness of the ticks and of the slow steps.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import mosaik
import mosaik_api_v3
import numpy as np
import pandas as pd
import pytest
from mosaik.starters import PythonStarter

from hil.behaviour import DerControls, DerRating
from hil.misbehaviour import TestedDer
from simulators.devices.mosaik_sim import OpenDerDriver
from simulators.frequency.model import SingleAreaModel
from simulators.rates import SlowStepped, ticks_per_step
from simulators.response.model import Coalition, Member
from testbed.domain.errors import EXIT_USER_ERROR, EXIT_VERDICT_FAILED
from testbed.domain.services.frequency import FREQUENCY_SERVICES, ResponseController

ROOT = Path(__file__).resolve().parents[2]
SEEN: dict[str, list[tuple[int, float, dict]]] = {}


class Clocked(mosaik_api_v3.Simulator):
    """Records the times and inputs it is stepped with; outputs ``x`` = its own step index."""

    def __init__(self):
        super().__init__({"api_version": "3.0", "type": "time-based",
                          "models": {"C": {"public": True, "params": [], "attrs": ["x", "y"]}}})
    def init(self, sid, time_resolution=1.0, step=1):
        self.resolution, self.step_size, self.t = time_resolution, step, 0
        self.seen = SEEN.setdefault(sid, [])
        return self.meta

    def create(self, num, model):
        return [{"eid": "c", "type": model}]

    def step(self, t, inputs, max_advance):
        self.t = t
        ys = inputs.get("c", {}).get("y", {})
        self.seen.append((t, self.resolution, dict(ys)))
        return t + self.step_size

    def get_data(self, outputs):
        return {"c": {"x": self.t, "y": self.t}}


def test_slow_stepped_simulator_sees_its_own_steps_and_exchanges_data_with_a_fast_one():
    SEEN.clear()
    world = mosaik.World({}, time_resolution=0.25, skip_greetings=True, configure_logging=False)
    slow_sim = world.start(PythonStarter(SlowStepped, kwargs={"inner": Clocked, "ticks": 4}), sim_id="Slow")
    fast_sim = world.start(PythonStarter(Clocked), sim_id="Fast")
    slow, fast = slow_sim.C(), fast_sim.C()
    world.connect(slow, fast, ("x", "y"))  # the slow step's index, seen by every tick until the next step
    world.connect(fast, slow, ("x", "y"), time_shifted=True, initial_data={"x": -1})
    world.run(until=12, print_progress=False)
    slow_seen, fast_seen = SEEN["Slow"], SEEN["Fast"]
    # the slow simulator: its own steps 0, 1, 2 with its own step length (4 ticks of 0.25 s = 1 s)
    assert [(t, r) for t, r, _ in slow_seen] == [(0, 1.0), (1, 1.0), (2, 1.0)]
    # ... and from the fast one (time-shifted) the tick before each of its steps: none yet, tick 3, tick 7
    assert [list(y.values()) for _, _, y in slow_seen] == [[-1], [3], [7]]
    # the fast simulator: every tick, with the slow step index held between slow steps
    assert [t for t, _, _ in fast_seen] == list(range(12))
    assert [next(iter(y.values())) for _, _, y in fast_seen] == [0] * 4 + [1] * 4 + [2] * 4


def test_ticks_per_step_must_be_whole():
    assert ticks_per_step(1, 0.05) == 20
    assert ticks_per_step(900, 0.1) == 9000
    with pytest.raises(ValueError, match="not a whole number of ticks"):
        ticks_per_step(1, 0.3)
    with pytest.raises(ValueError, match="integer"):
        SlowStepped(Clocked, 0)


def _member(pid="a", index=0, rated_kw=10.0, contracted_kw=5.0, response_s=0.3):
    svc = FREQUENCY_SERVICES["gb-dc-low"]
    rating = DerRating(kind="battery", rated_kw=rated_kw, capacity_kwh=20.0, soc_init=0.5,
                       active_power_response_s=response_s)
    return Member(pid=pid, index=index, rated_kw=rated_kw, contracted_kw=contracted_kw,
                  controller=ResponseController(svc, contracted_kw),
                  driver=OpenDerDriver(TestedDer(rating), DerControls(p_set_enabled=True, droop_enabled=False)))


def test_coalition_holds_the_baseline_within_the_contract_and_follows_the_curve():
    a, b = _member("a", 0), _member("b", 1, rated_kw=4.0, contracted_kw=2.0)
    c = Coalition([a, b], tick_s=0.05, ticks_per_step=20, baseline_ticks=40)
    home = np.array([8.0, -1.0])  # a wants 8 kW: only 10 - 5 = 5 kW are left to it; b's -1 kW fits
    for tick in range(40):  # 2 s at 50 Hz
        c.tick(tick, 50.0, home)
    assert (a.baseline_kw, b.baseline_kw) == (5.0, -1.0)
    assert a.p_kw == pytest.approx(5.0, abs=0.05) and b.p_kw == pytest.approx(-1.0, abs=0.02)
    c.tick(40, 50.0, np.array([0.0, 0.0]))  # a new baseline period: declared again
    assert (a.baseline_kw, b.baseline_kw) == (0.0, 0.0)
    for tick in range(41, 100):  # 49.5 Hz: DC low asks its full contracted response (GB DC: 100 % at -0.5 Hz)
        c.tick(tick, 49.5, None)
    assert c.samples.required_kw[-1] == pytest.approx(7.0)
    assert a.p_kw == pytest.approx(5.0, rel=0.01) and b.p_kw == pytest.approx(2.0, rel=0.01)
    assert c.delivered_kw == pytest.approx(7.0, rel=0.01)
    # the fleet sees each member's mean over its step so far: ticks 80..99 of this window
    member_kw = c.samples.member_kw()[80:100]
    assert c.mean_kw == pytest.approx(member_kw.mean(axis=0) + [a.baseline_kw, b.baseline_kw], rel=1e-12)
    with pytest.raises(ValueError, match="contracted_kw"):
        _member(contracted_kw=11.0)


TWO_HOMES = """\
schema_version: 1
name: mixed-rates
seed: 3
time: {{start: 2016-07-24T18:00:00, duration_h: {duration_h}, resolution_s: 1}}
grid: {{network: "simbench:1-LV-rural3--0-sw"}}
prosumers:
  - id: a
    bus: LV3.101 Bus 5
    load: {{profile: H0-A, annual_kwh: 4000}}
    battery: {{capacity_kwh: 10, power_kw: 6, initial_soc: 0.5}}
  - id: b
    bus: LV3.101 Bus 7
    load: {{profile: H0-B, annual_kwh: 3000}}
    battery: {{capacity_kwh: 8, power_kw: 4, initial_soc: 0.5}}
  - id: c
    bus: LV3.101 Bus 9
    load: {{profile: H0-C, annual_kwh: 3000}}
frequency_response:
  service: gb-dc-low
  step_s: 0.05
  signal: {signal}
  contracted_share: 0.5
  response_s: {response_s}
"""
STEPS = ("{kind: steps, points: [{t_s: 0, f_hz: 50.0}, {t_s: 4, f_hz: 49.8}, {t_s: 8, f_hz: 49.5}, "
         "{t_s: 14, f_hz: 50.0}], duration_s: 18}")


def fpp(*args):
    return subprocess.run([sys.executable, "-m", "testbed", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def _scenario(tmp_path, name="s.yaml", duration_h=0.005, signal=STEPS, response_s=0.3):
    path = tmp_path / name
    path.write_text(TWO_HOMES.format(duration_h=duration_h, signal=signal, response_s=response_s))
    return path


def test_scenario_run_keeps_both_rates_and_the_fleet_meters_the_fast_response(tmp_path):
    res = fpp("run", _scenario(tmp_path), "--out", tmp_path / "out", "--no-progress", "--check")
    assert res.returncode == 0, res.stderr + res.stdout
    out = tmp_path / "out"
    kpis = json.loads((out / "kpis.json").read_text())
    fr = kpis["frequency_response"]
    assert kpis["steps"] == 18 and fr["ticks"] == 360 and fr["ticks_per_step"] == 20 and fr["members"] == 2
    assert fr["contracted_kw"] == pytest.approx(0.5 * 6 + 0.5 * 4)
    assert json.loads((out / "run.json").read_text())["tick_s"] == 0.05
    verdict = json.loads((out / "verdict.json").read_text())
    mine = [c for c in verdict["criteria"] if c["group"] == "frequency response"]
    assert verdict["status"] == "pass" and mine and all(c["passed"] for c in mine)
    # at 49.5 Hz (t 8..14 s) DC low asks the full 5 kW; a 0.3 s inverter delivers it within the band
    samples = pd.read_parquet(out / "frequency_response.parquet")
    held = samples[(samples.t_s > 10) & (samples.t_s <= 14)]
    assert held.required_kw.to_numpy() == pytest.approx(5.0)
    assert held.delivered_kw.to_numpy() == pytest.approx(5.0, rel=0.01)
    # the fleet's battery power in second k is the mean of the 20 Hz powers of that second (baseline +
    # delivered): their sum over the members, second by second, from the two files
    ts = pd.read_parquet(out / "timeseries.parquet")
    battery = ts[[c for c in ts.columns if c.startswith("battery_kw")]].sum(axis=1).to_numpy()
    grid_wish = battery[0]  # the baselines (both homes' wish at the start, within their halves)
    per_second = samples.delivered_kw.to_numpy().reshape(18, 20).mean(axis=1)
    # fleet step k (k >= 1) meters the ticks of step k-1 (time-shifted): compare 10..14 s
    assert battery[11:15] == pytest.approx(grid_wish + per_second[10:14], abs=1e-6)
    # and the grid saw it: the homes' net power moved by the response
    p = ts[[c for c in ts.columns if c.startswith("p_kw")]].sum(axis=1).to_numpy()
    assert p[12] - p[2] == pytest.approx(battery[12] - battery[2], abs=0.3)  # loads move a little in 10 s


def test_slow_inverters_fail_the_service_with_exit_1_under_check(tmp_path):
    res = fpp("run", _scenario(tmp_path, response_s=4.0), "--out", tmp_path / "out", "--no-progress", "--check")
    assert res.returncode == EXIT_VERDICT_FAILED, res.stderr + res.stdout
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    failed = [c["name"] for c in verdict["criteria"] if c["passed"] is False]
    assert failed and all(c["group"] == "frequency response" for c in verdict["criteria"] if c["passed"] is False)
    assert any("band" in n for n in failed), failed
    kpis = json.loads((tmp_path / "out" / "kpis.json").read_text())
    assert kpis["frequency_response"]["members_failing"] == 2


def test_closed_loop_system_in_a_scenario_lifts_the_nadir(tmp_path):
    # 2 MW system, H 2 s, D 1: losing 40 kW settles at 50 * (1 - 0.02) = 49.0 Hz without response
    signal = "{kind: closed-loop, s_base_mw: 2, h_s: 2, d_pu: 1, loss_mw: 0.04, t_loss_s: 2, duration_s: 30}"
    res = fpp("run", _scenario(tmp_path, duration_h=0.01, signal=signal), "--out", tmp_path / "out", "--no-progress")
    assert res.returncode in (0, EXIT_VERDICT_FAILED), res.stderr + res.stdout
    fr = json.loads((tmp_path / "out" / "kpis.json").read_text())["frequency_response"]
    # analytic, no response: f(t) = f0 (1 - dP/D (1 - exp(-D t / 2H))), lowest at the end (28 s after the loss)
    analytic = 50.0 * (1 - 0.02 * (1 - math.exp(-28 / 4)))
    assert fr["nadir_without_response_hz"] == pytest.approx(analytic, abs=2e-4)
    # 5 kW of DC against a 40 kW loss: the response lifts the nadir (hand bound: at most 5/40 of the fall)
    fall = 50.0 - fr["nadir_without_response_hz"]
    assert 0 < fr["nadir_lift_mhz"] / 1000 <= 5 / 40 * fall * 1.05
    assert SingleAreaModel(s_base_mw=2, h_s=2, d_pu=1, loss_mw=0.04, t_loss_s=2).nadir_without_response_hz(
        30, 0.05) == pytest.approx(fr["nadir_without_response_hz"], abs=1e-4)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("frequency_response:\n", "frequency_response:\n  members: [a, c, zz]\n"), None),
        (("  step_s: 0.05", "  step_s: 0.3"), "step_s: 0.3 s does not divide time.resolution_s"),
        (("duration_s: 18}", "duration_s: 60}"), "signal.duration_s: 60 s is longer than the run"),
        (("service: gb-dc-low", "service: gb-dc-sideways"), "unknown frequency service 'gb-dc-sideways'"),
        (("{t_s: 8, f_hz: 49.5}", "{t_s: 8, f_hz: 45}"), "frequency 45..50 Hz outside 47..53 Hz"),
    ],
)
def test_bad_frequency_response_sections_exit_2_naming_the_field(tmp_path, change, message):
    text = _scenario(tmp_path).read_text()
    assert change[0] in text
    text = text.replace(*change, 1)
    (tmp_path / "bad.yaml").write_text(text)
    res = fpp("validate", tmp_path / "bad.yaml")
    assert res.returncode == EXIT_USER_ERROR, res.stderr + res.stdout
    assert "Traceback" not in res.stderr
    if message is None:  # members: a home without a battery and an unknown id, both named
        assert "frequency_response.members[1]: prosumer 'c' has no battery" in res.stderr
        assert "frequency_response.members[2]: unknown prosumer 'zz'" in res.stderr
    else:
        assert message in res.stderr


@pytest.mark.realtime
def test_real_time_mixed_rates_records_tick_and_step_lateness(tmp_path):
    short = "{kind: steps, points: [{t_s: 0, f_hz: 50.0}, {t_s: 3, f_hz: 49.5}], duration_s: 8}"
    res = fpp("run", _scenario(tmp_path, duration_h=0.0025, signal=short), "--out", tmp_path / "out", "--no-progress",
              "--real-time")
    assert res.returncode in (0, EXIT_VERDICT_FAILED), res.stderr + res.stdout
    rt = json.loads((tmp_path / "out" / "kpis.json").read_text())["real_time"]
    assert rt["step_s"] == 0.05 and rt["steps"] == 180
    assert rt["slow_steps"]["steps"] == 9 and rt["slow_steps"]["step_s"] == 1.0
    # generous bounds (the tight figures are in BENCHMARKS.md): no tick a whole tick late on this machine
    assert rt["missed_deadlines"] == 0 and rt["lateness_p99_ms"] < 50


@pytest.mark.slow
def test_shipped_example_passes_as_docs_services_md_says(tmp_path):
    """scenarios/frequency-response.yaml (15 min, 18,000 ticks beside 900 steps and a 5-minute market)."""
    res = fpp("run", ROOT / "scenarios" / "frequency-response.yaml", "--out", tmp_path / "out", "--no-progress",
              "--check")
    assert res.returncode == 0, res.stderr + res.stdout
    fr = json.loads((tmp_path / "out" / "kpis.json").read_text())["frequency_response"]
    assert (fr["members"], fr["contracted_kw"], fr["ticks"]) == (24, 60.0, 18000)
    # GB DC low at the 49.55 Hz nadir: 5 % + 95 % × (49.8 − 49.55) / 0.3 = 84.2 % of 60 kW = 50.5 kW; the
    # nadir is passed in one tick, so the 0.3 s inverters reach 99 % of it
    assert fr["delivered_max_kw"] == pytest.approx(0.8417 * 60, rel=0.01)
    assert fr["members_failing"] == 0
    assert "<h2>Frequency response</h2>" in (tmp_path / "out" / "report.html").read_text()
