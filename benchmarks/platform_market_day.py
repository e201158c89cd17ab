"""A market day end to end: N prosumer agents (each its own MQTT client), the platform as its own process,
Mosquitto on loopback, 96 intervals of 15 minutes in simulation time.

Each interval: telemetry of the previous one, one order per agent with a surplus or deficit, gate closure
by the clock, clearing (double auction by default), settlement and dispatch back to every agent. The
prosumers are a small synthetic fleet (seeded): PV on 60 %, a battery on 30 %, loads with a morning and an
evening peak; each follows its trade with its battery.

    .venv/bin/python benchmarks/platform_market_day.py --prosumers 1000

``--demo``: instead, the demo scenario's whole day as ``fpp run`` runs it (fresh processes, one after the
other): without its market, with ``market.transport=inproc``, and over MQTT (``mqtt``; Mosquitto when
installed, the run's ``kpis.json`` says which broker ran). Prints each run's wall time (process) and step time
(``run.json`` ``wall_s``), its CPU time (the ``fpp run`` process and every process it started and waited
for: over MQTT the platform and the broker it started), and the ratios of the step times: inproc / no market
(target <= 1.3) and mqtt / inproc (target <= 3 with Mosquitto). The market KPIs of the two transports must
be equal, or it says so.

    .venv/bin/python benchmarks/platform_market_day.py --demo
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from simulators.market_bridge.bridge import AgentSpec, MarketBridge
from testbed.domain.der.battery import BatterySpec
from testbed.domain.der.ems import State
from testbed.domain.prosumer import Preferences, Tariff
from testbed.orchestration.platform_process import PlatformProcess
from testbed.platform.broker import MosquittoBroker
from testbed.platform.client import Connection
from testbed.platform.inproc import InprocPlatform
from testbed.platform.kpis import kpis_from_ledger
from testbed.platform.ledger import Ledger

IMPORT, EXPORT = 0.30, 0.08
TARIFF = Tariff(import_price_per_kwh=IMPORT, export_price_per_kwh=EXPORT)


def fleet(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    return [
        {
            "pid": f"p{i:04d}",
            "pv_peak_kw": rng.choice([0.0, 0.0, 3.0, 5.0, 8.0]) * rng.uniform(0.8, 1.2),
            "load_kw": rng.uniform(0.3, 1.2),
            "capacity_kwh": rng.choice([0.0, 0.0, 10.0]),
            "prefs": Preferences(
                class_premium_per_kwh={"green": rng.choice([0.0, 0.02])},
                subsidy_share=rng.choice([0.0, 0.5]),
                risk_aversion=rng.uniform(0, 0.5),
            ),
        }
        for i in range(n)
    ]


def state(f: dict, hour: float, soc: float) -> State:
    pv = f["pv_peak_kw"] * max(0.0, math.sin(math.pi * (hour - 6.0) / 12.0))
    load = f["load_kw"] * (
        1.0 + 0.8 * math.exp(-((hour - 7.5) ** 2)) + 1.2 * math.exp(-((hour - 19.0) ** 2) / 2)
    )
    return State(load_kw=load, pv_kw=pv, soc=soc, battery=battery(f))


def battery(f: dict) -> BatterySpec | None:
    if not f["capacity_kwh"]:
        return None
    return BatterySpec(f["capacity_kwh"], 0.5 * f["capacity_kwh"], round_trip_efficiency=1.0, soc_min=0.1, soc_max=0.9)


ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "scenarios" / "demo.yaml"


def demo_day(tmp: Path, name: str, scenario: Path, overrides: list[str]) -> dict:
    """One ``fpp run`` of ``scenario`` as a fresh process: process wall time, step time, market KPIs."""
    out = tmp / name
    cmd = [sys.executable, "-m", "testbed", "run", str(scenario), "--out", str(out), "--no-progress"]
    for o in overrides:
        cmd += ["--set", o]
    t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    res = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime  # the run and what it waited for
    if res.returncode not in (0, 1):
        raise SystemExit(f"{name}: fpp run failed ({res.returncode}): {res.stderr[-2000:]}")
    run = json.loads((out / "run.json").read_text())
    kpis = json.loads((out / "kpis.json").read_text())
    return {"wall_s": wall, "cpu_s": cpu, "steps_s": run["wall_s"], "market": kpis.get("market")}


def demo(args: argparse.Namespace) -> None:
    print(f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    with tempfile.TemporaryDirectory(prefix="fpp-bench-day-") as tmp_name:
        tmp = Path(tmp_name)
        scenario = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
        scenario.pop("market")
        scenario["name"] = "demo-no-market"
        no_market = tmp / "demo-no-market.yaml"
        no_market.write_text(yaml.safe_dump(scenario), encoding="utf-8")
        runs = {
            "no market": demo_day(tmp, "none", no_market, []),
            "inproc": demo_day(tmp, "inproc", DEMO, ["market.transport=inproc"]),
            "mqtt": demo_day(tmp, "mqtt", DEMO, ["market.transport=mqtt"]),
        }
    for name, r in runs.items():
        broker = f", broker {r['market']['broker']}" if r["market"] else ""
        print(f"{name:10s} wall {r['wall_s']:6.1f} s, CPU {r['cpu_s']:6.1f} s, steps {r['steps_s']:6.1f} s{broker}")
    a, b = (dict(runs[t]["market"]) for t in ("inproc", "mqtt"))
    for m in (a, b):
        m.pop("transport"), m.pop("broker")
    print("market KPIs inproc == mqtt:", a == b)
    r1 = runs["inproc"]["steps_s"] / runs["no market"]["steps_s"]
    r2 = runs["mqtt"]["steps_s"] / runs["inproc"]["steps_s"]
    w1 = runs["inproc"]["wall_s"] / runs["no market"]["wall_s"]
    w2 = runs["mqtt"]["wall_s"] / runs["inproc"]["wall_s"]
    print(f"steps: inproc / no market {r1:.2f}x (target <= 1.3); mqtt / inproc {r2:.2f}x (target <= 3)")
    print(f"wall:  inproc / no market {w1:.2f}x; mqtt / inproc {w2:.2f}x")
    print(f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prosumers", type=int, default=1000)
    ap.add_argument("--intervals", type=int, default=96)
    ap.add_argument("--mechanism", default="double-auction")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--transport", choices=["mqtt", "inproc"], default="mqtt")
    ap.add_argument("--demo", action="store_true", help="the demo day: no market, inproc, mqtt (ratios)")
    args = ap.parse_args()
    if args.demo:
        demo(args)
        return
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    members = fleet(args.prosumers, args.seed)
    soc = {f["pid"]: 0.5 for f in members}
    interval_s, h = 900.0, 0.25
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp}/ledger.db"
        registry = [
            {"id": f["pid"], "bus": f"bus{i % 40}", "energy_class": "green" if f["pv_peak_kw"] else None}
            for i, f in enumerate(members)
        ]
        if args.transport == "inproc":
            connection = InprocPlatform(
                url,
                [(r["id"], r["bus"], r["energy_class"]) for r in registry],
                mechanism=args.mechanism,
                interval_s=interval_s,
                tariff=TARIFF,
            )
        else:
            broker = stack.enter_context(MosquittoBroker())
            stack.enter_context(
                PlatformProcess(
                    registry,
                    ledger_url=url,
                    broker_url=broker.address.url,
                    mechanism=args.mechanism,
                    interval_s=interval_s,
                    tariff=TARIFF,
                    workdir=Path(tmp) / "platform",
                )
            )
            connection = Connection(broker.address)
        specs = [AgentSpec(f["pid"], f["prefs"], battery(f)) for f in members]
        t0 = time.perf_counter()
        bridge = MarketBridge(
            specs, connection, interval_s=interval_s, tariff=TARIFF, run_id="bench", timeout_s=300.0
        ).start()
        t_connect = time.perf_counter() - t0
        per_interval = []
        t0 = time.perf_counter()
        for k in range(args.intervals):
            hour = k * h
            states = {f["pid"]: state(f, hour, soc[f["pid"]]) for f in members}
            t = time.perf_counter()
            res = bridge.market_step(k, states)
            per_interval.append(time.perf_counter() - t)
            p_net = {}
            for f in members:  # each prosumer follows its trade with its battery over the interval
                s = states[f["pid"]]
                pb = res.p_batt_set_kw.get(f["pid"], 0.0)
                if f["capacity_kwh"]:
                    soc[f["pid"]] = min(0.9, max(0.1, soc[f["pid"]] - pb * h / f["capacity_kwh"]))
                p_net[f["pid"]] = s.pv_kw - s.load_kw + pb
            bridge.meter(p_net, interval_s)
        bridge.finish(args.intervals - 1)
        elapsed = time.perf_counter() - t0
        bridge.stop()
        stack.close()
        if args.transport == "mqtt":
            print((Path(tmp) / "platform" / "platform.log").read_text().strip().splitlines()[-1])
        led = Ledger(url)
        k = kpis_from_ledger(led, TARIFF)
        n_orders = led.count_messages("order")
        led.close()
    ms = sorted(x * 1000 for x in per_interval)
    print(
        f"prosumers={args.prosumers} intervals={args.intervals} mechanism={args.mechanism} orders={n_orders} "
        f"transport={args.transport}"
    )
    print(
        f"connect {t_connect:.1f} s; market day {elapsed:.1f} s wall; "
        f"per interval p50 {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms"
    )
    print(
        f"intervals by status {k['interval_status']}; trades {k['trades']}; "
        f"traded {k['traded_kwh']:.1f} kWh; vw price {k['price_per_kwh']['volume_weighted']}"
    )
    print(
        f"bills: platform {k['bill_platform_total']:.2f} vs retail {k['bill_retail_total']:.2f}; "
        f"green delivered {k['green_kwh']:.1f} kWh"
    )


if __name__ == "__main__":
    main()
