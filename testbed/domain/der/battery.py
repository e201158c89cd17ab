"""The battery model, one for the whole testbed (pure): power and energy limits, losses, state-of-charge window.

The fleet simulates banks of them (:class:`BatteryBank`), the home's bidding policy asks one what it can hold
over a market interval (:meth:`BatterySpec.limits_kw`), and the HIL adapter falls back on one when a device
stops answering. All three use the same formulas, in :func:`power_limits_kw` and :func:`stored_after`.

Powers are at the AC terminals in generator convention: ``p_kw > 0`` discharges into the home, ``< 0``
charges. The round-trip efficiency is split equally: charging stores ``p * sqrt(eta)`` and discharging
delivers ``e_drawn * sqrt(eta)``, so a charge followed by a full discharge returns ``eta`` of the energy.
The state of charge stays within ``[soc_min, soc_max]`` of ``capacity_kwh``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def power_limits_kw(capacity_kwh, power_kw, round_trip_efficiency, soc_min, soc_max, e_kwh, dt_h):
    """``(most charging power as a number <= 0, most discharging power >= 0)`` [kW] that a battery holding
    ``e_kwh`` can keep up for ``dt_h`` hours. Works on floats and on NumPy arrays alike."""
    eta = np.sqrt(round_trip_efficiency)
    room_kwh = np.maximum(np.asarray(soc_max) * capacity_kwh - e_kwh, 0.0)
    stored_kwh = np.maximum(e_kwh - np.asarray(soc_min) * capacity_kwh, 0.0)
    charge = np.minimum(power_kw, room_kwh / (eta * dt_h))
    discharge = np.minimum(power_kw, stored_kwh * eta / dt_h)
    return -charge, discharge


def stored_after(capacity_kwh, round_trip_efficiency, soc_min, soc_max, e_kwh, p_kw, dt_h):
    """Stored energy [kWh] after ``dt_h`` hours at terminal power ``p_kw`` (already within the limits)."""
    eta = np.sqrt(round_trip_efficiency)
    charged = np.where(p_kw < 0, -p_kw * eta * dt_h, 0.0)
    drawn = np.where(p_kw > 0, p_kw / eta * dt_h, 0.0)
    return np.clip(e_kwh + charged - drawn, np.asarray(soc_min) * capacity_kwh, np.asarray(soc_max) * capacity_kwh)


@dataclass(frozen=True)
class BatterySpec:
    """One battery's nameplate and operating window.

    ``capacity_kwh`` usable energy capacity [kWh]; ``power_kw`` charge and discharge power limit at the AC
    terminals [kW]; ``round_trip_efficiency`` AC-to-AC [0..1]; ``soc_min``/``soc_max`` the allowed state of
    charge window [0..1].
    """

    capacity_kwh: float
    power_kw: float
    round_trip_efficiency: float = 0.9
    soc_min: float = 0.0
    soc_max: float = 1.0

    def __post_init__(self) -> None:
        # Built from validated scenarios and messages; a bad value here is a bug in the caller.
        if not (self.capacity_kwh > 0 and self.power_kw > 0 and 0 < self.round_trip_efficiency <= 1):
            raise ValueError(f"battery needs capacity and power > 0 and efficiency in (0, 1]: {self}")
        if not 0 <= self.soc_min < self.soc_max <= 1:
            raise ValueError(f"battery needs 0 <= soc_min < soc_max <= 1: {self}")

    def limits_kw(self, soc: float, dt_h: float) -> tuple[float, float]:
        """``(most charging power <= 0, most discharging power >= 0)`` [kW] it can hold for ``dt_h`` hours
        from state of charge ``soc``."""
        lo, hi = power_limits_kw(
            self.capacity_kwh, self.power_kw, self.round_trip_efficiency, self.soc_min, self.soc_max,
            soc * self.capacity_kwh, dt_h,
        )
        return float(lo), float(hi)

    def step(self, soc: float, p_kw: float, dt_h: float) -> tuple[float, float]:
        """Run at ``p_kw`` (clipped to the limits) for ``dt_h`` hours from ``soc``: ``(power used, new soc)``."""
        lo, hi = self.limits_kw(soc, dt_h)
        p = min(max(p_kw, lo), hi)
        e = stored_after(
            self.capacity_kwh, self.round_trip_efficiency, self.soc_min, self.soc_max,
            soc * self.capacity_kwh, p, dt_h,
        )
        return p, float(e) / self.capacity_kwh


class BatteryBank:
    """``n`` batteries as arrays; entries with zero capacity are absent and always give 0 kW."""

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
        self.round_trip_efficiency = np.asarray(round_trip_efficiency, dtype=float)
        self.soc_min = np.asarray(soc_min, dtype=float)
        self.soc_max = np.asarray(soc_max, dtype=float)
        self.e_kwh = np.asarray(initial_soc, dtype=float) * self.capacity_kwh
        self.present = self.capacity_kwh > 0

    @classmethod
    def from_specs(cls, specs: Sequence[BatterySpec | None], initial_soc: Sequence[float]) -> BatteryBank:
        """A bank of these batteries (``None``: no battery at that position)."""

        def column(name: str, absent: float) -> np.ndarray:
            return np.array([getattr(s, name) if s is not None else absent for s in specs], dtype=float)

        return cls(
            capacity_kwh=column("capacity_kwh", 0.0),
            power_kw=column("power_kw", 0.0),
            round_trip_efficiency=column("round_trip_efficiency", 1.0),
            initial_soc=np.where([s is not None for s in specs], np.asarray(initial_soc, dtype=float), 0.0),
            soc_min=column("soc_min", 0.0),
            soc_max=column("soc_max", 1.0),
        )

    @property
    def soc(self) -> np.ndarray:
        """State of charge [0..1]; NaN where there is no battery."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.present, self.e_kwh / np.where(self.present, self.capacity_kwh, 1.0), np.nan)

    def limits_kw(self, dt_h: float) -> tuple[np.ndarray, np.ndarray]:
        """(most charging power as a negative number, most discharging power) for a step of ``dt_h`` hours."""
        lo, hi = power_limits_kw(
            self.capacity_kwh, self.power_kw, self.round_trip_efficiency, self.soc_min, self.soc_max,
            self.e_kwh, dt_h,
        )
        return np.where(self.present, lo, 0.0), np.where(self.present, hi, 0.0)

    def apply(self, p_kw: np.ndarray, dt_h: float) -> np.ndarray:
        """Run every battery at ``p_kw`` (clipped to its limits) for ``dt_h`` hours; return the power used."""
        lo, hi = self.limits_kw(dt_h)
        p = np.clip(np.asarray(p_kw, dtype=float), lo, hi)
        self.e_kwh = stored_after(
            self.capacity_kwh, self.round_trip_efficiency, self.soc_min, self.soc_max, self.e_kwh, p, dt_h
        )
        return p

