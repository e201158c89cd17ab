"""``fpp market clear``: real subprocess runs on case files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "cases"


def fpp(*args):
    return subprocess.run([sys.executable, "-m", "testbed", "market", *args], capture_output=True, text=True)


@pytest.mark.parametrize("mech", ["double-auction", "pay-as-bid", "pool", "p2p", "admm"])
def test_clear_example_case_to_stdout(mech):
    out = fpp("clear", str(CASES / "community.yaml"), "--mechanism", mech)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["status"] == "optimal" and res["mechanism"] == mech
    for key in ("total_cost", "price", "dispatch_kw", "grid_import_kw", "trades", "payments", "iterations"):
        assert key in res
    assert sum(res["dispatch_kw"].values()) + res["grid_import_kw"] == pytest.approx(0, abs=1e-3)


def test_worked_example_numbers(tmp_path):
    # docs/market.md, worked example: the pool price is 0.12 (chp is marginal: 0.01*2 + 0.10), pv 10 kW,
    # chp 2 kW, commpv 3 kW, house -6 kW, flat -9 kW; total cost
    # (0.1 + 0.2 + 0.02 + 0.2 + 0.03 - 2.04 - 2.745) * 0.25 h = -1.05875.
    out_file = tmp_path / "r.json"
    out = fpp("clear", str(CASES / "community.yaml"), "--mechanism", "pool", "--out", str(out_file))
    assert out.returncode == 0 and out.stdout == ""
    res = json.loads(out_file.read_text())
    assert res["price"] == pytest.approx(0.12)
    assert res["dispatch_kw"] == pytest.approx({"pv": 10, "chp": 2, "house": -6, "flat": -9, "commpv": 3})
    assert res["total_cost"] == pytest.approx(-1.05875)


def test_json_case_and_partners(tmp_path):
    case = {"interval_h": 1, "grid": {"import_price": 0.3, "export_price": 0.05},
            "agents": [{"id": f"a{i}", "p_min_kw": -2 if i % 2 else 0, "p_max_kw": 0 if i % 2 else 2,
                        "cost_a": 0.01, "cost_b": 0.1 + 0.02 * i} for i in range(8)]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(case))
    out = fpp("clear", str(path), "--mechanism", "admm", "--partners", "2")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"] == "optimal"


def test_malformed_case_is_one_paragraph_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("interval_h: 1\nagents:\n  - {id: a, p_min_kw: 3, p_max_kw: 1, cost_a: 0, cost_b: .nan}\n"
                    "  - {id: a, p_min_kw: 0, p_max_kw: 1, cost_a: -1, cost_b: 0}\n")
    out = fpp("clear", str(path))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "agents[0].cost_b" in out.stderr and "agents[1].cost_a" in out.stderr
    assert str(path) in out.stderr


def test_yaml_syntax_error_and_missing_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("agents: [\n")
    out = fpp("clear", str(path))
    assert out.returncode == 2 and "broken.yaml" in out.stderr and "Traceback" not in out.stderr
    out = fpp("clear", str(tmp_path / "missing.json"))
    assert out.returncode == 2 and "no such file" in out.stderr


def test_infeasible_case_is_a_result_not_an_error(tmp_path):
    path = tmp_path / "island.json"
    path.write_text(json.dumps({"interval_h": 1, "agents": [
        {"id": "l", "p_min_kw": -5, "p_max_kw": -5, "cost_a": 0, "cost_b": 0.3},
        {"id": "g", "p_min_kw": 0, "p_max_kw": 2, "cost_a": 0, "cost_b": 0.1}]}))
    out = fpp("clear", str(path), "--mechanism", "pool")
    assert out.returncode == 0
    res = json.loads(out.stdout)
    assert res["status"] == "infeasible" and "demand exceeds" in res["reason"]


def test_unwritable_out_is_a_user_error(tmp_path):
    out = fpp("clear", str(CASES / "community.yaml"), "--out", str(tmp_path / "no" / "such" / "dir.json"))
    assert out.returncode == 2 and "cannot write the result" in out.stderr and "Traceback" not in out.stderr
