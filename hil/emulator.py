"""Emulated SunSpec devices and an emulated grid simulator on Modbus TCP (pymodbus 3.16
``SimDevice``/``SimData``).

An :class:`EmulatorHost` serves any number of emulated DERs, each on a port and unit id of its own choosing
(several units may share a port), plus one emulated grid simulator on its own port. Each device's behaviour
(:class:`hil.behaviour.DerBehaviour`, OpenDER inside) advances on the host's clock: a wall-clock asyncio task
at ``dt_s`` (the default), or ``clock="manual"`` where the caller advances it (tests).

Grid simulator register map (holding registers, unit id 1, documented in docs/hil.md): channel ``c`` (the
device's 1-based position in the host) occupies registers ``100·c … 100·c+3``:

=========  =======  ======  ============================================================
offset     type     scale   meaning
=========  =======  ======  ============================================================
+0         uint16   1e-4    voltage at the device terminals [pu]            (read/write)
+1         uint16   1e-3    frequency [Hz]                                  (read/write)
+2         uint16   1e-1    PV DC source: available power [% of rating]     (read/write)
+3         uint16   1       nominal frequency [Hz]                          (read only)
=========  =======  ======  ============================================================
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hil.behaviour import DerBehaviour, DerControls, DerRating, DerState
from hil.codec import CodecError
from hil.misbehaviour import Misbehaviour, TestedDer
from hil.profile import Identity, SunSpecProfile

log = logging.getLogger(__name__)

GRID_UNIT = 1
GRID_CHANNEL_STRIDE = 100
_WRITE_CODES = (6, 16, 23)
SILENT_HOLD_S = 2.0  # how long a silent device holds a request before answering "busy"


@dataclass(frozen=True)
class DeviceSpec:
    """One emulated device: where it listens and what it is. ``port`` 0 picks a free port, shared by the
    devices of the same ``port_group`` (each port-0 device without a group gets a port of its own)."""

    rating: DerRating
    port: int = 0
    unit: int = 1
    serial: str = ""
    port_group: str | None = None
    # a device under a service test (setpoint lag; Misbehaviour() for a compliant one): hil.misbehaviour
    misbehaviour: Misbehaviour | None = None


@dataclass
class EmulatedDevice:
    spec: DeviceSpec
    channel: int
    behaviour: DerBehaviour
    profile: SunSpecProfile
    overrides: dict[int, int] = field(default_factory=dict)
    port: int = 0
    controls_regs: dict[int, list[int]] = field(default_factory=dict)
    image: list[int] = field(default_factory=list)
    writes: int = 0

    def refresh(self) -> None:
        self.image = self.profile.image(self.behaviour.state, self.controls_regs, self.overrides)

    @property
    def state(self) -> DerState:
        return self.behaviour.state


class EmulatorHost:
    """Serve emulated devices and a grid simulator; ``async with EmulatorHost(specs) as host: ...``.

    ``dt_s`` is the device step [s]; ``clock`` is ``"wall"`` (an asyncio task steps every ``dt_s`` seconds of
    wall time) or ``"manual"`` (call :meth:`advance`). ``grid_port`` 0 picks a free port.
    """

    def __init__(
        self,
        specs: list[DeviceSpec],
        *,
        dt_s: float = 0.05,
        clock: str = "wall",
        grid_port: int = 0,
        host: str = "127.0.0.1",
    ) -> None:
        if clock not in ("wall", "manual"):
            raise ValueError(f"clock {clock!r}: expected 'wall' or 'manual'")
        if not specs:
            raise ValueError("an emulator host needs at least one device")
        seen = set()
        for s in specs:
            key = (s.port or s.port_group, s.unit)
            if key[0] and key in seen:
                raise ValueError(f"two devices on port {key[0]} unit {s.unit}")
            seen.add(key)
        self.dt_s = dt_s
        self.clock = clock
        self.host = host
        self.grid_port = grid_port
        self.devices: list[EmulatedDevice] = []
        for i, spec in enumerate(specs, start=1):
            behaviour = (
                DerBehaviour(spec.rating) if spec.misbehaviour is None else TestedDer(spec.rating, spec.misbehaviour)
            )
            profile = SunSpecProfile(spec.rating, Identity(serial=spec.serial or f"EMU-{i:04d}"))
            dev = EmulatedDevice(spec, i, behaviour, profile)
            dev.controls_regs = profile.controls_registers(behaviour.controls)
            behaviour.step(dt_s)
            dev.refresh()
            self.devices.append(dev)
        self._servers: list[ModbusTcpServer] = []
        self._clock_task: asyncio.Task | None = None
        self.steps = 0
        self.max_step_lateness_s = 0.0

    # --- pymodbus plumbing ------------------------------------------------------------------------

    def _device_action(self, dev: EmulatedDevice):
        async def action(
            func_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if getattr(dev.behaviour, "silent", False):
                await asyncio.sleep(SILENT_HOLD_S)  # a device that stopped answering: the client times out
                return ExcCodes.DEVICE_BUSY
            if func_code in _WRITE_CODES and set_values:
                new = list(dev.image)
                first = address - start_address
                new[first : first + len(set_values)] = [int(v) for v in set_values]
                refused = dev.profile.write_problems(dev.image, new, first, len(set_values))
                if refused:
                    log.info("device %d rejected write at %d: %s", dev.channel, address, "; ".join(refused))
                    return ExcCodes.ILLEGAL_VALUE
                try:
                    controls = dev.profile.controls_from_image(new, dev.behaviour.controls)
                except CodecError as exc:
                    log.info("device %d rejected write at %d: %s", dev.channel, address, exc)
                    return ExcCodes.ILLEGAL_VALUE
                dev.behaviour.controls = controls
                dev.controls_regs = dev.profile.controls_registers(controls)
                dev.writes += 1
                dev.refresh()
                # pymodbus stores the written raw values after we return
                _copy_image(registers, start_address, dev.image, dev.profile.entries[0].address - 2)
                return None
            _copy_image(registers, start_address, dev.image, dev.profile.entries[0].address - 2)
            return None

        return action

    def _device_simdata(self, dev: EmulatedDevice) -> list[SimData]:
        base = dev.profile.entries[0].address - 2
        blocks = []
        for address, count, readonly in dev.profile.read_only_ranges():
            values = dev.image[address - base : address - base + count]
            blocks.append(SimData(address=address, values=values, datatype=DataType.REGISTERS, readonly=readonly))
        return blocks

    def _grid_image(self) -> list[int]:
        regs = [0] * (GRID_CHANNEL_STRIDE * (len(self.devices) + 1) + 4)
        for dev in self.devices:
            g = dev.behaviour.grid
            b = GRID_CHANNEL_STRIDE * dev.channel
            regs[b : b + 4] = [
                round(g.vm_pu * 1e4),
                round(g.f_hz * 1e3),
                round(g.available_pct * 10),
                round(dev.spec.rating.f_nom_hz),
            ]
        return regs

    def _grid_action(self):
        async def action(
            func_code: int,
            start_address: int,
            address: int,
            count: int,
            registers: list[int],
            set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if func_code in _WRITE_CODES and set_values:
                new = self._grid_image()  # indexed by absolute register address
                new[address : address + len(set_values)] = [int(v) for v in set_values]
                updates = []
                for dev in self.devices:
                    b = GRID_CHANNEL_STRIDE * dev.channel
                    vm, f, avail = new[b] / 1e4, new[b + 1] / 1e3, new[b + 2] / 10
                    if not (
                        0.0 <= vm <= 1.5
                        and 0.9 * dev.spec.rating.f_nom_hz <= f <= 1.1 * dev.spec.rating.f_nom_hz
                        and 0.0 <= avail <= 100.0
                    ):
                        log.info(
                            "grid simulator rejected channel %d: vm=%s f=%s avail=%s",
                            dev.channel,
                            vm,
                            f,
                            avail,
                        )
                        return ExcCodes.ILLEGAL_VALUE
                    updates.append((dev, vm, f, avail))
                for dev, vm, f, avail in updates:
                    dev.behaviour.grid.vm_pu, dev.behaviour.grid.f_hz = vm, f
                    dev.behaviour.grid.available_pct = avail
                return None
            _copy_image(registers, start_address, self._grid_image(), 0)
            return None

        return action

    def _grid_simdata(self) -> list[SimData]:
        blocks = []
        for dev in self.devices:
            b = GRID_CHANNEL_STRIDE * dev.channel
            blocks.append(SimData(address=b, values=[0, 0, 0], datatype=DataType.REGISTERS))
            blocks.append(SimData(address=b + 3, values=[0], datatype=DataType.REGISTERS, readonly=True))
        return blocks

    async def _serve(self, devices: list[SimDevice], port: int) -> tuple[ModbusTcpServer, int]:
        server = ModbusTcpServer(devices, address=(self.host, port))
        await server.serve_forever(background=True)
        bound = server.transport.sockets[0].getsockname()[1]
        return server, bound

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        by_port: dict[int, list[EmulatedDevice]] = {}
        by_group: dict[str, list[EmulatedDevice]] = {}
        free: list[EmulatedDevice] = []
        for dev in self.devices:
            if dev.spec.port:
                by_port.setdefault(dev.spec.port, []).append(dev)
            elif dev.spec.port_group is not None:
                by_group.setdefault(dev.spec.port_group, []).append(dev)
            else:
                free.append(dev)
        groups = list(by_port.items()) + [(0, g) for g in by_group.values()] + [(0, [d]) for d in free]
        try:
            for port, devs in groups:
                sims = [
                    SimDevice(id=d.spec.unit, simdata=self._device_simdata(d), action=self._device_action(d))
                    for d in devs
                ]
                server, bound = await self._serve(sims, port)
                self._servers.append(server)
                for d in devs:
                    d.port = bound
            grid = SimDevice(id=GRID_UNIT, simdata=self._grid_simdata(), action=self._grid_action())
            server, self.grid_port = await self._serve([grid], self.grid_port)
            self._servers.append(server)
        except Exception:
            await self.stop()
            raise
        if self.clock == "wall":
            self._clock_task = asyncio.create_task(self._run_clock(), name="hil-emulator-clock")
        log.info("emulator serving %d devices, grid simulator on port %d", len(self.devices), self.grid_port)

    async def stop(self) -> None:
        if self._clock_task is not None:
            self._clock_task.cancel()
            try:
                await self._clock_task
            except asyncio.CancelledError:
                pass
            self._clock_task = None
        for server in self._servers:
            await server.shutdown()
        self._servers.clear()

    async def __aenter__(self) -> EmulatorHost:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # --- clock ------------------------------------------------------------------------------------

    def advance(self, steps: int = 1) -> None:
        """Step every device ``steps`` times by ``dt_s`` (the manual clock; also used by the wall clock)."""
        for _ in range(steps):
            for dev in self.devices:
                dev.behaviour.step(self.dt_s)
            self.steps += 1
        for dev in self.devices:
            dev.refresh()

    async def _run_clock(self) -> None:
        start = time.monotonic()
        n = 0
        while True:
            n += 1
            deadline = start + n * self.dt_s
            delay = deadline - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            late = time.monotonic() - deadline
            self.max_step_lateness_s = max(self.max_step_lateness_s, late)
            self.advance(1)

    # --- fault injection --------------------------------------------------------------------------

    def override(self, channel: int, model_id: int, point: str, raw: int | None) -> None:
        """Force the raw register of a 1-register point (``None`` removes the override): for injecting
        "not implemented" sentinels or out-of-range values as a faulty device would serve them."""
        dev = self.device(channel)
        address = dev.profile.point_address(model_id, point)
        if raw is None:
            dev.overrides.pop(address, None)
        else:
            dev.overrides[address] = raw
        dev.refresh()

    def device(self, channel: int) -> EmulatedDevice:
        if not 1 <= channel <= len(self.devices):
            raise ValueError(f"no device channel {channel} (1..{len(self.devices)})")
        return self.devices[channel - 1]

    def set_controls(self, channel: int, controls: DerControls) -> None:
        dev = self.device(channel)
        dev.behaviour.controls = controls
        dev.controls_regs = dev.profile.controls_registers(controls)
        dev.refresh()


def _copy_image(registers: list[int], start_address: int, image: list[int], image_address: int) -> None:
    """Copy ``image`` (whose first register sits at ``image_address``) into pymodbus' register block (whose
    first register sits at ``start_address``), without changing the block's length."""
    first = start_address - image_address
    n = min(len(registers), len(image) - first)
    registers[:n] = image[first : first + n]


class EmulatorThread:
    """An :class:`EmulatorHost` running in a background thread with its own event loop (for synchronous
    callers: pysunspec2's client, mosaik worlds, the CLI). ``with EmulatorThread(specs) as emu: ...``."""

    def __init__(self, specs: list[DeviceSpec], **kwargs: Any) -> None:
        self._specs = specs
        self._kwargs = kwargs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.host: EmulatorHost | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    def _main(self) -> None:
        async def run() -> None:
            self._stop = asyncio.Event()
            try:
                self.host = EmulatorHost(self._specs, **self._kwargs)
                await self.host.start()
            except BaseException as exc:  # reported to the starting thread
                self._error = exc
                self._ready.set()
                return
            self._loop = asyncio.get_running_loop()
            self._ready.set()
            try:
                await self._stop.wait()
            finally:
                await self.host.stop()

        asyncio.run(run())

    def start(self, timeout_s: float = 10.0) -> EmulatorThread:
        self._thread = threading.Thread(target=self._main, name="hil-emulator", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"emulator did not start within {timeout_s} s")
        if self._error is not None:
            raise self._error
        return self

    def call(self, fn: Callable[[EmulatorHost], Any], timeout_s: float = 10.0) -> Any:
        """Run ``fn(host)`` on the emulator's loop and return its result."""

        async def wrapper() -> Any:
            return fn(self.host)

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._thread = None
        self._loop = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ports(self) -> list[int]:
        return [d.port for d in self.host.devices]
