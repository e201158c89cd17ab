"""The price basis of a comparison and the time-of-use signal (pure).

Every strategy's energy is valued at the same **price basis**, the scenario's retail tariff (import and
export price per kWh, per step), so that the comparison measures coordination, not tariff design. The
``tou`` strategy's homes optimise against a **time-of-use signal**: three bands of the import price, by
default off-peak 00:00-07:00 at 0.6x, peak 17:00-21:00 at 1.5x and shoulder otherwise at 1.0x the retail
import price; the export price stays the retail one. What the homes would pay under that tariff is reported
beside their bill at the basis (``tou_tariff_cost``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from testbed.domain.prosumer import Tariff


@dataclass(frozen=True)
class Prices:
    """Per-step prices [currency/kWh], shape (T,): what a kWh imported costs and a kWh exported earns."""

    import_per_kwh: np.ndarray
    export_per_kwh: np.ndarray

    @classmethod
    def flat(cls, tariff: Tariff, n_steps: int) -> Prices:
        return cls(np.full(n_steps, tariff.import_price_per_kwh), np.full(n_steps, tariff.export_price_per_kwh))


@dataclass(frozen=True)
class TouBand:
    """Import price ``factor`` times the retail import price from ``start_h`` (inclusive) to ``end_h``."""

    name: str
    start_h: float
    end_h: float
    factor: float


DEFAULT_BANDS = (
    TouBand("off-peak", 0.0, 7.0, 0.6),
    TouBand("shoulder", 7.0, 17.0, 1.0),
    TouBand("peak", 17.0, 21.0, 1.5),
    TouBand("shoulder", 21.0, 24.0, 1.0),
)


def tou_prices(
    tariff: Tariff, start: datetime, n_steps: int, resolution_s: int, bands: tuple[TouBand, ...] = DEFAULT_BANDS
) -> Prices:
    """The time-of-use signal at each step (by the hour of day at the step's start). The export price stays
    the retail one, but never above the import price (no arbitrage)."""
    imp = np.empty(n_steps)
    for k in range(n_steps):
        t = start + timedelta(seconds=k * resolution_s)
        hour = t.hour + t.minute / 60 + t.second / 3600
        band = next(b for b in bands if b.start_h <= hour < b.end_h)
        imp[k] = tariff.import_price_per_kwh * band.factor
    exp = np.minimum(np.full(n_steps, tariff.export_price_per_kwh), imp)
    return Prices(imp, exp)
