"""The HIL part of a scenario run: every prosumer PV or battery with ``hil:`` becomes a device on Modbus TCP
(orchestration; the adapter itself is :mod:`hil.mosaik_sim`).

Wiring, per device (``k`` is the step):

- fleet → HIL (step k): the simulated model's own power (``battery_model_kw`` / ``pv_model_kw``) is the
  battery's setpoint (the home's controller decided it) and the stand-in for ``fallback-to-model``; for an
  emulated PV it drives the grid simulator's DC source;
- grid → HIL (step k): the bus voltage, applied by an emulated grid simulator when the device has one;
- HIL → fleet (time-shifted, step k+1): the device's measured power (and SoC) replace the model's values of
  that prosumer in every fleet output, so the grid, the recorder and the KPIs see the device;
- HIL → recorder: ``hil/<prosumer>.<kind>.p_kw|q_kvar|valid|soc`` columns.

After the run, ``kpis.json`` gets a ``hil`` section (tick and step lateness p50/p99/max, missed deadlines,
invalid samples, fault events) and the run folder ``hil_samples.parquet`` (every 20 Hz sample with its
timestamp and lateness) and ``hil_events.json`` (fault and policy events).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Any

from hil.mosaik_sim import HilSimulator
from testbed.domain.scenario.models import PV, Battery, HilDevice
from testbed.orchestration.plan import RunPlan
from testbed.orchestration.world import Part, WorldBuilder

log = logging.getLogger(__name__)

HIL_PERIOD_S = 0.05  # the adapter's wall-clock tick: 20 Hz, as frequency services need


class HilPart(Part):
    """Adds the HIL simulator and its devices to a run (see the module docstring); needs ``"grid"`` and
    ``"fleet"``."""

    name = "hil"

    def __init__(self, devices: list[tuple[str, str, HilDevice, PV | Battery]]) -> None:
        self.devices = devices  # (prosumer id, kind, HilDevice, PV | Battery)
        self.sink: dict = {}

    @classmethod
    def for_plan(cls, plan: RunPlan) -> HilPart | None:
        """The part when any prosumer of the plan has a ``hil:`` PV or battery, else None."""
        devices = []
        for p in plan.prosumers:
            for kind, spec in (("pv", p.pv), ("battery", p.battery)):
                if spec is not None and spec.hil is not None:
                    devices.append((p.id, kind, spec.hil, spec))
        return cls(devices) if devices else None

    def build(self, builder: WorldBuilder) -> None:
        sim = builder.start(
            "HIL",
            HilSimulator,
            step_size=1,
            period_s=HIL_PERIOD_S,
            rt_factor=1.0 if builder.real_time else None,
            report_sink=self.sink,
            samples_path=str(builder.run_dir / "hil_samples.parquet"),
        )
        grid, fleet = builder.entity("grid"), builder.entity("fleet")
        positions = {pid: i for i, pid in enumerate(builder.prosumer_ids)}
        bus_index = {b: i for i, b in enumerate(builder.network["bus_ids"])}
        buses = {p.id: p.bus for p in builder.plan.prosumers}
        for pid, kind, hil, spec in self.devices:
            dev = sim.Device(
                kind=kind,
                address=hil.address,
                unit=hil.unit,
                prosumer_id=pid,
                bus=buses[pid],
                rated_kw=spec.kwp if kind == "pv" else spec.power_kw,
                fault_policy=hil.fault_policy,
                battery=asdict(spec.spec) if kind == "battery" else None,
                grid_address=hil.grid_simulator,
                grid_channel=hil.grid_channel,
                fleet_index=positions[pid],
                bus_index=bus_index[buses[pid]],
            )
            if kind == "battery":
                builder.connect(fleet, dev, ("battery_model_kw", "p_set_kw"), ("battery_model_kw", "p_model_kw"))
                builder.connect(
                    dev,
                    fleet,
                    ("p_kw_by_prosumer", "battery_kw_measured"),
                    ("soc_by_prosumer", "soc_measured"),
                    time_shifted=True,
                    initial_data={"p_kw_by_prosumer": {}, "soc_by_prosumer": {}},
                )
            else:
                builder.connect(fleet, dev, ("pv_model_kw", "p_model_kw"))
                builder.connect(
                    dev,
                    fleet,
                    ("p_kw_by_prosumer", "pv_kw_measured"),
                    time_shifted=True,
                    initial_data={"p_kw_by_prosumer": {}},
                )
            builder.connect(grid, dev, "vm_pu")
            builder.record(dev, ["hil"])

    def kpis(self, builder: WorldBuilder) -> dict[str, Any]:
        if not self.sink:
            return {}
        report = self.sink["report"]
        (builder.run_dir / "hil_events.json").write_text(
            json.dumps({"events": report["events"], "devices": report["devices"]}, indent=2) + "\n", encoding="utf-8"
        )
        return self.sink["kpis"]
