"""Scenario and registry files a careless user (or an attacker) might write: each case ended in a traceback or
passed `fpp validate` and then failed or misbehaved in `fpp run` before this test existed; now each is one
clear error (exit status 2) naming the field or line, before anything is built."""

from pathlib import Path

import pytest

from testbed.cli import main as fpp
from testbed.domain.errors import UserError
from testbed.domain.scenario.loader import parse_scenario

DEMO = (Path(__file__).resolve().parents[2] / "scenarios" / "demo.yaml").read_text()


def refused(text: str) -> str:
    """The whole error (summary and problems) of parsing ``text``."""
    with pytest.raises(UserError) as err:
        parse_scenario(text, "s.yaml")
    return "\n".join([err.value.summary, *err.value.problems])


def variant(old: str, new: str) -> str:
    assert old in DEMO
    return DEMO.replace(old, new)


# ---- 6. deep nesting ended in RecursionError ------------------------------------------------------------


@pytest.mark.parametrize(
    "nested",
    ["[" * 1000 + "]" * 1000, "{a: " * 1000 + "1" + "}" * 1000, "\n" + "- " * 1000 + "1"],
)
def test_deep_nesting_is_one_error_with_its_line(nested):
    from testbed.domain.textdata import MAX_DEPTH

    text = DEMO + "extra: " + nested + "\n"
    msg = refused(text)
    line = DEMO.count("\n") + 1 + nested.startswith("\n")
    assert f"s.yaml: line {line}, column " in msg and f"nested deeper than {MAX_DEPTH} levels" in msg


def test_deep_registry_is_refused_by_fpp_platform_acl(tmp_path, capsys):
    for name, text in [("r.yaml", "prosumers: " + "[" * 1000 + "]" * 1000), ("r.json", '{"prosumers": ' + "[" * 5000 + "]" * 5000 + "}")]:
        reg = tmp_path / name
        reg.write_text(text)
        assert fpp(["platform", "acl", "--prosumers", str(reg), "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert "nested deeper than" in err and "Traceback" not in err, err


# ---- 7. a 100,000-digit seed ended in "Exceeds the limit (4300 digits)" -----------------------------------


@pytest.mark.parametrize(
    "seed, needle",
    [("9" * 100_000, "line 9, column 7 is not valid YAML: an integer of 100000 characters"), ("9" * 30, "seed (line 9)")],
)
def test_huge_seed_is_one_error(seed, needle):
    msg = refused(variant("seed: 42", f"seed: {seed}"))
    assert needle in msg


def test_huge_numbers_in_json_are_refused():
    from testbed.domain.textdata import load_json

    with pytest.raises(UserError, match="integer of 5000 digits"):
        load_json('{"a": ' + "1" * 5000 + "}", "f.json")
    with pytest.raises(UserError, match="beyond"):
        load_json('{"a": 1e300}', "f.json")
    with pytest.raises(UserError, match="Infinity is not a number a file may hold"):
        load_json('{"a": Infinity}', "f.json")


# ---- 8. an EV trip longer than the battery passed and failed in the run ---------------------------------


@pytest.mark.parametrize(
    "old, new",
    [
        ("capacity_kwh: 50", "capacity_kwh: 10"),
        ("capacity_kwh: 50", "capacity_kwh: 1e-300"),
        ("trip_kwh: {min: 5, max: 15}", "trip_kwh: {min: 5, max: 60}"),
    ],
)
def test_fleet_ev_trip_beyond_capacity_is_refused(old, new):
    msg = refused(variant(old, new))
    assert "fleet.ev" in msg and "exceeds capacity_kwh" in msg


@pytest.mark.parametrize(
    "value, needle",
    [
        ("1e308", "exceeds capacity_kwh"),  # YAML 1.1 reads 1e308 as text, which the schema converts
        ("1.0e+308", "fleet.ev.trip_kwh.max (line 33): 1e+308 is beyond"),  # a YAML float: out of bounds
        (".inf", "fleet.ev.trip_kwh.max (line 33): inf is beyond"),
    ],
)
def test_absurd_trip_is_refused(value, needle):
    assert needle in refused(variant("trip_kwh: {min: 5, max: 15}", f"trip_kwh: {{min: 5, max: {value}}}"))


# ---- 9. files `fpp validate` passed and `fpp run` could not run (or ran wrongly) ------------------------


@pytest.mark.parametrize(
    "old, new, needle",
    [
        ("duration_h: 24", "duration_h: 1e30", "is 4e+30 steps; a run has at most 1,100,000"),
        ("duration_h: 24", "duration_h: 876000000", "a run has at most 1,100,000"),
        ("duration_h: 24", "duration_h: 1.0e-12", "shorter than one 900 s step"),  # found by the fuzz test
        ("start: 2016-07-24T00:00:00", "start: 9999-12-31T23:45:00", "ends after the year 9999"),
        ("  interval_s: 900", "  interval_s: 900\n  ledger: mysql://x", "market.ledger (line 39): 'mysql://x'"),
        ("depart_h: {min: 6.5, max: 8.5}", "depart_h: {min: 25, max: 30}", "fleet.ev.depart_h (line 34)"),
        ("arrive_h: {min: 16.5, max: 19}", "arrive_h: {min: 16.5, max: 24.5}", "fleet.ev.arrive_h"),
        ("seed: 42", "seed: 42\nseed: 43", "key 'seed' appears twice (first on line 9)"),
        ("    share: 0.4\n", "    share: 0.4\n    share: 0.5\n", "key 'share' appears twice (first on line 20)"),
    ],
)
def test_what_the_run_would_fail_on_is_refused_by_validation(old, new, needle):
    assert needle in refused(variant(old, new))


def test_unknown_fleet_pv_profile_and_junk_simbench_code_fail_validate(tmp_path, capsys):
    pv = tmp_path / "pv.yaml"
    pv.write_text(variant("profiles: [PV1, PV3, PV4, PV7]", "profiles: [PV1, PV99]"))
    assert fpp(["validate", str(pv)]) == 2
    err = capsys.readouterr().err
    assert "fleet.pv.profiles[1]: unknown PV profile 'PV99'" in err and "Traceback" not in err
    junk = tmp_path / "junk.yaml"
    junk.write_text(variant("1-LV-rural3--0-sw", "1-LV-rural3--0-swJUNK"))
    assert fpp(["validate", str(junk)]) == 2
    err = capsys.readouterr().err
    assert "not a SimBench grid code" in err and "1-LV-rural3--0-sw" in err


def test_time_series_too_large_for_the_machine_is_refused(monkeypatch):
    """The machine's size is the one thing faked here (os.sysconf reports 4 GiB): a real machine that small
    is not at hand. 200,000 steps of the demo's 118 homes need about 3 GiB of recorded series."""
    import os

    from testbed.orchestration.api import plan

    real = os.sysconf
    monkeypatch.setattr(os, "sysconf", lambda name: 2**20 if name == "SC_PHYS_PAGES" else real(name))
    with pytest.raises(UserError) as err:
        plan(json_scenario(), overrides={"time.duration_h": 50_000, "time.resolution_s": 900})
    (problem,) = [p for p in err.value.problems if "GiB" in p]
    assert problem.startswith("time: 200,000 steps") and "half of this machine's 4.0 GiB" in problem


def json_scenario() -> dict:
    import yaml

    return yaml.safe_load(DEMO)


def test_yaml_aliases_cannot_explode():
    from testbed.domain.textdata import load_yaml

    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    with pytest.raises(UserError, match="aliases expand"):
        load_yaml("\n".join(lines), "laughs.yaml")
    with pytest.raises(UserError, match="refers to a node that contains it"):
        load_yaml("a: &x [1, *x]", "self.yaml")


def test_validate_cli_gives_exit_2_and_no_traceback_for_a_broken_file(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_text(variant("seed: 42", "seed: " + "9" * 100_000))
    assert fpp(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "line 9" in err and "Traceback" not in err
