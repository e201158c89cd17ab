"""docs/campaigns.md: its worked example is docs/campaign-example.yaml and runs as the page says; every field of
the campaign schema is documented; the example campaigns in scenarios/campaigns/ are valid."""

import re
from pathlib import Path

import pandas as pd
import pytest
from pydantic import BaseModel

from testbed.cli import main
from testbed.domain.campaign import models
from testbed.orchestration.campaign.plan import load_campaign

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "campaigns.md").read_text(encoding="utf-8")


def test_every_campaign_field_is_documented():
    spans = re.findall(r"`([^`\n]+)`", DOC)  # a field is documented when a code span of the page names it
    missing = []
    for name in dir(models):
        model = getattr(models, name)
        if isinstance(model, type) and issubclass(model, BaseModel) and model.__module__ == models.__name__:
            missing += [f"{name}.{f}" for f in model.model_fields
                        if not any(re.search(rf"\b{f}\b", span) for span in spans)]
    assert not missing, f"docs/campaigns.md does not mention: {missing}"


def test_the_worked_example_shown_is_the_file():
    shown = re.search(r"## Worked example.*?```yaml\n(.*?)```", DOC, re.S).group(1)
    text = (ROOT / "docs" / "campaign-example.yaml").read_text(encoding="utf-8")
    for line in shown.splitlines():
        if line.strip() != "...":
            assert line in text.splitlines(), f"the page shows a line the file does not have: {line!r}"


@pytest.mark.parametrize("name, n", [("pv-penetration.yaml", 40), ("service-tests.yaml", 8)])
def test_example_campaigns_are_valid(name, n, tmp_path):
    plan = load_campaign(ROOT / "scenarios" / "campaigns" / name, tmp_path / "x")
    assert len(plan.experiments) == n


def test_worked_example_runs_as_documented(tmp_path, capsys):
    out = tmp_path / "worked-example"
    assert main(["campaign", str(ROOT / "docs" / "campaign-example.yaml"), "--workers", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "worked-example: 8 run, 0 already done, 0 failed" in printed
    s = pd.read_parquet(out / "summary.parquet")
    assert len(s) == 8 and set(s["status"]) == {"done"}
    assert sorted(s["seed"]) == [1, 1, 1, 1, 2, 2, 2, 2]
    export = s.set_index(["fleet.pv.share", "fleet.battery.share", "seed"])["grid_export_kwh"]
    for battery in (0, 1):
        for seed in (1, 2):
            # twice the share of homes with PV exports more, for each battery share and seed
            assert export[(0.8, battery, seed)] > export[(0.4, battery, seed)]
    for pv in (0.4, 0.8):
        for seed in (1, 2):
            # batteries at every PV home charge from the surplus first: less export than with none
            assert export[(pv, 1, seed)] < export[(pv, 0, seed)]
    assert (s["v_max_pu"] < 1.1).all()
    assert round(s["v_max_pu"].max(), 3) == float(re.search(r"\((\d\.\d+) pu at most\)", DOC).group(1))
    # the table of the page, to its 0.1 kWh (the runs are deterministic: same seed, same numbers)
    table = re.findall(r"^\| (0\.\d) \| (\d) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", DOC, re.M)
    assert len(table) == 4
    stats = s.groupby(["fleet.pv.share", "fleet.battery.share"])["grid_export_kwh"].agg(["mean", "min", "max"])
    for pv, battery, *shown in table:
        got = stats.loc[(float(pv), int(battery))]
        assert [round(float(got[k]), 1) for k in ("mean", "min", "max")] == [float(x) for x in shown]
    # again without --resume: refused; with it: nothing runs again
    assert main(["campaign", str(ROOT / "docs" / "campaign-example.yaml"), "--workers", "1", "--out", str(out)]) == 2
    assert "already holds experiments" in capsys.readouterr().err
    assert main(["campaign", str(ROOT / "docs" / "campaign-example.yaml"), "--resume", "--out", str(out)]) == 0
    assert "0 run, 8 already done, 0 failed" in capsys.readouterr().out
