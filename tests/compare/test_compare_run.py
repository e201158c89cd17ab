"""``fpp compare`` end to end on a short window of the demo day: every strategy a real co-simulation (power
flow, platform process for p2p), the comparison's invariants on its figures, the page, and the bad inputs
(fpp on a scenario without contracts, an unknown one, a scenario without batteries, an infeasible central problem
that fails while the others finish)."""

import json

import numpy as np
import pytest

from testbed.cli import main

DEMO = "scenarios/demo.yaml"


@pytest.mark.slow
def test_compare_on_two_hours_of_the_demo(tmp_path, capsys):
    out = tmp_path / "cmp"
    status = main(["compare", DEMO, "--strategies", "retail,tou,central,p2p", "--set", "time.duration_h=2",
                   "--out", str(out)])
    printed = capsys.readouterr()
    assert status == 0, printed.err
    assert "HiGHS" not in printed.out  # the solver's banner stays off the command's output
    c = json.loads((out / "comparison.json").read_text())
    r = c["results"]
    assert set(r) == {"retail", "tou", "central", "p2p"} and c["failed"] == []
    for name, res in r.items():
        assert res["status"] == "ok" and (out / name / "report.html").is_file()
        assert sum(res["bills"].values()) == pytest.approx(res["cost"], abs=1e-6), name
        assert len(res["series"]["ext_grid_p_kw"]) == 8
        assert res["cost"] >= r["central"]["cost"] - 1e-6, name
    assert r["retail"]["welfare_efficiency"] == 0.0
    assert r["central"]["welfare_efficiency"] == pytest.approx(1.0)
    # the co-simulation executes the operator's schedule: its cost is the optimiser's
    assert r["central"]["cost"] == pytest.approx(r["central"]["central_check"]["iterations"][-1]["objective"],
                                                 abs=1e-4)
    assert r["central"]["minutes_outside_limits"] == 0.0
    # what coordination costs, counted
    assert r["retail"]["coordination"]["messages"] == 0
    assert r["tou"]["coordination"]["private_parameters_total"] == 0
    assert r["central"]["coordination"]["private_parameters_per_home_mean"] >= 2 * 8
    assert r["p2p"]["coordination"]["messages"] > c["homes"]
    # the homes' peak: the uncontrolled EVs plug in at midnight; the TOU signal moves them into the cheap band
    assert r["retail"]["peak_import_kw"] == pytest.approx(max(r["retail"]["series"]["ext_grid_p_kw"]))
    page = (out / "comparison.html").read_text()
    assert page.count("<svg") == 3
    for name in r:
        assert f"<th>{name}</th>" in page
    assert "each home&#x27;s gain over retail" in page or "each home's gain over retail" in page
    assert "retail" in printed.out and "comparison.html" in printed.out


@pytest.mark.slow
def test_a_failing_strategy_is_named_and_the_others_finish(tmp_path, capsys):
    # no batteries (only EVs to coordinate) and a voltage band no schedule can keep on this feeder
    out = tmp_path / "cmp"
    status = main(["compare", DEMO, "--strategies", "retail,central", "--set", "time.duration_h=1",
                   "--set", "fleet.battery.share=0", "--set", "grid.v_min_pu=0.999", "--out", str(out),
                   "--workers", "1"])
    printed = capsys.readouterr()
    assert status == 1
    c = json.loads((out / "comparison.json").read_text())
    assert c["failed"] == ["central"]
    assert c["batteries"] == 0 and any("no batteries" in n for n in c["notes"])
    assert "central: no schedule of the batteries and EVs keeps the feeder" in c["results"]["central"]["error"]
    assert "vm:" in c["results"]["central"]["error"]  # which limit
    assert c["results"]["retail"]["status"] == "ok"
    assert c["results"]["retail"]["welfare_efficiency"] is None  # no central to measure against
    assert c["results"]["retail"]["minutes_outside_limits"] > 0
    page = (out / "comparison.html").read_text()
    assert "<b>central</b> failed" in page and "vm:" in page
    assert "central   FAILED" in printed.out or "central  FAILED" in printed.out


def test_fpp_without_services_or_an_unknown_strategy_exit_2(tmp_path, capsys):
    assert main(["compare", DEMO, "--strategies", "retail,fpp", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "strategy fpp compares the market with grid-service contracts" in err and "Traceback" not in err
    assert main(["compare", DEMO, "--strategies", "retail,centrall", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "unknown strategy 'centrall'" in err and "known: retail, tou, central, p2p, fpp" in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_ev_setpoints_are_held_within_what_the_car_can_take():
    from testbed.domain.der.ev import EVFleet

    one = {k: np.array([v]) for k, v in dict(capacity_kwh=10.0, charge_kw=4.0, charge_efficiency=1.0,
                                                 trip_kwh=0.0, depart_h=8.0, arrive_h=17.0, initial_soc=0.9).items()}
    ev = EVFleet(**one)
    assert ev.step(0.0, 0.25, np.array([2.0]))[0] == pytest.approx(2.0)  # at home, below every limit
    assert ev.e_kwh[0] == pytest.approx(9.5)
    assert ev.step(0.25, 0.25, np.array([3.0]))[0] == pytest.approx(2.0)  # only 0.5 kWh of room left
    assert ev.step(9.0, 0.25, np.array([3.0]))[0] == 0.0  # away
    assert ev.step(17.0, 0.25, np.array([np.nan]))[0] == 0.0  # no setpoint: uncontrolled, already full


def test_fpp_strategy_counts_the_contracts_and_their_revenue(tmp_path, capsys):
    # scenarios/fpp.yaml: the evening overload is relieved only by the coalition's contract (tests/fpp/test_fpp_run.py)
    status = main(["compare", "scenarios/fpp.yaml", "--strategies", "retail,central,fpp", "--out", str(tmp_path)])
    assert status == 0, capsys.readouterr().err
    results = json.loads((tmp_path / "comparison.json").read_text())["results"]
    fpp, retail, central = results["fpp"], results["retail"], results["central"]
    assert fpp["status"] == "ok" and fpp["contracts_fulfilled"] == "3 of 3"
    kpis = json.loads((tmp_path / "fpp" / "kpis.json").read_text())["fpp"]
    payouts = sum(m["payout"] for c in kpis["contracts"].values() for m in (c.get("members") or {}).values())
    assert fpp["service_revenue"] == pytest.approx(payouts) and payouts > 0
    assert sum(fpp["bills"].values()) == pytest.approx(fpp["cost"])  # bills net of each member's payout
    assert central["cost"] <= fpp["cost"] <= retail["cost"]
    assert fpp["highest_loading_pct"] <= 100.0 < retail["highest_loading_pct"]
    assert retail["contracts_fulfilled"] is None
