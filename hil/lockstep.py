"""A device driven over Modbus in simulated time: each step writes what the grid simulator applies and the
setpoint, lets the device advance one step, then reads it back. For emulated devices whose clock the caller owns
(``EmulatorHost(clock="manual")``): a fast, deterministic service test with real Modbus I/O.

Every request is bounded by ``timeout_s``, so a device that stops answering gives invalid readings (with the
fault's kind), never a hang.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from hil.client import SunSpecClient
from hil.errors import HilError
from hil.grid_map import EMULATED_GRID, GridMap
from hil.link import DeviceLink, LinkConfig, read_measurement, write_targets


@dataclass(frozen=True)
class Reading:
    """One step's measurement (generator convention): P [kW], Q [kvar], SoC (0..1), validity and fault kind."""

    p_kw: float | None
    q_kvar: float | None
    soc: float | None
    valid: bool
    fault: str | None = None


class LockStepDevice:
    """``address``/``unit`` the device; ``grid_address`` its grid simulator (channel ``grid_channel``, map
    ``grid_map``); ``advance`` called between write and read with the step length [s] (the emulated clock)."""

    def __init__(
        self,
        name: str,
        address: str,
        unit: int,
        *,
        kind: str,
        rated_kw: float,
        grid_address: str | None = None,
        grid_channel: int | None = None,
        grid_map: GridMap = EMULATED_GRID,
        advance: Callable[[float], None] | None = None,
        timeout_s: float = 0.5,
    ) -> None:
        cfg = LinkConfig(
            name,
            address,
            unit,
            kind,
            rated_kw,
            grid_address,
            grid_channel,
            timeout_s=timeout_s,
            connect_timeout_s=timeout_s,
            grid_map=grid_map,
        )
        self.link = DeviceLink(cfg)
        self.advance = advance
        self._loop = asyncio.new_event_loop()  # its own thread: the caller (a mosaik step) may be in a loop
        self._thread = threading.Thread(target=self._loop.run_forever, name=f"lockstep-{name}", daemon=True)
        self._thread.start()
        self._timeout_s = timeout_s
        kw = dict(connect_timeout_s=timeout_s, timeout_s=timeout_s, reconnect_interval_s=timeout_s)
        self.client = SunSpecClient(address, unit, **kw)
        self.grid = SunSpecClient(grid_address, grid_map.unit, **kw) if grid_address else None

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coro`` on the device's loop and wait for it (every request inside is bounded by its timeout;
        this wait is bounded too, as a last resort)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60.0)

    def open(self) -> dict:
        """Connect and scan the device (and connect the grid simulator); the models it serves."""

        async def go():
            await self.client.connect()
            await self.client.scan()
            if self.grid is not None:
                await self.grid.connect()
            return self.client.models

        return self.run(go())

    def step(
        self,
        dt_s: float,
        *,
        f_hz: float | None = None,
        vm_pu: float | None = None,
        available_pct: float | None = None,
        p_set_kw: float | None = None,
    ) -> Reading:
        self.link.set_targets(f_hz=f_hz, vm_pu=vm_pu, available_pct=available_pct, p_set_kw=p_set_kw)
        try:
            self.run(write_targets(self.link, self.client, self.grid))
        except HilError as exc:
            return Reading(None, None, None, False, exc.kind)
        if self.advance is not None:
            self.advance(dt_s)
        try:
            p, q, soc = self.run(read_measurement(self.link, self.client))
        except HilError as exc:
            return Reading(None, None, None, False, exc.kind)
        return Reading(p, q, soc, True)

    def close(self) -> None:
        async def go():
            await self.client.close()
            if self.grid is not None:
                await self.grid.close()

        try:
            self.run(go())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)
            self._loop.close()
