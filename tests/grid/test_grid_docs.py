"""docs/grid.md's worked example is what ``fpp grid solve`` prints for the shipped unbalanced feeder."""

import re
from pathlib import Path

from testbed.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_worked_example_output_matches_the_cli(capsys, monkeypatch):
    doc = (ROOT / "docs" / "grid.md").read_text()
    block = re.search(r"```\n\$ fpp grid solve simulators/grid/feeders/unbalanced_lv.dss\n(.*?)```", doc, re.S)
    assert block, "docs/grid.md lost its worked example"
    monkeypatch.chdir(ROOT)  # the example names the feeder relative to the repository root
    assert main(["grid", "solve", "simulators/grid/feeders/unbalanced_lv.dss"]) == 0
    assert capsys.readouterr().out == block.group(1)
