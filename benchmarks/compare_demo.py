"""``fpp compare`` on the demo day (retail, tou, central, p2p) against its slowest single strategy
(target: under 3x on 2 cores).

Run: .venv/bin/python benchmarks/compare_demo.py [--hours H] [--out DIR]

First each strategy alone, one after the other in this process (``run_strategy``: plan, schedule, the
co-simulation, its figures), then the whole comparison (``compare`` with one worker process per core).
Wall clock; the machine's load average is printed beside the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from testbed.orchestration.compare.run import compare
from testbed.orchestration.compare.strategy_run import run_strategy

STRATEGIES = ("retail", "tou", "central", "p2p")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--out", type=Path, help="keep the comparison here (default: a temporary folder)")
    args = ap.parse_args()
    overrides = {"time.duration_h": args.hours}
    tmp = Path(tempfile.mkdtemp(prefix="fpp-compare-bench-"))
    try:
        alone = {}
        for name in STRATEGIES:
            t0 = time.perf_counter()
            r = run_strategy("scenarios/demo.yaml", overrides, name, str(tmp / "alone" / name))
            alone[name] = time.perf_counter() - t0
            print(f"{name:8s} alone {alone[name]:7.1f} s  {r['status']}  cost {r.get('cost', float('nan')):.2f}"
                  f"  load {os.getloadavg()[0]:.1f}", flush=True)
        out = args.out or tmp / "compare"
        t0 = time.perf_counter()
        c = compare("scenarios/demo.yaml", STRATEGIES, out, overrides=overrides)
        wall = time.perf_counter() - t0
        slowest = max(alone, key=alone.get)
        print(f"compare {wall:.1f} s on {c['workers']} workers; slowest alone {slowest} {alone[slowest]:.1f} s; "
              f"ratio {wall / alone[slowest]:.2f}; load {os.getloadavg()[0]:.1f}")
        for name, r in c["results"].items():
            if r["status"] == "ok":
                print(f"  {name:8s} cost {r['cost']:8.2f}  efficiency {r['welfare_efficiency']}  peak import "
                      f"{r['peak_import_kw']:.1f} kW  peak export {r['peak_export_kw']:.1f} kW  "
                      f"worse off {r['gains']['homes_worse_off']}  messages {r['coordination']['messages']}  "
                      f"params/home {r['coordination']['private_parameters_per_home_mean']:.1f}")
            else:
                print(f"  {name:8s} FAILED {r['error']}")
    finally:
        shutil.rmtree(tmp / "alone", ignore_errors=True)
        if args.out is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
