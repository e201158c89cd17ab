"""Where ``fpp validate`` on the demo and the demo day without market spend their time, by sampling profile.

Runs each command under py-spy (``pip install py-spy``; a sampling profiler that does not slow the process
down the way cProfile does) and sorts every sample into one phase, the first that matches its stack:

numba compiling or loading kernels; reading SimBench's CSV files; the two power flows that choose the solver;
importing pandapower; other imports; the disk cache; power-flow steps; writing the report; the rest.

Prints seconds (samples / rate) and shares per phase. ``--baseline DIR`` profiles another revision's code
(a checkout; the command starts in it) instead of this one; ``--cache DIR`` sets FPP_CACHE_DIR (default: a
temporary folder filled by one run of the day first, i.e. a warm cache).

Run: .venv/bin/python benchmarks/profile_first_result.py [--baseline DIR] [--rate 100]
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from time_to_first_result import DEMO, ROOT, no_market_copy  # noqa: E402

# (phase, substrings of a frame); the first phase with a matching frame in a sample's stack takes the sample.
PHASES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("numba (compile or load kernels)", ("(numba/core/dispatcher.py", "(numba/core/caching.py")),
    ("SimBench CSV files", ("(simbench/",)),
    ("solver choice (2 power flows)", ("_choose_solver",)),
    ("import pandapower", ("<module> (pandapower/__init__.py",)),
    ("other imports", ("_find_and_load",)),
    ("disk cache", ("(simulators/cache.py",)),
    ("power-flow steps", ("GridSimulator.step",)),
    ("report", ("write_report",)),
)


def profile(args: list[str], code: str, env: dict[str, str], rate: int, out: Path) -> dict[str, int]:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = [py_spy, "record", "--rate", str(rate), "--format", "raw", "--output", str(out), "--subprocesses", "--"]
    # started in the checkout: with -m the working directory comes first on sys.path
    subprocess.run([*cmd, sys.executable, "-m", "testbed", *args], cwd=code, env=env, check=True, capture_output=True)
    counts: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        phase = next((p for p, keys in PHASES if any(k in stack for k in keys)), "rest")
        counts[phase] += int(n)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="profile this checkout's code instead")
    parser.add_argument("--cache", type=Path, help="FPP_CACHE_DIR to use (default: a warm temporary one)")
    parser.add_argument("--rate", type=int, default=100, help="samples per second")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fpp-profile-"))
    try:
        scenario = no_market_copy(work)
        cache_dir = args.cache or work / "cache"
        code = str((args.baseline or ROOT).resolve())
        env = dict(os.environ, FPP_CACHE_DIR=str(cache_dir), PYTHONPATH=code)
        commands = {
            "validate": ["validate", str(DEMO)],
            "day without market": ["run", str(scenario), "--out", str(work / "run"), "--no-progress"],
        }
        if args.cache is None and args.baseline is None:  # fill the cache once (grid, profiles, solver choice)
            fill = ["run", str(scenario), "--out", str(work / "fill"), "--no-progress"]
            subprocess.run([sys.executable, "-m", "testbed", *fill], cwd=code, env=env, check=True, capture_output=True)
        print(f"code: {code}; cache: {cache_dir}; load average {os.getloadavg()[0]:.2f} (2 cores)")
        for name, cmd_args in commands.items():
            counts = profile(cmd_args, code, env, args.rate, work / f"{name}.txt")
            total = sum(counts.values())
            print(f"{name}: {total / args.rate:.1f} s sampled")
            for phase, _ in (*PHASES, ("rest", ())):
                n = counts.get(phase, 0)
                print(f"  {phase:34s} {n / args.rate:6.2f} s  {100 * n / max(total, 1):5.1f} %")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
