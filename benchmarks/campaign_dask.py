"""Campaign benchmark (figures in BENCHMARKS.md): 16 one-day experiments without market on the demo feeder
(SimBench 1-LV-rural3, 119 prosumers; PV share 0.25..1.0 x four seasons), at the demo's 15 min (96 steps,
~0.4 s a run) and at 1 min (1,440 steps).

1. serial: the 16 runs one after another through the run API (``testbed.run``) in one fresh Python process;
2. ``fpp campaign --workers 2``: the same 16 on a LocalCluster of 2 worker processes (target < 0.6x serial);
3. ``fpp campaign --workers 1``: the per-experiment overhead of the campaign machinery, i.e. the campaign's
   wall time minus the experiments' own run time (measured inside the worker, ``wall_s`` of result.json),
   divided by 16: cluster start, scheduling, folders, result files, summary.parquet and campaign.html
   (target < 1 s).

Every side is a fresh process started from the command line, so each pays its own imports and warm-up.
Usage: ``python benchmarks/campaign_dask.py [--resolution-s 900 60]`` (about five minutes on 2 cores).
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
CAMPAIGN = f"""schema_version: 1
name: bench16
test_case:
  purpose: benchmark
  system_under_test: demo feeder
  functions_under_investigation: [power flow]
  domain_under_investigation: [electric power]
  target_metrics: [{{kpi: v_max_pu, max: 1.1}}, {{kpi: peak_trafo_loading_pct, max: 100}}]
test_specification:
  test_system: demo.yaml without market
  base: {{scenario: {ROOT / 'scenarios' / 'demo.yaml'}}}
  inputs:
    fleet.pv.share: [0.25, 0.5, 0.75, 1.0]
    time.start: [2016-01-20T00:00:00, 2016-04-20T00:00:00, 2016-07-24T00:00:00, 2016-10-20T00:00:00]
    market: [null]
    outputs.timeseries: [false]
    time.resolution_s: [RESOLUTION_S]
"""

SERIAL = """
import json, sys, time
t0 = time.perf_counter()
import testbed
for i, overrides in enumerate(json.loads(sys.argv[2])):
    testbed.run(sys.argv[1], overrides=overrides, out=f"{sys.argv[3]}/{i}", progress=False)
print(time.perf_counter() - t0)
"""


def _wall(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0


def bench(resolution_s: int) -> None:
    fpp = [sys.executable, "-m", "testbed"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench16.yaml"
        path.write_text(CAMPAIGN.replace("RESOLUTION_S", str(resolution_s)), encoding="utf-8")
        from testbed.orchestration.campaign.plan import load_campaign

        plan = load_campaign(path, f"{tmp}/unused")
        overrides = json.dumps([e.overrides for e in plan.experiments])
        print(f"== 16 one-day runs at {resolution_s} s ({86400 // resolution_s} steps each); load {os.getloadavg()}")
        serial = _wall([sys.executable, "-c", SERIAL, str(plan.base_path), overrides, f"{tmp}/serial"])
        print(f"serial, 16 runs in one process: {serial:.1f} s")
        two = _wall(fpp + ["campaign", str(path), "--workers", "2", "--out", f"{tmp}/w2"])
        print(f"fpp campaign --workers 2: {two:.1f} s = {two / serial:.2f} x serial (target < 0.6)")
        one = _wall(fpp + ["campaign", str(path), "--workers", "1", "--out", f"{tmp}/w1"])
        runs = [json.loads(p.read_text())["wall_s"] for p in Path(tmp, "w1", "experiments").glob("*/result.json")]
        overhead = (one - sum(runs)) / len(runs)
        print(f"fpp campaign --workers 1: {one:.1f} s, experiments' own run time {sum(runs):.1f} s "
              f"({len(runs)} results): overhead {overhead:.2f} s per experiment (target < 1 s)")
        print(f"load after: {os.getloadavg()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution-s", type=int, nargs="+", default=[900, 60],
                        help="time.resolution_s of the runs (default: the demo's 900, then 60)")
    for resolution_s in parser.parse_args().resolution_s:
        bench(resolution_s)


if __name__ == "__main__":
    main()
