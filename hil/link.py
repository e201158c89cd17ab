"""Wall-clock link to devices: one I/O thread with its own asyncio loop polls every device and writes its
setpoints on a fixed tick (default 20 Hz), independent of the co-simulation's pace.

Each tick of each device is a :class:`Sample` with its deadline, start time, lateness and validity; faults
(timeout, refused connection, Modbus exception, sentinel or out-of-range value) mark the sample invalid and
are recorded as :class:`FaultEvent` when they begin and when the device recovers. Nothing here blocks longer
than a timeout, so a dead device can never hang a run.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from dataclasses import asdict, dataclass, field

from hil.client import SunSpecClient
from hil.errors import HilError, HilValueError
from hil.grid_map import EMULATED_GRID, GridMap
from testbed.domain.lateness import LatenessStats, lateness_stats

log = logging.getLogger(__name__)

GRID_CHANNEL_STRIDE = EMULATED_GRID.stride  # see hil.emulator's grid simulator register map


@dataclass(frozen=True)
class Sample:
    """One tick of one device: wall time (``time.time()``), scheduled and actual monotonic times [s],
    lateness [s], measurement (generator convention) and validity."""

    t_wall: float
    deadline_s: float
    actual_s: float
    lateness_s: float
    p_kw: float | None
    q_kvar: float | None
    soc: float | None
    valid: bool
    fault: str | None = None
    f_hz: float | None = None  # frequency the grid simulator applied when the sample was read [Hz]
    vm_pu: float | None = None  # voltage the grid simulator applied [pu]
    p_set_kw: float | None = None  # setpoint in force [kW]


@dataclass(frozen=True)
class FaultEvent:
    t_wall: float
    device: str
    kind: str  # timeout | refused | modbus-exception | invalid-value | recovered | ...
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class LinkConfig:
    """How to reach a device. ``kind`` "pv"|"battery"; ``rated_kw`` [kW] bounds valid measurements
    (|p| ≤ ``range_factor`` × rating); ``grid_address``/``grid_channel`` point at an emulated grid simulator
    (None for real devices)."""

    name: str
    address: str
    unit: int
    kind: str
    rated_kw: float
    grid_address: str | None = None
    grid_channel: int | None = None
    range_factor: float = 1.2
    connect_timeout_s: float = 0.5
    timeout_s: float = 0.2
    grid_map: GridMap = EMULATED_GRID


@dataclass
class _Targets:
    p_set_kw: float | None = None
    p_limit_pct: float | None = None
    vm_pu: float | None = None
    f_hz: float | None = None
    available_pct: float | None = None


@dataclass
class DeviceLink:
    """State of one device's link; written by the I/O thread, read by the co-simulation under ``lock``."""

    config: LinkConfig
    samples: list[Sample] = field(default_factory=list)
    events: list[FaultEvent] = field(default_factory=list)
    latest: Sample | None = None
    last_valid: Sample | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    _targets: _Targets = field(default_factory=_Targets)
    _written: _Targets = field(default_factory=_Targets)
    _fault: str | None = None

    def set_targets(
        self,
        *,
        p_set_kw: float | None = None,
        p_limit_pct: float | None = None,
        vm_pu: float | None = None,
        f_hz: float | None = None,
        available_pct: float | None = None,
    ) -> None:
        """New targets (``None`` keeps the previous one). ``vm_pu``, ``f_hz`` and ``available_pct`` (PV DC
        power [% of rating]) go to the emulated grid simulator, when the link has one."""
        with self.lock:
            t = self._targets
            self._targets = _Targets(
                p_set_kw if p_set_kw is not None else t.p_set_kw,
                p_limit_pct if p_limit_pct is not None else t.p_limit_pct,
                vm_pu if vm_pu is not None else t.vm_pu,
                f_hz if f_hz is not None else t.f_hz,
                available_pct if available_pct is not None else t.available_pct,
            )

    def drain(self) -> list[Sample]:
        """Take the samples recorded since the last drain (the consumer stores them)."""
        with self.lock:
            out, self.samples = self.samples, []
        return out

    def snapshot(self) -> tuple[Sample | None, Sample | None]:
        with self.lock:
            return self.latest, self.last_valid

    def stats(self, period_s: float) -> LatenessStats:
        with self.lock:
            samples = list(self.samples)
        return lateness_stats([s.deadline_s for s in samples], [s.actual_s for s in samples], period_s)

    def _record(self, sample: Sample, fault: HilError | None) -> None:
        with self.lock:
            self.samples.append(sample)
            self.latest = sample
            if sample.valid:
                self.last_valid = sample
            kind = None if fault is None else fault.kind
            if kind != self._fault:
                detail = str(fault) if fault is not None else f"after {self._fault}"
                self.events.append(FaultEvent(sample.t_wall, self.config.name, kind or "recovered", detail))
                if fault is not None:
                    log.warning("HIL device %s: %s", self.config.name, fault)
                else:
                    log.info("HIL device %s recovered", self.config.name)
                self._fault = kind


class LinkRunner:
    """Runs the I/O loop for several device links in one background thread at ``period_s``."""

    def __init__(self, links: list[DeviceLink], *, period_s: float = 0.05, max_samples: int | None = None) -> None:
        if not period_s > 0:
            raise ValueError(f"period_s {period_s}: must be > 0")
        self.links = links
        self.period_s = period_s
        self._max_samples = max_samples
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()

    def start(self) -> LinkRunner:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="hil-io", daemon=True)
        self._thread.start()
        self._started.wait(5.0)
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("HIL I/O thread did not stop within %.1f s", timeout_s)
        self._thread = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        t0 = time.monotonic() + self.period_s
        tasks = [
            asyncio.create_task(self._run_link(link, t0), name=f"hil-link-{link.config.name}") for link in self.links
        ]
        self._started.set()
        await self._stop.wait()
        for task in tasks:
            task.cancel()
        for task, result in zip(tasks, await asyncio.gather(*tasks, return_exceptions=True), strict=True):
            if isinstance(result, Exception):
                log.error("HIL link task %s failed: %r", task.get_name(), result)

    async def _run_link(self, link: DeviceLink, t0: float) -> None:
        cfg = link.config
        client = SunSpecClient(
            cfg.address,
            cfg.unit,
            connect_timeout_s=cfg.connect_timeout_s,
            timeout_s=cfg.timeout_s,
            reconnect_interval_s=max(cfg.connect_timeout_s, 0.2),
        )
        grid = None
        if cfg.grid_address:
            grid = SunSpecClient(
                cfg.grid_address,
                1,
                connect_timeout_s=cfg.connect_timeout_s,
                timeout_s=cfg.timeout_s,
                reconnect_interval_s=max(cfg.connect_timeout_s, 0.2),
            )
        scanned = False
        k = 0
        try:
            while True:
                k += 1
                deadline = t0 + k * self.period_s
                delay = deadline - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:  # skip ticks already past: a late tick counts as one missed deadline
                    k = max(k, math.floor((time.monotonic() - t0) / self.period_s))
                    deadline = t0 + k * self.period_s
                actual = time.monotonic()
                fault: HilError | None = None
                p = q = soc = None
                try:
                    if not scanned:
                        await client.ensure_connected()
                        await client.scan()
                        scanned = True
                    await self._write(link, client, grid)
                    p, q, soc = await self._read(link, client)
                except HilError as exc:
                    fault = exc
                    if exc.kind in ("refused", "timeout", "disconnected"):
                        scanned = False
                sample = Sample(
                    time.time(),
                    deadline,
                    actual,
                    max(0.0, actual - deadline),
                    p,
                    q,
                    soc,
                    fault is None,
                    None if fault is None else fault.kind,
                    link._written.f_hz,
                    link._written.vm_pu,
                    link._written.p_set_kw,
                )
                link._record(sample, fault)
                if self._max_samples and len(link.samples) > self._max_samples:
                    with link.lock:
                        del link.samples[: len(link.samples) - self._max_samples]
        finally:
            await client.close()
            if grid is not None:
                await grid.close()

    async def _write(self, link: DeviceLink, client: SunSpecClient, grid: SunSpecClient | None) -> None:
        await write_targets(link, client, grid)

    async def _read(self, link: DeviceLink, client: SunSpecClient) -> tuple[float, float, float | None]:
        return await read_measurement(link, client)


async def write_targets(link: DeviceLink, client: SunSpecClient, grid: SunSpecClient | None) -> None:
    """Write what changed since the last write: grid simulator values (through ``link.config.grid_map``), the
    battery setpoint (704 ``WSet``), the PV limit (704 ``WMaxLimPct``)."""
    with link.lock:
        t, w = link._targets, link._written
    cfg = link.config
    if grid is not None and cfg.grid_channel:
        for name in ("vm_pu", "f_hz", "available_pct"):
            value = getattr(t, name)
            if value is not None and value != getattr(w, name):
                if name == "available_pct":
                    value = max(0.0, min(100.0, value))
                write = cfg.grid_map.write(cfg.grid_channel, name, value)
                if write is not None:
                    await grid.write_registers(*write)
                setattr(w, name, getattr(t, name))
    if cfg.kind == "battery" and t.p_set_kw is not None and t.p_set_kw != w.p_set_kw:
        p_w = max(-cfg.rated_kw, min(cfg.rated_kw, t.p_set_kw)) * 1000.0
        await client.write_points(704, {"WSetEna": 1, "WSetMod": 1, "WSet": p_w})
        w.p_set_kw = t.p_set_kw
    if t.p_limit_pct is not None and t.p_limit_pct != w.p_limit_pct:
        pct = max(0.0, min(100.0, t.p_limit_pct))
        await client.write_points(704, {"WMaxLimPctEna": 1, "WMaxLimPct": pct})
        w.p_limit_pct = t.p_limit_pct


async def read_measurement(link: DeviceLink, client: SunSpecClient) -> tuple[float, float, float | None]:
    """P [kW], Q [kvar] and SoC (0..1, batteries) from 701/713 (or the legacy 103/124), checked for sentinels
    and range."""
    cfg = link.config
    legacy = 701 not in client.models and 103 in client.models
    var_point = "VAr" if legacy else "Var"
    m = await client.read_model(103 if legacy else 701, points=("W", var_point))  # decode only these
    w, var = m["W"], m[var_point]
    ctx = {"address": cfg.address, "unit": cfg.unit, "operation": f"read {103 if legacy else 701}"}
    if w is None or var is None:
        raise HilValueError(
            "W or Var not implemented (sentinel) or its scale factor missing",
            point="701.W/Var",
            value=(w, var),
            **ctx,
        )
    p_kw, q_kvar = w / 1000.0, var / 1000.0
    limit = cfg.range_factor * cfg.rated_kw
    if abs(p_kw) > limit or abs(q_kvar) > limit:
        raise HilValueError(
            f"P {p_kw} kW / Q {q_kvar} kvar outside ±{limit:g} for a {cfg.rated_kw} kW device",
            point="701.W",
            value=p_kw,
            **ctx,
        )
    soc = None
    if cfg.kind == "battery":
        model, point = (124, "ChaState") if 713 not in client.models and 124 in client.models else (713, "SoC")
        pct = (await client.read_model(model, points=(point,)))[point]
        if pct is None or not 0.0 <= pct <= 100.0:
            raise HilValueError(
                f"{model}.{point} {pct} is not a percentage",
                point=f"{model}.{point}",
                value=pct,
                address=cfg.address,
                unit=cfg.unit,
                operation=f"read {model}",
            )
        soc = pct / 100.0
    return p_kw, q_kvar, soc
