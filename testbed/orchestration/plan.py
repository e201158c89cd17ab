"""A run plan: a scenario file read, validated and resolved against its grid and profiles.

Reading files happens here (orchestration); parsing and checking are the domain's
(:mod:`testbed.domain.scenario`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simulators.grid.engine import GridEngine
from simulators.grid.factory import build_engine
from simulators.prosumers.profiles import ProfileSet, load_simbench_profiles
from testbed.domain.errors import UserError
from testbed.domain.scenario.fleet import LoadSite, expand_fleet
from testbed.domain.scenario.loader import parse_scenario
from testbed.domain.scenario.models import Prosumer, Scenario, profiles_source
from testbed.domain.scenario.references import reference_problems


def read_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; :class:`UserError` listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such scenario file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({exc})") from None
    return parse_scenario(text, str(path))


@dataclass
class RunPlan:
    """A scenario resolved against its grid and profiles, ready to run."""

    scenario: Scenario
    source: Path | None
    prosumers: list[Prosumer]
    profiles: ProfileSet
    engine: GridEngine


def prepare(scenario: Scenario, *, base_dir: Path, source: Path | None = None) -> RunPlan:
    """Load the grid and profiles, expand the fleet and check every reference; raise UserError listing all."""
    g = scenario.grid
    engine = build_engine(g.network, engine=g.engine, keep_elements=g.keep_elements, base_dir=base_dir)
    profiles = load_simbench_profiles(profiles_source(scenario))
    prosumers = list(scenario.prosumers)
    if scenario.fleet is not None:
        sites = [LoadSite(name=gl.name, bus_id=gl.bus_id) for gl in profiles.grid_loads]
        prosumers += expand_fleet(scenario.fleet, sites, scenario.seed)
    problems = reference_problems(
        scenario.prosumers,
        bus_ids=set(engine.info.bus_ids),
        load_profiles=set(profiles.load_p),
        pv_profiles=set(profiles.pv),
        grid_loads={gl.name for gl in profiles.grid_loads},
    )
    if scenario.fleet is not None:
        explicit = {p.id for p in scenario.prosumers}
        for p in prosumers[len(scenario.prosumers) :]:
            if p.id in explicit:
                problems.append(f"fleet: generates prosumer {p.id!r}, which prosumers already defines")
            if p.bus not in engine.info.bus_ids:
                problems.append(f"fleet: load {p.id!r} of {profiles.source} sits at bus {p.bus!r}, not in the grid")
    if problems:
        where = str(source) if source else "scenario"
        raise UserError(f"{where}: {len(problems)} problem(s) in the scenario", problems)
    return RunPlan(scenario=scenario, source=source, prosumers=prosumers, profiles=profiles, engine=engine)


def load_plan(path: str | Path, *, seed: int | None = None) -> RunPlan:
    path = Path(path)
    scenario = read_scenario(path)
    if seed is not None:
        if seed < 0:
            raise UserError(f"--seed: must be >= 0, got {seed}")
        scenario = scenario.model_copy(update={"seed": seed})
    return prepare(scenario, base_dir=path.parent, source=path)


