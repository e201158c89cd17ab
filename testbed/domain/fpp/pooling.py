"""Pooling forecast uncertainty: how much capacity a group of members can promise firmly (pure).

This is the paper's *uncertainty reduction* value stream (Morstyn et al., Nature Energy 3, 94-101, 2018:
small loads and renewable sources are hard to predict one by one and much less variable in aggregate).

A member's capacity over a contract window is uncertain: its forecast is a mean ``mean_kw`` with a forecast
error of standard deviation ``sd_kw`` (Gaussian). A capacity is *firm at confidence c* when it is available
with probability c, i.e. it is the (1 - c) quantile of the distribution:

    firm_kw = sum(mean_kw) - z_c * sqrt(sd_kw' R sd_kw),    z_c = Phi^-1(c)

with ``R`` the correlation matrix of the members' forecast errors. For independent members (R = I) the
pooled standard deviation ``sqrt(sum sd^2)`` is less than ``sum sd``, so the pool firms up more than the
sum of what each member can firm alone; for identical, perfectly correlated members (R = all ones) the two
are equal and pooling adds nothing. :func:`pooling_gain` reports the difference in kW.

A member alone offers nothing firm when ``mean - z * sd < 0``, so the individual firm capacities are
floored at 0 when they are summed (what the members could sell on their own).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()


def z_score(confidence: float) -> float:
    """Standard normal quantile ``Phi^-1(confidence)`` for a confidence in [0.5, 1)."""
    if not (0.5 <= confidence < 1.0):
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")
    return _NORMAL.inv_cdf(confidence)


def _arrays(mean_kw: np.ndarray, sd_kw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = np.asarray(mean_kw, dtype=float).ravel()
    sd = np.asarray(sd_kw, dtype=float).ravel()
    if mean.shape != sd.shape:
        raise ValueError(f"mean_kw has {mean.size} members but sd_kw has {sd.size}")
    if not (np.isfinite(mean).all() and np.isfinite(sd).all()):
        raise ValueError("mean_kw and sd_kw must be finite")
    if (sd < 0).any():
        raise ValueError("sd_kw must be >= 0")
    return mean, sd


def pooled_sd_kw(sd_kw: np.ndarray, correlation: float | np.ndarray | None = None) -> float:
    """Standard deviation of the sum of the members' capacities [kW].

    ``correlation``: None (independent), a number rho in [-1/(n-1), 1] (every pair equally correlated) or
    an n x n correlation matrix (symmetric, unit diagonal, positive semi-definite).
    """
    sd = np.asarray(sd_kw, dtype=float).ravel()
    n = sd.size
    if correlation is None:
        return math.sqrt(float(sd @ sd))
    if np.ndim(correlation) == 0:
        rho = float(correlation)
        if not (-1.0 <= rho <= 1.0):
            raise ValueError(f"correlation must be in [-1, 1], got {rho}")
        s = float(sd.sum())
        var = (1.0 - rho) * float(sd @ sd) + rho * s * s
    else:
        r = np.asarray(correlation, dtype=float)
        if r.shape != (n, n):
            raise ValueError(f"correlation matrix must be {n} x {n}, got {r.shape}")
        if not np.allclose(r, r.T) or not np.allclose(np.diag(r), 1.0):
            raise ValueError("correlation matrix must be symmetric with ones on the diagonal")
        var = float(sd @ r @ sd)
    if var < -1e-9 * max(1.0, float(sd @ sd)):
        raise ValueError("correlation is not positive semi-definite (the pooled variance is negative)")
    return math.sqrt(max(var, 0.0))


def firm_capacity_kw(
    mean_kw: np.ndarray, sd_kw: np.ndarray, confidence: float, correlation: float | np.ndarray | None = None
) -> float:
    """Capacity of the pool available with probability ``confidence`` [kW] (may be negative: none is firm)."""
    mean, sd = _arrays(mean_kw, sd_kw)
    return float(mean.sum()) - z_score(confidence) * pooled_sd_kw(sd, correlation)


def individual_firm_kw(mean_kw: np.ndarray, sd_kw: np.ndarray, confidence: float) -> np.ndarray:
    """What each member can promise firmly on its own [kW], floored at 0."""
    mean, sd = _arrays(mean_kw, sd_kw)
    return np.maximum(mean - z_score(confidence) * sd, 0.0)


def firm_capacity_from_samples(samples_kw: np.ndarray, confidence: float) -> float:
    """Firm capacity from forecast scenarios instead of a Gaussian [kW].

    ``samples_kw`` has one row per member and one column per scenario (equally likely); the result is the
    empirical (1 - confidence) quantile of the column sums (numpy's default linear interpolation).
    """
    s = np.atleast_2d(np.asarray(samples_kw, dtype=float))
    if s.shape[1] < 2:
        raise ValueError("need at least two scenarios")
    z_score(confidence)  # range check
    return float(np.quantile(s.sum(axis=0), 1.0 - confidence))


@dataclass(frozen=True)
class PoolingGain:
    """Firm capacity of the pool against the sum of what each member firms alone (all in kW)."""

    pooled_firm_kw: float
    """firm capacity of the whole pool, floored at 0"""
    sum_individual_firm_kw: float
    """sum over members of max(0, mean - z * sd)"""
    gain_kw: float
    """pooled_firm_kw - sum_individual_firm_kw: the uncertainty-reduction value in kW"""

    @property
    def gain_share(self) -> float:
        """gain_kw relative to sum_individual_firm_kw (NaN when nobody firms anything alone)."""
        return self.gain_kw / self.sum_individual_firm_kw if self.sum_individual_firm_kw > 0 else math.nan


def pooling_gain(
    mean_kw: np.ndarray, sd_kw: np.ndarray, confidence: float, correlation: float | np.ndarray | None = None
) -> PoolingGain:
    """How much more the members firm up together than apart (see the module docstring)."""
    pooled = max(firm_capacity_kw(mean_kw, sd_kw, confidence, correlation), 0.0)
    alone = float(individual_firm_kw(mean_kw, sd_kw, confidence).sum())
    return PoolingGain(pooled_firm_kw=pooled, sum_individual_firm_kw=alone, gain_kw=pooled - alone)
