"""Verdicts as data: status and exit code from the criteria, the grid and market criteria from hand-made KPIs."""

import math

import pytest

from testbed.domain.verdict import Criterion, Verdict, grid_criteria, market_criteria

OK = {
    "steps": 96,
    "non_converged_steps": 0,
    "minutes_outside_voltage_limits": 0.0,
    "v_min_pu": 0.95,
    "v_max_pu": 1.04,
    "peak_line_loading_pct": 80.0,
    "peak_trafo_loading_pct": 99.9,
}


def test_status_and_exit_code_follow_the_criteria():
    ok, bad, unknown = Criterion("a", True), Criterion("b", False), Criterion("c", None)
    assert (Verdict((ok,)).status, Verdict((ok,)).exit_code) == ("pass", 0)
    assert (Verdict((ok, bad, unknown)).status, Verdict((ok, bad)).exit_code) == ("fail", 1)
    assert (Verdict((ok, unknown)).status, Verdict((ok, unknown)).exit_code) == ("inconclusive", 1)
    assert Verdict((ok,), inconclusive="steps 40 ms late").status == "inconclusive"
    faulted = Verdict((ok,), fault="inverter at 10.0.0.5:502 stopped answering")
    assert (faulted.status, faulted.exit_code) == ("fault", 3)
    assert Verdict((ok, bad)).summary().startswith("FAIL: b")


def test_verdict_round_trips_through_its_dict():
    v = Verdict((Criterion("x", True, 1.5, 2.0, "kW", "d", "fpp"),), inconclusive=None, notes=("n",))
    assert Verdict.from_dict(v.as_dict()) == v


def test_grid_criteria_pass_only_inside_every_limit():
    assert all(c.passed for c in grid_criteria(OK, 0.9, 1.1))
    failing = [
        ({"non_converged_steps": 2}, "power flow converged at every step", 2.0),
        ({"minutes_outside_voltage_limits": 15.0}, "voltages within 0.9..1.1 pu", 15.0),
        ({"peak_line_loading_pct": 100.5}, "lines within their rating", 100.5),
    ]
    for change, name, figure in failing:
        result = {c.name: c for c in grid_criteria({**OK, **change}, 0.9, 1.1)}
        c = result.pop(name)
        assert c.passed is False and c.figure == figure and all(r.passed for r in result.values()), change


def test_a_missing_figure_cannot_be_judged():
    # every step failed: no loading figure; the criterion is neither a pass nor a fail
    c = {c.name: c for c in grid_criteria({**OK, "peak_trafo_loading_pct": math.nan}, 0.9, 1.1)}
    assert c["transformers within their rating"].passed is None
    assert Verdict(tuple(c.values())).status == "inconclusive"


@pytest.mark.parametrize(
    ("status", "passed", "detail"),
    [({"no_orders": 1, "optimal": 94}, True, "1 no_orders, 94 optimal"),
     ({"optimal": 94, "infeasible": 2}, False, "2 infeasible, 94 optimal")],
)
def test_market_intervals_without_orders_pass_and_failed_ones_do_not(status, passed, detail):
    (c,) = market_criteria({"interval_status": status})
    assert (c.passed, c.detail, c.group) == (passed, detail, "market")
