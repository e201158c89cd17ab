"""report.html: the verdict table, the charts from matplotlib, and a real run's page written twice alike."""

import json
import re
import subprocess
import sys

import numpy as np

from testbed.domain.verdict import Criterion, Verdict
from testbed.orchestration.charts import Limit, Line, time_chart
from testbed.orchestration.report import verdict_table

from .test_scenario_errors import GOOD


def test_verdict_table_shows_every_criterion_with_its_figure():
    v = Verdict((Criterion("lines within their rating", False, 100.5, 100.0, "%", "peak loading 100.5 %"),
                 Criterion("transformers within their rating", None, None, 100.0, "%", "peak loading n/a")))
    table = verdict_table(v)
    assert '<td class="fail">FAIL</td><th>lines within their rating</th><td class="num">100.5 %</td>' in table
    assert '<td class="inconclusive">not judged</td>' in table and '<td class="num">n/a</td>' in table


def test_time_chart_is_an_inline_svg_with_axes_legend_and_units():
    hours = np.arange(5) * 0.25
    svg = time_chart("Feeder", "power [kW]", hours, [Line("import", np.array([1.0, 2.0, np.nan, 4.0, 5.0]))],
                     [Limit("zero", 0.0)])
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    for text in ("Feeder", "power [kW]", "time since start [h]", "import", "zero"):
        assert text in svg, text
    assert "<script" not in svg and not re.search(r"(href|src)=\"https?:", svg)  # nothing fetched
    assert svg == time_chart("Feeder", "power [kW]", hours, [Line("import", np.array([1.0, 2.0, np.nan, 4.0, 5.0]))],
                             [Limit("zero", 0.0)])  # deterministic: the same data, the same SVG
    assert time_chart("Empty", "kW", hours, [Line("none", np.full(5, np.nan))]) == ""


def test_a_run_writes_its_report_and_fpp_report_rewrites_it(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    out = tmp_path / "run"
    res = subprocess.run(
        [sys.executable, "-m", "testbed", "run", str(path), "--out", str(out), "--no-progress", "--check"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]  # --check: a passed verdict exits 0
    page = (out / "report.html").read_text()
    assert re.search(r"<h1>t: <span class=\"pass\">PASS</span></h1>", page)
    assert page.count("<svg") == 3 and "<script" not in page
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["status"] == "pass" and len(verdict["criteria"]) == 4
    (out / "report.html").unlink()
    res = subprocess.run([sys.executable, "-m", "testbed", "report", str(out)], capture_output=True, text=True)
    assert res.returncode == 0 and (out / "report.html").read_text() == page  # the same files, the same page


def test_report_of_a_folder_that_is_no_run(tmp_path):
    res = subprocess.run([sys.executable, "-m", "testbed", "report", str(tmp_path)], capture_output=True, text=True)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "not a finished run folder" in res.stderr and "kpis.json is missing" in res.stderr
