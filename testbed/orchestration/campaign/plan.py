"""Reading a campaign: the campaign file, its base (a scenario or a service test), every experiment expanded
and validated before anything runs, and the campaign's folder.

``<output_dir>/<name>/`` holds ``campaign.yaml`` (the file as given), ``experiments/<key>/`` per experiment
(``experiment.json`` with its parameters, the run's folder ``run/``, and ``result.json`` once it has
finished or failed), then ``summary.parquet`` and ``campaign.html``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from testbed.domain.campaign.design import Experiment, Kind, experiments
from testbed.domain.campaign.models import Campaign
from testbed.domain.errors import UserError
from testbed.domain.scenario.loader import load_yaml_mapping, validation_problems

DEFAULT_DEVICE_RESOURCE = "hil"


@dataclass(frozen=True)
class CampaignPlan:
    campaign: Campaign
    source: Path
    kind: Kind
    base_path: Path
    experiments: list[Experiment]
    out_dir: Path

    @property
    def device_resource(self) -> str:
        return self.campaign.experiment_specification.device_resource or DEFAULT_DEVICE_RESOURCE

    def experiment_dir(self, exp: Experiment) -> Path:
        return self.experiment_dir_by_key(exp.key)

    def experiment_dir_by_key(self, key: str) -> Path:
        return self.out_dir / "experiments" / key

    @property
    def swept(self) -> list[str]:
        """The parameters that vary, in the order of the file (``seed`` last)."""
        names = list(self.campaign.test_specification.inputs)
        return names + (["seed"] if self.campaign.test_specification.seeds is not None else [])


def _read(path: Path, what: str) -> tuple[str, Any]:
    try:
        return path.read_text(encoding="utf-8"), None
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what}", [str(exc)]) from None


def parse_campaign(text: str, source: str) -> Campaign:
    root, data = load_yaml_mapping(
        text, source, "a campaign is a YAML mapping (test_case:, test_specification:, experiment_specification:)"
    )
    try:
        return Campaign.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, root)
        raise UserError(f"{source}: {len(problems)} problem(s) in the campaign", problems) from None


def _check_references(name: str, base_path: Path, base: dict, exps: list[Experiment]) -> None:
    """Resolve each experiment against its grid and profiles (buses, profiles, grid loads: what the schema
    cannot know), listing every problem of every experiment; the grid and profiles are cached, so this costs
    ~0.05 s an experiment."""
    import json

    from testbed.domain.campaign.design import plain
    from testbed.domain.scenario.overrides import apply_overrides
    from testbed.orchestration.api import plan

    problems = []
    checked: dict[str, list[str]] = {}
    for exp in exps:
        data = apply_overrides(base, exp.overrides)
        key = json.dumps(plain(_references_of(data)), sort_keys=True, default=str)
        if key not in checked:  # experiments that name the same grid, profiles and homes are checked once
            try:
                plan(data, base_dir=base_path.parent)
                checked[key] = []
            except UserError as exc:
                checked[key] = exc.problems or [exc.summary]
        head = f"experiment {exp.index + 1} ({exp.label()})"
        problems += [f"{head}: {p}" for p in checked[key]]
    if problems:
        raise UserError(f"campaign {name}: {len(problems)} problem(s) in {len(exps)} experiment(s); nothing was run",
                        problems)


def read_campaign(path: str | Path) -> Campaign:
    """The campaign file, checked against its schema (not yet its experiments)."""
    text, _ = _read(Path(path), "campaign file")
    return parse_campaign(text, str(path))


def _references_of(data: dict) -> dict:
    """The parts of a scenario that its references depend on: the grid and profiles, the explicit prosumers,
    and the fleet's PV profiles (a fleet's shares and sizes, the seed and the time window name nothing)."""
    fleet = data.get("fleet")
    pv = fleet.get("pv") if isinstance(fleet, dict) else None
    return {
        "grid": data.get("grid"), "profiles": data.get("profiles"), "prosumers": data.get("prosumers"),
        "fleet": fleet is not None, "fleet_pv_profiles": pv.get("profiles") if isinstance(pv, dict) else None,
    }


def load_campaign(path: str | Path, out: str | Path | None = None) -> CampaignPlan:
    """Read and check a campaign file and its base, and expand every experiment; a :class:`UserError` listing
    every problem (of the file, or of every experiment at once) before anything runs."""
    path = Path(path)
    campaign = read_campaign(path)
    base = campaign.test_specification.base
    kind: Kind = "scenario" if base.scenario is not None else "test"
    base_path = (path.parent / (base.scenario or base.test or "")).resolve()
    if not base_path.is_file():
        raise UserError(
            f"{path}: cannot read the base",
            [f"test_specification.base.{kind}: {base_path}: no such file (paths are relative to the campaign file)"],
        )
    base_text, _ = _read(base_path, kind)
    _, base_data = load_yaml_mapping(base_text, str(base_path), f"a {kind} file is a YAML mapping")
    exps = experiments(campaign, kind, base_data)
    if kind == "scenario":
        _check_references(campaign.name, base_path, base_data, exps)
    out_dir = Path(out) if out is not None else Path(campaign.output_dir) / campaign.name
    return CampaignPlan(campaign, path, kind, base_path, exps, out_dir.resolve())
