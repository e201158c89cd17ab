"""The mosaik face of :class:`~simulators.fpp_delivery.model.Delivery` (thin: it only translates).

Model ``Delivery`` (one entity). Params: ``schedules`` (a list of
:class:`~simulators.fpp_delivery.model.Schedule`), ``fleet_ids`` (the fleet's ids in the order of its arrays)
and ``sink`` (a dict the part reads after the run: ``sink["metered"]``).

Input ``p_kw`` (the fleet's metered net power, connected directly: step ``t``'s). Output
``p_service_target_kw`` (``{member: kW}``) for step ``t + 1``: connect it to the fleet time-shifted, so that
the fleet at step ``t + 1`` aims at it.
"""

from __future__ import annotations

from typing import Any

import mosaik_api_v3

from simulators.fpp_delivery.model import Delivery

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {"Delivery": {"public": True, "params": ["schedules", "fleet_ids", "sink"],
                            "attrs": ["p_kw", "p_service_target_kw"]}},
}


class DeliverySimulator(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.model: Delivery | None = None
        self.fleet_ids: list[str] = []
        self.sink: dict[str, Any] = {}
        self.out: dict[str, float] = {}
        self.step_size = 1

    def init(self, sid: str, time_resolution: float = 1.0, step_size: int = 1) -> dict:
        self.step_size = int(step_size)
        return self.meta

    def create(self, num: int, model: str, schedules: list, fleet_ids: list[str], sink: dict) -> list[dict]:
        if num != 1 or self.model is not None:
            raise ValueError("a DeliverySimulator holds exactly one Delivery entity")
        self.model = Delivery(list(schedules))
        self.fleet_ids = list(fleet_ids)
        self.sink = sink
        self.sink["metered"] = self.model.metered
        return [{"eid": "delivery", "type": model}]

    def step(self, time: int, inputs: dict, max_advance: int) -> int:
        values: dict[str, float] = {}
        for v in inputs.get("delivery", {}).get("p_kw", {}).values():
            items = v.items() if isinstance(v, dict) else zip(self.fleet_ids, v, strict=True)
            values.update({str(k): float(x) for k, x in items})
        self.model.meter(time, values)
        self.out = self.model.targets(time + self.step_size)
        return time + self.step_size

    def get_data(self, outputs: dict) -> dict:
        return {eid: {attr: self.out for attr in attrs} for eid, attrs in outputs.items()}
