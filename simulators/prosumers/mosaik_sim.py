"""mosaik adapter for the prosumer fleet: one ``Fleet`` entity holding every prosumer as arrays.

Inputs (optional, ``{prosumer_id: kW}``): ``p_net_target_kw``, a net power (generator convention) the home's
battery aims at with this step's load and PV, within its limits (how a home follows a trade),
``p_service_target_kw``, the same for a grid-service award (it wins over a trade's target), and
``battery_p_set_kw``, the battery power itself; each replaces the home's self-consumption controller for that
step, and a battery setpoint wins over a target; ``ev_p_set_kw``, a car's charging power (within what it can
take), replaces uncontrolled charging for that step.
Inputs from hardware in the loop (optional, ``{prosumer_id: value}``): ``battery_kw_measured``,
``pv_kw_measured``, ``soc_measured`` replace the model's battery power, PV power and state of charge of those
prosumers in every output (the device takes the model's place); the model keeps running beside it and its own
values stay visible as ``battery_model_kw`` / ``pv_model_kw`` (the setpoint for, and stand-in of, the device).
Outputs: ``bus_p_kw`` / ``bus_q_kvar`` (net injection per bus as arrays in the order of the ``grid_bus_ids``
given to ``init``, what the grid consumes), ``p_kw_by_bus`` / ``q_kvar_by_bus`` (the same as ``{bus_id: value}``
over the fleet's own buses) and per-prosumer
arrays in the order of the fleet's ids: ``p_kw``, ``q_kvar``, ``load_kw``, ``pv_kw``, ``ev_kw``,
``battery_kw``, ``soc``, ``ev_soc``. Step ``k`` of mosaik time is step ``k`` of the scenario window.
"""

from __future__ import annotations

import dataclasses

import mosaik_api_v3
import numpy as np

from simulators.prosumers.fleet import FleetSetup, FleetState, ProsumerFleet

ARRAYS = ("p_kw", "q_kvar", "load_kw", "pv_kw", "ev_kw", "battery_kw", "soc", "ev_soc")
MEASURED = {"battery_kw_measured": "battery_kw", "pv_kw_measured": "pv_kw", "soc_measured": "soc"}
META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Fleet": {
            "public": True,
            "params": [],
            "attrs": [
                "battery_p_set_kw",
                "p_net_target_kw",
                "p_service_target_kw",
                "ev_p_set_kw",
                "bus_p_kw",
                "bus_q_kvar",
                "p_kw_by_bus",
                "q_kvar_by_bus",
                *ARRAYS,
                *MEASURED,
                "battery_model_kw",
                "pv_model_kw",
            ],
        },
    },
    "extra_methods": ["prosumer_ids"],
}


def merge_targets(trade: np.ndarray | None, service: np.ndarray | None) -> np.ndarray | None:
    """Net-power targets per prosumer (NaN: none): a grid-service award's target wins over a trade's."""
    if service is None:
        return trade
    return service if trade is None else np.where(np.isnan(service), trade, service)


class FleetSimulator(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.fleet: ProsumerFleet | None = None
        self.state: FleetState | None = None
        self.eid = "fleet"

    def init(
        self,
        sid,
        time_resolution=1.0,
        setup: FleetSetup | None = None,
        step_size: int = 1,
        grid_bus_ids: tuple[str, ...] | list[str] | None = None,
    ):
        if setup is None:
            raise ValueError("FleetSimulator needs a FleetSetup (built by testbed.orchestration.runner)")
        self.fleet = ProsumerFleet(setup)
        self._pos = {pid: i for i, pid in enumerate(setup.ids)}
        self._grid_buses = None
        if grid_bus_ids is not None:
            self._grid_buses = (self.fleet.bus_positions(grid_bus_ids), len(grid_bus_ids))
        self.step_size = step_size
        return self.meta

    def create(self, num, model, **model_params):
        if num != 1:
            raise ValueError("a FleetSimulator holds exactly one Fleet entity")
        return [{"eid": self.eid, "type": model}]

    def prosumer_ids(self) -> list[str]:
        return list(self.fleet.setup.ids)

    def step(self, time, inputs, max_advance):
        attrs = inputs.get(self.eid, {})
        setpoints = self._per_prosumer(attrs.get("battery_p_set_kw"))
        targets = self._per_prosumer(attrs.get("p_net_target_kw"))
        targets = merge_targets(targets, self._per_prosumer(attrs.get("p_service_target_kw")))
        ev_setpoints = self._per_prosumer(attrs.get("ev_p_set_kw"))
        self.model_state = self.fleet.step(time, setpoints, targets, ev_setpoints)
        self.state = self._measured(self.model_state, inputs.get(self.eid, {}))
        return time + self.step_size

    def _per_prosumer(self, given: dict | None) -> np.ndarray | None:
        """``{source: {prosumer_id: value}}`` as an array in fleet order, NaN where no source names a prosumer."""
        if not given:
            return None
        out = np.full(self.fleet.n, np.nan)
        for per_prosumer in given.values():
            for pid, value in per_prosumer.items():
                out[self._pos[pid]] = value
        return out

    def _measured(self, state: FleetState, attrs: dict) -> FleetState:
        """``state`` with device measurements in place of the model's values; net power recomputed."""
        replaced = {}
        for attr, field_name in MEASURED.items():
            given = attrs.get(attr)
            if not given:
                continue
            values = getattr(state, field_name).copy()
            for per_prosumer in given.values():
                for pid, value in per_prosumer.items():
                    values[self._pos[pid]] = value
            replaced[field_name] = values
        if not replaced:
            return state
        s = dataclasses.replace(state, **replaced)
        return dataclasses.replace(s, p_kw=s.pv_kw - s.load_kw - s.ev_kw + s.battery_kw)

    def get_data(self, outputs):
        s = self.state
        data = {}
        for eid, attrs in outputs.items():
            out = {}
            for attr in attrs:
                if attr in ("bus_p_kw", "bus_q_kvar"):
                    if self._grid_buses is None:
                        raise ValueError(f"{attr} needs the grid's bus order: pass grid_bus_ids to the simulator")
                    where, n_bus = self._grid_buses
                    values = s.p_kw if attr == "bus_p_kw" else s.q_kvar
                    out[attr] = np.bincount(where, weights=values, minlength=n_bus)
                elif attr == "p_kw_by_bus":
                    out[attr] = self.fleet.by_bus(s.p_kw)
                elif attr == "q_kvar_by_bus":
                    out[attr] = self.fleet.by_bus(s.q_kvar)
                elif attr == "battery_model_kw":
                    out[attr] = self.model_state.battery_kw
                elif attr == "pv_model_kw":
                    out[attr] = self.model_state.pv_kw
                else:
                    out[attr] = getattr(s, {"battery_p_set_kw": "battery_kw"}.get(attr, attr))
            data[eid] = out
        return data
