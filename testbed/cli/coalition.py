"""``fpp coalition share``: split any cooperative game by a sharing rule of :mod:`testbed.domain.fpp.sharing`.

    fpp coalition share GAME.(json|yaml) --method shapley|nucleolus|least-core|proportional
                        [--samples N] [--seed S] [--json]

GAME is ``{"players": [...], "coalitions": [{"members": [...], "value": v}, ...]}`` with every non-empty
coalition listed (optional ``"weights": {player: w}`` for the proportional rule; default: stand-alone
values). It prints the allocation, whether it is in the core (and the coalition that would gain most by
leaving), whether it is individually rational, and for sampled Shapley values the standard errors and seed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from testbed.cli.files import read_mapping
from testbed.domain.errors import UserError
from testbed.domain.fpp.games import parse_game
from testbed.domain.fpp.sharing import METHODS, Allocation, Stability, share, stability


def register(subparsers: argparse._SubParsersAction) -> None:
    coalition = subparsers.add_parser("coalition", help="cooperative games: share a coalition's value fairly")
    sub = coalition.add_subparsers(dest="coalition_command", metavar="SUBCOMMAND")
    sub.required = True
    p = sub.add_parser("share", help="split a game (JSON or YAML) by a sharing rule and check the core",
                       description="Split v(N) of a game file by a sharing rule; print the allocation, core "
                       "membership and individual rationality. See docs/fpp.md.")
    p.add_argument("game", type=Path, help="game file (.json, .yaml or .yml)")
    p.add_argument("--method", choices=METHODS, default="shapley", help="sharing rule (default: shapley)")
    p.add_argument("--samples", type=_positive_int,
                   help="shapley: estimate from N random orders instead of exactly (prints standard errors)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled orders (default 0)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_share)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 2:
        raise argparse.ArgumentTypeError(f"needs at least 2 samples, got {value}")
    return value


def run_share(args: argparse.Namespace) -> int:
    data = read_mapping(args.game, "game")
    try:
        game, weights = parse_game(data)
        allocation = share(game, args.method, samples=args.samples, seed=args.seed, weights=weights)
    except UserError as exc:
        exc.summary = f"{args.game}: {exc.summary}"
        raise
    check = stability(game, allocation.shares)
    if args.json:
        sys.stdout.write(json.dumps(_as_json(allocation, check, game.grand_value), indent=2) + "\n")
    else:
        sys.stdout.write(_as_text(allocation, check, game.grand_value))
    return 0


def _as_json(a: Allocation, s: Stability, grand: float) -> dict[str, Any]:
    out: dict[str, Any] = {"method": a.method, "grand_value": grand,
                           "shares": {p: float(_num(x, grand)) for p, x in a.as_dict().items()}}
    if a.standard_error is not None:
        out["standard_error"] = dict(zip(a.players, a.standard_error, strict=True))
        out["samples"], out["seed"] = a.samples, a.seed
    if a.max_excess is not None:
        out["least_core_value"] = a.max_excess
    out.update(efficient=bool(s.efficient), in_core=s.in_core, max_excess=s.max_excess,
               worst_coalition=list(s.worst_coalition) if s.worst_coalition is not None else None,
               individually_rational=s.individually_rational, below_standalone=list(s.below_standalone))
    if a.note:
        out["note"] = a.note
    return out


def _num(x: float, scale: float = 1.0) -> str:
    """A figure to 6 significant digits, with LP round-off (below 1e-9 of the scale) shown as 0."""
    return f"{0.0 if abs(x) < 1e-9 * max(1.0, abs(scale)) else x:.6g}"


def _as_text(a: Allocation, s: Stability, grand: float) -> str:
    sampled = a.standard_error is not None
    lines = [f"method: {a.method}" + (" (sampled)" if sampled else ""), f"v(N) = {grand:.6g}"]
    width = max(6, *(len(p) for p in a.players))
    lines.append(f"{'player':<{width}}  {'share':>12}" + (f"  {'std error':>12}" if sampled else ""))
    for k, (player, x) in enumerate(zip(a.players, a.shares, strict=True)):
        error = f"  {a.standard_error[k]:>12.3g}" if sampled else ""
        lines.append(f"{player:<{width}}  {_num(x, grand):>12}{error}")
    if sampled:
        mean_share = abs(grand) / len(a.players)
        worst = max(a.standard_error)
        rel = f" ({worst / mean_share:.2%} of the mean share)" if mean_share > 0 else ""
        lines.append(f"sampled: {a.samples} random orders, seed {a.seed}; largest standard error {worst:.3g}{rel}")
    if a.max_excess is not None:
        empty = "empty" if a.max_excess > 1e-9 * max(1.0, abs(grand)) else "not empty"
        lines.append(f"least-core value e* = {_num(a.max_excess)} (the core is {empty})")
    if a.note and not sampled:
        lines.append(f"note: {a.note}")
    if s.in_core is None:
        lines.append("in core: not checked (too many players to list every coalition)")
    elif s.in_core:
        lines.append("in core: yes")
    else:
        worst = "{" + ", ".join(s.worst_coalition or ()) + "}"
        lines.append(f"in core: no (coalition {worst} would gain {_num(s.max_excess, grand)} by leaving)")
    below = ", ".join(s.below_standalone)
    lines.append("individually rational: " + ("yes" if s.individually_rational else
                                              f"no (below its stand-alone value: {below})"))
    if not s.efficient:
        lines.append(f"efficient: no (shares add up to {sum(a.shares):.6g})")
    return "\n".join(lines) + "\n"
