"""Reading the JSON or YAML data files commands take (market cases, games); the one place the CLI parses them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from testbed.domain.errors import UserError
from testbed.domain.textdata import load_json, load_yaml


def read_mapping(path: Path, what: str) -> dict[str, Any]:
    """Read ``path`` (``.json``, ``.yaml`` or ``.yml``) whose top level is a mapping; a missing file, a syntax
    error, NaN/Infinity in JSON, a duplicate key, too deep nesting or a number out of bounds
    (:mod:`testbed.domain.textdata`) is a :class:`UserError` naming the file and ``what`` it should be."""
    if not path.is_file():
        raise UserError(f"cannot read {what} {path}", [f"{path}: no such file"])
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} {path}", [f"{path}: {exc}"]) from None
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = load_json(text, f"{what} {path}")
    elif suffix in (".yaml", ".yml"):
        data = load_yaml(text, f"{what} {path}")[1]
    else:
        raise UserError(f"cannot read {what} {path}", [f"{path}: use a .json, .yaml or .yml file"])
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} is invalid", [f"{path}: the top level must be a mapping"])
    return data
