"""Pool: the central welfare optimum with one price (or nodal prices when the network binds).

    minimise   sum_i (0.5*a_i*p_i**2 + b_i*p_i) + c_imp*g_imp - c_exp*g_exp
    subject to sum_i p_i + g_imp - g_exp = 0,   lo_i <= p_i <= hi_i,   g_imp, g_exp >= 0
               (and lower <= A @ p <= upper for network limits)

Without network limits the problem is separable once the price ``lam`` (the balance dual) is known: by
KKT each agent injects ``p_i(lam) = clip((lam - b_i)/a_i, lo_i, hi_i)`` (a step at ``b_i`` when a_i = 0), and
the grid pins ``lam`` into ``[c_exp, c_imp]``. :func:`clear_pool` finds ``lam`` exactly: a binary search
over the sorted breakpoints of the piecewise-linear supply ``S(lam) = sum_i p_i(lam)`` and a linear solve
inside the bracketing segment (O(N log N)). With network limits it solves the QP with cvxpy/Clarabel and
pays each agent its nodal price (the congestion rent goes to the network operator).
"""

from __future__ import annotations

import logging

import cvxpy as cp
import numpy as np

from testbed.domain.market.case import MarketCase
from testbed.domain.market.network import NetworkRows, network_rows
from testbed.domain.market.result import MarketResult, infeasible
from testbed.domain.market.settle import AgentArrays, agent_arrays, uniform_result

log = logging.getLogger(__name__)

PRICE_TIE_TOL = 1e-12


class _Supply:
    """The agents' aggregate injection as a function of the price, with its set-valued jumps."""

    def __init__(self, arr: AgentArrays) -> None:
        self.arr = arr
        quad = arr.a > 0
        self.quad = quad
        aq = np.where(quad, arr.a, 1.0)
        self.k_lo = np.where(quad, arr.b + arr.a * arr.lo, arr.b)  # price where an agent leaves lo
        self.k_hi = np.where(quad, arr.b + arr.a * arr.hi, arr.b)  # price where it reaches hi
        self.inv_a = np.where(quad, 1.0 / aq, 0.0)
        self.breaks = np.unique(np.concatenate([self.k_lo, self.k_hi]))

    def response(self, lam: float) -> tuple[np.ndarray, np.ndarray]:
        """(lowest, highest) injection of every agent at price ``lam``."""
        arr = self.arr
        p = np.clip((lam - arr.b) * self.inv_a, arr.lo, arr.hi)
        lin = ~self.quad
        lo_v = np.where(lin, np.where(lam > arr.b, arr.hi, arr.lo), p)
        hi_v = np.where(lin, np.where(lam < arr.b, arr.lo, arr.hi), p)
        return lo_v, hi_v

    def total(self, lam: float) -> tuple[float, float, float]:
        """(S_lo, S_hi, slope just right of lam)."""
        lo_v, hi_v = self.response(lam)
        interior = self.quad & (lam >= self.k_lo) & (lam < self.k_hi)
        return float(lo_v.sum()), float(hi_v.sum()), float(self.inv_a[interior].sum())

    def clearing_interval(self) -> tuple[float, float]:
        """[lam_low, lam_high]: the prices at which S can be zero (±inf when unbounded, nan when empty)."""
        arr, B = self.arr, self.breaks
        if arr.hi.sum() < 0 or arr.lo.sum() > 0:
            return np.nan, np.nan
        # lam_low = inf{lam: S_hi(lam) >= 0}
        k = _first(len(B), lambda i: self.total(B[i])[1] >= 0)
        if k == 0:
            lam_low = -np.inf if arr.lo.sum() >= 0 else B[0]
        elif k == len(B):
            lam_low = np.inf  # unreachable: S_hi(+inf) = sum(hi) >= 0 is >= 0 at the last break
        else:
            s_lo, s_hi, slope = self.total(B[k - 1])
            lam_low = B[k] if slope <= 0 else min(B[k - 1] - s_hi / slope, B[k])
        # lam_high = sup{lam: S_lo(lam) <= 0}
        k = _first(len(B), lambda i: self.total(B[i])[0] > 0) - 1
        if k == len(B) - 1:
            lam_high = np.inf if arr.hi.sum() <= 0 else B[-1]
        elif k < 0:
            lam_high = B[0]
        else:
            s_lo, s_hi, slope = self.total(B[k])
            lam_high = B[k] if s_hi > 0 else (B[k + 1] if slope <= 0 else min(B[k] - s_hi / slope, B[k + 1]))
        return float(lam_low), float(lam_high)

    def dispatch(self, lam: float, target: float) -> np.ndarray:
        """Injections at ``lam`` whose sum is as close to ``target`` as the jumps allow; agents on a jump
        share it in proportion to their range."""
        lo_v, hi_v = self.response(lam)
        s_lo, s_hi = lo_v.sum(), hi_v.sum()
        s = min(max(target, s_lo), s_hi)
        frac = 0.0 if s_hi - s_lo <= 0 else (s - s_lo) / (s_hi - s_lo)
        return lo_v + frac * (hi_v - lo_v)


def _first(n: int, pred) -> int:
    """Smallest i in [0, n) with pred(i) true for a monotone predicate, n if none."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def clear_pool(case: MarketCase, mechanism: str = "pool") -> MarketResult:
    rows = network_rows(case)
    if not rows.empty:
        return clear_pool_qp(case, mechanism, rows)
    arr = agent_arrays(case)
    sup = _Supply(arr)
    lam_low, lam_high = sup.clearing_interval()
    if case.grid is None:
        if np.isnan(lam_low):
            return infeasible(mechanism, case.interval_h, _island_reason(arr))
        if np.isfinite(lam_low) and np.isfinite(lam_high):
            lam = 0.5 * (lam_low + lam_high)
        elif np.isfinite(lam_low) or np.isfinite(lam_high):
            lam = lam_low if np.isfinite(lam_low) else lam_high
        else:
            lam = None
        p = sup.dispatch(0.0 if lam is None else lam, 0.0)
        price_arr = np.full(len(p), 0.0 if lam is None else lam)
        why = "" if lam is not None else "every agent is fixed: no price is determined and nobody pays"
        return uniform_result(case, mechanism, arr, p, 0.0, 0.0, lam, price_arr, iterations=0, reason=why)
    c_imp, c_exp = case.grid.import_price_per_kwh, case.grid.export_price_per_kwh
    if np.isnan(lam_low):
        lam = c_imp if arr.hi.sum() < 0 else c_exp
    else:
        lo_end, hi_end = max(lam_low, c_exp), min(lam_high, c_imp)
        if lo_end <= hi_end:
            lam = 0.5 * (lo_end + hi_end)
        else:
            lam = c_imp if lam_low > c_imp else c_exp
    p = sup.dispatch(lam, 0.0)
    g = -float(p.sum())
    imp, exp = (g, 0.0) if g > 0 else (0.0, -g if g < 0 else 0.0)
    return uniform_result(case, mechanism, arr, p, imp, exp, lam, np.full(len(p), lam))


def _island_reason(arr: AgentArrays) -> str:
    if arr.hi.sum() < 0:
        return (f"islanded community cannot be balanced: total p_max_kw is {arr.hi.sum():g} kW, so demand "
                "exceeds what the agents can produce (add a grid or more flexibility)")
    return (f"islanded community cannot be balanced: total p_min_kw is {arr.lo.sum():g} kW, so must-run "
            "production exceeds what the agents can absorb")


def solve_pool_qp(case: MarketCase, rows: NetworkRows | None = None):
    """The pool as a generic QP (cvxpy + Clarabel). Returns (status, p, g_imp, g_exp, lam, nodal, problem).

    ``nodal[i]`` is agent i's marginal price: the balance dual plus the network duals times the agent's
    sensitivities. Used with network limits and as an independent cross-check of :func:`clear_pool`.
    """
    arr = agent_arrays(case)
    n = len(arr.ids)
    p = cp.Variable(n)
    cons = [p >= arr.lo, p <= arr.hi]
    cost = 0.5 * cp.sum(cp.multiply(arr.a, cp.square(p))) + arr.b @ p
    net = cp.sum(p)
    if case.grid is not None:
        gi, ge = cp.Variable(nonneg=True), cp.Variable(nonneg=True)
        cost = cost + case.grid.import_price_per_kwh * gi - case.grid.export_price_per_kwh * ge
        net = net + gi - ge
    balance = net == 0
    cons.append(balance)
    net_lo = net_hi = None
    if rows is not None and not rows.empty:
        flow = rows.A @ p
        net_lo, net_hi = flow >= rows.lower, flow <= rows.upper
        cons += [net_lo, net_hi]
    prob = cp.Problem(cp.Minimize(cost), cons)
    prob.solve(solver=cp.CLARABEL)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        return prob.status, None, 0.0, 0.0, None, None, prob
    # Lagrangian L = f + y*(net) + ...; stationarity in p_i: f'_i + y + ... = 0, so the price paid for an
    # injection is -y (cvxpy returns y for "expr == 0").
    lam = -float(balance.dual_value)
    nodal = np.full(n, lam)
    if net_lo is not None:
        nodal = nodal + rows.A.T @ (np.asarray(net_lo.dual_value) - np.asarray(net_hi.dual_value))
    gi_v = float(gi.value) if case.grid is not None else 0.0
    ge_v = float(ge.value) if case.grid is not None else 0.0
    return prob.status, np.asarray(p.value), gi_v, ge_v, lam, nodal, prob


def clear_pool_qp(case: MarketCase, mechanism: str = "pool", rows: NetworkRows | None = None) -> MarketResult:
    rows = network_rows(case) if rows is None else rows
    arr = agent_arrays(case)
    status, p, gi, ge, lam, nodal, prob = solve_pool_qp(case, rows)
    if p is None:
        why = "the network limits cannot be met together with the agents' bounds" if not rows.empty else ""
        if case.grid is None and rows.empty:
            why = _island_reason(arr)
        return infeasible(mechanism, case.interval_h, f"{why} (solver status {status})".strip())
    p = np.clip(p, arr.lo, arr.hi)
    net_gi = max(gi - ge, 0.0)
    net_ge = max(ge - gi, 0.0)
    iters = int(prob.solver_stats.num_iters or 0)
    return uniform_result(case, mechanism, arr, p, net_gi, net_ge, lam, nodal, iterations=iters)
