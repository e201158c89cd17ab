"""``fpp market``: clear a market case file with any mechanism of :mod:`testbed.domain.market`.

    fpp market clear CASE [--mechanism double-auction|pay-as-bid|pool|p2p|admm] [--out result.json]

CASE is JSON (``.json``) or YAML (``.yaml``/``.yml``); the result is written as JSON to ``--out`` or stdout.
File reading and writing live here, not in the pure library.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from testbed.cli.files import read_mapping
from testbed.domain.errors import UserError
from testbed.domain.market import clear
from testbed.domain.market.mechanisms import DEFAULT_MECHANISM, MECHANISM_NAMES


def register(subparsers: argparse._SubParsersAction) -> None:
    market = subparsers.add_parser("market", help="P2P market engine: clear a market case")
    sub = market.add_subparsers(dest="market_command", metavar="SUBCOMMAND")
    sub.required = True
    p = sub.add_parser("clear", help="clear one interval of a case file (JSON or YAML) and print the result")
    p.add_argument("case", type=Path, help="case file (.json, .yaml or .yml)")
    p.add_argument(
        "--mechanism", choices=MECHANISM_NAMES, default=DEFAULT_MECHANISM,
        help=f"mechanism (default: {DEFAULT_MECHANISM}, as in scenarios and fpp platform)",
    )
    p.add_argument("--out", type=Path, help="write the result JSON here instead of stdout")
    p.add_argument("--partners", type=int, help="p2p/admm: trade with the next K agents only (sparse graph)")
    p.add_argument("--segments", type=int, help="double auction: pieces per agent curve (default 4)")
    p.add_argument("--max-iter", type=int, help="admm: round limit (default 20000)")
    p.set_defaults(func=run_clear)


def read_case(path: Path) -> dict[str, Any]:
    """Read a case file; a missing file or a syntax error is a :class:`UserError` naming the file."""
    return read_mapping(path, "market case")


def run_clear(args: argparse.Namespace) -> int:
    data = read_case(args.case)
    options: dict[str, Any] = {}
    if args.partners is not None:
        options["partners"] = args.partners
    if args.segments is not None:
        options["segments"] = args.segments
    if args.max_iter is not None:
        options["max_iter"] = args.max_iter
    try:
        result = clear(data, args.mechanism, **options)
    except UserError as exc:
        exc.summary = f"{args.case}: {exc.summary}"
        raise
    text = json.dumps(_clean(result.model_dump()), indent=2)
    if args.out is None:
        sys.stdout.write(text + "\n")
    else:
        try:
            args.out.write_text(text + "\n", encoding="utf-8")
        except OSError as exc:
            problem = f"{args.out}: {exc.strerror}"
            raise UserError(f"cannot write the result to {args.out}", [problem]) from None
    return 0


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj
