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
from testbed.domain.scenario.overrides import apply_overrides, overridden, split_path


def field_path(loc: tuple[Any, ...], empty: str = "(top level)") -> str:
    """``('prosumers', 3, 'battery', 'capacity_kwh')`` -> ``prosumers[3].battery.capacity_kwh``; ``empty`` for
    the top level itself."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or empty


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """The 1-based line of the YAML node at ``loc``, or of its closest existing parent."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            nxt = next((v for k, v in node.value if getattr(k, "value", None) == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            nxt = node.value[part]
        else:
            nxt = None
        if nxt is None:
            break
        node = nxt
        line = node.start_mark.line + 1
    return line


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
            line = _line_of(root, loc)
            where = field_path(loc) + (f" (line {line})" if line else "")
        problems.append(f"{where}: {_reason(err)}")
    return problems


def load_yaml_mapping(text: str, source: str, what: str) -> tuple[yaml.Node | None, dict]:
    """(YAML node tree for line numbers, data) of a file that must hold a mapping; a :class:`UserError`
    naming the line of a syntax error, or saying that ``what`` is a mapping."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"{source}:{where} is not valid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise UserError(f"{source}: {what}, got {type(data).__name__}")
    return root, data


def parse_scenario(text: str, source: str = "<scenario>", overrides: Mapping[str, Any] | None = None) -> Scenario:
    """Parse and validate scenario YAML text with ``overrides`` (``{dotted path: value}``, see
    :mod:`testbed.domain.scenario.overrides`) applied; raise :class:`UserError` listing every problem."""
    root, data = load_yaml_mapping(text, source, "a scenario is a YAML mapping (name: ..., time: ..., grid: ...)")
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        problems = validation_problems(exc, root, overrides)
        raise UserError(f"{source}: {len(problems)} problem(s) in the scenario", problems) from None
