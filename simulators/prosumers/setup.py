"""Turning a scenario's prosumers and SimBench profiles into the fleet's arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from simulators.prosumers.fleet import FleetSetup
from simulators.prosumers.profiles import ProfileSet, per_step, step_slots
from testbed.domain.scenario.models import Prosumer, TimeWindow

_BATTERY_FIELDS = ("capacity_kwh", "power_kw", "round_trip_efficiency", "initial_soc", "soc_min", "soc_max")
_EV_FIELDS = ("capacity_kwh", "charge_kw", "charge_efficiency", "trip_kwh", "depart_h", "arrive_h", "initial_soc")
# Values for absent devices: zero capacity marks them absent; the others only need to be harmless.
_ABSENT = {"round_trip_efficiency": 1.0, "charge_efficiency": 1.0, "soc_max": 1.0, "arrive_h": 1.0}


def _device_arrays(devices: Sequence, fields: Sequence[str]) -> dict[str, np.ndarray]:
    return {
        f: np.array([getattr(d, f) if d is not None else _ABSENT.get(f, 0.0) for d in devices], dtype=float)
        for f in fields
    }


def build_fleet_setup(prosumers: Sequence[Prosumer], profiles: ProfileSet, window: TimeWindow) -> FleetSetup:
    """Arrays for :class:`ProsumerFleet`; references must have been checked (see ``reference_problems``)."""
    slots = step_slots(window.start, window.n_steps, window.resolution_s)
    grid_loads = {g.name: g for g in profiles.grid_loads}

    load_names: list[str] = []
    load_index, p_scale, q_scale = [], [], []
    for p in prosumers:
        if p.load.grid_load is not None:
            g = grid_loads[p.load.grid_load]
            name, p_kw, q_kvar = g.profile, g.p_kw, g.q_kvar
        else:
            name = p.load.profile
            # Scale so that a year of the profile is annual_kwh; the reactive rating follows the power factor.
            p_kw = p.load.annual_kwh / profiles.annual_energy_per_unit_h(name)
            q_kvar = p_kw * float(np.tan(np.arccos(p.load.power_factor)))
        if name not in load_names:
            load_names.append(name)
        load_index.append(load_names.index(name))
        p_scale.append(p_kw)
        q_scale.append(q_kvar)

    pv_names = sorted({p.pv.profile for p in prosumers if p.pv is not None}) or ["none"]
    pv_cols = [
        per_step(profiles.pv[n], slots) if n in profiles.pv else np.zeros(len(slots)) for n in pv_names
    ]
    return FleetSetup(
        ids=tuple(p.id for p in prosumers),
        buses=tuple(p.bus for p in prosumers),
        start=window.start,
        resolution_s=window.resolution_s,
        load_p_profiles=np.column_stack([per_step(profiles.load_p[n], slots) for n in load_names]),
        load_q_profiles=np.column_stack([per_step(profiles.load_q[n], slots) for n in load_names]),
        load_index=np.array(load_index, dtype=np.int64),
        load_p_scale_kw=np.array(p_scale, dtype=float),
        load_q_scale_kvar=np.array(q_scale, dtype=float),
        pv_profiles=np.column_stack(pv_cols),
        pv_index=np.array([pv_names.index(p.pv.profile) if p.pv else 0 for p in prosumers], dtype=np.int64),
        pv_kwp=np.array([p.pv.kwp if p.pv else 0.0 for p in prosumers], dtype=float),
        battery=_device_arrays([p.battery for p in prosumers], _BATTERY_FIELDS),
        ev=_device_arrays([p.ev for p in prosumers], _EV_FIELDS),
    )
