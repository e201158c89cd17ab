"""Campaigns on a Dask LocalCluster started by the test: folders named by content, one summary row per
experiment with its parameters, resume, failures that stop nothing, bad input before any run (exit 2)."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from testbed.cli import main
from testbed.domain.errors import UserError
from testbed.orchestration.campaign.engine import run_campaign
from testbed.orchestration.campaign.plan import load_campaign
from testbed.orchestration.campaign.results import write_results


def _run(path: Path, cluster, resume: bool = False):
    plan = load_campaign(path, path.parent / "out")
    outcome = run_campaign(plan, address=cluster.scheduler_address, resume=resume)
    summary, report = write_results(plan)
    return plan, outcome, pd.read_parquet(summary), report


def test_2x2_sweep_gives_4_folders_and_4_rows_with_their_parameters(write_campaign, cluster):
    path = write_campaign({"fleet.pv.share": [0.2, 0.8], "fleet.pv.kwp.max": [6, 14]})
    plan, outcome, summary, report = _run(path, cluster)
    assert (outcome.done, outcome.failed, outcome.skipped) == (4, 0, 0)
    folders = sorted(p.name for p in (plan.out_dir / "experiments").iterdir())
    assert folders == sorted(e.key for e in plan.experiments) and len(folders) == 4
    assert len(summary) == 4
    got = {(r["fleet.pv.share"], r["fleet.pv.kwp.max"]) for _, r in summary.iterrows()}
    assert got == {(0.2, 6), (0.2, 14), (0.8, 6), (0.8, 14)}
    for _, r in summary.iterrows():
        folder = plan.out_dir / "experiments" / r["experiment"]
        assert json.loads((folder / "experiment.json").read_text())["parameters"] == {
            "fleet.pv.share": r["fleet.pv.share"], "fleet.pv.kwp.max": r["fleet.pv.kwp.max"]}
        # the summary's KPIs are the run's own
        kpis = json.loads((folder / "run" / "kpis.json").read_text())
        assert r["grid_export_kwh"] == kpis["grid_export_kwh"]
        assert r["status"] == "done" and r["attempts"] == 1
    # more PV exports more at midday (same seed: the same homes draw PV, with larger arrays for 14 kWp)
    by = summary.set_index(["fleet.pv.share", "fleet.pv.kwp.max"])["grid_export_kwh"]
    assert by[(0.8, 14)] > by[(0.8, 6)] and by[(0.8, 14)] > by[(0.2, 14)]
    page = report.read_text()
    assert page.count("<svg") == 4  # 2 target metrics x 2 swept parameters
    assert "v_max_pu against fleet.pv.share" in page and "Failures" not in page


def test_resume_reruns_only_the_missing_experiment_and_keeps_the_others(write_campaign, cluster):
    path = write_campaign({"fleet.pv.share": [0.2, 0.8], "seed": [1, 2]})
    plan, first, summary, _ = _run(path, cluster)
    assert first.done == 4
    # a campaign killed while one experiment ran: its folder has no result.json, and a half-written run
    victim = plan.experiment_dir(plan.experiments[2])
    (victim / "result.json").unlink()
    (victim / "run" / "kpis.json").unlink()
    kept = {e.key: (plan.experiment_dir(e) / "result.json").stat().st_mtime_ns for e in plan.experiments
            if e.key != plan.experiments[2].key}
    with pytest.raises(UserError, match="already holds experiments"):
        run_campaign(plan, address=cluster.scheduler_address)
    _, again, summary2, _ = _run(path, cluster, resume=True)
    assert (again.done, again.skipped, again.failed) == (1, 3, 0)
    assert {k: (plan.experiment_dir_by_key(k) / "result.json").stat().st_mtime_ns for k in kept} == kept
    assert len(summary2) == 4 and list(summary2["experiment"]) == list(summary["experiment"])
    assert (victim / "run" / "kpis.json").is_file()
    pd.testing.assert_series_equal(summary2["grid_export_kwh"], summary["grid_export_kwh"])  # deterministic


def test_a_failed_experiment_stops_nothing_and_devices_run_one_at_a_time(write_campaign, cluster, tmp_path,
                                                                          refused_port):
    # a battery in the loop at an address where nothing listens: the run starts (the scenario is valid), the
    # device never answers, and the abort policy ends that experiment with a fault (exit 3 for `fpp run`)
    port = refused_port
    lab = {"id": "lab", "bus": "LV3.101 Bus 27", "load": {"profile": "H0-A", "annual_kwh": 3000},
           "battery": {"capacity_kwh": 10, "power_kw": 5,
                       "hil": {"address": f"127.0.0.1:{port}", "fault_policy": "abort"}}}
    path = write_campaign({"prosumers": [[], [lab]], "fleet.pv.share": [0.3, 0.6]})
    plan, outcome, summary, report = _run(path, cluster)
    assert [e.needs_device for e in plan.experiments] == [False, False, True, True]
    assert (outcome.done, outcome.failed) == (2, 2)
    failed = summary[summary["status"] == "failed"]
    assert len(failed) == 2 and failed["prosumers"].str.contains("lab").all()
    assert all(f"127.0.0.1:{port}" in r and "fault policy is abort" in r for r in failed["reason"])
    assert "Failures" in report.read_text() and "fault policy is abort" in report.read_text()
    # both workers carry the label, yet the two device experiments never ran at the same time
    spans = sorted((r["started_unix"], r["finished_unix"]) for r in
                   (json.loads((plan.experiment_dir(e) / "result.json").read_text()) for e in plan.experiments[2:]))
    assert spans[0][1] <= spans[1][0]
    # resume: the finished ones are kept, the failed ones run again (and fail again)
    _, again, _, _ = _run(path, cluster, resume=True)
    assert (again.done, again.skipped, again.failed) == (0, 2, 2)


def test_a_reference_the_grid_lacks_is_found_before_any_run(write_campaign, tmp_path):
    path = write_campaign({"fleet.pv.profiles": [["PV1"], ["PV99"]]})
    with pytest.raises(UserError) as err:
        load_campaign(path, tmp_path / "out")
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(
        "experiment 2 (fleet.pv.profiles=['PV99']): fleet.pv.profiles[0]: unknown PV profile 'PV99' (known: PV1,")


def test_bad_override_is_reported_before_any_run(write_campaign, tmp_path, capsys):
    path = write_campaign({"fleet.pv.share": [0.5, 2.0], "fleet.battery.capacity_kwh": [-5]})
    status = main(["campaign", str(path), "--workers", "1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert status == 2
    assert "nothing was run" in err
    assert "experiment 1 (fleet.pv.share=0.5, fleet.battery.capacity_kwh=-5)" in err
    assert "experiment 2 (fleet.pv.share=2.0, fleet.battery.capacity_kwh=-5): fleet.pv.share" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_unreachable_scheduler_is_one_clear_error(write_campaign, tmp_path, capsys, refused_port):
    port = refused_port  # a port nobody listens on
    path = write_campaign({"fleet.pv.share": [0.5]})
    status = main(["campaign", str(path), "--dask", f"tcp://127.0.0.1:{port}", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert status == 2
    assert f"--dask tcp://127.0.0.1:{port}: cannot reach the Dask scheduler" in err
    assert "Traceback" not in err
    assert main(["campaign", str(path), "--dask", "localhost:8786", "--out", str(tmp_path / "o")]) == 2
    assert "not a scheduler address" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written when there is nowhere to run


def test_cli_runs_on_its_own_local_cluster_and_prints_progress(write_campaign, tmp_path, capsys):
    path = write_campaign({"fleet.pv.share": [0.2, 0.4]})
    assert main(["campaign", str(path), "--workers", "2", "--out", str(tmp_path / "c")]) == 0
    out, err = capsys.readouterr()
    assert "2 run, 0 already done, 0 failed" in out
    assert "t: 2/2 done, 0 running, 0 failed, ETA 0s" in err  # not a terminal: plain lines
    assert len(pd.read_parquet(tmp_path / "c" / "summary.parquet")) == 2
    assert os.path.isfile(tmp_path / "c" / "campaign.html")
