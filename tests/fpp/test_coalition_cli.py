"""``fpp coalition share``: one real subprocess run each for success and failure (exit status, streams), the
rest through ``testbed.cli.main`` in-process (the same parsing and printing, without the interpreter start)."""

import json
import subprocess
import sys

import pytest
import yaml

from testbed.cli import main

WORKED = {"players": ["a", "b", "c"], "coalitions": [
    {"members": ["a"], "value": 6}, {"members": ["b"], "value": 12}, {"members": ["c"], "value": 42},
    {"members": ["a", "b"], "value": 12}, {"members": ["a", "c"], "value": 42},
    {"members": ["b", "c"], "value": 42}, {"members": ["a", "b", "c"], "value": 42}]}


def fpp_process(*args):
    return subprocess.run([sys.executable, "-m", "testbed", "coalition", "share", *map(str, args)],
                          capture_output=True, text=True)


@pytest.fixture
def fpp(capsys):
    """Run ``fpp coalition share ARGS`` in-process; returns (exit status, stdout, stderr)."""

    def run(*args):
        try:
            code = main(["coalition", "share", *map(str, args)])
        except SystemExit as exc:  # argparse rejects an option
            code = exc.code
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    return run


@pytest.fixture
def worked(tmp_path):
    path = tmp_path / "worked.yaml"
    path.write_text(yaml.safe_dump(WORKED))
    return path


def test_shapley_of_the_worked_example(worked):
    out = fpp_process(worked, "--method", "shapley")
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split()[1] for line in out.stdout.splitlines()[3:6]}
    assert rows == {"a": "2", "b": "5", "c": "35"}
    assert "in core: no (coalition {b} would gain 7 by leaving)" in out.stdout
    assert "individually rational: no (below its stand-alone value: a, b, c)" in out.stdout


@pytest.mark.parametrize("method, shares", [
    ("nucleolus", {"a": 0.0, "b": 6.0, "c": 36.0}),      # the prenucleolus: no imputation exists
    ("least-core", {"a": 0.0, "b": 6.0, "c": 36.0}),
    ("proportional", {"a": 4.2, "b": 8.4, "c": 29.4}),   # 42 * (6, 12, 42) / 60
])
def test_other_methods_as_json(fpp, tmp_path, method, shares):
    path = tmp_path / "worked.json"
    path.write_text(json.dumps(WORKED))
    out = fpp(path, "--method", method, "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["shares"] == pytest.approx(shares, abs=1e-9)
    assert res["in_core"] is False and res["efficient"] is True


def test_sampled_shapley_states_error_and_seed(fpp, worked):
    out = fpp(worked, "--samples", "4000", "--seed", "7", "--json")
    res = json.loads(out.stdout)
    assert res["samples"] == 4000 and res["seed"] == 7
    for p, exact in {"a": 2, "b": 5, "c": 35}.items():
        assert abs(res["shares"][p] - exact) < 4 * res["standard_error"][p]
    assert json.loads(fpp(worked, "--samples", "4000", "--seed", "7", "--json").stdout) == res
    text = fpp(worked, "--samples", "4000", "--seed", "7").stdout
    assert "sampled: 4000 random orders, seed 7; largest standard error" in text


@pytest.mark.parametrize("game, expected", [
    ({**WORKED, "coalitions": WORKED["coalitions"][:-1]}, "1 of the 7 coalitions have no value (a missing coalition is not 0): {a, b, c}"),
    ({**WORKED, "players": ["a", "b", "c", "b"]}, "players: duplicate player 'b' (2 times)"),
    ({**WORKED, "coalitions": [{"members": ["a"], "value": "six"}] + WORKED["coalitions"][1:]},
     "coalitions[0].value: expected a finite number, got 'six'"),
])
def test_bad_games_exit_2_with_one_paragraph(fpp, tmp_path, game, expected):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(game))
    out = fpp(path)
    assert out.returncode == 2 and out.stdout == ""
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith(f"fpp coalition: error: {path}: the game is invalid")
    assert expected in out.stderr


def test_one_process_exits_2_with_no_traceback(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**WORKED, "players": ["a", "b", "c", "b"]}))
    out = fpp_process(path)
    assert out.returncode == 2 and out.stdout == "" and "Traceback" not in out.stderr
    assert "players: duplicate player 'b' (2 times)" in out.stderr


def test_unreadable_files_and_options_exit_2(fpp, tmp_path):
    assert "no such file" in fpp(tmp_path / "none.json").stderr
    (tmp_path / "nan.json").write_text('{"players": ["a"], "coalitions": [{"members": ["a"], "value": NaN}]}')
    out = fpp(tmp_path / "nan.json")
    assert out.returncode == 2 and "NaN is not a number a file may hold" in out.stderr
    out = fpp(tmp_path / "none.json", "--samples", "1")
    assert out.returncode == 2 and "needs at least 2 samples" in out.stderr
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(WORKED))
    out = fpp(tmp_path / "g.yaml", "--method", "least-core", "--samples", "10")
    assert out.returncode == 2 and "--samples applies to shapley only" in out.stderr
