"""mosaik adapter for the prosumer fleet: one ``Fleet`` entity holding every prosumer as arrays.

Input: ``battery_p_set_kw`` as ``{prosumer_id: kW}`` (optional; overrides a home's controller).
Outputs: ``p_kw_by_bus`` / ``q_kvar_by_bus`` (``{bus_id: value}``, what the grid consumes) and per-prosumer
arrays in the order of the fleet's ids: ``p_kw``, ``q_kvar``, ``load_kw``, ``pv_kw``, ``ev_kw``,
``battery_kw``, ``soc``, ``ev_soc``. Step ``k`` of mosaik time is step ``k`` of the scenario window.
"""

from __future__ import annotations

import mosaik_api_v3
import numpy as np

from simulators.prosumers.fleet import FleetSetup, FleetState, ProsumerFleet

ARRAYS = ("p_kw", "q_kvar", "load_kw", "pv_kw", "ev_kw", "battery_kw", "soc", "ev_soc")
META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Fleet": {
            "public": True,
            "params": [],
            "attrs": ["battery_p_set_kw", "p_kw_by_bus", "q_kvar_by_bus", *ARRAYS],
        },
    },
    "extra_methods": ["prosumer_ids"],
}


class FleetSimulator(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.fleet: ProsumerFleet | None = None
        self.state: FleetState | None = None
        self.eid = "fleet"

    def init(self, sid, time_resolution=1.0, setup: FleetSetup | None = None, step_size: int = 1):
        if setup is None:
            raise ValueError("FleetSimulator needs a FleetSetup (built by testbed.runner)")
        self.fleet = ProsumerFleet(setup)
        self._pos = {pid: i for i, pid in enumerate(setup.ids)}
        self.step_size = step_size
        return self.meta

    def create(self, num, model, **model_params):
        if num != 1:
            raise ValueError("a FleetSimulator holds exactly one Fleet entity")
        return [{"eid": self.eid, "type": model}]

    def prosumer_ids(self) -> list[str]:
        return list(self.fleet.setup.ids)

    def step(self, time, inputs, max_advance):
        setpoints = None
        given = inputs.get(self.eid, {}).get("battery_p_set_kw")
        if given:
            setpoints = np.full(self.fleet.n, np.nan)
            for per_prosumer in given.values():
                for pid, p_kw in per_prosumer.items():
                    setpoints[self._pos[pid]] = p_kw
        self.state = self.fleet.step(time, setpoints)
        return time + self.step_size

    def get_data(self, outputs):
        s = self.state
        data = {}
        for eid, attrs in outputs.items():
            out = {}
            for attr in attrs:
                if attr == "p_kw_by_bus":
                    out[attr] = self.fleet.by_bus(s.p_kw)
                elif attr == "q_kvar_by_bus":
                    out[attr] = self.fleet.by_bus(s.q_kvar)
                else:
                    out[attr] = getattr(s, {"battery_p_set_kw": "battery_kw"}.get(attr, attr))
            data[eid] = out
        return data
