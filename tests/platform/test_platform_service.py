"""The platform service over a real broker (Mosquitto, or amqtt where Mosquitto is missing)."""

import asyncio
import json
import random

import pytest

from testbed.platform import protocol as p
from testbed.platform.client import Connection, ProsumerClient, Rejected
from testbed.platform.ledger import Ledger

from .helpers import close_gate, make_core, order, serving

PROSUMERS = [(f"p{i:02d}", f"bus{i}", "green" if i % 2 else None) for i in range(12)]


def conn_of(broker):
    return Connection(broker.address)


def test_orders_from_many_clients_are_acknowledged_once(broker, ledger_url):
    async def main():
        core = make_core(*ledger_url, PROSUMERS)
        conn = conn_of(broker)
        async with serving(core, conn) as service:
            clients = [ProsumerClient(pid, conn) for pid, _, _ in PROSUMERS]
            for c in clients:
                await c.__aenter__()
            try:
                msgs = [
                    p.Order.model_validate(order(c.pid, f"{c.pid}-{j}", 1, side="sell" if j % 2 else "buy"))
                    for c in clients
                    for j in range(5)
                ]
                by_pid = {c.pid: c for c in clients}
                acks = await asyncio.gather(*(by_pid[m.prosumer].submit(m) for m in msgs))
                # the same messages again: acknowledged as duplicates, not stored twice
                again = await asyncio.gather(*(by_pid[m.prosumer].submit(m) for m in msgs[:10]))
            finally:
                for c in clients:
                    await c.__aexit__(None, None, None)
        return core, acks, again, service

    core, acks, again, service = asyncio.run(main())
    # messages that arrived together shared a ledger transaction (group commit)
    assert service.messages == 70 and service.batches < service.messages
    assert len(acks) == 60 and not any(a.duplicate for a in acks)
    assert all(a.duplicate for a in again)
    assert len(core.ledger.messages("order", 1)) == 60
    core.ledger.close()


def test_refused_order_raises_on_the_client_and_service_keeps_serving(broker, sqlite_url):
    async def main():
        core = make_core(*sqlite_url, PROSUMERS[:2])
        conn = conn_of(broker)
        async with serving(core, conn), ProsumerClient("p00", conn) as c:
            bad = p.Order.model_validate(order("p01", "m1", 1))  # someone else's id
            try:
                await c.submit(bad)
            except Rejected as exc:
                code = exc.error.code
            ack = await c.submit(p.Order.model_validate(order("p00", "m2", 1)))
        return code, ack

    code, ack = asyncio.run(main())
    assert code == "identity" and ack.msg_id == "m2"


def _fuzz_payloads(rng: random.Random, pid: str, n: int) -> list[tuple[bytes, str]]:
    """``(payload, expected reply)`` pairs: "ack", "dup" (an exact retry) or "error"."""
    out: list[tuple[bytes, str]] = []
    sent: list[dict] = []
    for i in range(n):
        r = rng.random()
        good = order(
            pid,
            f"f{i}",
            rng.randint(1, 50),
            side=rng.choice(["buy", "sell"]),
            q=round(rng.uniform(0.01, 50), 3),
            price=round(rng.uniform(-0.5, 1), 4),
        )
        if r < 0.25:
            out.append((json.dumps(good).encode(), "ack"))
            sent.append(good)
        elif r < 0.3 and sent:
            out.append((json.dumps(rng.choice(sent)).encode(), "dup"))
        elif r < 0.35 and sent:
            old = rng.choice(sent)
            out.append((json.dumps({**old, "quantity_kw": old["quantity_kw"] + 1}).encode(), "error"))
        elif r < 0.5:
            out.append((bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 200))), "error"))
        elif r < 0.6:
            field = rng.choice(["quantity_kw", "price_per_kwh", "interval"])
            text = json.dumps(good).replace(
                f'"{field}": {json.dumps(good[field])}',
                f'"{field}": {rng.choice(["NaN", "Infinity", "-Infinity"])}',
            )
            out.append((text.encode(), "error"))
        elif r < 0.7:
            out.append((json.dumps({**good, "quantity_kw": -rng.uniform(0, 10)}).encode(), "error"))
        elif r < 0.75:
            out.append((json.dumps({**good, "schema": f"fpp.order/{rng.randint(2, 9)}"}).encode(), "error"))
        elif r < 0.8:
            out.append((json.dumps({**good, "prosumer": "p01"}).encode(), "error"))
        elif r < 0.85:
            out.append((json.dumps({**good, "extra": rng.random()}).encode(), "error"))
        elif r < 0.9:
            key = rng.choice(list(good))
            out.append((json.dumps({k: v for k, v in good.items() if k != key}).encode(), "error"))
        elif r < 0.95:
            out.append((json.dumps({**good, "side": rng.choice([1, None, "BUY", ""])}).encode(), "error"))
        elif r < 0.97:
            out.append((json.dumps({**good, "pad": "x" * 17000}).encode(), "error"))
        else:
            out.append((json.dumps({**good, "interval": 0}).encode(), "error"))  # interval 0 is closed
    return out


def test_fuzz_thousands_of_random_payloads_leave_the_platform_correct(broker, sqlite_url):
    rng = random.Random(20261124)
    payloads = _fuzz_payloads(rng, "p00", 3000)
    expected_acks = sum(1 for _, e in payloads if e in ("ack", "dup"))
    expected_errors = sum(1 for _, e in payloads if e == "error")
    expected_stored = {json.loads(b)["msg_id"] for b, e in payloads if e == "ack"}

    async def main():
        core = make_core(*sqlite_url, PROSUMERS[:2])
        core.handle(
            p.GATE_TOPIC,
            json.dumps({"schema": "fpp.gate/1", "msg_id": "g0", "interval": 0, "t_s": 0.0}).encode(),
        )
        conn = conn_of(broker)
        async with serving(core, conn), ProsumerClient("p00", conn) as c:
            for b, _ in payloads:
                await c.publish_raw("order", b)
            final = await c.submit(p.Order.model_validate(order("p00", "final", 3)))
            async with asyncio.timeout(30):  # replies are published in order; wait for the last stragglers
                while len(c.acks) < expected_acks + 1 or len(c.errors) < expected_errors:
                    await asyncio.sleep(0.05)
            # and it still clears correctly: p00 asks 2 kW at 0.15, p01 bids 1 kW at 0.20 for interval 60.
            # 1 kW trades; the ask is partly filled, so the clearing interval is [0.15, 0.15]: price 0.15.
            async with ProsumerClient("p01", conn) as c1:
                await c.submit(
                    p.Order.model_validate(order("p00", "after-s", 60, side="sell", q=2.0, price=0.15))
                )
                await c1.submit(
                    p.Order.model_validate(order("p01", "after-b", 60, side="buy", q=1.0, price=0.20))
                )
            result = await close_gate(conn, 60, "gate-60", 54000.0)
            return core, c, final, result

    core, c, final, result = asyncio.run(main())
    assert result["status"] == "optimal" and result["price_per_kwh"] == pytest.approx(0.15)
    assert [(t["seller"], t["buyer"], t["p_kw"]) for t in result["trades"]] == [
        ("p00", "p01", pytest.approx(1.0))
    ]
    assert final.duplicate is False
    assert len(c.errors) == expected_errors and len(c.acks) == expected_acks + 2
    stored = {m.msg_id for k in range(1, 51) for m in core.ledger.messages("order", k)}
    assert stored == expected_stored | {"final"}
    assert core.ledger.count_messages("order") == len(expected_stored) + 3
    assert core.stats["errors"] == expected_errors
    core.ledger.close()
    # the ledger agrees with what was acknowledged, read back from a fresh connection
    led = Ledger(*sqlite_url)
    assert led.find_message("p00", "final") is not None
    led.close()
