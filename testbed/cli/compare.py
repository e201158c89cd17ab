"""``fpp compare``: one scenario under several coordination strategies, side by side."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from testbed.cli.scenario_cmds import _add_set, _overrides
from testbed.domain.compare.strategies import DEFAULT_STRATEGIES, STRATEGIES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="run a scenario under several coordination strategies (retail, tou, central, p2p) and compare them",
    )
    p.add_argument("scenario", type=Path, help="scenario YAML file")
    p.add_argument(
        "--strategies", default=",".join(DEFAULT_STRATEGIES), metavar="A,B,...",
        help=f"comma-separated, of: {', '.join(STRATEGIES)} (default: {','.join(DEFAULT_STRATEGIES)}); retail and "
        "central are always added (the welfare efficiency is measured between them)",
    )
    p.add_argument(
        "--out", type=Path, help="folder of the comparison, new or empty (default: results/compare-<name>-<time>)"
    )
    p.add_argument("--seed", type=int, help="seed instead of the scenario's (the same as --set seed=N)")
    p.add_argument(
        "--workers", type=int, help="strategies run at once, each in its own process (default: one per core)"
    )
    _add_set(p)
    p.set_defaults(func=_compare)


def _compare(args: argparse.Namespace) -> int:
    from testbed.domain.compare.strategies import parse_strategies
    from testbed.domain.errors import UserError
    from testbed.orchestration.compare.run import compare

    names = parse_strategies(args.strategies)  # before loading anything
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers: must be at least 1, got {args.workers}")
    overrides = _overrides(args)
    if args.seed is not None:
        overrides["seed"] = args.seed
    out = args.out or Path("results") / f"compare-{args.scenario.stem}-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    print(f"comparing {', '.join(names)} on {args.scenario} into {out}", file=sys.stderr)
    c = compare(args.scenario, names, out, overrides=overrides, workers=args.workers)
    for note in c["notes"]:
        print(f"note: {note}", file=sys.stderr)
    for name, r in c["results"].items():
        if r["status"] == "ok":
            eff = r.get("welfare_efficiency")
            print(f"{name:8s} cost {r['cost']:10.2f}  efficiency {'n/a' if eff is None else f'{eff:6.3f}'}  "
                  f"peak import {r['peak_import_kw']:8.1f} kW  ({r['wall_s']:.1f} s)")
        else:
            print(f"{name:8s} FAILED: {r['error'].splitlines()[0]}")
    print(out / "comparison.html")
    return 1 if c["failed"] else 0
