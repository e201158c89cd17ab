"""Reading the JSON or YAML data files commands take (market cases, games); the one place the CLI parses them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from testbed.domain.errors import UserError


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """Read ``path`` (``.json``, ``.yaml`` or ``.yml``) whose top level is a mapping; a missing file, a syntax
    error or NaN/Infinity in JSON is a :class:`UserError` naming the file and ``what`` it should be."""
    if not path.is_file():
        raise UserError(f"cannot read {what} {path}", [f"{path}: no such file"])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} {path}", [f"{path}: {exc}"]) from None
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text, parse_constant=_reject_constant)
        elif suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        else:
            raise UserError(f"cannot read {what} {path}", [f"{path}: use a .json, .yaml or .yml file"])
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise UserError(f"cannot read {what} {path}", [f"{path}: {exc}"]) from None
    except ValueError as exc:  # NaN/Infinity in JSON
        raise UserError(f"cannot read {what} {path}", [f"{path}: {exc}"]) from None
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} is invalid", [f"{path}: the top level must be a mapping"])
    return data


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a file may hold")
