"""report.html: the verdict against the limits (hand-made KPIs), the chart geometry, and a real run's page."""

import math
import re
import subprocess
import sys

import numpy as np

from testbed.orchestration.report import _H, _PAD, _W, checks, polyline

from .test_scenario_errors import GOOD

OK = {
    "steps": 96,
    "non_converged_steps": 0,
    "minutes_outside_voltage_limits": 0.0,
    "v_min_pu": 0.95,
    "v_max_pu": 1.04,
    "peak_line_loading_pct": 80.0,
    "peak_trafo_loading_pct": 99.9,
}


def test_verdict_passes_only_inside_every_limit():
    assert all(c.passed for c in checks(OK, 0.9, 1.1))
    failing = [
        ({"non_converged_steps": 2}, "power flow converged at every step"),
        ({"minutes_outside_voltage_limits": 15.0}, "voltages within 0.9..1.1 pu"),
        ({"peak_line_loading_pct": 100.5}, "lines within their rating"),
        ({"peak_trafo_loading_pct": math.nan}, "transformers within their rating"),  # every step failed
    ]
    for change, name in failing:
        result = {c.name: c.passed for c in checks({**OK, **change}, 0.9, 1.1)}
        assert result.pop(name) is False and all(result.values()), change


def test_market_intervals_without_orders_pass_and_failed_ones_do_not():
    market = {"interval_status": {"no_orders": 1, "optimal": 94}}
    assert all(c.passed for c in checks({**OK, "market": market}, 0.9, 1.1))
    market = {"interval_status": {"optimal": 94, "infeasible": 2}}
    last = checks({**OK, "market": market}, 0.9, 1.1)[-1]
    assert not last.passed and last.detail == "2 infeasible, 94 optimal"


def test_polyline_points_hand_computed():
    # 4 steps over a 0..1 axis: x runs from the left margin to W - 8; y from the bottom (H - PAD) to the top (8).
    pts = polyline(np.array([0.0, 1.0, np.nan, 0.5]), 0.0, 1.0).split()
    width, height = _W - _PAD - 8, _H - _PAD - 8
    assert pts == [
        f"{_PAD:.1f},{8 + height:.1f}",
        f"{_PAD + width / 3:.1f},8.0",
        f"{_PAD + width:.1f},{8 + height / 2:.1f}",  # the NaN step is left out
    ]


def test_a_run_writes_its_report_and_fpp_report_rewrites_it(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    out = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-m", "testbed", "run", str(path), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    page = (out / "report.html").read_text()
    assert "<h1>t: PASS</h1>" in page
    # one point per step (4 steps of 15 minutes) in each of the voltage chart's two lines
    lines = re.findall(r'<polyline points="([^"]*)"', page)
    assert len(lines) == 4 and all(len(pts.split()) == 4 for pts in lines)
    (out / "report.html").unlink()
    res = subprocess.run([sys.executable, "-m", "testbed", "report", str(out)], capture_output=True, text=True)
    assert res.returncode == 0 and (out / "report.html").read_text() == page  # the same files, the same page


def test_report_of_a_folder_that_is_no_run(tmp_path):
    res = subprocess.run([sys.executable, "-m", "testbed", "report", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "not a finished run folder" in res.stderr and "kpis.json is missing" in res.stderr
