"""The demo scenario on a short window, end to end through mosaik, twice with the same seed."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]


def short_demo(tmp_path: Path, hours: float = 2.0) -> Path:
    text = (ROOT / "scenarios" / "demo.yaml").read_text()
    # Evening hours, when the EVs are home and the batteries discharge.
    text = text.replace("start: 2016-07-24T00:00:00", "start: 2016-07-24T17:00:00")
    text = text.replace("duration_h: 24", f"duration_h: {hours}")
    path = tmp_path / "short.yaml"
    path.write_text(text)
    return path


def fpp(*args):
    return subprocess.run([sys.executable, "-m", "testbed", *map(str, args)], capture_output=True, text=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    scenario = short_demo(tmp)
    outs = []
    for name, seed in (("a", None), ("b", None), ("c", 7)):
        args = ["run", scenario, "--out", tmp / name, "--no-progress"] + (["--seed", seed] if seed else [])
        res = fpp(*args)
        assert res.returncode == 0, res.stderr
        outs.append(tmp / name)
    return outs


def test_run_folder_contents(runs):
    a = runs[0]
    # the demo has a market day: the platform's ledger, log and green provenance join the run folder
    assert sorted(p.name for p in a.iterdir()) == ["green_provenance.csv", "kpis.json", "ledger.db", "platform",
                                                     "report.html", "run.json", "scenario.yaml",
                                                     "timeseries.parquet", "verdict.json", "versions.json"]
    # 17:00-19:00 in July, within all limits, every market interval cleared
    verdict = json.loads((a / "verdict.json").read_text())
    assert verdict["status"] == "pass" and {c["group"] for c in verdict["criteria"]} == {"grid", "market"}
    assert '<h1>demo: <span class="pass">PASS</span></h1>' in (a / "report.html").read_text()
    assert json.loads((a / "versions.json").read_text())["mosaik"].startswith("3.")
    run = json.loads((a / "run.json").read_text())
    assert run["steps"] == 8 and run["prosumers"] == 118 and run["seed"] == 42


def test_same_seed_same_kpis_other_seed_other_fleet(runs):
    a, b, c = (json.loads((r / "kpis.json").read_text()) for r in runs)
    assert a == b
    assert a["ev_kwh"] != c["ev_kwh"]  # seed 7 draws other EV owners, trips and times
    assert a["prosumers"] != c["prosumers"]


def test_energy_balance_through_the_feeder(runs):
    k = json.loads((runs[0] / "kpis.json").read_text())
    # With the grid's own loads replaced, what the feeder imports is what the homes import net, plus losses.
    # Tolerance: Newton-Raphson mismatch 1e-5 kW per bus x 129 buses x 8 steps x 0.25 h < 3e-3 kWh.
    net_feeder = k["grid_import_kwh"] - k["grid_export_kwh"]
    net_homes = k["prosumer_import_kwh"] - k["prosumer_export_kwh"]
    assert net_feeder == pytest.approx(net_homes + k["losses_kwh"], abs=3e-3)
    assert k["non_converged_steps"] == 0 and k["steps"] == 8


def test_timeseries_identity_per_home(runs):
    t = pq.read_table(runs[0] / "timeseries.parquet").to_pandas()
    assert len(t) == 8 and str(t.time.iloc[0]) == "2016-07-24 17:00:00"
    homes = [c.split("/", 1)[1] for c in t.columns if c.startswith("p_kw/")]
    assert len(homes) == 118
    for h in homes[:20]:
        expected = t[f"pv_kw/{h}"] - t[f"load_kw/{h}"] - t[f"ev_kw/{h}"] + t[f"battery_kw/{h}"]
        np.testing.assert_allclose(t[f"p_kw/{h}"], expected, atol=1e-9)
    vm = t[[c for c in t.columns if c.startswith("vm_pu/")]].to_numpy()
    assert vm.shape[1] == 129 and np.all((vm > 0.9) & (vm < 1.1))
    # The evening fleet charges EVs: some load must come from them.
    assert t[[c for c in t.columns if c.startswith("ev_kw/")]].to_numpy().sum() > 0


def test_validate_and_schema_commands(tmp_path):
    res = fpp("validate", ROOT / "scenarios" / "demo.yaml")
    assert res.returncode == 0 and "118 prosumers (47 with PV, 24 with batteries, 18 with EVs)" in res.stdout
    res = fpp("schema")
    committed = json.loads((ROOT / "scenarios" / "scenario.schema.json").read_text())
    assert json.loads(res.stdout) == committed, "scenarios/scenario.schema.json is stale: run fpp schema --out it"
    res = fpp("run", tmp_path / "missing.yaml")
    assert res.returncode == 2 and "no such scenario file" in res.stderr
