"""Which SimBench grids run on both engines, and how closely they agree: every ``-0-sw`` code.

For each code: the network is solved with its own loads and generators on pandapower and on OpenDSS (through
the exporter), as ``fpp grid compare`` does, and one line gives the buses, the largest voltage and loading
differences, the loss difference, and the time. A grid the exporter cannot write shows its refusal.
Run: ``.venv/bin/python benchmarks/grid_simbench_coverage.py [CODE ...]`` (about 3 minutes for all 41 codes).
"""

from __future__ import annotations

import sys
import time
import warnings

import simbench as sb

from simulators.grid.compare import compare_engines
from testbed.domain.errors import UserError


def main(codes: list[str]) -> None:
    warnings.simplefilter("ignore")
    if not codes:
        codes = [c for c in sb.collect_all_simbench_codes() if c.endswith("-0-sw") and "complete" not in c]
    both = 0
    for code in codes:
        t = time.perf_counter()
        try:
            r = compare_engines(f"simbench:{code}")
        except UserError as exc:
            buses = len(sb.get_simbench_net(code).bus)
            print(f"{code:<30} {buses:>6} buses {time.perf_counter() - t:6.1f} s  refused: {'; '.join(exc.problems)}")
            continue
        if not all(r["converged"]):
            print(f"{code:<30} {r['buses']:>6} buses  not converged: {r['message']}")
            continue
        both += 1
        line = r["max_line_loading_diff_pct"]["diff"] or 0.0
        trafo = r["max_trafo_loading_diff_pct"]["diff"] or 0.0
        print(
            f"{code:<30} {r['buses']:>6} buses {time.perf_counter() - t:6.1f} s  "
            f"dV {r['max_vm_diff_pu']['diff']:.1e} pu  dloading {max(line, trafo):.1e} %  "
            f"losses {r['losses_kw'][0]:.2f} vs {r['losses_kw'][1]:.2f} kW ({100 * r['losses_diff_rel']:+.2f} %)",
            flush=True,
        )
    print(f"# {both} of {len(codes)} grids solve on both engines")


if __name__ == "__main__":
    main(sys.argv[1:])
