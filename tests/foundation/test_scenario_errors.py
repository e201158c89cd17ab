"""Bad scenario files: each gives one clear error naming the field (and line) and the reason."""

import subprocess
import sys
import textwrap

import pytest

from testbed.domain.errors import UserError
from testbed.domain.scenario.loader import parse_scenario

GOOD = """\
schema_version: 1
name: t
seed: 1
time: {start: 2016-06-21T00:00:00, duration_h: 1, resolution_s: 900}
grid: {network: "simbench:1-LV-rural3--0-sw"}
prosumers:
  - id: a
    bus: LV3.101 Bus 5
    load: {profile: H0-A, annual_kwh: 3500}
    battery: {capacity_kwh: 10, power_kw: 5}
"""


def problems_of(text):
    with pytest.raises(UserError) as err:
        parse_scenario(text, "s.yaml")
    return err.value.problems, err.value.summary


def test_good_scenario_parses():
    sc = parse_scenario(GOOD)
    assert sc.time.n_steps == 4 and sc.prosumers[0].battery.round_trip_efficiency == 0.9


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("capacity_kwh: 10", "capacity_kwh: -5", "prosumers[0].battery.capacity_kwh (line 10): input should be greater than 0, got -5"),
        ("power_kw: 5}", "power_kw: 5, initial_soc: 1.5}", "prosumers[0].battery.initial_soc (line 10): input should be less than or equal to 1, got 1.5"),
        ("resolution_s: 900", "resolution_s: 700", "time.resolution_s (line 4): must divide 900 s or be a multiple of it, got 700 s"),
        ("duration_h: 1,", "duration_h: 0.1,", "time (line 4): duration_h (0.1 h) is not a whole number of 900 s steps"),
        ("seed: 1", "seed: -1", "seed (line 3): input should be greater than or equal to 0, got -1"),
        ("name: t", "name: t\nsede: 3", "sede (line 3): unknown field"),
        ("load: {profile: H0-A, annual_kwh: 3500}", "load: {profile: H0-A}", "prosumers[0].load (line 9): give grid_load, or both profile and annual_kwh"),
        ("schema_version: 1", "schema_version: 2", "schema_version (line 1): input should be 1, got 2"),
        ('network: "simbench:1-LV-rural3--0-sw"}', 'network: "simbench:x", engine: powerfactory}', "grid.engine (line 5): input should be 'pandapower' or 'opendss', got 'powerfactory'"),
        ("capacity_kwh: 10, power_kw: 5", "capacity_kwh: .nan, power_kw: 5", "prosumers[0].battery.capacity_kwh (line 10): input should be a finite number"),
        ("    bus: LV3.101 Bus 5\n", "", "prosumers[0].bus (line 7): required field is missing"),
        ("seed: 1", "seed: 1\nmarket: {credentials: c.json}", "market (line 4): credentials: only for a broker named in broker"),
        ("seed: 1", "seed: 1\nmarket: {transport: inproc, broker: 'mqtt://h:1883'}", "market (line 4): broker and credentials: only for transport mqtt"),
        ("seed: 1", "seed: 1\nmarket: {transport: zeromq}", "market.transport (line 4): input should be 'mqtt' or 'inproc'"),
    ],
)
def test_bad_field(old, new, expected):
    assert old in GOOD
    problems, summary = problems_of(GOOD.replace(old, new))
    assert summary.startswith("s.yaml: ")
    assert any(p.startswith(expected) for p in problems), problems


def test_every_problem_reported_at_once():
    text = GOOD.replace("capacity_kwh: 10", "capacity_kwh: -5").replace("seed: 1", "seed: -1")
    text = text.replace("resolution_s: 900", "resolution_s: 7")
    problems, summary = problems_of(text)
    assert len(problems) == 3 and "3 problem(s)" in summary


def test_yaml_syntax_error_names_line_and_column():
    with pytest.raises(UserError, match=r"s.yaml: line 3, column \d+ is not valid YAML"):
        parse_scenario("name: t\nseed: [1,\n  time: x: y\n", "s.yaml")


def test_not_a_mapping():
    with pytest.raises(UserError, match="a scenario is a YAML mapping"):
        parse_scenario("- just\n- a list\n", "s.yaml")


def test_duplicate_prosumer_ids_and_no_prosumers():
    dup = GOOD + textwrap.indent(GOOD.split("prosumers:\n")[1], "")
    problems, _ = problems_of(dup)
    assert any("repeated: a" in p for p in problems)
    problems, _ = problems_of(GOOD.split("prosumers:")[0])
    assert any("has no prosumers" in p for p in problems)


def test_non_simbench_grid_needs_a_profile_source():
    problems, _ = problems_of(GOOD.replace('"simbench:1-LV-rural3--0-sw"', "pandapower:case33bw"))
    assert any("profiles: required" in p for p in problems)


def test_references_checked_against_grid_and_profiles(tmp_path):
    text = GOOD.replace("LV3.101 Bus 5", "No Such Bus").replace("H0-A", "H9-Z")
    path = tmp_path / "s.yaml"
    path.write_text(text + "    pv: {kwp: 4, profile: PV99}\n")
    from testbed.orchestration.plan import load_plan

    with pytest.raises(UserError) as err:
        load_plan(path)
    problems = err.value.problems
    assert len(problems) == 3
    assert problems[0].startswith("prosumers[0].bus: unknown bus 'No Such Bus'")
    assert problems[1].startswith("prosumers[0].load.profile: unknown load profile 'H9-Z'")
    assert problems[2].startswith("prosumers[0].pv.profile: unknown PV profile 'PV99'")


def test_cli_reports_without_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace("capacity_kwh: 10", "capacity_kwh: -5"))
    out = subprocess.run([sys.executable, "-m", "testbed", "validate", str(path)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "prosumers[0].battery.capacity_kwh (line 10): input should be greater than 0, got -5" in out.stderr


def test_run_refuses_a_folder_that_holds_files_and_loses_nothing(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    out = tmp_path / "previous-run"
    out.mkdir()
    (out / "kpis.json").write_text('{"from": "an earlier run"}')
    res = subprocess.run(
        [sys.executable, "-m", "testbed", "run", str(path), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert f"--out {out}: already exists and is not an empty folder" in res.stderr
    assert [f.name for f in out.iterdir()] == ["kpis.json"]
    assert (out / "kpis.json").read_text() == '{"from": "an earlier run"}'


def test_default_run_folders_never_collide(tmp_path):
    from datetime import UTC, datetime, timedelta

    from testbed.orchestration.run_folder import new_run_dir

    sc = parse_scenario(GOOD.replace("name: t", f"name: t\noutputs: {{dir: {tmp_path}}}"))
    now = datetime.now(UTC)
    for t in (now, now + timedelta(seconds=1)):  # whichever second the call falls in is taken already
        (tmp_path / f"t-{t:%Y%m%dT%H%M%S}-seed1").mkdir()
    path = new_run_dir(sc)  # creating the folder claims it
    assert path.is_dir() and not any(path.iterdir()) and path.name.endswith("-seed1-2")
