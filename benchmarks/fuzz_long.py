"""The property-based fuzz tests with many more examples than CI runs: scenario files, platform messages
(to the core and through a real broker) and Modbus writes to emulated devices.

CI runs each property with its default number of examples (together well under a minute); this script sets
``FPP_FUZZ_SCALE`` (default 50: 50 times as many examples) and runs the same test files, printing the
time each took. Any failure is a defect: hypothesis prints the smallest input that shows it.

    .venv/bin/python benchmarks/fuzz_long.py [--scale 50]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = [
    "tests/foundation/test_scenario_fuzz.py",
    "tests/platform/test_platform_fuzz.py",
    "tests/hil/test_hil_fuzz.py",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=50, help="multiplier of every property's example count")
    args = parser.parse_args()
    if args.scale < 1:
        parser.error("--scale must be >= 1")
    env = {**os.environ, "FPP_FUZZ_SCALE": str(args.scale)}
    status = 0
    for path in FILES:
        t0 = time.perf_counter()
        proc = subprocess.run(
            # -n 0: one process, as when the figures in BENCHMARKS.md were taken (the suite's addopts say -n 2)
            [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "--hypothesis-show-statistics",
             path],
            cwd=ROOT,
            env=env,
        )
        print(f"{path}: {'ok' if proc.returncode == 0 else 'FAILED'} in {time.perf_counter() - t0:.1f} s "
              f"(scale {args.scale})", flush=True)
        status = status or proc.returncode
    return status


if __name__ == "__main__":
    sys.exit(main())
