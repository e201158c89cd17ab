"""The year of ``scenarios/year.yaml`` without and with the market in process: what the market costs a long study.

    .venv/bin/python benchmarks/market_year.py            # the whole year (35,136 steps), twice
    .venv/bin/python benchmarks/market_year.py --days 7   # a shorter window for a quick look

Both runs are ``testbed.orchestration.runner.run`` on the same grid, fleet and seed, one after the other in
this process. The market run adds the demo's ``market:`` section (double auction every 15 minutes between
the retail prices 0.30 and 0.08, the demo's preference ranges) with ``transport: inproc``: the platform core
and its SQLite ledger in the run's process, the same encoded messages as over MQTT, no broker. Prints each
run's step time (``wall_s``: the co-simulation without start-up and report), the ratio year-with-market /
year-without (target <= 2.0), the market's volume and the ``uptime`` load before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import yaml

from testbed.orchestration.plan import load_plan
from testbed.orchestration.runner import run

ROOT = Path(__file__).resolve().parents[1]


def scenario(tmp: Path, days: float | None, market: bool) -> Path:
    """The year scenario (cut to ``days``), with the demo's market in process if ``market``."""
    year = yaml.safe_load((ROOT / "scenarios" / "year.yaml").read_text(encoding="utf-8"))
    if days:
        year["time"]["duration_h"] = days * 24
    if market:
        demo = yaml.safe_load((ROOT / "scenarios" / "demo.yaml").read_text(encoding="utf-8"))
        year["market"] = {**demo["market"], "transport": "inproc"}
        year["name"] = "year-market"
    path = tmp / f"{year['name']}.yaml"
    path.write_text(yaml.safe_dump(year), encoding="utf-8")
    return path


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, help="simulate only this many days of the year scenario")
    args = parser.parse_args()
    print(f"load before: {load()}")
    walls = {}
    with tempfile.TemporaryDirectory(prefix="fpp-bench-year-") as tmp_name:
        tmp = Path(tmp_name)
        for market in (False, True):
            plan = load_plan(scenario(tmp, args.days, market))
            t0 = time.perf_counter()
            result = run(plan, tmp / ("market" if market else "none"), progress=False)
            whole_s = time.perf_counter() - t0
            n = plan.scenario.time.n_steps
            walls[market] = result.wall_s
            line = f"{'with market' if market else 'no market':12s} {n} steps: {result.wall_s:7.1f} s "
            line += f"({1000 * result.wall_s / n:.2f} ms/step)"
            m = result.kpis.get("market")
            if m:
                line += f"; {m.get('traded_kwh', 0):.1f} kWh traded in {m.get('trades', 0)} trades"
            peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            line += f"; whole run with start-up, KPIs and report {whole_s:.1f} s; peak memory so far {peak_mb:,.0f} MB"
            print(line, flush=True)
    print(f"ratio with market / without: {walls[True] / walls[False]:.2f}x (target <= 2.0)")
    print(f"load after: {load()}")


if __name__ == "__main__":
    main()
