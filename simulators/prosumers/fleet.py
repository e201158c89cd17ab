"""All prosumers of a run as arrays: load, PV, battery, EV and each home's energy management (pure).

Every prosumer's net power ``p_kw`` is in generator convention (> 0: the home exports)::

    p_kw = pv_kw - load_kw - ev_kw + battery_kw

Each home's controller is self-consumption: the battery absorbs the PV surplus and covers the deficit,
within its limits. A setpoint given for a prosumer's battery (by the market or a lab operator) replaces
its controller for that step, still within the battery's limits; NaN means "no setpoint".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from testbed.domain.der.battery import BatteryBank
from testbed.domain.der.ev import EVFleet


@dataclass(frozen=True)
class FleetSetup:
    """What the fleet needs, one entry per prosumer, profiles as (n_steps, n_profiles) matrices."""

    ids: tuple[str, ...]
    buses: tuple[str, ...]
    start: datetime
    resolution_s: int
    load_p_profiles: np.ndarray  # per unit, (n_steps, n_load_profiles)
    load_q_profiles: np.ndarray
    load_index: np.ndarray  # (n,) column of each prosumer's load profile
    load_p_scale_kw: np.ndarray  # (n,) the profile's per-unit values times this give kW
    load_q_scale_kvar: np.ndarray
    pv_profiles: np.ndarray  # per unit of peak power, (n_steps, n_pv_profiles)
    pv_index: np.ndarray
    pv_kwp: np.ndarray  # 0 where a prosumer has no PV
    battery: dict[str, np.ndarray]  # BatteryBank keyword arguments; capacity 0 where none
    ev: dict[str, np.ndarray]  # EVFleet keyword arguments; capacity 0 where none

    @property
    def n_steps(self) -> int:
        return self.load_p_profiles.shape[0]


@dataclass(frozen=True)
class FleetState:
    """One step's result for every prosumer [kW, kvar, 0..1]."""

    load_kw: np.ndarray
    load_kvar: np.ndarray
    pv_kw: np.ndarray
    ev_kw: np.ndarray
    battery_kw: np.ndarray
    p_kw: np.ndarray
    q_kvar: np.ndarray
    soc: np.ndarray
    ev_soc: np.ndarray


def self_consumption_kw(surplus_kw: np.ndarray, lo_kw: np.ndarray, hi_kw: np.ndarray) -> np.ndarray:
    """Battery power that cancels the home's surplus (> 0) or deficit (< 0), within [lo_kw, hi_kw]."""
    return np.clip(-surplus_kw, lo_kw, hi_kw)


class ProsumerFleet:
    def __init__(self, setup: FleetSetup) -> None:
        self.setup = setup
        self.batteries = BatteryBank(**setup.battery)
        self.evs = EVFleet(**setup.ev)
        self.dt_h = setup.resolution_s / 3600.0
        self._bus_names, self._bus_of = np.unique(np.asarray(setup.buses, dtype=object), return_inverse=True)

    @property
    def n(self) -> int:
        return len(self.setup.ids)

    def step(
        self,
        k: int,
        battery_setpoint_kw: np.ndarray | None = None,
        net_target_kw: np.ndarray | None = None,
        ev_setpoint_kw: np.ndarray | None = None,
    ) -> FleetState:
        """Advance step ``k`` (0-based).

        ``net_target_kw`` (NaN where none): the home's battery aims at this net power (generator convention),
        from this step's load, PV and EV, as far as its power and state of charge allow; this is how a home
        follows a traded quantity. ``battery_setpoint_kw`` (NaN where none) sets the battery power itself and
        wins over a target. Elsewhere the home's self-consumption controller decides. ``ev_setpoint_kw`` (NaN
        where none) sets a car's charging power within what it can take; elsewhere it charges uncontrolled.
        """
        s = self.setup
        if not 0 <= k < s.n_steps:
            raise IndexError(f"step {k} is outside the run (0..{s.n_steps - 1})")
        load_kw = s.load_p_profiles[k, s.load_index] * s.load_p_scale_kw
        load_kvar = s.load_q_profiles[k, s.load_index] * s.load_q_scale_kvar
        pv_kw = s.pv_profiles[k, s.pv_index] * s.pv_kwp
        t = s.start + timedelta(seconds=k * s.resolution_s)
        hour = t.hour + t.minute / 60.0 + t.second / 3600.0
        ev_kw = self.evs.step(hour, self.dt_h, ev_setpoint_kw)
        lo, hi = self.batteries.limits_kw(self.dt_h)
        wanted = self_consumption_kw(pv_kw - load_kw - ev_kw, lo, hi)
        if net_target_kw is not None:
            aimed = ~np.isnan(net_target_kw)
            wanted = np.where(aimed, net_target_kw - (pv_kw - load_kw - ev_kw), wanted)
        if battery_setpoint_kw is not None:
            given = ~np.isnan(battery_setpoint_kw)
            wanted = np.where(given, battery_setpoint_kw, wanted)
        battery_kw = self.batteries.apply(wanted, self.dt_h)
        p_kw = pv_kw - load_kw - ev_kw + battery_kw
        return FleetState(
            load_kw=load_kw,
            load_kvar=load_kvar,
            pv_kw=pv_kw,
            ev_kw=ev_kw,
            battery_kw=battery_kw,
            p_kw=p_kw,
            q_kvar=-load_kvar,
            soc=self.batteries.soc,
            ev_soc=self.evs.soc,
        )

    def bus_positions(self, bus_ids: Sequence[str]) -> np.ndarray:
        """Each prosumer's bus as a position in ``bus_ids`` (a grid's bus order), for :func:`numpy.bincount`."""
        pos = {b: i for i, b in enumerate(bus_ids)}
        unknown = sorted(set(self._bus_names.tolist()) - pos.keys())
        if unknown:
            raise ValueError(f"prosumers sit on buses the grid does not have: {unknown[:10]}")
        return np.array([pos[b] for b in self._bus_names.tolist()], dtype=np.int64)[self._bus_of]

    def by_bus(self, values: np.ndarray) -> dict[str, float]:
        """Sum per-prosumer values per bus: {bus_id: total}."""
        sums = np.bincount(self._bus_of, weights=values, minlength=len(self._bus_names))
        return dict(zip(self._bus_names.tolist(), sums.tolist(), strict=True))
