"""A run plan: a scenario file read, validated and resolved against its grid and profiles.

Reading files happens here (orchestration); parsing and checking are the domain's
(:mod:`testbed.domain.scenario`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulators.grid.engine import GridEngine
from simulators.grid.factory import build_engine
from simulators.prosumers.profiles import ProfileSet, load_simbench_profiles
from testbed.domain.errors import UserError
from testbed.domain.scenario.fleet import LoadSite, expand_fleet
from testbed.domain.scenario.loader import parse_scenario
from testbed.domain.scenario.models import Prosumer, Scenario, profiles_source
from testbed.domain.scenario.references import frequency_responders, reference_problems


def read_scenario(path: str | Path, overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Read and validate a scenario file with ``overrides`` (``{dotted path: value}``) applied;
    :class:`UserError` listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such scenario file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot be read ({exc})") from None
    return parse_scenario(text, str(path), overrides)


@dataclass
class RunPlan:
    """A scenario resolved against its grid and profiles, ready to run. ``source`` is the file it was read
    from (None when given as data), ``overrides`` what was changed on top of it (``{dotted path: value}``)."""

    scenario: Scenario
    source: Path | None
    prosumers: list[Prosumer]
    profiles: ProfileSet
    engine: GridEngine
    overrides: dict[str, Any] = field(default_factory=dict)
    #: Setpoints computed before the run (``fpp compare``'s ``tou`` and ``central``): ``(label, battery_kw,
    #: ev_kw)``, (T, n) arrays in prosumer order, NaN where none; None for a run without one.
    schedule: tuple[str, Any, Any] | None = None


def prepare(
    scenario: Scenario,
    *,
    base_dir: Path,
    source: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> RunPlan:
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
    fleet_pv = scenario.fleet.pv if scenario.fleet is not None else None
    for i, name in enumerate(fleet_pv.profiles if fleet_pv is not None else []):
        if name not in profiles.pv:
            known = ", ".join(sorted(profiles.pv))
            problems.append(f"fleet.pv.profiles[{i}]: unknown PV profile {name!r} (known: {known})")
    memory = memory_problem(scenario, len(prosumers), engine)
    if memory:
        problems.append(memory)
    if scenario.fleet is not None:
        explicit = {p.id for p in scenario.prosumers}
        for p in prosumers[len(scenario.prosumers) :]:
            if p.id in explicit:
                problems.append(f"fleet: generates prosumer {p.id!r}, which prosumers already defines")
            if p.bus not in engine.info.bus_ids:
                problems.append(f"fleet: load {p.id!r} of {profiles.source} sits at bus {p.bus!r}, not in the grid")
    if scenario.frequency_response is not None:
        problems += frequency_responders(scenario.frequency_response, prosumers)[1]
    if problems:
        where = str(source) if source else "scenario"
        raise UserError(f"{where}: {len(problems)} problem(s) in the scenario", problems)
    return RunPlan(
        scenario=scenario, source=source, prosumers=prosumers, profiles=profiles, engine=engine,
        overrides=dict(overrides or {}),
    )


def memory_problem(scenario: Scenario, n_prosumers: int, engine: GridEngine) -> str | None:
    """Why the run's recorded time series would not fit in this machine's memory, or None.

    The recorder keeps one float per step for each of 7 series per prosumer and one per bus, line and
    transformer (then a table of them): ~16 bytes per value, held against half the physical memory.
    """
    info = engine.info
    n_series = 7 * n_prosumers + len(info.bus_ids) + len(info.line_ids) + len(info.trafo_ids) + 8
    need = scenario.time.n_steps * n_series * 16
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every system reports it
        return None
    if need <= have / 2:
        return None
    return (
        f"time: {scenario.time.n_steps:,} steps x {n_series:,} recorded series need about {need / 2**30:.1f} GiB, "
        f"more than half of this machine's {have / 2**30:.1f} GiB; shorten duration_h or coarsen resolution_s"
    )


def load_plan(
    path: str | Path, *, overrides: Mapping[str, Any] | None = None, seed: int | None = None
) -> RunPlan:
    """Read a scenario file, apply ``overrides`` (and ``seed``, an override of ``seed``) and resolve it."""
    path = Path(path)
    overrides = dict(overrides or {})
    if seed is not None:
        overrides["seed"] = seed
    scenario = read_scenario(path, overrides)
    return prepare(scenario, base_dir=path.parent, source=path, overrides=overrides)
