"""Helpers shared by the platform's tests and benchmarks: a core on a ledger, an in-loop service, orders."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from testbed.platform.clearing import Tariff
from testbed.platform.core import PlatformConfig, PlatformCore
from testbed.platform.ledger import Ledger
from testbed.platform.service import Connection, PlatformService

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
