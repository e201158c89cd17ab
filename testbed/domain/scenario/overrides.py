"""Overrides of scenario fields by dotted path (pure): ``fleet.battery.share=0.8``, ``prosumers[0].pv.kwp=6``.

An override replaces the value at its path in the scenario's mapping *before* validation, so an overridden
scenario is validated exactly like a file, and a problem in an overridden value names the override. A path
may create a missing mapping on its way (``fleet.ev.share`` where the file has no ``ev``; the new section's
required fields are then reported missing), but never indexes past the end of a list or into a value that is
not a mapping or a list.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from testbed.domain.errors import UserError
from testbed.domain.textdata import load_yaml

_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)((?:\[\d+\])*)")


def split_path(path: str) -> list[str | int]:
    """``prosumers[0].battery.capacity_kwh`` -> ``["prosumers", 0, "battery", "capacity_kwh"]``; a number
    between dots is a list index too (``prosumers.0.battery``)."""
    if not path or path.strip() != path:
        raise ValueError("an empty path, or one with spaces around it")
    out: list[str | int] = []
    for piece in path.split("."):
        if piece.isdigit():
            out.append(int(piece))
            continue
        m = _PART.fullmatch(piece)
        if m is None:
            raise ValueError(f"{piece!r} is not a field name (letters, digits, _) with optional [index]")
        out.append(m.group(1))
        out += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    return out


def path_text(parts: list[str | int]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def parse_assignment(text: str) -> tuple[str, Any]:
    """``"fleet.battery.share=0.8"`` -> ``("fleet.battery.share", 0.8)``; the value is read as YAML (numbers,
    ``true``, ``null``, ``[PV1, PV3]``, ``{min: 1, max: 2}``; anything else is a string)."""
    path, sep, value = text.partition("=")
    if not sep or not path:
        raise UserError(f"--set {text!r}: expected PATH=VALUE, e.g. fleet.battery.share=0.8")
    parsed = load_yaml(value, f"--set {text[:80]!r}: the value")[1] if value.strip() else ""
    return path.strip(), parsed


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``data`` with each override applied; :class:`UserError` listing every path that cannot be."""
    out = copy.deepcopy(dict(data))
    problems = []
    for path, value in overrides.items():
        try:
            parts = split_path(path)
        except ValueError as exc:
            problems.append(f"override {path!r}: {exc}")
            continue
        problem = _set(out, parts, copy.deepcopy(value))
        if problem:
            problems.append(f"override {path}: {problem}")
    if problems:
        raise UserError(f"{len(problems)} override(s) cannot be applied", problems)
    return out


def _set(node: Any, parts: list[str | int], value: Any) -> str | None:
    for depth, key in enumerate(parts):
        last = depth == len(parts) - 1
        here = path_text(parts[:depth]) or "the scenario"
        if isinstance(key, int):
            if not isinstance(node, list):
                return f"{here} is not a list, so [{key}] cannot index it"
            if key >= len(node):
                return f"{here} has {len(node)} item(s), so [{key}] is past its end"
        elif not isinstance(node, dict):
            return f"{here} is not a mapping, so it has no field {key!r}"
        if last:
            node[key] = value
            return None
        if isinstance(key, str) and node.get(key) is None:
            if isinstance(parts[depth + 1], int):
                return f"{path_text(parts[: depth + 1])} does not exist, so it cannot be indexed"
            node[key] = {}
        node = node[key]
    return None


def overridden(loc: tuple[Any, ...], paths: list[list[str | int]]) -> list[str | int] | None:
    """The override path that set the value at validation location ``loc`` (or one of its parents)."""
    for p in paths:
        if list(loc[: len(p)]) == p:
            return p
    return None
