"""The protocol's two decoders on the messages of a market interval: the reference path (JSON with the strict
reader, pydantic validation, then a second dump for the payload hash) against the msgspec fast path of
``testbed.platform.codec`` (decoded, validated and hashed once), and the platform's replies read both ways.

The messages are real: 118 prosumers (ids as the demo's) send an order and a meter reading each, a
platform core (SQLite in memory) clears the interval, and its acknowledgements, settlements, dispatch
messages and result are what the clients read. Prints microseconds per message (best of ``--repeat``).

    .venv/bin/python benchmarks/protocol_codec.py
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from collections.abc import Callable

from testbed.domain.prosumer import Tariff
from testbed.platform import codec
from testbed.platform import protocol as p
from testbed.platform.core import PlatformConfig, PlatformCore
from testbed.platform.ledger import Ledger

N = 118


def messages(seed: int = 1) -> tuple[dict[str, list[bytes]], dict[str, list[bytes]]]:
    """Inbound payloads by kind, and the replies a core published for them, by kind."""
    rng = random.Random(seed)
    pids = [f"LV3.101_Load_{i}" for i in range(N)]
    ledger = Ledger("sqlite://:memory:")
    ledger.upsert_prosumers([(pid, f"bus{i % 40}", "green" if i % 3 else None) for i, pid in enumerate(pids)])
    core = PlatformCore(ledger, PlatformConfig(tariff=Tariff(import_price_per_kwh=0.3, export_price_per_kwh=0.08)))
    inbound: dict[str, list[bytes]] = {"order": [], "telemetry": [], "gate": []}
    replies: dict[str, list[bytes]] = {}
    outs = [core.open_message()]
    for k in (0, 1):
        for pid in pids:
            side = rng.choice(["buy", "sell"])
            o = {"schema": "fpp.order/1", "msg_id": f"run-{k}-{pid}", "prosumer": pid, "interval": k,
                 "side": side, "quantity_kw": rng.uniform(0.1, 6.0), "price_per_kwh": rng.uniform(0.08, 0.3),
                 "energy_class": "green" if side == "sell" and rng.random() < 0.5 else None}
            inbound["order"].append(p.encode(p.Order.model_validate(o)))
            outs += core.handle(p.prosumer_topic(pid, "order"), inbound["order"][-1])
        if k:
            for pid in pids:
                t = {"schema": "fpp.telemetry/1", "msg_id": f"run-{k - 1}-{pid}-tel", "prosumer": pid,
                     "interval": k - 1, "e_export_kwh": round(rng.uniform(0, 2), 9),
                     "e_import_kwh": round(rng.uniform(0, 2), 9)}
                inbound["telemetry"].append(p.encode(p.Telemetry.model_validate(t)))
                outs += core.handle(p.prosumer_topic(pid, "telemetry"), inbound["telemetry"][-1])
        gate = json.dumps({"schema": "fpp.gate/1", "msg_id": f"run-gate-{k}", "interval": k, "t_s": k * 900.0})
        inbound["gate"].append(gate.encode())
        outs += core.handle(p.GATE_TOPIC, inbound["gate"][-1])
    ledger.close()
    for o in outs:
        replies.setdefault("result" if o.topic == p.RESULT_TOPIC else o.topic.rsplit("/", 1)[-1], []).append(o.payload)
    return inbound, replies


def per_message_us(fn: Callable[[bytes], object], payloads: list[bytes], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for x in payloads:
            fn(x)
        best = min(best, time.perf_counter() - t0)
    return best / len(payloads) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    print(f"load before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    inbound, replies = messages()

    def reference_in(kind: str) -> Callable[[bytes], object]:
        def run(b: bytes) -> object:
            msg = p.decode(kind, b)
            return p.payload_hash(msg), json.dumps(msg.model_dump(mode="json", by_alias=True))

        return run

    print(f"{'message':22s} {'n':>5s} {'reference µs':>13s} {'fast µs':>9s} {'speed-up':>9s}")
    for kind, payloads in inbound.items():
        ref = per_message_us(reference_in(kind), payloads, args.repeat)
        fast = per_message_us(lambda b, k=kind: codec.decode_inbound(k, b), payloads, args.repeat)
        print(f"in  {kind:18s} {len(payloads):5d} {ref:13.2f} {fast:9.2f} {ref / fast:8.1f}x")
    for kind, payloads in sorted(replies.items()):
        ref = per_message_us(lambda b, k=kind: p.decode_reply(k, b), payloads, args.repeat)
        fast = per_message_us(lambda b, k=kind: codec.decode_reply(k, b), payloads, args.repeat)
        print(f"out {kind:18s} {len(payloads):5d} {ref:13.2f} {fast:9.2f} {ref / fast:8.1f}x")
    ack = [p.Ack.model_validate_json(b) for b in replies["ack"]]
    ref = per_message_us(lambda a: p.encode(p.Ack(msg_id=a.msg_id, kind=a.kind, interval=a.interval)), ack,
                         args.repeat)
    fast = per_message_us(lambda a: codec.encode_ack(a.msg_id, a.kind, a.interval), ack, args.repeat)
    print(f"encode ack             {len(ack):5d} {ref:13.2f} {fast:9.2f} {ref / fast:8.1f}x")
    print(f"load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
