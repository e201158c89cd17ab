"""The platform core alone: a market day's inbound messages replayed through ``PlatformCore.handle_batch``.

Takes the ledger of a run with a market (``--ledger``; by default it runs the demo day with
``market.transport=inproc`` first), rebuilds the batches the bridge sent (each interval's orders with the
previous interval's meter readings, then the gate closure) and replays them into a fresh SQLite ledger, in
four ways, interleaved, best of ``--repeat``:

- runs of orders and meter readings stored together (``testbed/platform/intake.py``) or each message alone;
- the ledger power-safe (``synchronous=NORMAL``, as ``fpp platform``) or not (``OFF``, as in-process runs).

Prints milliseconds per interval and the ratios; the replies of every way must be the same.

    .venv/bin/python benchmarks/platform_core_replay.py
    .venv/bin/python benchmarks/platform_core_replay.py --ledger results/demo-.../ledger.db
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

from testbed.domain.prosumer import Tariff
from testbed.platform import protocol as p
from testbed.platform.core import PlatformConfig, PlatformCore
from testbed.platform.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]
TARIFF = Tariff(import_price_per_kwh=0.30, export_price_per_kwh=0.08)  # the demo's


def batches_of(path: Path) -> tuple[list[list[tuple[str, bytes]]], list[tuple], int]:
    """The batches the bridge sent, the registry and the number of intervals, from a run's ledger."""
    src = Ledger(f"sqlite:///{path}")
    try:
        registry = [(pid, bus, cls) for pid, (bus, cls) in src.prosumers().items()]
        by_k: dict[int, list[tuple[str, bytes]]] = {}
        rows = src._rows("SELECT sender, kind, interval_k, payload FROM {p}messages ORDER BY seq")  # arrival order
        for sender, kind, k, payload in rows:
            message = (p.prosumer_topic(sender, kind), payload.encode())
            by_k.setdefault(k + 1 if kind == "telemetry" else k, []).append(message)
        gates = {k: (gate_id, t_s) for k, _, gate_id, t_s, _ in src.intervals()}
    finally:
        src.close()
    batches = []
    for k in range(max([*by_k, *gates], default=-1) + 1):
        if by_k.get(k):
            batches.append(by_k[k])
        if k in gates:
            gate = {"schema": "fpp.gate/1", "msg_id": gates[k][0], "interval": k, "t_s": gates[k][1]}
            batches.append([(p.GATE_TOPIC, json.dumps(gate).encode())])
    return batches, registry, len(gates)


def replay(batches, registry, together: bool, power_safe: bool) -> tuple[float, list]:
    with tempfile.TemporaryDirectory(prefix="fpp-replay-") as tmp:
        led = Ledger(f"sqlite:///{tmp}/ledger.db", power_safe=power_safe)
        led.upsert_prosumers(registry)
        core = PlatformCore(led, PlatformConfig(interval_s=900.0, tariff=TARIFF))
        core.batches_intake = together
        t0 = time.perf_counter()
        replies = [core.handle_batch(b) for b in batches]
        dt = time.perf_counter() - t0
        led.close()
    return dt, [(o.topic, o.payload) for r in replies for o in r]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ledger", type=Path, help="a run's ledger.db (default: run the demo day in process first)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.ledger is not None and not args.ledger.is_file():
        ap.error(f"--ledger {args.ledger}: no such file (a run's ledger.db)")
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="fpp-replay-run-") as tmp:
        path = args.ledger
        if path is None:
            out = Path(tmp) / "demo"
            cmd = [sys.executable, "-m", "testbed", "run", str(ROOT / "scenarios" / "demo.yaml"), "--out", str(out),
                   "--no-progress", "--set", "market.transport=inproc"]
            subprocess.run(cmd, check=True, capture_output=True, cwd=ROOT)
            path = out / "ledger.db"
        batches, registry, n = batches_of(path)
    if not n:
        print(f"{path}: no closed interval in this ledger (a run with a market: section makes one)", file=sys.stderr)
        sys.exit(2)
    ways = {(t, s): [] for t in (True, False) for s in (False, True)}
    replies = {}
    for _ in range(args.repeat):
        for way in ways:
            dt, r = replay(batches, registry, *way)
            ways[way].append(dt)
            replies[way] = r
    same = len({json.dumps([(t, b.decode()) for t, b in r]) for r in replies.values()}) == 1
    n_msgs = sum(len(b) for b in batches)
    print(f"{n_msgs} messages in {len(batches)} batches over {n} intervals; replies the same every way: {same}")
    best = {way: min(v) for way, v in ways.items()}
    for (together, safe), dt in best.items():
        how = f"{'runs together' if together else 'one by one':14s} {'power-safe' if safe else 'not power-safe':15s}"
        print(f"{how} {1000 * dt / n:6.2f} ms per interval ({dt:.3f} s)")
    print(f"together / one by one: power-safe {best[(True, True)] / best[(False, True)]:.2f}x, "
          f"not power-safe {best[(True, False)] / best[(False, False)]:.2f}x; "
          f"in-process ledger (together, not power-safe) / before (one by one, power-safe) "
          f"{best[(True, False)] / best[(False, True)]:.2f}x")
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
