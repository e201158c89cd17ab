"""End to end: scenarios/fpp.yaml through the platform process, the co-simulation and the ledger.

The same day without the contract loads the transformer above its rating in the evening (the forecast power flow
says ~109 %); with it, the coalition's batteries keep it within. A member that does not follow its award is
penalised by the pro-rata rule, and the other members' shares stay what they were.
"""

from pathlib import Path

import pandas as pd
import pytest

import testbed
from testbed.platform.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "scenarios" / "fpp.yaml"
DSO = "dso-congestion-relief-trafo:MV1.101-LV3.101-Trafo-20160724T2045"


def trafo_peak_pct(run_dir: Path) -> float:
    ts = pd.read_parquet(run_dir / "timeseries.parquet")
    cols = [c for c in ts.columns if c.startswith("trafo_loading_pct")]
    assert cols, "the recorder wrote no transformer loading"
    return float(ts[cols].max().max())


@pytest.fixture(scope="module")
def with_contracts(tmp_path_factory):
    return testbed.run(SCENARIO, out=tmp_path_factory.mktemp("fpp") / "run")


def test_without_the_contract_the_transformer_is_overloaded(tmp_path):
    res = testbed.run(SCENARIO, overrides={"services": None}, out=tmp_path / "run")
    assert trafo_peak_pct(res.run_dir) > 105.0
    assert res.verdict.status == "fail" and "fpp" not in res.kpis


def test_the_coalition_keeps_the_transformer_within_its_rating(with_contracts):
    res = with_contracts
    assert trafo_peak_pct(res.run_dir) <= 100.0
    assert res.verdict.status == "pass"
    f = res.kpis["fpp"]
    t = f["totals"]
    assert t["contracts"] == 3 and t["filled"] == 3 and t["members_worse_off"] == 0
    for c in f["contracts"].values():  # coalitions of up to 16: shared by every rule
        assert all(set(m["shares"]) == {"shapley", "nucleolus", "least-core", "proportional"}
                   for m in c["members"].values())
    assert t["pooled_firm_kw"] > t["sum_individual_firm_kw"]  # pooling firms up more than the members alone
    c = f["contracts"][DSO]
    assert c["buyer"] == "dso" and c["subject"] == "trafo:MV1.101-LV3.101-Trafo" and "forecast power flow" in c["origin"]
    assert c["fulfilment"] == pytest.approx(1.0) and c["penalty"] == pytest.approx(0.0, abs=1e-6)
    assert sum(m["payout"] for m in c["members"].values()) == pytest.approx(c["revenue"])
    assert c["series"]["delivered_kw"] == pytest.approx(c["series"]["required_kw"], rel=1e-6)
    report = (res.run_dir / "report.html").read_text()
    assert "Federated power plant" in report and f"<h3>{DSO}</h3>" in report
    assert "required and delivered" in report and "<th>shapley</th>" in report
    fr = f["contracts"]["tso-fr-1400"]  # dispatched by the loss of infeed at 14:40 only, and delivered
    assert fr["series"]["required_kw"][:2] == [0.0, 0.0] and fr["required_kwh"] > 1.0
    assert fr["fulfilment"] == pytest.approx(1.0) and fr["revenue"] == pytest.approx(0.05 * 25 * 2)
    ledger = Ledger(f"sqlite:///{res.run_dir / 'ledger.db'}")
    try:
        states = {cid: state for cid, _, state, *_ in ledger.contracts()}
        assert states == {DSO: "settled", "tso-fr-1400": "settled", "wholesale-1600": "settled"}
        assert len(ledger.service_settlements()) == t["member_places"]
    finally:
        ledger.close()


def test_a_member_that_fails_is_penalised_and_the_others_shares_stay(with_contracts, tmp_path):
    good = with_contracts.kpis["fpp"]["contracts"][DSO]["members"]
    failing = sorted(good)[0]
    res = testbed.run(SCENARIO, overrides={"services.members.fail": [failing]}, out=tmp_path / "run")
    c = res.kpis["fpp"]["contracts"][DSO]
    m = c["members"]
    assert m[failing]["failed"] and m[failing]["penalty"] > 0 and m[failing]["delivered_kwh"] < 0.5 * m[failing][
        "required_kwh"]
    assert c["fulfilment"] < 1.0 and c["penalty"] == pytest.approx(m[failing]["penalty"])
    for wid, v in m.items():
        assert v["shares"] == pytest.approx(good[wid]["shares"])  # the shares come from the offers, not delivery
        if wid != failing:
            assert v["penalty"] == pytest.approx(0.0, abs=1e-6) and v["gain"] >= 0.0
    t = res.kpis["fpp"]["totals"]
    assert t["members_worse_off_that_delivered"] == 0


def test_a_contract_no_coalition_can_meet_is_reported_unfilled_with_its_shortfall(tmp_path):
    # owners who keep 80-90 % of their battery for the home leave too little for the evening
    res = testbed.run(SCENARIO, overrides={"services.members.reserve_soc": {"min": 0.8, "max": 0.9}},
                      out=tmp_path / "run")
    c = res.kpis["fpp"]["contracts"][DSO]
    assert c["status"] == "unfilled" and c["state"] == "unfilled" and c["offers"] > 0
    assert c["shortfall_kw"] == pytest.approx(c["required_kw"] - c["firm_kw"], rel=1e-6) and c["shortfall_kw"] > 10
    assert "members" not in c  # nobody is awarded, dispatched or paid
    t = res.kpis["fpp"]["totals"]
    assert t["unfilled"] == 1 and t["shortfall_kw"] == pytest.approx(c["shortfall_kw"])
    failed = {x.name for x in res.verdict.criteria if x.passed is False}
    assert failed == {"every contract filled", "transformers within their rating"}
    assert trafo_peak_pct(res.run_dir) > 105.0


def test_the_same_seed_gives_the_same_contracts_coalitions_and_shares(with_contracts, tmp_path):
    again = testbed.run(SCENARIO, out=tmp_path / "run")
    a, b = with_contracts.kpis["fpp"], again.kpis["fpp"]
    assert a["totals"] == pytest.approx(b["totals"])
    for cid, c in a["contracts"].items():
        assert set(c["members"]) == set(b["contracts"][cid]["members"])
        for wid, m in c["members"].items():
            assert m["shares"] == pytest.approx(b["contracts"][cid]["members"][wid]["shares"])
