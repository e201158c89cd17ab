"""Linearised network constraints on agents' injections, from the grid engine's sensitivities.

Bus injection ``inj = M @ p`` sums the agents at each bus. A monitored line's flow is
``base_flow_kw + ptdf_row @ inj`` and must stay within ``[-limit_kw, limit_kw]``; a monitored bus voltage is
``v0_pu + dvdp_row @ inj`` within ``[v_min_pu, v_max_pu]``. Both are rows of one system
``lower <= A @ p <= upper`` with ``A`` of shape (rows, agents); the platform re-checks the dispatch with a
full power flow afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.domain.market.case import MarketCase


@dataclass(frozen=True)
class NetworkRows:
    """``lower <= A @ p_kw <= upper``; ``names`` says which limit each row is."""

    A: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    names: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return len(self.names) == 0

    def violations(self, p_kw: np.ndarray, tol: float = 1e-6) -> list[str]:
        """Rows the injection ``p_kw`` violates by more than ``tol`` (in the row's unit)."""
        value = self.A @ p_kw
        bad = (value < self.lower - tol) | (value > self.upper + tol)
        return [f"{self.names[k]} = {value[k]:.6g} outside [{self.lower[k]:.6g}, {self.upper[k]:.6g}]"
                for k in np.flatnonzero(bad)]


def network_rows(case: MarketCase) -> NetworkRows:
    net = case.network
    n = len(case.agents)
    if net is None or not net.has_limits:
        return NetworkRows(np.zeros((0, n)), np.zeros(0), np.zeros(0), ())
    buses = [a.bus for a in case.agents]
    rows, lower, upper, names = [], [], [], []
    for line in net.lines:
        rows.append([line.ptdf.get(b, 0.0) for b in buses])
        lower.append(-line.limit_kw - line.base_flow_kw)
        upper.append(line.limit_kw - line.base_flow_kw)
        names.append(f"line:{line.id} flow_kw")
    for v in net.voltages:
        rows.append([v.dv_dp_pu_per_kw.get(b, 0.0) for b in buses])
        lower.append(v.v_min_pu - v.v0_pu)
        upper.append(v.v_max_pu - v.v0_pu)
        names.append(f"vm:{v.bus} change_pu")
    return NetworkRows(np.asarray(rows, float), np.asarray(lower, float), np.asarray(upper, float),
                       tuple(names))
