"""Time to a first result: ``fpp --help``, ``fpp validate`` on the demo and the demo day without its market.

Each command runs as a fresh process (as a user runs it), on a cold cache (an empty ``FPP_CACHE_DIR``) and on a
warm one (filled by an earlier run). The day without market is ``scenarios/demo.yaml`` with its ``market:``
section removed (written to a temporary folder, so it follows the demo). With ``--baseline DIR`` (a checkout of
another revision, e.g. ``git archive main | tar -x -C DIR``) the same commands of that revision run interleaved
with this one's, on the same Python environment, and the script prints the ratio of the medians.

Prints, per command: median wall time [s] and median CPU time of the process [s]; the load average before and
after. Targets (warm cache): validate <= 3 s, the day without market <= 5 s.

Run: .venv/bin/python benchmarks/time_to_first_result.py [--repeat 3] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scenarios" / "demo.yaml"
TARGETS_S = {"validate (warm)": 3.0, "day without market (warm)": 5.0}


def no_market_copy(folder: Path) -> Path:
    """The demo scenario without its market section, in ``folder``."""
    scenario = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    scenario.pop("market", None)
    scenario["name"] = "demo-no-market"
    path = folder / "demo-no-market.yaml"
    path.write_text(yaml.safe_dump(scenario, sort_keys=False), encoding="utf-8")
    return path


def fpp(args: list[str], code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``python -m testbed ARGS`` with the code of the checkout ``code``.

    The process starts in ``code``: with ``-m`` the working directory comes first on ``sys.path``, before
    ``PYTHONPATH`` and the editable install, so this is what selects the revision.
    """
    env = dict(env, PYTHONPATH=code)
    return subprocess.run([sys.executable, "-m", "testbed", *args], cwd=code, env=env, capture_output=True, text=True)


def timed(args: list[str], code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system) time of one process running ``python -m testbed ARGS`` [s]."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = fpp(args, code, env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise RuntimeError(f"fpp {' '.join(args)} failed ({res.returncode}):\n{res.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each command and variant (median)")
    parser.add_argument("--baseline", type=Path, help="checkout of another revision to compare with")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="fpp-ttfr-"))
    try:
        scenario = no_market_copy(work)
        variants = {"this": str(ROOT)}
        if args.baseline is not None:
            variants["baseline"] = str(args.baseline.resolve())
        warm_dir = work / "warm-cache"

        def env(cache_dir: Path) -> dict[str, str]:
            return dict(os.environ, FPP_CACHE_DIR=str(cache_dir))

        runs = 0

        def out_dir() -> str:
            nonlocal runs
            runs += 1
            return str(work / f"run{runs}")

        commands = {
            "--help": lambda: ["--help"],
            "validate": lambda: ["validate", str(DEMO)],
            "day without market": lambda: ["run", str(scenario), "--out", out_dir(), "--no-progress"],
        }
        # Fill the warm cache once for this revision (the baseline has none: it ignores FPP_CACHE_DIR).
        timed(commands["day without market"](), variants["this"], env(warm_dir))

        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        load_before = os.getloadavg()
        for _ in range(args.repeat):
            for name, make_args in commands.items():
                for cache_state in ("cold", "warm"):
                    for variant in variants:
                        if variant == "baseline" and cache_state == "warm":
                            continue  # no cache in the baseline: its cold and warm runs are the same
                        cache_dir = warm_dir if cache_state == "warm" else work / f"cold-{time.monotonic_ns()}"
                        label = f"{name} ({cache_state})" if variant == "this" else f"{name} (baseline)"
                        run = timed(make_args(), variants[variant], env(cache_dir))
                        results.setdefault((label, variant), []).append(run)
        load_after = os.getloadavg()

        print(f"time to a first result, {args.repeat} runs each, medians; python {sys.version.split()[0]}")
        print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (2 cores)")
        medians = {
            k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in results.items()
        }
        for (label, _variant), (wall, cpu) in medians.items():
            target = TARGETS_S.get(label)
            extra = f"  (target <= {target:.0f} s)" if target else ""
            print(f"{label:32s} wall {wall:6.2f} s   cpu {cpu:6.2f} s{extra}")
        if "baseline" in variants:
            print("ratio this / baseline (median wall; median cpu):")
            for name in commands:
                base_wall, base_cpu = medians[(f"{name} (baseline)", "baseline")]
                for cache_state in ("cold", "warm"):
                    wall, cpu = medians[(f"{name} ({cache_state})", "this")]
                    print(f"  {name + ' (' + cache_state + ')':30s} {wall / base_wall:5.2f}; {cpu / base_cpu:5.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
