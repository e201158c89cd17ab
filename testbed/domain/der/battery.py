"""A bank of batteries as arrays: state of charge, power and energy limits, round-trip losses (pure).

Powers are at the AC terminals in generator convention: ``p_kw > 0`` discharges into the home, ``< 0``
charges. The round-trip efficiency is split equally: charging stores ``p * sqrt(eta)`` and discharging
delivers ``e_drawn * sqrt(eta)``, so a charge followed by a full discharge returns ``eta`` of the energy.
"""

from __future__ import annotations

import numpy as np


class BatteryBank:
    """``n`` batteries; entries with zero capacity are absent and always give 0 kW."""

    def __init__(
        self,
        capacity_kwh: np.ndarray,
        power_kw: np.ndarray,
        round_trip_efficiency: np.ndarray,
        initial_soc: np.ndarray,
        soc_min: np.ndarray,
        soc_max: np.ndarray,
    ) -> None:
        self.capacity_kwh = np.asarray(capacity_kwh, dtype=float)
        self.power_kw = np.asarray(power_kw, dtype=float)
        eta = np.asarray(round_trip_efficiency, dtype=float)
        self.eta_charge = np.sqrt(eta)
        self.eta_discharge = np.sqrt(eta)
        self.e_min_kwh = np.asarray(soc_min, dtype=float) * self.capacity_kwh
        self.e_max_kwh = np.asarray(soc_max, dtype=float) * self.capacity_kwh
        self.e_kwh = np.asarray(initial_soc, dtype=float) * self.capacity_kwh
        self.present = self.capacity_kwh > 0

    @property
    def soc(self) -> np.ndarray:
        """State of charge [0..1]; NaN where there is no battery."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.present, self.e_kwh / np.where(self.present, self.capacity_kwh, 1.0), np.nan)

    def limits_kw(self, dt_h: float) -> tuple[np.ndarray, np.ndarray]:
        """(most charging power as a negative number, most discharging power) for a step of ``dt_h`` hours."""
        room_kwh = np.maximum(self.e_max_kwh - self.e_kwh, 0.0)
        stored_kwh = np.maximum(self.e_kwh - self.e_min_kwh, 0.0)
        charge = np.minimum(self.power_kw, room_kwh / (self.eta_charge * dt_h))
        discharge = np.minimum(self.power_kw, stored_kwh * self.eta_discharge / dt_h)
        return np.where(self.present, -charge, 0.0), np.where(self.present, discharge, 0.0)

    def apply(self, p_kw: np.ndarray, dt_h: float) -> np.ndarray:
        """Run every battery at ``p_kw`` (clipped to its limits) for ``dt_h`` hours; return the power used."""
        lo, hi = self.limits_kw(dt_h)
        p = np.clip(np.asarray(p_kw, dtype=float), lo, hi)
        charged = np.where(p < 0, -p * self.eta_charge * dt_h, 0.0)
        drawn = np.where(p > 0, p / self.eta_discharge * dt_h, 0.0)
        self.e_kwh = np.clip(self.e_kwh + charged - drawn, self.e_min_kwh, self.e_max_kwh)
        return p
