"""The frequency-response part of ``fpp run``, for scenarios with ``frequency_response:`` (docs/services.md):
prosumers' batteries answer a frequency at a fast step (20 Hz by default) while the grid, the fleet, the market
and the recorder keep the scenario's step, in the same mosaik world (:mod:`simulators.rates`).

Wiring (``k`` ticks per fleet step):

- frequency source → coalition, every tick: a test signal's frequency (``simulators.frequency`` ``Signal``), or
  the closed-loop single-area system (``SingleArea``), which gets the coalition's summed response back one
  tick later (time-shifted), so the members' response lifts the nadir they see;
- fleet → coalition (each fleet step): the home's own battery power (``battery_model_kw``), the member's
  wish from which it declares its baseline at each baseline period;
- coalition → fleet (time-shifted): each member's mean power over the fleet step and its state of charge
  replace the model battery's, so the grid, the market's meters and the recorder see what the inverter did.

After the run the coalition's summed response is scored by the service's own rules (the same scoring as
``fpp test``) against the 20 Hz samples; ``kpis.json`` gets a ``frequency_response`` section and the run folder
``frequency_response.parquet`` (one row per tick).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from hil.behaviour import DerControls, DerRating
from hil.misbehaviour import TestedDer
from simulators.devices.mosaik_sim import OpenDerDriver
from simulators.frequency.model import SingleAreaModel
from simulators.response.model import Member
from testbed.domain.scenario.references import frequency_responders
from testbed.domain.scenario.response import FrequencyResponse
from testbed.domain.services.frequency import ResponseController
from testbed.domain.services.scoring import Record, score_frequency_service
from testbed.domain.services.signal_spec import frequency_signal
from testbed.domain.verdict import Criterion
from testbed.orchestration.world import Part, WorldBuilder


class ResponsePart(Part):
    """Needs ``"fleet"`` (module docstring)."""

    name = "frequency_response"

    def __init__(self, spec: FrequencyResponse) -> None:
        self.spec = spec
        self.sink: dict[str, Any] = {}
        self.area: SingleAreaModel | None = None
        self._criteria: list[Criterion] = []

    def build(self, builder: WorldBuilder) -> None:
        spec, k = self.spec, builder.ticks_per_step
        sc = builder.plan.scenario
        chosen, problems = frequency_responders(spec, builder.plan.prosumers)
        if problems:  # prepare() has checked this; a plan built by hand may not have been
            raise ValueError("; ".join(problems))
        service = spec.frequency_service()
        fsim = builder.start("Frequency", "simulators.frequency.mosaik_sim:FrequencySimulator", fast=True,
                             step_size=1)
        s = spec.signal
        if s.kind == "closed-loop":
            self.area = SingleAreaModel(f_nom_hz=spec.f_nom_hz, s_base_mw=s.s_base_mw, h_s=s.h_s, d_pu=s.d_pu,
                                        loss_mw=s.loss_mw, t_loss_s=s.t_loss_s)
            source = fsim.SingleArea(f_nom_hz=spec.f_nom_hz, s_base_mw=s.s_base_mw, h_s=s.h_s, d_pu=s.d_pu,
                                     loss_mw=s.loss_mw, t_loss_s=s.t_loss_s)
        else:
            source = fsim.Signal(signal=frequency_signal(s, spec.f_nom_hz))
        position = {pid: i for i, pid in enumerate(builder.prosumer_ids)}
        members = []
        for p, b in chosen:
            contracted = spec.contracted_share * b.power_kw
            rating = DerRating(kind="battery", rated_kw=b.power_kw, capacity_kwh=b.capacity_kwh,
                               soc_init=b.initial_soc, f_nom_hz=spec.f_nom_hz, active_power_response_s=spec.response_s)
            members.append(Member(
                pid=p.id, index=position[p.id], rated_kw=b.power_kw, contracted_kw=contracted,
                controller=ResponseController(service, contracted),
                driver=OpenDerDriver(TestedDer(rating), DerControls(p_set_enabled=True, droop_enabled=False)),
            ))
        rsim = builder.start("Response", "simulators.response.mosaik_sim:ResponseSimulator", fast=True)
        coalition = rsim.Coalition(members=members, ticks_per_step=k,
                                   baseline_ticks=spec.baseline_period_s // sc.time.resolution_s * k, sink=self.sink)
        fleet = builder.entity("fleet")
        builder.connect(source, coalition, "f_hz")
        builder.connect(fleet, coalition, "battery_model_kw")
        builder.connect(coalition, fleet, ("battery_kw_by_prosumer", "battery_kw_measured"),
                        ("soc_by_prosumer", "soc_measured"), time_shifted=True,
                        initial_data={"battery_kw_by_prosumer": {}, "soc_by_prosumer": {}})
        if self.area is not None:
            builder.connect(coalition, source, "p_response_kw", time_shifted=True, initial_data={"p_response_kw": 0.0})
        builder.provide("coalition", coalition)

    def kpis(self, builder: WorldBuilder) -> dict[str, Any]:
        coalition = self.sink.get("coalition")
        if coalition is None or not coalition.samples.t_s:
            return {}
        spec, smp = self.spec, coalition.samples
        service = spec.frequency_service()
        signal = frequency_signal(spec.signal, spec.f_nom_hz)
        t = np.asarray(smp.t_s)
        f = np.asarray(smp.f_hz)
        delivered = np.asarray(smp.delivered_kw)
        within = t <= signal.duration_s + 1e-9  # scored over the signal; after it the frequency is held
        rec = Record.from_arrays(t[within], f[within], delivered[within], period_s=coalition.tick_s)
        verdict = score_frequency_service(service, rec, coalition.contracted_kw, signal.events_s,
                                          acceptance=spec.acceptance.acceptance())
        crit = [Criterion(c.name, c.passed, c.figure, c.limit, c.unit, c.detail, "frequency response")
                for c in verdict.criteria]
        member_kw = smp.member_kw()[within]
        members = []
        for i, m in enumerate(coalition.members):
            mv = score_frequency_service(service, Record.from_arrays(t[within], f[within], member_kw[:, i],
                                                                     period_s=coalition.tick_s),
                                         m.contracted_kw, signal.events_s, acceptance=spec.acceptance.acceptance())
            members.append({"prosumer": m.pid, "contracted_kw": round(m.contracted_kw, 3),
                            "passed": mv.status == "pass",
                            "failed": [c.name for c in mv.criteria if c.passed is False]})
        section: dict[str, Any] = {
            "service": spec.service,
            "service_name": service.name,
            "f_nom_hz": spec.f_nom_hz,
            "signal": signal.name,
            "tick_s": coalition.tick_s,
            "ticks": len(t),
            "ticks_per_step": builder.ticks_per_step,
            "members": len(coalition.members),
            "contracted_kw": round(coalition.contracted_kw, 3),
            "delivered_max_kw": round(float(np.nanmax(np.abs(delivered))), 3),
            "f_min_hz": round(float(np.nanmin(f)), 4),
            "f_max_hz": round(float(np.nanmax(f)), 4),
            "criteria": {c.name: c.figure for c in crit},
            "members_failing": sum(not m["passed"] for m in members),
            "per_member": members,
        }
        if self.area is not None:
            alone = self.area.nadir_without_response_hz(spec.signal.duration_s, coalition.tick_s)
            nadir = float(np.nanmin(f[within]))
            section.update(nadir_hz=round(nadir, 4), nadir_without_response_hz=round(alone, 4),
                           nadir_lift_mhz=round((nadir - alone) * 1000, 1))
            if spec.signal.f_min_hz is not None:
                crit.append(Criterion(
                    "frequency nadir", nadir >= spec.signal.f_min_hz, nadir, spec.signal.f_min_hz, "Hz",
                    f"lowest system frequency with the members' response; without it {alone:.3f} Hz",
                    group="frequency response"))
        self._criteria = crit
        _write_samples(builder.run_dir / "frequency_response.parquet", t, f, delivered, np.asarray(smp.required_kw))
        return section

    def criteria(self, kpis: Mapping[str, Any]) -> list[Criterion]:
        return list(self._criteria)


def _write_samples(path, t, f, delivered, required) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"t_s": t, "f_hz": f, "delivered_kw": delivered, "required_kw": required}), path)
