"""A run's folder: its unique name, and the files every run writes besides its time series.

``<outputs.dir>/<name>-<UTC time>-seed<N>[-k]/`` holds ``scenario.yaml`` (the file as given, or the effective
scenario when overrides changed it), ``versions.json``, ``run.json``, ``kpis.json``, ``verdict.json`` and
``report.html``, beside what the parts write (``timeseries.parquet``, the ledger, HIL samples).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from testbed import __version__
from testbed.domain.errors import UserError
from testbed.domain.scenario.models import Scenario

PACKAGES = ("mosaik", "mosaik-api-v3", "pandapower", "simbench", "lightsim2grid", "numpy", "pandas", "pydantic",
            "pyarrow", "opendssdirect.py", "matplotlib")


def new_run_dir(scenario: Scenario) -> Path:
    """Create and return ``<outputs.dir>/<name>-<UTC time>-seed<N>``; a name already taken (another run in the
    same second, in this or another process) gets ``-2``, ``-3``, ... Creating the folder is the claim, so two
    processes never get the same one."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    base = Path(scenario.outputs.dir) / f"{scenario.name}-{stamp}-seed{scenario.seed}"
    base.parent.mkdir(parents=True, exist_ok=True)
    n = 1
    while True:
        path = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


def check_fresh_run_dir(run_dir: Path) -> None:
    """A run writes into a folder of its own: refuse one that already holds files (a previous run's results and
    ledger would mix with this run's, and be overwritten)."""
    run_dir = Path(run_dir)
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise UserError(
            f"--out {run_dir}: already exists and is not an empty folder",
            ["a run never writes over another run's results: choose a new folder, or remove this one"],
        )


def claim_run_dir(run_dir: Path | None, scenario: Scenario) -> Path:
    """The run's folder, created: ``run_dir`` (new or empty) or a new one under ``outputs.dir``."""
    if run_dir is None:
        return new_run_dir(scenario)
    run_dir = Path(run_dir)
    check_fresh_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def package_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "platform": platform.platform(), "fpp-testbed": __version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON next to its final name, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def write_inputs(run_dir: Path, scenario: Scenario, source: Path | None, overrides: dict[str, Any]) -> None:
    """``scenario.yaml`` and ``versions.json``, before the run starts."""
    if source is not None and not overrides:
        text = source.read_text(encoding="utf-8")
    else:
        head = f"# {source or 'scenario given as data'}" + (
            " with overrides: " + ", ".join(f"{k}={v!r}" for k, v in overrides.items()) if overrides else ""
        )
        text = head + "\n" + yaml.safe_dump(scenario.model_dump(mode="json", exclude_none=True), sort_keys=False)
    (run_dir / "scenario.yaml").write_text(text, encoding="utf-8")
    write_json(run_dir / "versions.json", package_versions())
