"""Electric vehicles charged at home: without control at full power from arrival until full, or at a
controller's setpoint within the same limits (pure).

Each car is away between ``depart_h`` and ``arrive_h`` every day (an overnight absence when depart_h >
arrive_h) and comes back having used ``trip_kwh``. Energy a trip needs beyond what the car holds is counted
as ``unserved_kwh`` (the car could not have made the trip on its own battery).
"""

from __future__ import annotations

import numpy as np


class EVFleet:
    def __init__(
        self,
        capacity_kwh: np.ndarray,
        charge_kw: np.ndarray,
        charge_efficiency: np.ndarray,
        trip_kwh: np.ndarray,
        depart_h: np.ndarray,
        arrive_h: np.ndarray,
        initial_soc: np.ndarray,
    ) -> None:
        self.capacity_kwh = np.asarray(capacity_kwh, dtype=float)
        self.charge_kw = np.asarray(charge_kw, dtype=float)
        self.eta = np.asarray(charge_efficiency, dtype=float)
        self.trip_kwh = np.asarray(trip_kwh, dtype=float)
        self.depart_h = np.asarray(depart_h, dtype=float)
        self.arrive_h = np.asarray(arrive_h, dtype=float)
        self.e_kwh = np.asarray(initial_soc, dtype=float) * self.capacity_kwh
        self.present = self.capacity_kwh > 0
        self.unserved_kwh = np.zeros_like(self.capacity_kwh)
        self._was_home: np.ndarray | None = None

    def at_home(self, hour: float) -> np.ndarray:
        day_trip = self.depart_h < self.arrive_h
        away = np.where(
            day_trip,
            (hour >= self.depart_h) & (hour < self.arrive_h),
            (hour >= self.depart_h) | (hour < self.arrive_h),
        )
        return self.present & ~away

    @property
    def soc(self) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.present, self.e_kwh / np.where(self.present, self.capacity_kwh, 1.0), np.nan)

    def step(self, hour: float, dt_h: float, p_set_kw: np.ndarray | None = None) -> np.ndarray:
        """Advance one step starting at ``hour`` of the day; return the charging power drawn [kW, >= 0].

        ``p_set_kw`` (NaN where none): a charging power set by a controller, held within what the car can take
        (at home, its charger's power, the room left); elsewhere the car charges at full power until full."""
        home = self.at_home(hour)
        if self._was_home is not None:
            arrived = home & ~self._was_home
            need = np.where(arrived, self.trip_kwh, 0.0)
            self.unserved_kwh += np.maximum(need - self.e_kwh, 0.0)
            self.e_kwh = np.maximum(self.e_kwh - need, 0.0)
        self._was_home = home
        room_kwh = np.maximum(self.capacity_kwh - self.e_kwh, 0.0)
        p = np.where(home, np.minimum(self.charge_kw, room_kwh / (self.eta * dt_h)), 0.0)
        if p_set_kw is not None:
            given = ~np.isnan(p_set_kw)
            p = np.where(given, np.clip(np.nan_to_num(p_set_kw), 0.0, p), p)
        self.e_kwh = np.minimum(self.e_kwh + p * self.eta * dt_h, self.capacity_kwh)
        return p
