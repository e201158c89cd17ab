"""The federated power plant demo against the same day with the market alone (target: no slower than 1.5x).

Run: .venv/bin/python benchmarks/fpp_demo.py [--broker mqtt://host:port]

Four runs of ``scenarios/fpp.yaml`` (118 prosumers, 48 steps of 15 minutes), each once, in this order:
``market`` (a double-auction market section added, ``services`` removed), ``market + fpp`` (both), and the same
two without the market (``plain`` and ``fpp``). The wall time is the whole ``testbed.run`` call (platform start,
forecast power flow, contract exchange over MQTT, co-simulation, settlement, KPIs, report).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import testbed

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", default=None, help="mqtt://host:port of a running broker (default: embedded)")
    args = ap.parse_args()
    market = {"mechanism": "double-auction", **({"broker": args.broker} if args.broker else {})}
    cases = {
        "market": {"market": market, "services": None},
        "market + fpp": {"market": market},
        "plain": {"services": None},
        "fpp": {},
    }
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        walls = {}
        for name, overrides in cases.items():
            t0 = time.perf_counter()
            out = Path(tmp) / name.replace(" ", "")
            res = testbed.run(ROOT / "scenarios" / "fpp.yaml", overrides=overrides, out=out, progress=False)
            walls[name] = time.perf_counter() - t0
            fpp = res.kpis.get("fpp", {}).get("totals", {})
            print(f"{name:>14}: {walls[name]:7.1f} s wall, verdict {res.verdict.status}, "
                  f"contracts filled {fpp.get('filled', '-')}, load average {os.getloadavg()[0]:.2f}")
    print(f"market + fpp / market: {walls['market + fpp'] / walls['market']:.2f} (target <= 1.5)")
    print(f"fpp / plain: {walls['fpp'] / walls['plain']:.2f}")


if __name__ == "__main__":
    main()
