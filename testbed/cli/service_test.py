"""``fpp test TEST.yaml [--real-time] [--out DIR]``: run one service test and give its verdict.

Exit status: 0 pass, 1 fail or inconclusive, 2 bad input, 3 device fault (the verdict's own exit code).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("test", help="validate a grid service on a simulated, emulated or real device")
    p.add_argument("test_file", metavar="TEST.yaml", help="service test file (see docs/services.md)")
    p.add_argument("--real-time", action="store_true", help="run on the wall clock (needed for a device in the loop)")
    p.add_argument("--out", default=None, help="folder for verdict.json and report.html (default results/test-<name>)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import logging

    from testbed.orchestration.service_test import load_test, run_service_test, write_results

    if args.verbose == 0:  # a device that stops answering is reported in the verdict, not as pymodbus noise
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    test, signal = load_test(args.test_file)
    out = Path(args.out) if args.out else Path("results") / f"test-{Path(args.test_file).stem}"
    result = run_service_test(test, signal, real_time=args.real_time)
    write_results(result, out)
    v = result.verdict
    print(f"{test.name}: {v.summary()}")
    for c in v.criteria:
        mark = {True: "pass", False: "FAIL", None: "n/a "}[c.passed]
        fig = "" if c.figure is None else f" {c.figure:.4g} {c.unit}"
        print(f"  [{mark}] {c.name}:{fig}")
    print(f"verdict and report in {out}", file=sys.stderr)
    return v.exit_code
