"""Reading YAML and JSON text strictly, for every file a user hands the testbed (pure: text in, data out).

Files come from users and DSOs, so the reader refuses, with one :class:`UserError` naming the line (YAML)
and the reason, what the ordinary parsers accept silently or crash on:

- a key given twice in one mapping (the ordinary parsers keep the last value without a word);
- nesting deeper than :data:`MAX_DEPTH` levels (the ordinary parsers end in a ``RecursionError``);
- an integer written with more than :data:`MAX_INT_CHARS` characters (Python refuses to convert more than
  4300 digits with a ``ValueError`` traceback), an integer beyond ±(2**63 - 1) or a float beyond
  ±:data:`MAX_ABS_FLOAT` (no quantity of a scenario is that large; ``.inf`` included);
- YAML aliases that expand to more than :data:`MAX_NODES` values (a "billion laughs" file), or refer to
  themselves;
- NaN or Infinity in JSON (not JSON).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError

from testbed.domain.errors import UserError

MAX_DEPTH = 32
"""Deepest nesting of mappings and lists in a file (a scenario needs 5)."""
MAX_INT_CHARS = 40
"""Longest integer literal (2**63 has 19 digits; the rest is room for signs, underscores and bases)."""
MAX_INT = 2**63 - 1
MAX_ABS_FLOAT = 1e15
"""Largest magnitude of a float in a file: far beyond any quantity the testbed models, far below overflow."""
MAX_NODES = 1_000_000
"""Most values a YAML document may expand to, aliases counted each time they are used."""


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


def line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
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


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader with a depth limit and duplicate keys refused while composing, and long integer
    literals refused before Python converts them."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_mapping_node(self, anchor: str | None) -> yaml.MappingNode:
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode):
                continue
            ident = (key.tag, key.value)
            if ident in first:
                raise ComposerError(
                    "in a mapping",
                    node.start_mark,
                    f"key {key.value!r} appears twice (first on line {first[ident]}); give each key once",
                    key.start_mark,
                )
            first[ident] = key.start_mark.line + 1
        return node


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    if len(node.value) > MAX_INT_CHARS:
        raise ConstructorError(
            None, None, f"an integer of {len(node.value)} characters; at most {MAX_INT_CHARS}", node.start_mark
        )
    return yaml.SafeLoader.construct_yaml_int(loader, node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases expand to more than MAX_NODES values or refer to themselves."""
    size: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if done:
            open_.discard(id(node))
            size[id(node)] = 1 + sum(size[id(c)] for c in _children(node))
            if size[id(node)] > MAX_NODES:
                raise ComposerError(
                    None, None, f"aliases expand this document past {MAX_NODES:,} values", node.start_mark
                )
            continue
        if id(node) in size:
            continue
        open_.add(id(node))
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_:
                raise ComposerError(None, None, "an alias refers to a node that contains it", child.start_mark)
            if id(child) not in size:
                stack.append((child, False))


def _yaml_error(exc: yaml.YAMLError, source: str) -> UserError:
    mark = getattr(exc, "problem_mark", None)
    where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return UserError(f"{source}:{where} is not valid YAML: {problem}")


def load_yaml(text: str, source: str) -> tuple[yaml.Node | None, Any]:
    """(node tree, for line numbers; data) of YAML ``text``; :class:`UserError` naming ``source`` and the line
    for a syntax error or anything the module docstring lists."""
    loader = _StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_expansion(root)
        data = loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source) from None
    finally:
        loader.dispose()
    check_numbers(data, source, root)
    return root, data


def _int_literal(text: str) -> int:
    if len(text) > MAX_INT_CHARS:
        raise ValueError(f"an integer of {len(text)} digits; at most {MAX_INT_CHARS}")
    return int(text)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a file may hold")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} appears twice in one object; give each key once")
        out[key] = value
    return out


def load_json(text: str, source: str) -> Any:
    """The data of JSON ``text``; :class:`UserError` naming ``source`` for a syntax error or anything the module
    docstring lists."""
    try:
        data = json.loads(
            text, parse_int=_int_literal, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates
        )
    except RecursionError:
        raise UserError(f"{source}: is not valid JSON: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # json.JSONDecodeError is one
        raise UserError(f"{source}: is not valid JSON: {exc}") from None
    depth = max((len(path) for path, _ in _walk(data, leaves_only=False)), default=0)
    if depth > MAX_DEPTH:
        raise UserError(f"{source}: is not valid JSON: nested deeper than {MAX_DEPTH} levels")
    check_numbers(data, source)
    return data


def _walk(data: Any, *, leaves_only: bool = True) -> Iterator[tuple[tuple[Any, ...], Any]]:
    """(path, value) of every value below ``data``, iteratively (no recursion limit)."""
    stack: list[tuple[tuple[Any, ...], Any]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend((path + (k,), v) for k, v in value.items())
            if not leaves_only:
                yield path, value
        elif isinstance(value, list):
            stack.extend((path + (i,), v) for i, v in enumerate(value))
            if not leaves_only:
                yield path, value
        else:
            yield path, value


def number_problem(value: Any) -> str | None:
    """Why ``value`` is a number too large for a file, or None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) > MAX_INT:
        return f"an integer beyond ±(2**63 - 1): {str(value)[:12]}... ({len(str(abs(value)))} digits)"
    if isinstance(value, float) and not (math.isnan(value) or abs(value) <= MAX_ABS_FLOAT):
        return f"{value!r} is beyond ±{MAX_ABS_FLOAT:g}, more than any quantity here"
    return None


def check_numbers(data: Any, source: str, root: yaml.Node | None = None) -> None:
    """:class:`UserError` listing every number of ``data`` beyond the bounds (with its path and line)."""
    problems = []
    for path, value in _walk(data):
        why = number_problem(value)
        if why is not None:
            line = line_of(root, path) if root is not None else None
            problems.append(f"{field_path(path)}{f' (line {line})' if line else ''}: {why}")
    if problems:
        raise UserError(f"{source}: {len(problems)} number(s) out of bounds", sorted(problems))
