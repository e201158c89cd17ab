"""``fpp grid solve`` / ``compare`` / ``export`` through the real CLI entry point."""

import json
from pathlib import Path

import numpy as np
import pytest

from testbed.cli import main

FEEDER = Path(__file__).resolve().parents[2] / "simulators" / "grid" / "feeders" / "unbalanced_lv.dss"


@pytest.mark.parametrize("engine", ["pandapower", "opendss"])
def test_solve_json_case33bw(capsys, engine):
    assert main(["grid", "solve", "pandapower:case33bw", "--engine", engine, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["converged"] and out["engine"] == engine
    vm = np.array([b["vm_pu"] for b in out["buses"]])
    # Baran & Wu (1989) base case: 0.9131 pu at bus 18 (id "17"), 202.7 kW losses.
    assert out["buses"][int(np.argmin(vm))]["id"] == "17"
    assert vm.min() == pytest.approx(0.9131, abs=5e-5)
    assert out["losses_kw"] == pytest.approx(202.7, abs=0.05)
    assert len(out["lines"]) == 37


def test_solve_table_of_a_dss_file_defaults_to_opendss(capsys):
    assert main(["grid", "solve", str(FEEDER)]) == 0
    text = capsys.readouterr().out
    assert "on opendss" in text and "unbalanced" in text
    assert "vm_pu a / b / c" in text
    assert "converged: yes" in text
    assert "n2" in text and "lateral" in text


def test_compare_json_case33bw(capsys):
    assert main(["grid", "compare", "pandapower:case33bw", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["engines"] == ["pandapower", "opendss"]
    assert out["max_vm_diff_pu"]["diff"] < 1e-6  # no transformer: the export is exact to solver tolerance
    assert abs(out["losses_diff_rel"]) < 1e-6


def test_compare_table(capsys):
    assert main(["grid", "compare", "pandapower:case33bw"]) == 0
    text = capsys.readouterr().out
    assert "largest differences" in text and "total losses" in text


def test_export_writes_a_circuit_opendss_solves(tmp_path, capsys):
    out = tmp_path / "case33bw.dss"
    assert main(["grid", "export", "pandapower:case33bw", str(out)]) == 0
    assert main(["grid", "solve", str(out), "--json"]) == 0
    text = capsys.readouterr().out
    result = json.loads(text[text.index("{"):])
    vm = {b["id"]: b["vm_pu"] for b in result["buses"]}
    assert vm["b17"] == pytest.approx(0.9131, abs=5e-5)


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["grid", "solve", "missing.dss"], "no such file"),
        (["grid", "solve", "simbench:no-such-grid", "--engine", "opendss"], "not a SimBench grid code"),
        (["grid", "solve", "feeder.dss", "--engine", "pandapower"], "needs the OpenDSS engine"),
        (["grid", "compare", str(FEEDER)], "compare needs a network both engines read"),
    ],
)
def test_user_errors_exit_2_without_traceback(capsys, argv, fragment):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


@pytest.mark.parametrize("engine", ["pandapower", "opendss"])
def test_solve_reports_non_convergence_with_exit_code_1(tmp_path, capsys, engine):
    import pandapower as pp

    from simulators.grid.networks import load_pandapower

    net = load_pandapower("pandapower:case33bw")
    net.load["scaling"] = 6.0  # six times the base load: beyond the feeder's loadability, no solution exists
    path = tmp_path / "heavy.json"
    pp.to_json(net, str(path))
    assert main(["grid", "solve", str(path), "--engine", engine]) == 1
    assert "converged: no" in capsys.readouterr().out
