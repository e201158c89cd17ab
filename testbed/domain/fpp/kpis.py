"""The federated power plant's figures for ``kpis.json`` (pure): fairness of the members' gains.

Gini coefficient of gains ``g_1..g_n`` (Gini 1912; the mean-absolute-difference form):

    G = sum_i sum_j |g_i - g_j| / (2 * n^2 * mean(g))

0 when everyone gains the same; it approaches 1 when one member gains everything. It is defined for a
positive mean gain only (NaN otherwise): with a member penalised below zero it can exceed 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def gini(values: Sequence[float]) -> float:
    """Gini coefficient of ``values`` (module docstring); NaN for no values or a mean <= 0."""
    x = np.asarray(values, dtype=float)
    if x.size == 0 or not x.mean() > 0:
        return math.nan
    return float(np.abs(x[:, None] - x[None, :]).sum() / (2.0 * x.size * x.size * x.mean()))
