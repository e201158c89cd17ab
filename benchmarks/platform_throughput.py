"""Orders per second and acknowledgement latency through Mosquitto on loopback with N prosumer clients.

The platform runs as its own process (``fpp platform`` against a Mosquitto started here, SQLite ledger in a
temporary directory); this process holds N prosumer clients, each its own MQTT connection and identity.
Every client submits ``--orders`` orders one after the other (each waits for its ack), all clients at once.

    .venv/bin/python benchmarks/platform_throughput.py --clients 1000 --orders 10
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import statistics
import tempfile
import time
from pathlib import Path

from testbed.orchestration.platform_process import PlatformProcess
from testbed.platform import protocol as p
from testbed.platform.broker import MosquittoBroker
from testbed.platform.client import Connection, ProsumerClient


async def run(address, n_clients: int, n_orders: int, rate: float | None) -> tuple[float, list[float]]:
    conn = Connection(address)
    clients = [ProsumerClient(f"p{i:04d}", conn, retry_s=30.0) for i in range(n_clients)]
    t0 = time.perf_counter()
    for i in range(0, n_clients, 100):  # connect in batches so the broker's accept queue keeps up
        await asyncio.gather(*(c.__aenter__() for c in clients[i : i + 100]))
    print(f"connected {n_clients} clients in {time.perf_counter() - t0:.1f} s")
    latencies: list[float] = []

    period = n_clients / rate if rate else 0.0  # each client's time between orders when paced [s]

    async def one(c: ProsumerClient, offset: float) -> None:
        start = time.perf_counter() + offset
        for j in range(n_orders):
            if period:
                await asyncio.sleep(max(0.0, start + j * period - time.perf_counter()))
            msg = p.Order.model_validate(
                {
                    "schema": "fpp.order/1",
                    "msg_id": f"b{j}",
                    "prosumer": c.pid,
                    "interval": 1,
                    "side": "buy" if j % 2 else "sell",
                    "quantity_kw": 1.0 + j,
                    "price_per_kwh": 0.15,
                }
            )
            t = time.perf_counter()
            await c.submit(msg)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(c, period * i / n_clients) for i, c in enumerate(clients)))
    elapsed = time.perf_counter() - t0
    for c in clients:
        await c.__aexit__(None, None, None)
    return elapsed, latencies


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--orders", type=int, default=10, help="orders per client")
    ap.add_argument(
        "--rate",
        type=float,
        default=None,
        help="offered orders/s in total, paced evenly (default: as fast as acks come back)",
    )
    ap.add_argument("--ledger", default=None, help="ledger URL (default: SQLite in a temporary directory)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker() as broker:
        prosumers = [{"id": f"p{i:04d}"} for i in range(args.clients)]
        ledger = args.ledger or f"sqlite:///{tmp}/ledger.db"
        with PlatformProcess(
            prosumers,
            ledger_url=ledger,
            broker_url=broker.address.url,
            workdir=Path(tmp) / "platform",
            ledger_prefix=f"bench{int(time.time())}_",
        ):
            cpu0 = time.process_time()
            elapsed, lat = asyncio.run(run(broker.address, args.clients, args.orders, args.rate))
            cpu_clients = time.process_time() - cpu0
        print((Path(tmp) / "platform" / "platform.log").read_text().strip().splitlines()[-1])
        print(f"clients' process: {cpu_clients:.1f} s CPU")
    n = len(lat)
    lat_ms = sorted(x * 1000 for x in lat)
    backend = "SQLite" if not args.ledger else args.ledger.split(":")[0]
    print(f"clients={args.clients} orders={n} offered={args.rate or 'max'}/s ledger={backend}")
    print(f"throughput: {n / elapsed:.0f} orders/s ({elapsed:.1f} s)")
    print(
        f"ack latency: p50 {statistics.median(lat_ms):.1f} ms, p99 {lat_ms[int(0.99 * (n - 1))]:.1f} ms, "
        f"max {lat_ms[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
