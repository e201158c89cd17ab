"""Real-time runs keep the wall clock (simulators/pacing.py) and say how well they did.

- the clock: a step never starts before its due time, its lateness is recorded, and the lateness budget
  raises a fault at the first step later than it (a deterministic late step: the caller sleeps past it);
- a mosaik world of paced simulators, one of which takes longer than a step on purpose: the steps after it
  are late, the lateness is measured, and the budget ends the world with the fault;
- ``fpp run --real-time`` on the lab scenario of docs/hil.md without a device: no "too slow" warning, a
  ``real_time`` section in kpis.json with generous bounds (the tight figures are in the benchmark), the
  lateness chart in report.html; the budget's exit 3 keeps a readable run folder; bad options exit 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import mosaik
import mosaik_api_v3
import pytest
from mosaik.starters import PythonStarter

from simulators.pacing import LatenessExceeded, Paced, WallClock
from testbed.domain.errors import EXIT_FAULT, EXIT_USER_ERROR

LAB = """\
schema_version: 1
name: lab-rt
seed: 1
time: {start: 2016-01-12T19:00:00, duration_h: 0.0025, resolution_s: 1}
grid: {network: "simbench:1-LV-rural3--0-sw"}
prosumers:
  - id: lab
    bus: LV3.101 Bus 5
    load: {profile: H0-A, annual_kwh: 20000}
    battery: {capacity_kwh: 0.2, power_kw: 5, round_trip_efficiency: 1.0}
"""


def test_clock_never_starts_a_step_early_and_records_lateness():
    clock = WallClock(0.01)
    clock.ready()
    for t in range(6):
        clock.wait_until(t)
        assert time.perf_counter() >= clock.due(t)
    clock.wait_until(5)  # a second simulator at the same step time is not paced or counted again
    assert [t for t, _ in clock.lateness] == list(range(6))
    assert all(late >= 0 for _, late in clock.lateness)
    k = clock.kpis()
    assert k["steps"] == 6 and k["missed_deadlines"] == clock.stats().missed


def test_clock_budget_raises_at_the_first_step_later_than_it():
    clock = WallClock(0.005, max_lateness_s=0.010)
    clock.ready()
    clock.wait_until(0)
    clock.wait_until(1)
    time.sleep(0.040)  # step 2 is due 5 ms after step 1; it now starts >= 30 ms late
    with pytest.raises(LatenessExceeded, match="step 2 started .* ms late, past the run's lateness budget of 10 ms"):
        clock.wait_until(2)
    assert clock.lateness[-1][0] == 2 and clock.lateness[-1][1] >= 0.030
    assert clock.stats().missed >= 1  # at least one step length late


def test_bad_clock_parameters_are_refused():
    with pytest.raises(ValueError, match="seconds_per_step"):
        WallClock(0.0)
    with pytest.raises(ValueError, match="max_lateness_s"):
        WallClock(1.0, max_lateness_s=-1.0)


class Work(mosaik_api_v3.Simulator):
    """A workload, not a fake: each step takes ``work_s`` of wall time at the step times in ``slow_at``."""

    def __init__(self):
        super().__init__({"api_version": "3.0", "type": "time-based",
                          "models": {"W": {"public": True, "params": [], "attrs": ["x"]}}})
        self.steps: list[tuple[int, float]] = []

    def init(self, sid, time_resolution=1.0, work_s=0.0, slow_at=()):
        self.work_s, self.slow_at = work_s, set(slow_at)
        return self.meta

    def create(self, num, model, **kw):
        return [{"eid": f"w{i}", "type": model} for i in range(num)]

    def step(self, t, inputs, max_advance):
        self.steps.append((t, time.perf_counter()))
        if t in self.slow_at:
            time.sleep(self.work_s)
        return t + 1

    def get_data(self, outputs):
        return {eid: {"x": 1.0} for eid in outputs}


def _paced_world(clock: WallClock, slow_at=(3,), work_s=0.08):
    world = mosaik.World({}, time_resolution=0.02, skip_greetings=True, configure_logging=False)
    a = world.start(PythonStarter(Paced, kwargs={"inner": Work, "clock": clock}), sim_id="A",
                    work_s=work_s, slow_at=slow_at).W()
    b = world.start(PythonStarter(Paced, kwargs={"inner": Work, "clock": clock}), sim_id="B").W()
    world.connect(a, b, "x")
    return world


def test_paced_mosaik_world_measures_the_steps_a_slow_step_delays():
    clock = WallClock(0.02)
    world = _paced_world(clock)
    world.run(until=10, print_progress=False)
    lateness = dict(clock.lateness)
    assert sorted(lateness) == list(range(10))
    # step 3 takes 80 ms: step 4 (due 20 ms after 3) starts >= 60 ms late, then the clock catches up
    assert lateness[4] >= 0.060
    assert max(lateness[t] for t in (0, 1, 2, 3)) < 0.060
    assert lateness[9] < lateness[4]
    assert clock.stats().missed >= 1


def test_paced_mosaik_world_stops_at_the_lateness_budget():
    clock = WallClock(0.02, max_lateness_s=0.030)
    world = _paced_world(clock)
    with pytest.raises(LatenessExceeded, match="step 4"):
        world.run(until=10, print_progress=False)
    world.shutdown()


def fpp(*args):
    return subprocess.run([sys.executable, "-m", "testbed", *map(str, args)], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.realtime
def test_real_time_run_records_lateness_without_warnings(tmp_path):
    (tmp_path / "lab.yaml").write_text(LAB)
    res = fpp("run", tmp_path / "lab.yaml", "--out", tmp_path / "out", "--no-progress", "--real-time")
    assert res.returncode == 0, res.stderr
    assert "too slow" not in res.stderr and "Warning" not in res.stderr
    assert "real time: warm-up" in res.stdout
    rt = json.loads((tmp_path / "out" / "kpis.json").read_text())["real_time"]
    assert rt["steps"] == 9 and rt["step_s"] == 1.0 and rt["warmup_s"] > 0
    # generous bounds for a shared CI machine; the benchmark holds the tight figures
    assert rt["missed_deadlines"] == 0 and rt["lateness_max_ms"] < 500
    lateness = json.loads((tmp_path / "out" / "lateness.json").read_text())
    assert lateness["step"] == list(range(9))
    verdict = json.loads((tmp_path / "out" / "verdict.json").read_text())
    assert any(c["name"] == "real-time deadlines" and c["passed"] for c in verdict["criteria"])
    assert "Step lateness against the wall clock" in (tmp_path / "out" / "report.html").read_text()


@pytest.mark.realtime
def test_lateness_budget_ends_the_run_as_a_fault_and_keeps_the_folder(tmp_path):
    (tmp_path / "lab.yaml").write_text(LAB)
    # 1 µs: the first step cannot start that soon after the clock's time zero (mosaik's own start-up is
    # longer), so the budget is exceeded at step 0 on any machine.
    res = fpp("run", tmp_path / "lab.yaml", "--out", tmp_path / "out", "--no-progress", "--real-time",
              "--max-lateness-ms", "0.001")
    assert res.returncode == EXIT_FAULT, res.stderr
    assert "lateness budget of 0.001 ms" in res.stderr and "Traceback" not in res.stderr
    out = tmp_path / "out"
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["status"] == "fault" and "step 0" in verdict["fault"]
    assert json.loads((out / "kpis.json").read_text())["real_time"]["max_lateness_ms"] == pytest.approx(0.001)
    assert (out / "report.html").is_file()
    again = fpp("report", out)
    assert again.returncode == 0, again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--max-lateness-ms", "5"), "only a real-time run has a lateness budget"),
        (("--real-time", "--max-lateness-ms", "-1"), "finite number of milliseconds > 0"),
        (("--real-time", "--max-lateness-ms", "nan"), "finite number of milliseconds > 0"),
    ],
)
def test_bad_lateness_budget_options_exit_2(tmp_path, args, message):
    (tmp_path / "lab.yaml").write_text(LAB)
    res = fpp("run", tmp_path / "lab.yaml", "--out", tmp_path / "out", "--no-progress", *args)
    assert res.returncode == EXIT_USER_ERROR
    assert message in res.stderr and "Traceback" not in res.stderr
