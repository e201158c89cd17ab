"""The homes of a comparison as arrays (pure): what no strategy changes (load and PV over the day) and what
every strategy may steer (batteries, EV charging), with the uncontrolled EV charging as the service level
every schedule must match.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from testbed.domain.der.ev import EVFleet

BATTERY_FIELDS = ("capacity_kwh", "power_kw", "round_trip_efficiency", "initial_soc", "soc_min", "soc_max")


@dataclass(frozen=True)
class Homes:
    """``n`` homes over ``T`` steps of ``dt_h`` hours.

    - ``net_kw`` (T, n): PV minus load [kW], generator convention, before battery and EV;
    - ``bus`` (n,): position of each home's bus in the network's bus order (``n_bus`` buses);
    - ``battery``: :data:`BATTERY_FIELDS` as (n,) arrays, capacity 0 where a home has none;
    - ``ev_capacity_kwh``, ``ev_charge_kw``, ``ev_efficiency``, ``ev_initial_kwh`` (n,), capacity 0 where none;
    - ``ev_home`` (T, n): the car is at home during the step; ``ev_trip_kwh`` (T, n): energy the trip took,
      taken from the car at the step it arrives; ``ev_ref_kw`` (T, n): charging without control (full power
      from arrival until full), the service every schedule must give: by each departure and by the end of
      the day the car holds at least what uncontrolled charging would have put in it.
    """

    dt_h: float
    net_kw: np.ndarray
    bus: np.ndarray
    n_bus: int
    battery: dict[str, np.ndarray]
    ev_capacity_kwh: np.ndarray
    ev_charge_kw: np.ndarray
    ev_efficiency: np.ndarray
    ev_initial_kwh: np.ndarray
    ev_home: np.ndarray
    ev_trip_kwh: np.ndarray
    ev_ref_kw: np.ndarray

    @property
    def n_steps(self) -> int:
        return self.net_kw.shape[0]

    @property
    def n(self) -> int:
        return self.net_kw.shape[1]

    @property
    def has_battery(self) -> np.ndarray:
        return self.battery["capacity_kwh"] > 0

    @property
    def has_ev(self) -> np.ndarray:
        return self.ev_capacity_kwh > 0

    def ev_reference_kwh(self) -> np.ndarray:
        """(T+1, n) energy in each car at the start of each step (and at the end) under uncontrolled charging."""
        e = np.empty((self.n_steps + 1, self.n))
        e[0] = self.ev_initial_kwh
        for t in range(self.n_steps):
            e[t + 1] = e[t] - self.ev_trip_kwh[t] + self.ev_efficiency * self.ev_ref_kw[t] * self.dt_h
        return e


def ev_day(ev: dict[str, np.ndarray], start: datetime, n_steps: int, resolution_s: int) -> dict[str, np.ndarray]:
    """Presence, trips taken and uncontrolled charging of the cars ``ev`` (:class:`EVFleet` keyword arrays),
    by running the one EV model without control: ``{"home", "trip_kwh", "ref_kw"}``, each (T, n).

    A trip's energy is what the car actually lost on arrival (the model counts what it lacked as unserved)."""
    fleet = EVFleet(**ev)
    dt_h = resolution_s / 3600.0
    n = len(fleet.capacity_kwh)
    home = np.zeros((n_steps, n), dtype=bool)
    trip = np.zeros((n_steps, n))
    ref = np.zeros((n_steps, n))
    for k in range(n_steps):
        t = start + timedelta(seconds=k * resolution_s)
        hour = t.hour + t.minute / 60.0 + t.second / 3600.0
        home[k] = fleet.at_home(hour)
        before = fleet.e_kwh.copy()
        ref[k] = fleet.step(hour, dt_h)
        trip[k] = before + ref[k] * fleet.eta * dt_h - fleet.e_kwh
    trip[np.abs(trip) < 1e-12] = 0.0
    return {"home": home, "trip_kwh": trip, "ref_kw": ref}
