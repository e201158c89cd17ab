"""The schedule part: setpoints computed before the run (an operator's schedule, or each home's own
optimisation against a tariff) drive the fleet's batteries and EV charging step by step; needs ``"fleet"``."""

from __future__ import annotations

import numpy as np

from testbed.orchestration.world import Part, WorldBuilder


class SchedulePart(Part):
    """``battery_kw`` and ``ev_kw`` are (T, n) setpoints in the fleet's prosumer order (NaN: no setpoint)."""

    name = "schedule"

    def __init__(self, battery_kw: np.ndarray, ev_kw: np.ndarray, label: str) -> None:
        self.battery_kw = battery_kw
        self.ev_kw = ev_kw
        self.label = label

    def build(self, builder: WorldBuilder) -> None:
        sched = builder.start("Schedule", "simulators.schedule.mosaik_sim:ScheduleSimulator").Schedule(
            ids=list(builder.prosumer_ids), battery_kw=self.battery_kw, ev_kw=self.ev_kw
        )
        builder.connect(sched, builder.entity("fleet"), "battery_p_set_kw", "ev_p_set_kw")

    def kpis(self, builder: WorldBuilder) -> dict:
        return {"label": self.label}
