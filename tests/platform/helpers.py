"""Helpers shared by the platform's tests and benchmarks: a core on a ledger, an in-loop service, orders."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from testbed.domain.prosumer import Tariff
from testbed.platform.client import Connection
from testbed.platform.core import PlatformConfig, PlatformCore
from testbed.platform.ledger import Ledger
from testbed.platform.service import PlatformService

TARIFF = Tariff(import_price_per_kwh=0.30, export_price_per_kwh=0.08)


def make_core(
    url: str, prefix: str, prosumers: list[tuple[str, str | None, str | None]], **config: object
) -> PlatformCore:
    led = Ledger(url, prefix=prefix)
    led.upsert_prosumers(prosumers)
    cfg = {"interval_s": 900.0, "tariff": TARIFF, **config}
    return PlatformCore(led, PlatformConfig(**cfg))  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def serving(core: PlatformCore, conn: Connection) -> AsyncIterator[PlatformService]:
    """Run the platform service in this event loop for the duration of the block."""
    service = PlatformService(core, conn)
    task = asyncio.create_task(service.run())
    try:
        async with asyncio.timeout(20):
            await service.connected.wait()
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def order(
    pid: str, msg_id: str, k: int, side: str = "sell", q: float = 1.0, price: float = 0.15, **extra: object
) -> dict:
    return {
        "schema": "fpp.order/1",
        "msg_id": msg_id,
        "prosumer": pid,
        "interval": k,
        "side": side,
        "quantity_kw": q,
        "price_per_kwh": price,
        **extra,
    }


async def close_gate(
    conn: Connection, k: int, msg_id: str, t_s: float = 0.0, timeout_s: float = 30.0
) -> dict:
    """Act as the clock: publish the gate closure of interval ``k`` and return the platform's result."""
    import json

    from testbed.platform import protocol as p

    async with conn.client(f"test-clock-{msg_id}") as client:
        await client.subscribe(p.RESULT_TOPIC, qos=1)
        await client.publish(
            p.GATE_TOPIC,
            json.dumps({"schema": "fpp.gate/1", "msg_id": msg_id, "interval": k, "t_s": t_s}).encode(),
            qos=1,
        )
        async with asyncio.timeout(timeout_s):
            async for m in client.messages:
                data = json.loads(bytes(m.payload or b""))
                if data.get("gate_msg_id") == msg_id:
                    return data
    raise RuntimeError("unreachable")
