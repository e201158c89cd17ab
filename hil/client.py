"""Async SunSpec client over Modbus TCP (pymodbus 3.16), with connect/read/write timeouts and reconnect.

``async with SunSpecClient("127.0.0.1:5020", unit=1) as dev: values = await dev.read_model(701)``

Every failure raises a :mod:`hil.errors` type carrying the address, unit, operation and register; a call never
waits longer than its timeout. After a timeout or a dropped connection the next call reconnects (at most once
per ``reconnect_interval_s``, so a dead device costs one refused connect per interval, not one per call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from hil.codec import (
    END_MODEL_ID,
    SUNS_BASE_ADDR,
    SUNS_MARKER,
    CodecError,
    MapEntry,
    ModelLayout,
    decode_model,
    encode_raw,
    layout_model,
    scale_of,
)
from hil.errors import (
    HilConnectionError,
    HilDisconnected,
    HilError,
    HilModbusException,
    HilTimeout,
    HilValueError,
)

log = logging.getLogger(__name__)

MAX_READ = 125  # Modbus limit of registers per read request
MAX_WRITE = 123
CLOSED_POLL_S = 0.01  # how often a pending request checks whether the device closed the connection [s]


def parse_address(address: str) -> tuple[str, int]:
    """``"host:port"`` -> (host, port)."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address {address!r}: expected host:port")
    return host, int(port)


class SunSpecClient:
    """One SunSpec device on Modbus TCP.

    ``connect_timeout_s`` bounds a connect [s]; ``timeout_s`` bounds each request [s];
    ``reconnect_interval_s`` is the least time between two reconnect attempts [s]; ``base`` is the SunSpec
    base address.
    """

    def __init__(
        self,
        address: str,
        unit: int = 1,
        *,
        connect_timeout_s: float = 1.0,
        timeout_s: float = 0.5,
        reconnect_interval_s: float = 0.5,
        base: int = SUNS_BASE_ADDR,
    ) -> None:
        self.address = address
        self.host, self.port = parse_address(address)
        self.unit = unit
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self.reconnect_interval_s = reconnect_interval_s
        self.base = base
        self.models: dict[int, MapEntry] = {}
        self._last_read: dict[int, list[int]] = {}  # registers of each model's last read (for its scale factors)
        self._sf: dict[int, dict[str, int]] = {}  # scale factors decoded from those registers, when asked for
        self._client: AsyncModbusTcpClient | None = None
        self._last_connect = -float("inf")
        self._last_fault: type[HilError] = HilConnectionError
        self.reconnects = 0

    def _ctx(self, operation: str, register: int | None = None) -> dict[str, Any]:
        return {"address": self.address, "unit": self.unit, "operation": operation, "register": register}

    # --- connection -------------------------------------------------------------------------------

    async def connect(self) -> None:
        self._close_client()
        self._last_connect = time.monotonic()
        client = AsyncModbusTcpClient(
            self.host,
            port=self.port,
            timeout=self.timeout_s,
            retries=0,
            reconnect_delay=0,
            reconnect_delay_max=0,
        )
        try:
            ok = await asyncio.wait_for(client.connect(), self.connect_timeout_s)
        except TimeoutError:
            client.close()
            raise HilTimeout(f"no connection within {self.connect_timeout_s} s", **self._ctx("connect")) from None
        if not ok or not client.connected:
            client.close()
            raise HilConnectionError("connection refused or failed", **self._ctx("connect"))
        self._client = client

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _ensure(self, operation: str) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        wait = self._last_connect + self.reconnect_interval_s - time.monotonic()
        if wait > 0:
            # still the fault that closed the connection: report it as such, without a new attempt
            raise self._last_fault(f"not reconnected yet (next attempt in {wait:.2f} s)", **self._ctx(operation))
        self.reconnects += 1
        try:
            await self.connect()
        except HilError as exc:
            self._last_fault = type(exc)
            raise
        return self._client

    async def ensure_connected(self) -> None:
        """Connect if not connected (a reconnect at most every ``reconnect_interval_s``)."""
        await self._ensure("connect")

    async def close(self) -> None:
        self._close_client()

    async def __aenter__(self) -> SunSpecClient:
        await self.connect()
        try:
            await self.scan()
        except BaseException:
            self._close_client()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- registers --------------------------------------------------------------------------------

    async def _request(self, client: AsyncModbusTcpClient, coro_fn) -> Any:
        """The request's response within ``timeout_s``; ``ConnectionException`` as soon as the device closes the
        connection (pymodbus itself would wait out the whole timeout and call it a missing answer)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        task = asyncio.ensure_future(coro_fn(client))
        try:
            while not task.done():
                if not client.connected:
                    raise ConnectionException("the device closed the connection")
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise TimeoutError
                await asyncio.wait({task}, timeout=min(CLOSED_POLL_S, remaining))
            return task.result()
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, ModbusException):
                    await task

    async def _call(self, operation: str, register: int, coro_fn) -> Any:
        client = await self._ensure(operation)
        try:
            response = await self._request(client, coro_fn)
        except (TimeoutError, ModbusIOException) as exc:
            self._close_client()  # a late answer must not be taken for the next request's
            self._last_fault = HilTimeout
            raise HilTimeout(
                f"no answer within {self.timeout_s} s ({exc.__class__.__name__})",
                **self._ctx(operation, register),
            ) from None
        except ConnectionException as exc:
            self._close_client()
            self._last_fault = HilDisconnected
            raise HilDisconnected(f"connection lost: {exc}", **self._ctx(operation, register)) from None
        except ModbusException as exc:
            self._close_client()
            raise HilError(f"Modbus error: {exc}", **self._ctx(operation, register)) from None
        if response.isError():
            code = int(getattr(response, "exception_code", 0) or 0)
            raise HilModbusException("device answered with an exception", code=code, **self._ctx(operation, register))
        return response

    async def read_registers(self, register: int, count: int) -> list[int]:
        """``count`` holding registers from ``register``, in requests of at most 125 registers."""
        out: list[int] = []
        while count > 0:
            n = min(count, MAX_READ)
            start = register

            async def req(c: AsyncModbusTcpClient, start=start, n=n):
                return await c.read_holding_registers(start, count=n, device_id=self.unit)

            response = await self._call("read", start, req)
            if len(response.registers) != n:
                raise HilError(f"asked {n} registers, got {len(response.registers)}", **self._ctx("read", start))
            out.extend(response.registers)
            register += n
            count -= n
        return out

    async def write_registers(self, register: int, values: list[int]) -> None:
        for i in range(0, len(values), MAX_WRITE):
            chunk = values[i : i + MAX_WRITE]
            start = register + i

            async def req(c: AsyncModbusTcpClient, start=start, chunk=chunk):
                return await c.write_registers(start, chunk, device_id=self.unit)

            await self._call("write", start, req)

    # --- SunSpec ----------------------------------------------------------------------------------

    async def scan(self, counts: dict[int, dict[str, int]] | None = None) -> dict[int, MapEntry]:
        """Find the models the device serves (first instance of each id). Repeating groups are laid out from
        the count points the device reports."""
        head = await self.read_registers(self.base, 2)
        if tuple(head) != SUNS_MARKER:
            raise HilValueError(
                f"no 'SunS' marker at {self.base}", point="SunS", value=head, **self._ctx("scan", self.base)
            )
        models: dict[int, MapEntry] = {}
        address = self.base + 2
        while True:
            model_id, length = await self.read_registers(address, 2)
            if model_id == END_MODEL_ID:
                break
            if model_id not in models:
                layout = await self._layout(model_id, address, length)
                if layout is not None:
                    models[model_id] = MapEntry(layout, address)
            address += length + 2
            if address > 0xFFFF:
                raise HilValueError(
                    "model list runs past register 65535",
                    point="L",
                    value=length,
                    **self._ctx("scan", address),
                )
        self.models = models
        self._last_read.clear()
        self._sf.clear()
        return models

    async def _layout(self, model_id: int, address: int, length: int) -> ModelLayout | None:
        try:
            layout = layout_model(model_id)
        except CodecError as exc:
            if "repeats" not in str(exc):
                log.info("%s: skipping model %d: %s", self.address, model_id, exc)
                return None
            # repeating groups: read the fixed part and take the counts from it
            fixed = layout_model(model_id, _zero_counts(model_id))
            regs = await self.read_registers(address, fixed.total_registers)
            values = decode_model(fixed, regs, scaled=False)
            counts = {name: int(values[name] or 0) for name in _zero_counts(model_id)}
            layout = layout_model(model_id, counts)
        if layout.length != length:
            raise HilValueError(
                f"model {model_id} has L={length}, its definition gives {layout.length}",
                point=f"{model_id}.L",
                value=length,
                **self._ctx("scan", address + 1),
            )
        return layout

    def entry(self, model_id: int) -> MapEntry:
        if model_id not in self.models:
            raise HilValueError(
                f"device does not serve model {model_id}",
                point=str(model_id),
                value=None,
                **self._ctx("lookup"),
            )
        return self.models[model_id]

    async def read_model(
        self, model_id: int, *, scaled: bool = True, points: Iterable[str] | None = None
    ) -> dict[str, Any]:
        """Point values of a model; "not implemented" points are ``None``.

        The whole model is read (one consistent image, in as few requests as the Modbus limit allows);
        ``points`` names the points to decode (default: all), each decoded once. The registers are kept, so
        that :meth:`write_points` scales with the scale factors of this read.
        """
        entry = self.entry(model_id)
        regs = await self.read_registers(entry.address, entry.layout.total_registers)
        try:
            values = decode_model(entry.layout, regs, scaled=scaled, points=points)
        except CodecError as exc:
            raise HilValueError(
                str(exc), point=str(model_id), value=regs[:2], **self._ctx("read", entry.address)
            ) from None
        self._last_read[model_id] = regs
        self._sf.pop(model_id, None)
        return values

    def _scale_factors(self, model_id: int) -> dict[str, int]:
        """Raw values of the model's implemented scale-factor points, from its last read."""
        if model_id not in self._sf:
            layout = self.entry(model_id).layout
            names = [p for p, slot in layout.slots.items() if slot.type == "sunssf"]
            raw = decode_model(layout, self._last_read[model_id], scaled=False, points=names)
            self._sf[model_id] = {p: int(v) for p, v in raw.items() if v is not None}
        return self._sf[model_id]

    async def write_points(self, model_id: int, values: dict[str, float | int]) -> None:
        """Write physical values into RW points (scaled with the device's own scale factors), one request per
        run of adjacent points."""
        entry = self.entry(model_id)
        if model_id not in self._last_read:
            await self.read_model(model_id, points=())
        sfs = self._scale_factors(model_id)
        writes: list[tuple[int, list[int]]] = []
        for path, value in values.items():
            slot = entry.layout.slot(path)
            if slot.access != "RW":
                raise HilValueError(
                    f"point {model_id}.{path} is read-only",
                    point=path,
                    value=value,
                    **self._ctx("write", entry.address + slot.offset),
                )
            try:
                sf = scale_of(entry.layout, path, sfs)
                raw = round(value / 10**sf) if slot.type not in ("string",) and sf else value
                if isinstance(raw, float):
                    raw = round(raw)
                regs = encode_raw(slot, raw)
            except CodecError as exc:
                raise HilValueError(
                    str(exc), point=path, value=value, **self._ctx("write", entry.address + slot.offset)
                ) from None
            writes.append((entry.address + slot.offset, regs))
        writes.sort()
        merged: list[tuple[int, list[int]]] = []
        for address, regs in writes:
            if merged and merged[-1][0] + len(merged[-1][1]) == address:
                merged[-1] = (merged[-1][0], merged[-1][1] + regs)
            else:
                merged.append((address, regs))
        for address, regs in merged:
            await self.write_registers(address, regs)


def _zero_counts(model_id: int) -> dict[str, int]:
    from hil.codec import model_definition

    names: dict[str, int] = {}

    def walk(g: dict) -> None:
        for sub in g.get("groups", []):
            if isinstance(sub.get("count"), str):
                names[sub["count"]] = 0
            walk(sub)

    walk(model_definition(model_id)["group"])
    return names
