"""mosaik adapter for a precomputed schedule: an operator's or a home's own setpoints for batteries and EV
charging, one row per step (the model is the table itself; nothing to simulate beside it).

Model ``Schedule`` (one entity), params ``ids`` (prosumer ids, the columns), ``battery_kw`` and ``ev_kw``
((T, n) arrays, NaN where a prosumer gets no setpoint). Outputs at step k: ``battery_p_set_kw`` and
``ev_p_set_kw`` as ``{prosumer_id: kW}`` for the prosumers with a setpoint, what the fleet's inputs of the same
names take (a battery setpoint replaces the home's self-consumption controller; an EV setpoint its
uncontrolled charging).
"""

from __future__ import annotations

import mosaik_api_v3
import numpy as np

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Schedule": {
            "public": True,
            "params": ["ids", "battery_kw", "ev_kw"],
            "attrs": ["battery_p_set_kw", "ev_p_set_kw"],
        },
    },
}


class ScheduleSimulator(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.eid = "schedule"
        self.k = 0

    def init(self, sid, time_resolution=1.0):
        return self.meta

    def create(self, num, model, ids=(), battery_kw=None, ev_kw=None):
        if num != 1:
            raise ValueError("a ScheduleSimulator holds exactly one Schedule entity")
        self.ids = list(ids)
        self.tables = {"battery_p_set_kw": np.asarray(battery_kw, float), "ev_p_set_kw": np.asarray(ev_kw, float)}
        for name, table in self.tables.items():
            if table.ndim != 2 or table.shape[1] != len(self.ids):
                raise ValueError(f"{name}: expected (steps, {len(self.ids)}) setpoints, got {table.shape}")
        self.given = {name: np.flatnonzero(~np.all(np.isnan(t), axis=0)) for name, t in self.tables.items()}
        return [{"eid": self.eid, "type": model}]

    def step(self, time, inputs, max_advance):
        self.k = time
        return time + 1

    def get_data(self, outputs):
        data = {}
        for eid, attrs in outputs.items():
            out = {}
            for attr in attrs:
                table = self.tables[attr]
                row = table[min(self.k, table.shape[0] - 1)]
                out[attr] = {self.ids[i]: float(row[i]) for i in self.given[attr] if np.isfinite(row[i])}
            data[eid] = out
        return data
