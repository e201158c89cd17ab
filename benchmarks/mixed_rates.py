"""Mixed rates in real time: 20 Hz responders beside a 1 s grid, fleet and market in one world.

Runs ``scenarios/frequency-response.yaml`` (118 homes on SimBench 1-LV-rural3, power flow every second, a
5-minute market in process, the 24 batteries answering GB Dynamic Containment at 20 Hz) with ``fpp run
--real-time`` for ``--minutes`` of wall time, then prints the lateness of the 20 Hz ticks and of the ticks on
which the slow simulators step, from the run's ``kpis.json`` (``real_time``), and the step times the slow
simulators take (from a run without pacing, ``--no-baseline`` skips it).

Run: .venv/bin/python benchmarks/mixed_rates.py [--minutes 10] [--no-baseline] [--transport inproc|mqtt]
(the issue's target: the fast ticks keep time while the slow steps run: p99 within a few ms, no missed tick)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "frequency-response.yaml"


def run(minutes: float, real_time: bool, out: Path, transport: str = "inproc") -> tuple[dict, float]:
    """One run of the example cut to ``minutes`` (its signal cut to fit); (kpis, wall seconds)."""
    seconds = int(round(minutes * 60))
    signal_s = min(600, seconds)
    args = [sys.executable, "-m", "testbed", "run", str(SCENARIO), "--out", str(out), "--no-progress",
            "--set", f"time.duration_h={seconds / 3600!r}", "--set", f"frequency_response.signal.duration_s={signal_s}",
            "--set", f"frequency_response.signal.recovery_s={max(1, min(300, signal_s - 70))}",
            "--set", f"market.transport={transport}"]
    if real_time:
        args.append("--real-time")
    t0 = time.perf_counter()
    res = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode not in (0, 1):
        sys.exit(f"fpp run failed ({res.returncode}):\n{res.stderr}")
    return json.loads((out / "kpis.json").read_text()), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--no-baseline", action="store_true", help="skip the run without pacing")
    ap.add_argument("--transport", choices=("inproc", "mqtt"), default="inproc", help="the market's transport")
    args = ap.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        if not args.no_baseline:
            kpis, wall = run(args.minutes, False, Path(tmp) / "fast", args.transport)
            sim_s = args.minutes * 60
            print(f"as fast as possible: {sim_s:.0f} s simulated in {wall:.1f} s wall "
                  f"({sim_s / wall:.1f}x real time), {kpis['frequency_response']['ticks']} ticks")
        kpis, wall = run(args.minutes, True, Path(tmp) / "rt", args.transport)
        late = json.loads((Path(tmp) / "rt" / "lateness.json").read_text())
    ticks = kpis["frequency_response"]["ticks_per_step"]
    market_ticks = 300 * ticks  # the example's market interval, 300 s
    worst = sorted(zip(late["lateness_ms"], late["step"], strict=True), reverse=True)[:8]
    rt, fr = kpis["real_time"], kpis["frequency_response"]
    slow = rt["slow_steps"]
    print(f"real time: {wall:.1f} s wall for {args.minutes * 60:.0f} s; warm-up {rt['warmup_s']:.1f} s")
    print(f"20 Hz ticks: {rt['steps']} ticks, lateness p50 {rt['lateness_p50_ms']:.3f} ms, p99 "
          f"{rt['lateness_p99_ms']:.3f} ms, max {rt['lateness_max_ms']:.1f} ms, last {rt['lateness_last_ms']:.3f} ms, "
          f"missed {rt['missed_deadlines']}; garbage collector's full passes {rt['gc_full_passes']}, longest "
          f"{rt['gc_full_max_ms']:.1f} ms")
    print(f"slow steps (grid, fleet, market, recorder): {slow['steps']} steps, lateness p50 "
          f"{slow['lateness_p50_ms']:.3f} ms, p99 {slow['lateness_p99_ms']:.3f} ms, "
          f"max {slow['lateness_max_ms']:.1f} ms")
    print("latest ticks: " + ", ".join(
        f"{ms:.1f} ms at {t * late['step_s']:.2f} s"
        + (" (market)" if t % market_ticks == 0 else " (slow step)" if t % ticks == 0 else
           f" ({t % ticks} ticks after a slow step)") for ms, t in worst))
    print(f"verdict of the service: members failing {fr['members_failing']} of {fr['members']}, "
          f"{fr['criteria']}")
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
