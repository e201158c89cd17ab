"""The layers of docs/architecture.md, checked on the source: what each layer may import and do.

- domain (``testbed/domain``): pure. No mosaik, MQTT, Modbus, databases, sockets, threads, processes or
  Parquet; no file I/O (``open``, ``Path.read_text`` ...) and no clock reads (``time.time``,
  ``datetime.now`` ...); no import of the platform, the simulators, HIL, orchestration or the CLI.
- adapters (``simulators``, ``hil``, ``testbed/platform``): never import orchestration or the CLI.
- nothing but the entry points (the CLI, ``python -m testbed`` and the package's ``testbed.run``) imports
  orchestration.

Every import is checked, also those inside functions. The fail path is tested on snippets.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN_IN_DOMAIN = {
    "mosaik", "mosaik_api_v3", "aiomqtt", "amqtt", "paho", "pymodbus", "sunspec2", "sqlite3", "psycopg",
    "socket", "subprocess", "threading", "asyncio", "multiprocessing", "pyarrow", "opendssdirect", "dss",
    "pandapower", "simbench", "testbed.platform", "testbed.orchestration", "testbed.cli", "simulators", "hil",
}
FILE_METHODS = {"read_text", "write_text", "read_bytes", "write_bytes", "mkdir", "unlink", "iterdir", "rmdir",
                "touch", "rename", "replace_file"}
CLOCK_CALLS = {("time", "time"), ("time", "monotonic"), ("time", "perf_counter"), ("time", "sleep"),
               ("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today"), ("date", "today")}
ORCHESTRATION = ("testbed.orchestration", "testbed.cli")


def modules_imported(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _within(module: str, roots) -> bool:
    return any(module == r or module.startswith(r + ".") for r in roots)


def domain_problems(source: str, where: str) -> list[str]:
    tree = ast.parse(source)
    problems = [f"{where}: imports {m}" for m in sorted(modules_imported(tree)) if _within(m, FORBIDDEN_IN_DOMAIN)]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name) and f.id == "open":
            problems.append(f"{where}:{node.lineno}: opens a file")
        elif isinstance(f, ast.Attribute):
            if f.attr in FILE_METHODS:
                problems.append(f"{where}:{node.lineno}: file I/O (.{f.attr})")
            owner = f.value.id if isinstance(f.value, ast.Name) else getattr(f.value, "attr", None)
            if (owner, f.attr) in CLOCK_CALLS:
                problems.append(f"{where}:{node.lineno}: reads the clock ({owner}.{f.attr})")
    return problems


def adapter_problems(source: str, where: str) -> list[str]:
    return [f"{where}: imports {m}" for m in sorted(modules_imported(ast.parse(source))) if _within(m, ORCHESTRATION)]


def _files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def test_the_domain_is_pure():
    files = _files("testbed/domain")
    assert len(files) > 20  # the walk found the package
    problems = [p for f in files for p in domain_problems(f.read_text(), str(f.relative_to(ROOT)))]
    assert problems == []


def test_adapters_do_not_import_orchestration():
    files = _files("simulators", "hil", "testbed/platform")
    assert len(files) > 30
    problems = [p for f in files for p in adapter_problems(f.read_text(), str(f.relative_to(ROOT)))]
    assert problems == []


def test_nothing_outside_orchestration_and_the_cli_imports_them():
    # the entry points: ``python -m testbed`` is the CLI, and the package's ``testbed.run`` is the run API
    entry_points = {ROOT / "testbed" / "__main__.py", ROOT / "testbed" / "__init__.py"}
    files = [
        f for f in _files("testbed")
        if not _within(".".join(f.relative_to(ROOT).with_suffix("").parts), ORCHESTRATION) and f not in entry_points
    ]
    assert ROOT / "testbed" / "domain" / "verdict.py" in files and ROOT / "testbed" / "platform" / "core.py" in files
    problems = [p for f in files for p in adapter_problems(f.read_text(), str(f.relative_to(ROOT)))]
    assert problems == []


@pytest.mark.parametrize(
    ("snippet", "found"),
    [
        ("import mosaik_api_v3", "imports mosaik_api_v3"),
        ("def f():\n    from testbed.platform.ledger import Ledger", "imports testbed.platform.ledger"),
        ("from pathlib import Path\nPath('x').read_text()", "file I/O (.read_text)"),
        ("with open('x') as fh: pass", "opens a file"),
        ("import time\nt = time.monotonic()", "reads the clock (time.monotonic)"),
        ("from datetime import datetime\nnow = datetime.now()", "reads the clock (datetime.now)"),
    ],
)
def test_the_checks_find_what_they_look_for(snippet, found):
    assert any(found in p for p in domain_problems(snippet, "snippet.py"))


def test_the_adapter_check_finds_an_import_of_orchestration():
    assert adapter_problems("from testbed.orchestration.runner import run", "x.py") == [
        "x.py: imports testbed.orchestration.runner"
    ]
    assert domain_problems("import numpy as np\nimport scipy.optimize", "ok.py") == []
