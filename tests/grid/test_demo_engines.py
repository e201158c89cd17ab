"""The foundation's demo scenario runs unchanged with ``grid.engine: opendss`` and gives pandapower's KPIs.

A 6-hour window (24 steps of 900 s, evening peak with EV charging) keeps the test short; everything else in the
scenario is untouched. Tolerances: the engines agree to ~2e-5 pu and ~0.5 % losses on this grid
(test_cross_engine.py), so voltages to 1e-4 pu, losses to 1 %, energies at the slack to 0.1 %.
"""

from pathlib import Path

import pytest

from testbed.orchestration.plan import prepare, read_scenario
from testbed.orchestration.runner import run

DEMO = Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml"


def _run(engine: str, tmp_path: Path) -> dict:
    sc = read_scenario(DEMO)
    sc = sc.model_copy(
        update={
            "time": sc.time.model_copy(update={"start": sc.time.start.replace(hour=15), "duration_h": 6}),
            "grid": sc.grid.model_copy(update={"engine": engine}),
        }
    )
    plan = prepare(sc, base_dir=DEMO.parent, source=None)
    return run(plan, tmp_path / engine, progress=False).kpis


@pytest.fixture(scope="module")
def kpis(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("demo")
    return {engine: _run(engine, tmp) for engine in ("pandapower", "opendss")}


def test_demo_runs_on_opendss(kpis):
    k = kpis["opendss"]
    assert k["steps"] == 24
    assert k["non_converged_steps"] == 0


def test_demo_kpis_agree_between_engines(kpis):
    a, b = kpis["pandapower"], kpis["opendss"]
    # The fleet does not depend on the grid engine: identical to the last digit.
    for key in ("load_kwh", "pv_kwh", "ev_kwh", "prosumer_import_kwh", "prosumer_export_kwh"):
        assert b[key] == a[key], key
    assert b["losses_kwh"] == pytest.approx(a["losses_kwh"], rel=0.01)
    assert b["grid_import_kwh"] == pytest.approx(a["grid_import_kwh"], rel=1e-3)
    assert b["v_min_pu"] == pytest.approx(a["v_min_pu"], abs=1e-4)
    assert b["v_max_pu"] == pytest.approx(a["v_max_pu"], abs=1e-4)
    assert b["peak_trafo_loading_pct"] == pytest.approx(a["peak_trafo_loading_pct"], abs=0.05)
    assert b["peak_line_loading_pct"] == pytest.approx(a["peak_line_loading_pct"], abs=0.05)
