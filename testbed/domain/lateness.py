"""Lateness statistics of a wall-clock loop, from recorded deadlines and actual times. Pure.

A tick scheduled at ``deadline_s`` that starts at ``actual_s`` is ``actual_s - deadline_s`` late (never less
than 0); it misses its deadline when it is at least one period late, i.e. when the next tick was due before
it even started.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatenessStats:
    """``p50_s``, ``p99_s``, ``max_s`` lateness [s]; ``missed`` ticks at least one period late; ``ticks``."""

    ticks: int
    p50_s: float
    p99_s: float
    max_s: float
    missed: int
    period_s: float

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def lateness_stats(deadlines_s: Sequence[float], actual_s: Sequence[float], period_s: float) -> LatenessStats:
    """Percentiles (linear interpolation, numpy's default) of the lateness of each tick."""
    if len(deadlines_s) != len(actual_s):
        raise ValueError(f"{len(deadlines_s)} deadlines but {len(actual_s)} actual times")
    return stats_from_lateness(np.asarray(actual_s, float) - np.asarray(deadlines_s, float), period_s)


def stats_from_lateness(lateness_s: Sequence[float], period_s: float) -> LatenessStats:
    """The same statistics from lateness values [s] (negative values count as 0: on time)."""
    if not period_s > 0:
        raise ValueError(f"period_s {period_s}: must be > 0")
    if len(lateness_s) == 0:
        return LatenessStats(0, 0.0, 0.0, 0.0, 0, period_s)
    late = np.maximum(np.asarray(lateness_s, float), 0.0)
    return LatenessStats(
        ticks=int(late.size),
        p50_s=float(np.percentile(late, 50)),
        p99_s=float(np.percentile(late, 99)),
        max_s=float(late.max()),
        missed=int(np.count_nonzero(late >= period_s)),
        period_s=float(period_s),
    )
