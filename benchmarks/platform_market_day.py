"""A market day end to end: N prosumer agents (each its own MQTT client), the platform as its own process,
Mosquitto on loopback, 96 intervals of 15 minutes in simulation time.

Each interval: telemetry of the previous one, one order per agent with a surplus or deficit, gate closure
by the clock, clearing (double auction by default), settlement and dispatch back to every agent. The
prosumers are a small synthetic fleet (seeded): PV on 60 %, a battery on 30 %, loads with a morning and an
evening peak; each follows its trade with its battery.

    .venv/bin/python benchmarks/platform_market_day.py --prosumers 1000
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import tempfile
import time
from pathlib import Path

from simulators.market_bridge.bridge import AgentSpec, MarketBridge
from testbed.domain.der.battery import BatterySpec
from testbed.domain.der.ems import State
from testbed.domain.prosumer import Preferences, Tariff
from testbed.orchestration.platform_process import PlatformProcess
from testbed.platform.broker import MosquittoBroker
from testbed.platform.client import Connection
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prosumers", type=int, default=1000)
    ap.add_argument("--intervals", type=int, default=96)
    ap.add_argument("--mechanism", default="double-auction")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    members = fleet(args.prosumers, args.seed)
    soc = {f["pid"]: 0.5 for f in members}
    interval_s, h = 900.0, 0.25
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker() as broker:
        url = f"sqlite:///{tmp}/ledger.db"
        registry = [
            {"id": f["pid"], "bus": f"bus{i % 40}", "energy_class": "green" if f["pv_peak_kw"] else None}
            for i, f in enumerate(members)
        ]
        with PlatformProcess(
            registry,
            ledger_url=url,
            broker_url=broker.address.url,
            mechanism=args.mechanism,
            interval_s=interval_s,
            tariff=TARIFF,
            workdir=Path(tmp) / "platform",
        ) as proc:
            specs = [
                AgentSpec(f["pid"], f["prefs"], battery(f)) for f in members
            ]
            t0 = time.perf_counter()
            bridge = MarketBridge(
                specs,
                Connection(broker.address),
                interval_s=interval_s,
                tariff=TARIFF,
                run_id="bench",
                timeout_s=300.0,
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
        print((Path(tmp) / "platform" / "platform.log").read_text().strip().splitlines()[-1])
        del proc
        led = Ledger(url)
        k = kpis_from_ledger(led, TARIFF)
        n_orders = led.count_messages("order")
    ms = sorted(x * 1000 for x in per_interval)
    print(
        f"prosumers={args.prosumers} intervals={args.intervals} mechanism={args.mechanism} orders={n_orders}"
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
