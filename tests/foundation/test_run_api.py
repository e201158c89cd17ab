"""The run API and overrides: testbed.run, --set validated like the file, fpp run --check, unique folders."""

import json
import subprocess
import sys
import textwrap

import pytest

import testbed
from testbed.cli import main
from testbed.domain.errors import UserError
from testbed.domain.scenario.loader import parse_scenario
from testbed.domain.scenario.overrides import apply_overrides, parse_assignment, split_path

from .test_scenario_errors import GOOD


def fpp(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "testbed", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_paths_and_assignments():
    assert split_path("prosumers[0].battery.capacity_kwh") == ["prosumers", 0, "battery", "capacity_kwh"]
    assert split_path("prosumers.1.pv") == ["prosumers", 1, "pv"]
    assert parse_assignment("fleet.battery.share=0.8") == ("fleet.battery.share", 0.8)
    assert parse_assignment("fleet.pv.profiles=[PV1, PV3]") == ("fleet.pv.profiles", ["PV1", "PV3"])
    assert parse_assignment("grid.engine=opendss") == ("grid.engine", "opendss")
    with pytest.raises(UserError, match="expected PATH=VALUE"):
        parse_assignment("fleet.battery.share")


def test_overrides_that_cannot_apply_are_all_listed():
    data = {"seed": 1, "prosumers": [{"id": "a"}]}
    with pytest.raises(UserError) as err:
        apply_overrides(data, {"seed.x": 1, "prosumers[3].id": "b", "prosumers[0].pv kwp": 2})
    assert err.value.problems == [
        "override seed.x: seed is not a mapping, so it has no field 'x'",
        "override prosumers[3].id: prosumers has 1 item(s), so [3] is past its end",
        "override 'prosumers[0].pv kwp': 'pv kwp' is not a field name (letters, digits, _) with optional [index]",
    ]
    assert data == {"seed": 1, "prosumers": [{"id": "a"}]}  # the input is not touched
    assert apply_overrides(data, {"prosumers[0].pv.kwp": 2})["prosumers"][0]["pv"] == {"kwp": 2}


def test_overridden_values_are_validated_like_the_file_and_named():
    sc = parse_scenario(GOOD, overrides={"prosumers[0].battery.capacity_kwh": 12.5, "seed": 9})
    assert (sc.prosumers[0].battery.capacity_kwh, sc.seed) == (12.5, 9)
    with pytest.raises(UserError) as err:
        parse_scenario(GOOD, "s.yaml", overrides={"prosumers[0].battery.capacity_kwh": -1, "grid.engin": "x"})
    assert err.value.problems == [
        "grid.engin (override grid.engin='x'): unknown field (check the spelling; see `fpp schema` for the fields)",
        "prosumers[0].battery.capacity_kwh (override prosumers[0].battery.capacity_kwh=-1): "
        "input should be greater than 0, got -1",
    ]


def test_fpp_run_check_exits_1_when_the_verdict_fails(tmp_path, capsys):
    # (the pass path, exit 0 with --check, is test_report's run)
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    # The feeder's voltages sit at 1.02..1.03 pu this June night: an upper limit of 1.0 pu fails the run.
    args = ("--no-progress", "--set", "grid.v_max_pu=1.0")
    failed = fpp("run", path, "--out", tmp_path / "bad", *args, "--check")
    assert failed.returncode == 1, failed.stderr[-2000:]
    assert "verdict: FAIL: voltages within 0.9..1 pu" in failed.stdout
    verdict = json.loads((tmp_path / "bad" / "verdict.json").read_text())
    voltage = next(c for c in verdict["criteria"] if c["name"].startswith("voltages"))
    assert (verdict["status"], voltage["passed"], voltage["figure"]) == ("fail", False, 60.0)  # all 4 steps of 15 min
    assert "with overrides: grid.v_max_pu=1.0" in (tmp_path / "bad" / "scenario.yaml").read_text()
    # without --check a finished run exits 0, whatever its verdict
    assert main(["run", str(path), "--out", str(tmp_path / "bad2"), *args]) == 0
    assert "verdict: FAIL" in capsys.readouterr().out


def test_a_bad_override_is_a_user_error_before_anything_runs(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    res = fpp("run", path, "--out", tmp_path / "x", "--set", "prosumers[0].battery.power_kw=-3")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "prosumers[0].battery.power_kw (override prosumers[0].battery.power_kw=-3)" in res.stderr
    assert not (tmp_path / "x").exists()


def test_two_overridden_runs_in_parallel_processes_get_their_own_folders(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("name: t", f"name: t\noutputs: {{dir: {tmp_path / 'results'}}}"))
    code = textwrap.dedent(
        """
        import json, sys, testbed
        cap = float(sys.argv[1])
        r = testbed.run(sys.argv[2], overrides={"prosumers[0].battery.capacity_kwh": cap, "seed": 5})
        print(json.dumps({"dir": str(r.run_dir), "status": r.verdict.status, "discharge": r.kpis["battery_discharge_kwh"]}))
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, cap, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for cap in ("0.1", "20")
    ]
    outs = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=600)
        assert p.returncode == 0, stderr[-2000:]
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    small, large = outs
    assert small["dir"] != large["dir"] and all(o["status"] == "pass" for o in outs)
    # both started in the same second or not: each folder is its own, named by the seed override
    assert all("-seed5" in o["dir"] for o in outs)
    # a 0.1 kWh battery at half charge holds ~0.05 kWh: less than the ~0.11 kWh the night hour needs
    assert small["discharge"] < large["discharge"]
    for o in outs:
        run = json.loads((tmp_path / "results" / o["dir"].rsplit("/", 1)[-1] / "run.json").read_text())
        assert run["overrides"]["seed"] == 5


def test_run_api_takes_a_mapping_and_returns_the_verdict(tmp_path):
    import yaml

    data = yaml.safe_load(GOOD)
    result = testbed.run(data, overrides={"grid.v_min_pu": 1.05}, out=tmp_path / "r")
    assert result.verdict.status == "fail" and result.run_dir == tmp_path / "r"
    assert [c.name for c in result.verdict.failed()] == ["voltages within 1.05..1.1 pu"]
    assert json.loads((tmp_path / "r" / "kpis.json").read_text()) == result.kpis
