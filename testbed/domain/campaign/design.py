"""From a campaign's test specification to its experiments (pure): the design's points, each with its seed,
as overrides of the base; every experiment validated like a file, all problems listed at once.

- a **full grid** is every combination of the inputs' values, in the order the inputs are written;
- a **Latin hypercube** of N samples (McKay, Beckman and Conover, Technometrics 21(2), 1979) cuts each input's
  range in N equal strata and takes one point in each, the strata of the inputs paired by a random permutation
  (seeded by ``design.seed``): a continuous range ``{start, stop}`` gives a value within the stratum, a list or
  a stepped range the value whose index falls in it;
- ``seeds`` multiply the points: each point runs once with every seed (``seed`` is overridden).

An experiment's key is a hash of its content (the base with its overrides applied), so the same experiment
has the same key in every campaign that contains it, and a changed base gives new keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import ValidationError

from testbed.domain.campaign.models import Campaign, RangeSpec, SeedSpec
from testbed.domain.errors import UserError
from testbed.domain.scenario.loader import validation_problems
from testbed.domain.scenario.overrides import apply_overrides, split_path

Kind = Literal["scenario", "test"]
KEY_LENGTH = 16  # hex digits of SHA-256: 64 bits, no collision in any campaign a lab runs


@dataclass(frozen=True)
class Experiment:
    """One run of a campaign: its number in the design, its parameters (input path -> value, with ``seed``
    when seeds are swept), the overrides they make and the key of its content."""

    index: int
    parameters: dict[str, Any]
    overrides: dict[str, Any]
    key: str
    needs_device: bool = False

    def label(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.parameters.items()) or "the base as it is"


def input_values(campaign: Campaign) -> tuple[dict[str, list[Any] | RangeSpec], list[str]]:
    """Each input's values (a list) or continuous range, and the problems of the ``inputs`` block."""
    spec = campaign.test_specification
    out: dict[str, list[Any] | RangeSpec] = {}
    problems = []
    lhs = spec.design.kind == "latin-hypercube"
    for path, raw in spec.inputs.items():
        where = f"test_specification.inputs.{path}"
        try:
            split_path(path)
        except ValueError as exc:
            problems.append(f"{where}: not a dotted path: {exc}")
            continue
        if path == "seed" and spec.seeds is not None:
            problems.append(f"{where}: seeds are swept by test_specification.seeds; do not give both")
            continue
        if isinstance(raw, list):
            if not raw:
                problems.append(f"{where}: an empty list of values")
                continue
            out[path] = raw
        elif isinstance(raw, Mapping):
            try:
                rng = RangeSpec.model_validate(raw)
            except ValidationError as exc:
                problems += [f"{where}.{p}" if not p.startswith("(") else f"{where} {p}"
                             for p in validation_problems(exc)]
                continue
            if rng.step is None and not lhs:
                problems.append(f"{where}: a range without step is continuous; give step for a full grid")
                continue
            out[path] = rng if rng.step is None else range_values(rng)
        else:
            problems.append(
                f"{where}: expected a list of values or a range {{start, stop, step}}, got {raw!r}"
            )
    return out, problems


def range_values(rng: RangeSpec) -> list[float]:
    """``start, start + step, ...`` up to ``stop`` (included when on the step, within 1e-9 of a step)."""
    step = float(rng.step or (rng.stop - rng.start) or 1.0)
    n = int(math.floor((rng.stop - rng.start) / step + 1e-9)) + 1
    return [round(rng.start + i * step, 12) for i in range(n)]


def seeds_of(campaign: Campaign) -> list[int] | None:
    seeds = campaign.test_specification.seeds
    if isinstance(seeds, SeedSpec):
        return list(range(seeds.first, seeds.first + seeds.count))
    return list(seeds) if seeds is not None else None


def design_points(campaign: Campaign, values: dict[str, list[Any] | RangeSpec]) -> list[dict[str, Any]]:
    """The design's points (input path -> value), before seeds."""
    design = campaign.test_specification.design
    paths = list(values)
    if design.kind == "full-grid":
        lists = [values[p] for p in paths]
        return [dict(zip(paths, combo, strict=True)) for combo in itertools.product(*lists)]
    n = int(design.samples or 0)
    rng = np.random.default_rng(design.seed)
    points: list[dict[str, Any]] = [{} for _ in range(n)]
    for path in paths:
        u = (rng.permutation(n) + rng.random(n)) / n  # one point in each of n strata of [0, 1)
        v = values[path]
        for i in range(n):
            if isinstance(v, RangeSpec):
                points[i][path] = round(v.start + float(u[i]) * (v.stop - v.start), 12)
            else:
                points[i][path] = v[min(int(u[i] * len(v)), len(v) - 1)]
    return points


def plain(value: Any) -> Any:
    """A value as JSON holds it: YAML's dates and times become ISO 8601 text (which the schema reads back)."""
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def content_key(kind: Kind, data: Mapping[str, Any]) -> str:
    """The hash of an experiment's content: the kind of base and its data with the overrides applied."""
    text = json.dumps({"kind": kind, "base": data}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def _problems_of(kind: Kind, data: dict[str, Any], overrides: dict[str, Any]) -> tuple[list[str], bool]:
    """(problems of the effective base, whether it needs a device in the loop)."""
    if kind == "scenario":
        from testbed.domain.scenario.models import Scenario

        try:
            sc = Scenario.model_validate(data)
        except ValidationError as exc:
            return validation_problems(exc, None, overrides), False
        hil = any((p.pv and p.pv.hil) or (p.battery and p.battery.hil) for p in sc.prosumers)
        return [], bool(hil)
    from testbed.domain.services.testfile import ServiceTest, check_test

    try:
        test = ServiceTest.model_validate(data)
    except ValidationError as exc:
        return validation_problems(exc, None, overrides), False
    try:
        check_test(test, "test")
    except UserError as exc:
        return exc.problems, False
    return [], test.device.kind == "hil"


def experiments(campaign: Campaign, kind: Kind, base: Mapping[str, Any]) -> list[Experiment]:
    """Every experiment of the campaign on ``base`` (the base file's data), each validated; a
    :class:`UserError` listing every problem of every experiment (and of the inputs) before anything runs.
    Points that give the same content (a Latin hypercube picking the same values twice) run once."""
    values, problems = input_values(campaign)
    seeds = seeds_of(campaign)
    if seeds is not None and kind == "test":
        problems.append("test_specification.seeds: a service test has no seed to vary")
        seeds = None
    if problems:
        raise UserError(f"campaign {campaign.name}: {len(problems)} problem(s) in the inputs", problems)
    points = design_points(campaign, values)
    if seeds is not None:
        points = [p | {"seed": s} for p in points for s in seeds]
    out: list[Experiment] = []
    seen: set[str] = set()
    for i, point in enumerate(points):
        point = {k: plain(v) for k, v in point.items()}
        head = f"experiment {i + 1} ({', '.join(f'{k}={v!r}' for k, v in point.items())})"
        try:
            data = apply_overrides(base, point)
        except UserError as exc:
            problems += [f"{head}: {p}" for p in exc.problems]
            continue
        found, needs_device = _problems_of(kind, data, point)
        if found:
            problems += [f"{head}: {p}" for p in found]
            continue
        key = content_key(kind, plain(data))
        if key in seen:
            continue
        seen.add(key)
        out.append(Experiment(len(out), dict(point), dict(point), key, needs_device))
    if problems:
        raise UserError(
            f"campaign {campaign.name}: {len(problems)} problem(s) in {len(points)} experiment(s); nothing was run",
            problems,
        )
    return out
