"""The run API: one call from a scenario (a file, a validated :class:`Scenario`, or a mapping) to a finished
run folder, its KPIs and its verdict. ``fpp run``, the tests and campaigns all use it.

    import testbed
    result = testbed.run("scenarios/demo.yaml", overrides={"fleet.battery.share": 0.8}, out="results/x")
    result.verdict.status, result.kpis["grid_import_kwh"], result.run_dir
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from testbed.domain.errors import UserError
from testbed.domain.scenario.loader import validation_problems
from testbed.domain.scenario.models import Scenario
from testbed.domain.scenario.overrides import apply_overrides
from testbed.domain.textdata import check_numbers
from testbed.orchestration.plan import RunPlan, load_plan, prepare
from testbed.orchestration.runner import RunResult
from testbed.orchestration.runner import run as run_plan


def plan(
    scenario: str | Path | Scenario | Mapping[str, Any],
    *,
    overrides: Mapping[str, Any] | None = None,
    base_dir: str | Path | None = None,
) -> RunPlan:
    """Validate ``scenario`` with ``overrides`` (``{dotted path: value}``) and resolve it against its grid and
    profiles; :class:`UserError` listing every problem. ``base_dir`` resolves relative paths in a scenario given
    as data (default: the working folder)."""
    overrides = dict(overrides or {})
    if isinstance(scenario, str | Path):
        return load_plan(scenario, overrides=overrides)
    data = scenario.model_dump(mode="json", exclude_none=True) if isinstance(scenario, Scenario) else scenario
    if not isinstance(data, Mapping):
        raise UserError(f"scenario: expected a file path, a Scenario or a mapping, got {type(data).__name__}")
    data = apply_overrides(data, overrides)
    check_numbers(data, "scenario")
    from pydantic import ValidationError

    try:
        validated = Scenario.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, None, overrides)
        raise UserError(f"scenario: {len(problems)} problem(s) in the scenario", problems) from None
    return prepare(validated, base_dir=Path(base_dir or "."), overrides=overrides)


def run(
    scenario: str | Path | Scenario | Mapping[str, Any],
    *,
    overrides: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    real_time: bool = False,
    progress: bool = False,
    base_dir: str | Path | None = None,
) -> RunResult:
    """Run ``scenario`` with ``overrides`` applied and write its folder (``out``, new or empty; by default a new
    one under the scenario's ``outputs.dir``). Returns the folder, the KPIs and the verdict."""
    return run_plan(
        plan(scenario, overrides=overrides, base_dir=base_dir),
        Path(out) if out is not None else None,
        progress=progress,
        real_time=real_time,
    )
