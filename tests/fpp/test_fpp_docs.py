"""docs/fpp.md: the worked example runs and prints what the page says; the CLI example is what the CLI prints."""

import contextlib
import io
import re
from pathlib import Path

from testbed.cli import main

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "fpp.md").read_text(encoding="utf-8")


def test_worked_example_prints_what_the_page_says():
    section = DOC.split("## Worked example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    printed = re.search(r"```text\n(.*?)```", section, re.S)
    assert code and printed, "docs/fpp.md lost its worked example"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "docs/fpp.md", "exec"), {})
    assert out.getvalue() == printed.group(1)


def test_cli_example_is_what_the_cli_prints(capsys, monkeypatch):
    block = re.search(r"```\n\$ fpp coalition share docs/fpp-worked-game.yaml --method shapley\n(.*?)```", DOC, re.S)
    assert block, "docs/fpp.md lost its CLI example"
    monkeypatch.chdir(ROOT)
    assert main(["coalition", "share", "docs/fpp-worked-game.yaml", "--method", "shapley"]) == 0
    assert capsys.readouterr().out == block.group(1)


def test_platform_example_prints_what_the_page_says():
    section = DOC.split("### Worked example over the platform", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    printed = re.search(r"```text\n(.*?)```", section, re.S)
    assert code and printed, "docs/fpp.md lost its worked example over the platform"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.group(1), "docs/fpp.md", "exec"), {})
    assert out.getvalue() == printed.group(1)
