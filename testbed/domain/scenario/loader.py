"""Reading a scenario file: YAML syntax, then the schema, every problem reported at once with its place.

A problem is written as ``<field path> (line N): <reason>``, e.g.
``prosumers[3].battery.capacity_kwh (line 41): must be greater than 0, got -5``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml
from pydantic import ValidationError

from testbed.domain.errors import UserError
from testbed.domain.scenario.models import Scenario
from testbed.domain.textdata import check_numbers, field_path, line_of, load_yaml

__all__ = ["field_path", "load_yaml_mapping", "parse_scenario", "validation_problems"]
from testbed.domain.scenario.overrides import apply_overrides, overridden, split_path


def _reason(err: dict[str, Any]) -> str:
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    msg = msg[0].lower() + msg[1:] if msg else msg
    if err["type"] == "extra_forbidden":
        return "unknown field (check the spelling; see `fpp schema` for the fields)"
    if err["type"] == "missing":
        return "required field is missing"
    value = err.get("input")
    if isinstance(value, (int, float, str, bool)) and err["type"] not in ("value_error",):
        msg += f", got {value!r}"
    return msg


def validation_problems(
    exc: ValidationError, root: yaml.Node | None = None, overrides: Mapping[str, Any] | None = None
) -> list[str]:
    """One line per problem: ``<field path> (line N): <reason>``; a value set by an override names it instead
    of a line: ``<field path> (override fleet.battery.share=1.5): <reason>``."""
    paths = {path: split_path(path) for path in overrides or {}}
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        by = next((path for path, parts in paths.items() if overridden(loc, [parts])), None)
        if by is not None:
            where = f"{field_path(loc)} (override {by}={overrides[by]!r})"
        else:
            line = line_of(root, loc)
            where = field_path(loc) + (f" (line {line})" if line else "")
        problems.append(f"{where}: {_reason(err)}")
    return problems


def load_yaml_mapping(text: str, source: str, what: str) -> tuple[yaml.Node | None, dict]:
    """(YAML node tree for line numbers, data) of a file that must hold a mapping; a :class:`UserError`
    naming the line of a syntax error, a duplicate key, too deep nesting or a number out of bounds
    (:mod:`testbed.domain.textdata`), or saying that ``what`` is a mapping."""
    root, data = load_yaml(text, source)
    if not isinstance(data, dict):
        raise UserError(f"{source}: {what}, got {type(data).__name__}")
    return root, data


def parse_scenario(text: str, source: str = "<scenario>", overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Parse and validate scenario YAML text with ``overrides`` (``{dotted path: value}``, see
    :mod:`testbed.domain.scenario.overrides`) applied; raise :class:`UserError` listing every problem."""
    root, data = load_yaml_mapping(text, source, "a scenario is a YAML mapping (name: ..., time: ..., grid: ...)")
    if overrides:
        data = apply_overrides(data, overrides)
        check_numbers(data, source, root)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, root, overrides)
        raise UserError(f"{source}: {len(problems)} problem(s) in the scenario", problems) from None
