"""The mosaik face of :class:`~simulators.response.model.Coalition` (thin: it only translates).

Model ``Coalition`` (one entity), stepped on the world's fast tick. Params: ``members`` (a list of
:class:`~simulators.response.model.Member`), ``ticks_per_step`` (ticks per fleet step), ``baseline_ticks``
(ticks per baseline period) and ``sink`` (a dict: ``sink["coalition"]`` is the model, read after the run).

Inputs: ``f_hz`` (the frequency source, this tick's) and ``battery_model_kw`` (the fleet's battery powers in
fleet order, its latest step). Outputs: ``battery_kw_by_prosumer`` (each member's mean power over the fleet
step so far: connect it to the fleet's ``battery_kw_measured`` time-shifted, so the fleet's next step counts
the whole step's energy), ``soc_by_prosumer`` (for ``soc_measured``), ``p_response_kw`` (the summed response
of the last tick, for a closed-loop system), and ``delivered_kw``, ``required_kw``, ``f_hz`` (the recorder's).
"""

from __future__ import annotations

from typing import Any

import mosaik_api_v3
import numpy as np

from simulators.response.model import Coalition

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Coalition": {
            "public": True,
            "params": ["members", "ticks_per_step", "baseline_ticks", "sink"],
            "attrs": ["f_hz", "battery_model_kw", "battery_kw_by_prosumer", "soc_by_prosumer", "p_response_kw",
                      "delivered_kw", "required_kw"],
        },
    },
}


class ResponseSimulator(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.coalition: Coalition | None = None
        self.tick_s = 1.0
        self._f_hz = float("nan")

    def init(self, sid: str, time_resolution: float = 1.0) -> dict:
        self.tick_s = float(time_resolution)
        return self.meta

    def create(self, num: int, model: str, members: list, ticks_per_step: int, baseline_ticks: int,
               sink: dict) -> list[dict]:
        if num != 1 or self.coalition is not None:
            raise ValueError("a ResponseSimulator holds exactly one Coalition entity")
        self.coalition = Coalition(list(members), self.tick_s, ticks_per_step, baseline_ticks)
        sink["coalition"] = self.coalition
        return [{"eid": "coalition", "type": model}]

    def step(self, time: int, inputs: dict, max_advance: int) -> int:
        attrs = inputs.get("coalition", {})
        fs = [float(v) for v in attrs.get("f_hz", {}).values() if v is not None]
        if fs:
            self._f_hz = fs[0]
        homes = attrs.get("battery_model_kw")
        home_kw = np.asarray(next(iter(homes.values())), dtype=float) if homes else None
        self.coalition.tick(time, self._f_hz, home_kw)
        return time + 1

    def get_data(self, outputs: dict) -> dict:
        c = self.coalition
        s = c.samples
        have: dict[str, Any] = {
            "battery_kw_by_prosumer": {m.pid: float(c.mean_kw[i]) for i, m in enumerate(c.members)},
            "soc_by_prosumer": {m.pid: m.soc for m in c.members if m.soc is not None},
            "p_response_kw": c.delivered_kw,
            "delivered_kw": c.delivered_kw,
            "required_kw": s.required_kw[-1] if s.required_kw else 0.0,
            "f_hz": self._f_hz,
        }
        return {eid: {a: have.get(a) for a in attrs} for eid, attrs in outputs.items()}
