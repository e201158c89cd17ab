"""mosaik simulator (API v3, in-process) that puts devices on Modbus TCP in place of simulated PV and
batteries.

Model ``Device`` — params: ``kind`` ("pv"|"battery"), ``address`` ("host:port"), ``unit``, ``prosumer_id``,
``bus`` (bus id), ``rated_kw``, ``fault_policy`` ("hold"|"fallback-to-model"|"abort"); optional
``battery`` (the fields of :class:`testbed.domain.der.battery.BatterySpec`: lets the battery fallback follow the
testbed's battery model, SoC window and losses included), ``grid_address``/``grid_channel`` (an
emulated grid simulator that should apply ``vm_pu``/``f_hz``; leave unset for real devices), ``fleet_index``
and ``bus_index`` (the device's element in array inputs coming from a whole fleet or grid).

Inputs (scalars, or arrays indexed as above): ``p_set_kw`` (battery setpoint, generator convention: > 0
discharges), ``p_limit_pct`` (PV curtailment), ``vm_pu``/``f_hz`` (for the emulated grid simulator),
``p_model_kw`` (what the simulated model gives: the stand-in for ``fallback-to-model``, and an emulated PV's
available DC power). Outputs: ``p_kw``, ``q_kvar``, ``soc`` (0..1), ``valid``, ``p_kw_by_bus``,
``q_kvar_by_bus`` ({bus: value}, generator convention), ``fault`` (why the latest sample is invalid, None when
it is valid), ``p_kw_by_prosumer``, ``soc_by_prosumer``
({prosumer_id: value}) and ``hil`` (flat values for the recorder).

The Modbus I/O runs on its own wall-clock tick (:class:`hil.link.LinkRunner`, ``period_s``, default 20 Hz);
``step`` only takes the latest sample, so a slow or dead device never blocks mosaik. Results: the init param
``report_sink`` (a dict, in-process) receives them at shutdown; or call the extra methods after
``world.run(..., shutdown=False)``: ``report()`` (lateness statistics, fault events), ``kpis()`` (flat KPI
dict), ``samples()`` (every recorded sample as rows).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import mosaik_api_v3
import numpy as np

from hil.client import parse_address
from hil.errors import HilAbort
from hil.grid_map import EMULATED_GRID, GridMap
from hil.link import DeviceLink, FaultEvent, LinkConfig, LinkRunner
from hil.policy import Measurement, check_policy, resolve
from hil.samples import SampleStore
from testbed.domain.der.battery import BatterySpec
from testbed.domain.errors import UserError
from testbed.domain.lateness import LatenessStats, lateness_stats

log = logging.getLogger(__name__)

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Device": {
            "public": True,
            "params": [
                "kind",
                "address",
                "unit",
                "prosumer_id",
                "bus",
                "rated_kw",
                "fault_policy",
                "battery",
                "grid_address",
                "grid_channel",
                "fleet_index",
                "bus_index",
                "grid_map",
            ],
            "attrs": [
                "p_set_kw",
                "p_limit_pct",
                "vm_pu",
                "f_hz",
                "p_model_kw",
                "p_kw",
                "q_kvar",
                "soc",
                "valid",
                "fault",
                "p_kw_by_bus",
                "q_kvar_by_bus",
                "p_kw_by_prosumer",
                "soc_by_prosumer",
                "hil",
            ],
        },
    },
    "extra_methods": ["report", "kpis", "samples"],
}


@dataclass
class _Entity:
    eid: str
    kind: str
    bus: str
    prosumer_id: str
    rated_kw: float
    policy: str
    battery: BatterySpec | None
    link: DeviceLink
    fleet_index: int | None = None
    bus_index: int | None = None
    out: Measurement = field(default_factory=lambda: Measurement(0.0, 0.0, None, False))
    p_set_kw: float = 0.0
    p_limit_pct: float | None = None
    fallback_soc: float | None = None
    policy_active: bool = False
    fault: str | None = None


class HilSimulator(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.entities: dict[str, _Entity] = {}
        self.runner: LinkRunner | None = None
        self.step_size = 1
        self.time_resolution = 1.0
        self.events: list[FaultEvent] = []
        self._step_times: list[tuple[int, float]] = []  # (mosaik time, monotonic wall time at step start)

    def init(
        self,
        sid: str,
        time_resolution: float = 1.0,
        step_size: int = 1,
        period_s: float = 0.05,
        rt_factor: float | None = None,
        connect_timeout_s: float = 0.5,
        timeout_s: float = 0.2,
        first_sample_timeout_s: float = 2.0,
        report_sink: dict | None = None,
        samples_path: str | None = None,
    ) -> dict:
        """``period_s`` Modbus tick [s]; ``rt_factor`` the run's real-time factor (enables step lateness);
        ``timeout_s``/``connect_timeout_s`` bound each request/connect [s]; ``report_sink`` (in-process only)
        receives ``report``, ``kpis`` and ``samples`` when the world shuts down; ``samples_path`` streams every
        sample to that Parquet file instead of keeping them in memory."""
        problems = []
        if not isinstance(step_size, int) or step_size < 1:
            problems.append(f"step_size {step_size!r}: must be an integer >= 1")
        if not period_s > 0:
            problems.append(f"period_s {period_s}: must be > 0")
        if rt_factor is not None and not rt_factor > 0:
            problems.append(f"rt_factor {rt_factor}: must be > 0")
        if problems:
            raise UserError(f"HIL simulator {sid}: bad parameters", problems)
        self.sid = sid
        self.step_size = step_size
        self.time_resolution = float(time_resolution)
        self.period_s = period_s
        self.rt_factor = rt_factor
        self.connect_timeout_s = connect_timeout_s
        self.timeout_s = timeout_s
        self.first_sample_timeout_s = first_sample_timeout_s
        self.report_sink = report_sink
        self.store = SampleStore(samples_path)
        return self.meta

    def create(
        self,
        num: int,
        model: str,
        *,
        kind: str,
        address: str,
        unit: int = 1,
        prosumer_id: str = "",
        bus: str = "",
        rated_kw: float = 0.0,
        fault_policy: str = "hold",
        battery: dict | None = None,
        grid_address: str | None = None,
        grid_channel: int | None = None,
        fleet_index: int | None = None,
        bus_index: int | None = None,
        grid_map: GridMap | None = None,
    ) -> list[dict]:
        where = f"HIL device {prosumer_id or address}"
        problems = []
        if model != "Device":
            problems.append(f"model {model!r}: only 'Device'")
        if kind not in ("pv", "battery"):
            problems.append(f"kind {kind!r}: expected 'pv' or 'battery'")
        try:
            parse_address(address)
        except ValueError as exc:
            problems.append(str(exc))
        if grid_address is not None:
            try:
                parse_address(grid_address)
            except ValueError as exc:
                problems.append(f"grid_{exc}")
            if not grid_channel or grid_channel < 1:
                problems.append("grid_channel: needed (>= 1) with grid_address")
        if not isinstance(unit, int) or not 0 <= unit <= 247:
            problems.append(f"unit {unit!r}: a Modbus unit id is 0..247")
        if not rated_kw or rated_kw <= 0:
            problems.append(f"rated_kw {rated_kw!r}: must be > 0")
        if not bus:
            problems.append("bus: needed (the bus id the device feeds)")
        spec = None
        if battery is not None:
            try:
                spec = BatterySpec(**battery)
            except (TypeError, ValueError) as exc:
                problems.append(f"battery: {exc}")
        if problems:
            raise UserError(f"{where}: bad parameters", problems)
        check_policy(fault_policy, where)
        if num != 1:
            raise UserError(f"{where}: create one entity per device address (num={num})")
        eid = f"{prosumer_id or 'dev'}-{kind}-{len(self.entities)}"
        cfg = LinkConfig(
            eid,
            address,
            unit,
            kind,
            float(rated_kw),
            grid_address,
            grid_channel,
            connect_timeout_s=self.connect_timeout_s,
            timeout_s=self.timeout_s,
            grid_map=grid_map or EMULATED_GRID,
        )
        self.entities[eid] = _Entity(
            eid,
            kind,
            str(bus),
            prosumer_id,
            float(rated_kw),
            fault_policy,
            spec,
            DeviceLink(cfg),
            fleet_index,
            bus_index,
        )
        return [{"eid": eid, "type": model}]

    def setup_done(self) -> None:
        self._start()

    def _start(self) -> None:
        if self.runner is not None or not self.entities:
            return
        self.runner = LinkRunner([e.link for e in self.entities.values()], period_s=self.period_s).start()
        deadline = time.monotonic() + self.first_sample_timeout_s
        while time.monotonic() < deadline and any(e.link.latest is None for e in self.entities.values()):
            time.sleep(self.period_s / 2)

    # --- stepping ---------------------------------------------------------------------------------

    def step(self, time_: int, inputs: dict, max_advance: int) -> int:
        self._start()
        if self.rt_factor is not None:
            self._step_times.append((time_, time.monotonic()))
        self._drain()
        dt_h = self.step_size * self.time_resolution / 3600.0
        for eid, ent in self.entities.items():
            attrs = inputs.get(eid, {})
            p_set = _single(attrs, "p_set_kw", eid, ent.fleet_index)
            limit = _single(attrs, "p_limit_pct", eid, ent.fleet_index)
            vm = _single(attrs, "vm_pu", eid, ent.bus_index)
            f = _single(attrs, "f_hz", eid, ent.bus_index)
            p_model = _single(attrs, "p_model_kw", eid, ent.fleet_index)
            if p_set is not None:
                ent.p_set_kw = float(p_set)
            if limit is not None:
                ent.p_limit_pct = float(limit)
            # an emulated PV's DC source follows the simulated PV's available power
            avail = 100.0 * float(p_model) / ent.rated_kw if ent.kind == "pv" and p_model is not None else None
            ent.link.set_targets(p_set_kw=p_set, p_limit_pct=limit, vm_pu=vm, f_hz=f, available_pct=avail)
            latest, last_valid = ent.link.snapshot()
            sample = (
                None
                if latest is None
                else Measurement(latest.p_kw or 0.0, latest.q_kvar or 0.0, latest.soc, latest.valid)
            )
            valid_m = (
                None if last_valid is None else Measurement(last_valid.p_kw, last_valid.q_kvar, last_valid.soc, True)
            )
            if sample is not None and sample.valid:
                ent.fallback_soc = sample.soc
            model = self._model_measurement(ent, p_model, valid_m, dt_h)
            reason = "no sample yet" if latest is None else (latest.fault or "invalid")
            try:
                ent.out = resolve(ent.policy, sample, valid_m, model, reason=reason)
            except HilAbort as exc:
                self.events.append(FaultEvent(time.time(), eid, "abort", str(exc)))
                raise HilAbort(
                    f"{eid} at t={time_}: {exc}",
                    address=ent.link.config.address,
                    unit=ent.link.config.unit,
                    operation="step",
                ) from None
            using_policy = not (sample is not None and sample.valid)
            ent.fault = reason if using_policy else None
            if using_policy != ent.policy_active:
                kind = f"policy:{ent.policy}" if using_policy else "policy:off"
                self.events.append(FaultEvent(time.time(), eid, kind, f"t={time_} ({reason})"))
                ent.policy_active = using_policy
        return time_ + self.step_size

    def _model_measurement(
        self, ent: _Entity, p_model: float | None, last_valid: Measurement | None, dt_h: float
    ) -> Measurement:
        """The simulated stand-in for ``fallback-to-model``: ``p_model_kw`` when given; otherwise a battery
        following its setpoint within its rating (through the testbed's battery model, SoC window and losses
        included, once the SoC and the battery are known), or PV at its last valid output capped by the
        curtailment limit."""
        if p_model is not None:
            return Measurement(float(p_model), 0.0, ent.fallback_soc, False)
        if ent.kind == "battery":
            p = max(-ent.rated_kw, min(ent.rated_kw, ent.p_set_kw))
            soc = ent.fallback_soc
            if soc is not None and ent.battery is not None:
                p, soc = ent.battery.step(soc, p, dt_h)
                ent.fallback_soc = soc
            return Measurement(p, 0.0, soc, False)
        p = last_valid.p_kw if last_valid is not None else 0.0
        if ent.p_limit_pct is not None:
            p = min(p, ent.rated_kw * ent.p_limit_pct / 100.0)
        return Measurement(p, 0.0, None, False)

    def get_data(self, outputs: dict) -> dict:
        data: dict[str, dict[str, Any]] = {}
        for eid, attrs in outputs.items():
            ent = self.entities[eid]
            m = ent.out
            values = {
                "p_kw": m.p_kw,
                "q_kvar": m.q_kvar,
                "soc": m.soc,
                "valid": m.valid,
                "p_kw_by_bus": {ent.bus: m.p_kw},
                "q_kvar_by_bus": {ent.bus: m.q_kvar},
                "p_kw_by_prosumer": {ent.prosumer_id: m.p_kw},
                "soc_by_prosumer": {} if m.soc is None else {ent.prosumer_id: m.soc},
                "fault": ent.fault,
                "hil": self._record(ent),
            }
            for attr in attrs:
                if attr not in values:
                    raise ValueError(f"{eid}: {attr!r} is not an output of a HIL Device")
                data.setdefault(eid, {})[attr] = values[attr]
        return data

    @staticmethod
    def _record(ent: _Entity) -> dict[str, float]:
        """Flat values for the run's time series (same keys every step)."""
        m, key = ent.out, f"{ent.prosumer_id}.{ent.kind}"
        rec = {f"{key}.p_kw": m.p_kw, f"{key}.q_kvar": m.q_kvar, f"{key}.valid": float(m.valid)}
        if ent.kind == "battery":
            rec[f"{key}.soc"] = float("nan") if m.soc is None else m.soc
        return rec

    def _drain(self) -> None:
        for eid, ent in self.entities.items():
            self.store.add(eid, ent.link.drain())

    def finalize(self) -> None:
        if self.runner is not None:
            self.runner.stop()
            self.runner = None
        self._drain()
        self.store.close()
        if self.report_sink is not None:
            self.report_sink.update(report=self.report(), kpis=self.kpis(), samples=self.samples())

    # --- results ----------------------------------------------------------------------------------

    def report(self) -> dict:
        self._drain()
        devices = {}
        events = list(self.events)
        for eid, ent in self.entities.items():
            link = ent.link
            with link.lock:
                events.extend(link.events)
            devices[eid] = {
                "address": link.config.address,
                "unit": link.config.unit,
                "bus": ent.bus,
                "prosumer_id": ent.prosumer_id,
                "fault_policy": ent.policy,
                "samples": self.store.count(eid),
                "invalid_samples": self.store.invalid.get(eid, 0),
                "lateness": self.store.stats(self.period_s, eid).as_dict(),
            }
        step = self.step_lateness().as_dict() if self._step_times else None
        return {
            "period_s": self.period_s,
            "io_lateness": self.store.stats(self.period_s).as_dict(),
            "step_lateness": step,
            "devices": devices,
            "events": [e.as_dict() for e in sorted(events, key=lambda e: e.t_wall)],
        }

    def step_lateness(self) -> LatenessStats:
        """Lateness of mosaik's steps against the wall-clock schedule of a real-time run.

        Step ``t`` is due at ``start + t × time_resolution × rt_factor``; ``start`` (when mosaik started its
        clock) is not visible to a simulator, so it is taken as the latest start no step came before: the
        minimum over steps of ``actual − t × Δ``. The least late step therefore has lateness 0.
        """
        per_unit = self.time_resolution * (self.rt_factor or 1.0)
        start = min(actual - t * per_unit for t, actual in self._step_times)
        deadlines = [start + t * per_unit for t, _ in self._step_times]
        return lateness_stats(deadlines, [a for _, a in self._step_times], self.step_size * per_unit)

    def kpis(self) -> dict[str, float | int]:
        """Flat KPIs: Modbus tick lateness p50/p99/max [s] and missed deadlines over all devices, the same for
        mosaik steps in real-time runs, and counts of invalid samples and fault events."""
        r = self.report()
        io = r["io_lateness"]
        out: dict[str, float | int] = {
            "hil_io_lateness_p50_s": io["p50_s"],
            "hil_io_lateness_p99_s": io["p99_s"],
            "hil_io_lateness_max_s": io["max_s"],
            "hil_io_missed_deadlines": io["missed"],
            "hil_io_ticks": io["ticks"],
            "hil_invalid_samples": sum(d["invalid_samples"] for d in r["devices"].values()),
            "hil_fault_events": sum(1 for e in r["events"] if e["kind"] not in ("recovered", "policy:off")),
        }
        if r["step_lateness"] is not None:
            st = r["step_lateness"]
            out |= {
                "step_lateness_p50_s": st["p50_s"],
                "step_lateness_p99_s": st["p99_s"],
                "step_lateness_max_s": st["max_s"],
                "step_missed_deadlines": st["missed"],
            }
        return out

    def samples(self) -> list[dict]:
        """Every sample as a row (device, t_wall, lateness_s, p_kw, q_kvar, soc, valid, fault), when they are
        kept in memory (no ``samples_path``)."""
        self._drain()
        return self.store.rows()


def _single(attrs: dict, name: str, eid: str, index: int | None = None) -> float | None:
    """The one value connected to input ``name``; an array input (a whole fleet's or grid's) gives its
    element ``index``."""
    values = attrs.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise UserError(
            f"HIL device {eid}: input {name} connected from {len(values)} sources",
            [f"{src}" for src in values],
        )
    (value,) = values.values()
    if isinstance(value, np.ndarray | list | tuple):
        if index is None:
            raise UserError(f"HIL device {eid}: input {name} is an array but the device has no index into it")
        value = float(value[index])
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else value


def main() -> None:  # pragma: no cover - for running as a separate process
    mosaik_api_v3.start_simulation(HilSimulator())
