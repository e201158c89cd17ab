"""Orders per second and acknowledgement latency through Mosquitto on loopback with N prosumer clients.

The platform runs as its own process (``fpp platform`` against a Mosquitto started here, SQLite ledger in a
temporary directory); this process holds N prosumer clients, each its own MQTT connection and identity.
Every client submits ``--orders`` orders one after the other (each waits for its ack), all clients at once.

    .venv/bin/python benchmarks/platform_throughput.py --clients 1000 --orders 10
    .venv/bin/python benchmarks/platform_throughput.py --workers 2 --ledger postgresql://postgres@127.0.0.1/test
    .venv/bin/python benchmarks/platform_throughput.py --profile /tmp/platform.prof

``--workers N`` runs ``fpp platform --workers N`` (shared subscriptions, PostgreSQL ledger). ``--profile`` runs
the (single) platform process under cProfile and prints where its CPU time went, by stage. ``--mqtt 5`` makes
the clients speak MQTT 5 (one wildcard subscription with No Local) instead of 3.1.1 (one filter per reply kind).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from testbed.orchestration.platform_process import PlatformProcess
from testbed.platform import protocol as p
from testbed.platform.broker import MosquittoBroker
from testbed.platform.client import Connection, ProsumerClient


async def run(
    address, n_clients: int, n_orders: int, rate: float | None, mqtt_version: int | None = None
) -> tuple[float, list[float]]:
    conn = Connection(address, mqtt_version=mqtt_version)
    clients = [ProsumerClient(f"p{i:04d}", conn, retry_s=30.0) for i in range(n_clients)]
    t0 = time.perf_counter()
    for i in range(0, n_clients, 100):  # connect in batches so the broker's accept queue keeps up
        await asyncio.gather(*(c.__aenter__() for c in clients[i : i + 100]))
    print(f"connected {n_clients} clients in {time.perf_counter() - t0:.2f} s")
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


def _cpu_s(pid: int) -> float:
    """User + system CPU time [s] of process ``pid`` so far (Linux /proc; 0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _tree_cpu_s(pid: int) -> float:
    """CPU time [s] of ``pid`` and its descendants (the platform's workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return _cpu_s(pid) + sum(_tree_cpu_s(int(c)) for c in children)


def _postgres_cpu_s() -> float:
    """CPU time [s] of every PostgreSQL server process on this machine."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() == "postgres":
                total += _cpu_s(int(stat.parent.name))
        except OSError:
            continue
    return total


@contextlib.contextmanager
def profiled(path: str | None):
    """While active, platform processes started by PlatformProcess run under ``python -m cProfile -o path``."""
    if not path:
        yield
        return
    original = PlatformProcess.__init__

    def init(self, *a, **kw):
        original(self, *a, **kw)
        self.args[1:1] = ["-m", "cProfile", "-o", path]

    PlatformProcess.__init__ = init
    try:
        yield
    finally:
        PlatformProcess.__init__ = original


STAGES = (
    ("start-up (imports)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("MQTT in: paho reads and parses packets", "paho/mqtt/client.py", "loop_read"),
    ("MQTT out: aiomqtt publish calls", "aiomqtt/client.py", "publish"),
    ("MQTT out: paho writes packets", "paho/mqtt/client.py", "loop_write"),
    ("handling: core.handle_batch (validation, ledger)", "testbed/platform/core.py", "handle_batch"),
)


def print_profile(path: str) -> None:
    """Where the platform process spent its CPU: cumulative time of each stage's entry point, and of the rest
    (the asyncio loop, aiomqtt's message queue, the service); waiting in epoll left out."""
    import pstats

    stats = pstats.Stats(path).stats  # type: ignore[attr-defined]
    idle = sum(tt for (_f, _l, fn), (_cc, _nc, tt, _ct, _c) in stats.items() if "select.epoll" in fn)
    busy = sum(tt for (_cc, _nc, tt, _ct, _c) in stats.values()) - idle
    print(f"platform profile (cProfile; its overhead inflates every figure): {busy:.2f} s busy, "
          f"{idle:.2f} s waiting in epoll")
    rest = busy
    for name, file_end, func in STAGES:
        t = sum(ct for (f, _l, fn), (_cc, _nc, _tt, ct, _c) in stats.items() if f.endswith(file_end) and fn == func)
        rest -= t
        print(f"  {name:52s} {t:6.2f} s  {100 * t / busy:5.1f} %")
    print(f"  {'the rest (asyncio loop, queues, service)':52s} {rest:6.2f} s  {100 * rest / busy:5.1f} %")


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
    ap.add_argument("--workers", type=int, default=None, help="platform workers (needs a PostgreSQL --ledger)")
    ap.add_argument("--profile", default=None, help="cProfile the platform process into this file")
    ap.add_argument("--mqtt", choices=("5", "3.1.1", "auto"), default="3.1.1", help="the clients' MQTT version")
    ap.add_argument("--platform-mqtt", choices=("auto", "5", "3.1.1"), default="3.1.1", help="the platform's")
    ap.add_argument(
        "--broker", choices=("mosquitto", "amqtt"), default="mosquitto",
        help="amqtt: the platform's embedded broker (MQTT 3.1.1 only)",
    )
    args = ap.parse_args()
    if args.workers and args.profile:
        ap.error("--profile profiles the single platform process: not with --workers")
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    prefix = f"bench{int(time.time())}_"
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        broker = stack.enter_context(MosquittoBroker()) if args.broker == "mosquitto" else None
        prosumers = [{"id": f"p{i:04d}"} for i in range(args.clients)]
        ledger = args.ledger or f"sqlite:///{tmp}/ledger.db"
        with profiled(args.profile), PlatformProcess(
            prosumers,
            ledger_url=ledger,
            broker_url=broker.address.url if broker else None,
            local_broker="amqtt",
            workdir=Path(tmp) / "platform",
            ledger_prefix=prefix,
            extra_args=(["--workers", str(args.workers)] if args.workers else [])
            + ["--mqtt-version", args.platform_mqtt],
        ) as platform:
            broker_cpu0 = _cpu_s(broker.proc.pid) if broker and broker.proc else 0.0
            platform_cpu0, pg_cpu0 = _tree_cpu_s(platform.proc.pid), _postgres_cpu_s()
            cpu0 = time.process_time()
            version = {"3.1.1": 4, "5": 5, "auto": None}[args.mqtt]
            elapsed, lat = asyncio.run(run(platform.address, args.clients, args.orders, args.rate, version))
            cpu_clients = time.process_time() - cpu0
            broker_cpu = _cpu_s(broker.proc.pid) - broker_cpu0 if broker and broker.proc else float("nan")
            platform_cpu = _tree_cpu_s(platform.proc.pid) - platform_cpu0
            pg_cpu = _postgres_cpu_s() - pg_cpu0
        log_lines = (Path(tmp) / "platform" / "platform.log").read_text().strip().splitlines()
        stopped = [line for line in log_lines if "stopped (" in line]
        print("\n".join(stopped))
        cpu_platform = sum(float(line.rsplit(", ", 1)[-1].split(" s CPU")[0]) for line in stopped)
        print(
            f"CPU while the orders ran: platform {platform_cpu:.1f} s (with its start {cpu_platform:.1f} s), "
            f"clients' process {cpu_clients:.1f} s, Mosquitto {broker_cpu:.1f} s, PostgreSQL {pg_cpu:.1f} s"
        )
        if args.ledger and args.ledger.startswith("postgres"):
            from testbed.platform.ledger import Ledger

            led = Ledger(args.ledger, prefix=prefix)
            print(f"ledger holds {led.count_messages('order')} orders")
            led.drop_all()
            led.close()
        if args.profile:
            print_profile(args.profile)
    n = len(lat)
    lat_ms = sorted(x * 1000 for x in lat)
    backend = "SQLite" if not args.ledger else args.ledger.split(":")[0]
    print(
        f"clients={args.clients} orders={n} offered={args.rate or 'max'}/s ledger={backend} "
        f"workers={args.workers or 1} MQTT clients {args.mqtt}, platform {'5' if args.workers else args.platform_mqtt};"
        " "
        f"broker={args.broker}"
    )
    print(f"throughput: {n / elapsed:.0f} orders/s ({elapsed:.1f} s)")
    print(
        f"ack latency: p50 {statistics.median(lat_ms):.1f} ms, p99 {lat_ms[int(0.99 * (n - 1))]:.1f} ms, "
        f"max {lat_ms[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
