"""mosaik simulator (API v3, in-process) for frequency sources and the service response they ask for.

Models (the pure models are in :mod:`simulators.frequency.model` and :mod:`testbed.domain.services`):

- ``Signal`` — params ``signal`` (a :class:`~testbed.domain.services.signals.TestSignal`) and ``rated_kw``
  (optional); outputs ``f_hz``, ``vm_pu``, ``available_pct`` (PV source [% of rating]) and ``p_available_kw``;
- ``SingleArea`` — params of :class:`~simulators.frequency.model.SingleAreaModel`; input ``p_response_kw``
  (every source summed; connect it time-shifted: the devices answer the frequency of the step before); outputs
  ``f_hz``, ``rocof_hz_per_s``;
- ``Responder`` — params ``service`` (a :class:`~testbed.domain.services.frequency.FrequencyService`),
  ``contracted_kw``, ``baseline_kw``; input ``f_hz``; output ``p_set_kw`` (generator convention).

Time is ``time * time_resolution`` seconds; every entity steps every ``step_size`` steps.
"""

from __future__ import annotations

from typing import Any

import mosaik_api_v3

from simulators.frequency.model import SignalPlayer, SingleAreaModel
from testbed.domain.services.frequency import ResponseController

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Signal": {
            "public": True,
            "params": ["signal", "rated_kw"],
            "attrs": ["f_hz", "vm_pu", "available_pct", "p_available_kw"],
        },
        "SingleArea": {
            "public": True,
            "params": ["f_nom_hz", "s_base_mw", "h_s", "d_pu", "loss_mw", "t_loss_s", "r_pu", "t_gov_s", "gov_share"],
            "attrs": ["p_response_kw", "f_hz", "rocof_hz_per_s"],
        },
        "Responder": {
            "public": True,
            "params": ["service", "contracted_kw", "baseline_kw"],
            "attrs": ["f_hz", "p_set_kw"],
        },
    },
}


class FrequencySimulator(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.entities: dict[str, tuple[str, Any]] = {}
        self.out: dict[str, dict[str, float]] = {}
        self.step_size = 1
        self.time_resolution = 1.0

    def init(self, sid: str, time_resolution: float = 1.0, step_size: int = 1) -> dict:
        if not isinstance(step_size, int) or step_size < 1:
            raise ValueError(f"step_size {step_size!r}: must be an integer >= 1")
        self.step_size = step_size
        self.time_resolution = float(time_resolution)
        return self.meta

    def create(self, num: int, model: str, **params: Any) -> list[dict]:
        out = []
        for _ in range(num):
            eid = f"{model}-{len(self.entities)}"
            if model == "Signal":
                obj: Any = (SignalPlayer(params["signal"]), params.get("rated_kw") or 0.0)
            elif model == "SingleArea":
                obj = SingleAreaModel(**{k: v for k, v in params.items() if v is not None})
            else:
                obj = ResponseController(params["service"], params["contracted_kw"], params.get("baseline_kw", 0.0))
            self.entities[eid] = (model, obj)
            self.out[eid] = {}
            out.append({"eid": eid, "type": model})
        return out

    def step(self, time: int, inputs: dict, max_advance: int) -> int:
        t_s = time * self.time_resolution
        dt_s = self.step_size * self.time_resolution
        for eid, (model, obj) in self.entities.items():
            attrs = inputs.get(eid, {})
            if model == "Signal":
                f, v, a = obj[0].at(t_s)
                self.out[eid] = {"f_hz": f, "vm_pu": v, "available_pct": a, "p_available_kw": a / 100.0 * obj[1]}
            elif model == "SingleArea":
                p_kw = sum(float(x) for x in attrs.get("p_response_kw", {}).values() if x is not None)
                if time == 0:
                    obj.t_s = t_s
                self.out[eid] = {"f_hz": obj.f_hz, "rocof_hz_per_s": obj.rocof_hz_per_s(p_kw / 1000.0 / obj.s_base_mw)}
                obj.step(dt_s, p_kw / 1000.0)
            else:
                fs = [float(x) for x in attrs.get("f_hz", {}).values() if x is not None]
                if fs:
                    self.out[eid] = {"p_set_kw": obj.setpoint_kw(t_s, fs[0])}
        return time + self.step_size

    def get_data(self, outputs: dict) -> dict:
        data = {}
        for eid, attrs in outputs.items():
            have = self.out[eid]
            data[eid] = {a: have.get(a) for a in attrs}
        return data
