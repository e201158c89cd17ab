"""The campaign file and its design of experiments (pure): full grid, ranges, seeds, Latin hypercube, content
keys, every bad experiment listed at once, and the hosting capacity worked out by hand; the progress display."""

import copy
import io
from pathlib import Path

import numpy as np
import pytest
import yaml

from testbed.domain.campaign.analysis import hosting_capacity
from testbed.domain.campaign.design import experiments, range_values
from testbed.domain.campaign.models import Campaign, RangeSpec, TargetMetric
from testbed.domain.errors import UserError
from testbed.orchestration.campaign.engine import progress_printer
from testbed.orchestration.campaign.plan import parse_campaign

from .conftest import TINY, campaign_data

ROOT = Path(__file__).resolve().parents[2]


def _campaign(inputs, **spec) -> Campaign:
    return Campaign.model_validate(campaign_data(inputs, **spec))


def test_ranges_include_stop_on_the_step_despite_float_steps():
    assert range_values(RangeSpec(start=0.1, stop=0.3, step=0.1)) == [0.1, 0.2, 0.3]
    assert range_values(RangeSpec(start=0, stop=1, step=0.25)) == [0, 0.25, 0.5, 0.75, 1.0]
    assert range_values(RangeSpec(start=0, stop=1, step=0.3)) == [0, 0.3, 0.6, 0.9]  # 1.2 > stop: left out


def test_full_grid_times_seeds_in_file_order():
    c = _campaign({"fleet.pv.share": [0.2, 0.8], "fleet.pv.kwp.max": {"start": 10, "stop": 14, "step": 2}},
                  seeds=[1, 2])
    exps = experiments(c, "scenario", TINY)
    assert len(exps) == 2 * 3 * 2
    assert exps[0].parameters == {"fleet.pv.share": 0.2, "fleet.pv.kwp.max": 10, "seed": 1}
    assert exps[1].parameters == {"fleet.pv.share": 0.2, "fleet.pv.kwp.max": 10, "seed": 2}
    assert exps[-1].parameters == {"fleet.pv.share": 0.8, "fleet.pv.kwp.max": 14, "seed": 2}
    assert len({e.key for e in exps}) == 12


def test_key_is_the_hash_of_the_content():
    c = _campaign({"fleet.pv.share": [0.2, 0.4]})
    a = experiments(c, "scenario", TINY)
    again = experiments(c, "scenario", copy.deepcopy(TINY))
    assert [e.key for e in a] == [e.key for e in again]
    other_base = TINY | {"seed": 2}
    assert {e.key for e in experiments(c, "scenario", other_base)}.isdisjoint({e.key for e in a})
    # the same content reached by an override equal to the base's value has the base's key
    same = experiments(_campaign({"seed": [1]}), "scenario", TINY)[0]
    assert same.key == experiments(_campaign({"seed": [1, 5]}), "scenario", TINY)[0].key


def test_latin_hypercube_puts_one_point_in_each_stratum_and_repeats_with_its_seed():
    # McKay, Beckman and Conover (1979): with N samples each input's range holds exactly one point per 1/N
    design = {"kind": "latin-hypercube", "samples": 10, "seed": 7}
    c = _campaign({"fleet.pv.share": {"start": 0.0, "stop": 1.0}, "fleet.pv.kwp.max": {"start": 12, "stop": 22}},
                  design=design)
    exps = experiments(c, "scenario", TINY)
    share = np.array([e.parameters["fleet.pv.share"] for e in exps])
    kwp = np.array([e.parameters["fleet.pv.kwp.max"] for e in exps])
    assert sorted(np.floor(share * 10).astype(int)) == list(range(10))
    assert sorted(np.floor(kwp - 12).astype(int)) == list(range(10))
    again = experiments(c, "scenario", TINY)
    assert [e.parameters for e in again] == [e.parameters for e in exps]
    other = experiments(_campaign(c.test_specification.inputs, design=design | {"seed": 8}), "scenario", TINY)
    assert [e.parameters for e in other] != [e.parameters for e in exps]


def test_continuous_range_needs_a_latin_hypercube():
    with pytest.raises(UserError) as err:
        experiments(_campaign({"fleet.pv.share": {"start": 0, "stop": 1}}), "scenario", TINY)
    assert "give step for a full grid" in err.value.problems[0]


def test_every_bad_experiment_is_listed_at_once():
    c = _campaign({"fleet.pv.share": [0.5, 1.5, -1], "time.resolution_s": [900]})
    with pytest.raises(UserError) as err:
        experiments(c, "scenario", TINY)
    text = err.value.render()
    assert "2 problem(s) in 3 experiment(s); nothing was run" in text
    assert ("experiment 2 (fleet.pv.share=1.5, time.resolution_s=900): fleet.pv.share (override fleet.pv.share=1.5):"
            " input should be less than or equal to 1") in text
    assert "experiment 3 (fleet.pv.share=-1" in text


def test_a_path_that_cannot_be_set_is_named_with_its_experiment():
    c = _campaign({"prosumers[3].pv.kwp": [5], "fleet.pv.kwp": [{"min": 1, "max": 2}]})
    with pytest.raises(UserError) as err:
        experiments(c, "scenario", TINY)
    assert err.value.problems == [
        "experiment 1 (prosumers[3].pv.kwp=5, fleet.pv.kwp={'min': 1, 'max': 2}): override prosumers[3].pv.kwp: "
        "prosumers does not exist, so it cannot be indexed"
    ]


def test_seeds_cannot_vary_a_service_test():
    base = {"name": "x"}
    with pytest.raises(UserError) as err:
        experiments(_campaign({}, seeds={"first": 1, "count": 2}), "test", base)
    assert err.value.problems == ["test_specification.seeds: a service test has no seed to vary"]


def test_campaign_schema_problems_have_their_lines():
    text = """schema_version: 1
name: bad name
test_case:
  purpose: p
  system_under_test: s
  functions_under_investigation: []
  domain_under_investigation: [power]
  target_metrics: [{kpi: v_max_pu, maximum: 1.1}]
test_specification:
  test_system: t
  base: {scenario: a.yaml, test: b.yaml}
  design: {kind: latin-hypercube}
"""
    with pytest.raises(UserError) as err:
        parse_campaign(text, "c.yaml")
    problems = err.value.problems
    assert problems[0].startswith("name (line 2): string should match pattern")
    assert "test_case.functions_under_investigation (line 6): list should have at least 1 item" in problems[1]
    assert problems[2].startswith("test_case.target_metrics[0].maximum (line 8): unknown field")
    assert problems[3] == "test_specification.base (line 11): give exactly one of scenario or test"
    assert problems[4] == ("test_specification.design (line 12): samples: a Latin hypercube needs the number of "
                           "samples")
    assert len(problems) == 5


def _row(share, market, **metrics):
    return {"fleet.pv.share": share, "market": market, **metrics}


def test_hosting_capacity_per_strategy_by_hand():
    metrics = [TargetMetric(kpi="v_max_pu", max=1.1), TargetMetric(kpi="peak_line_loading_pct", max=100)]
    rows = [
        # without market: 0.6 exceeds the voltage limit on one of the days (1.104 > 1.1) -> capacity 0.4
        _row(0.2, None, v_max_pu=1.03, peak_line_loading_pct=40), _row(0.4, None, v_max_pu=1.08,
                                                                       peak_line_loading_pct=70),
        _row(0.6, None, v_max_pu=1.09, peak_line_loading_pct=80), _row(0.6, None, v_max_pu=1.104,
                                                                       peak_line_loading_pct=90),
        _row(0.8, None, v_max_pu=1.12, peak_line_loading_pct=120),
        # with market: nothing exceeded up to 0.8 -> at least 0.8
        _row(0.2, "m", v_max_pu=1.02, peak_line_loading_pct=30), _row(0.8, "m", v_max_pu=1.1,
                                                                      peak_line_loading_pct=100),
        # another strategy exceeding the loading at the smallest value tried -> below 0.2
        _row(0.2, "x", v_max_pu=1.0, peak_line_loading_pct=101),
    ]
    found = {h.group["market"]: h for h in hosting_capacity(rows, "fleet.pv.share", ["market"], metrics)}
    assert (found[None].value, found[None].first_exceeded_at, found[None].exceeded_by) == (0.4, 0.6, ("v_max_pu",))
    assert (found["m"].value, found["m"].first_exceeded_at) == (0.8, None)
    assert found["m"].describe() == "at least 0.8 (no limit exceeded up to the largest value tried)"
    assert (found["x"].value, found["x"].first_exceeded_at) == (None, 0.2)
    assert found["x"].describe() == "below 0.2 (already exceeded at the smallest value tried)"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise():
    term = _Terminal()
    on, close = progress_printer("c", term)
    on(3, 2, 1, 8, 65.0)
    close()
    assert "4/8" in term.getvalue() and "done 3, running 2, failed 1, ETA 1m05s" in term.getvalue()
    log = io.StringIO()
    on, close = progress_printer("c", log)
    on(0, 2, 0, 8, None)
    on(1, 2, 0, 8, 30.4)  # within 5 s of the first line: not printed until the end
    close()
    assert log.getvalue().splitlines() == ["c: 0/8 done, 2 running, 0 failed, ETA ?",
                                           "c: 1/8 done, 2 running, 0 failed, ETA 30s"]


def test_a_device_in_the_loop_is_marked_for_its_resource():
    fcr = yaml.safe_load((ROOT / "scenarios" / "tests" / "fcr-simulated-battery.yaml").read_text())
    data = campaign_data({"device": [fcr["device"], fcr["device"] | {"kind": "hil", "address": "10.0.0.9:502"}]})
    data["test_specification"]["base"] = {"test": "fcr.yaml"}
    exps = experiments(Campaign.model_validate(data), "test", fcr)
    assert [e.needs_device for e in exps] == [False, True]
