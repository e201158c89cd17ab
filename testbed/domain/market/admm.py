"""Distributed P2P negotiation: consensus ADMM on the trading graph (Sorin, Bobo, Pinson 2019, Alg. 1).

Every agent i keeps its own offers ``p_ij`` (kW it offers to sell to each partner j; negative: to buy) and a
price ``lam_ij`` per partner. One round, for each agent, using only its private data (cost, bounds,
premiums ``c_ij``, charges ``h_ij``, allowed trade directions) and its partners' last offers ``p_ji``:

    lam_ij <- lam_ij - rho/2 * (p_ij + p_ji)                       (price: down if both want to sell)
    t_ij    = (p_ij - p_ji)/2 + lam_ij/rho                         (the middle ground, shifted by the price)
    p_i.   <- argmin C_i(sum_j p_ij) + sum_j c_ij p_ij + h_ij |p_ij| + rho/2 (p_ij - t_ij)^2
              s.t. p_min <= sum_j p_ij <= p_max, p_ij within its allowed direction

then the agent sends its new offers. :func:`agent_step` is exactly that step for one agent (what a separate
process runs); :func:`negotiate` runs all agents at once, vectorised, with identical arithmetic. The local
problem is solved exactly: for the multiplier ``m`` of ``sum_j p_ij``, each offer is a clipped soft-threshold
``clip(soft(t - (c + m)/rho, h/rho), lb, ub)``, and ``m`` is found by bisection on the monotone balance
``sum_j p_ij(m) = clip((m - b)/a, p_min, p_max)`` followed by an exact linear solve on the active set.

Stopping: primal residual ``rms(p_ij + p_ji)`` <= ``tol_kw`` and dual residual ``rho * rms(change of
(p_ij - p_ji)/2)`` <= ``tol_price``. ``rho`` adapts by residual balancing (Boyd et al. 2011, §3.4.1) every
``adapt_every`` rounds during the first ``ADAPT_ROUNDS``; that needs the two residual norms summed over
agents (one scalar each per round, which the platform aggregates) and a broadcast of the new ``rho``.

Network limits: the network operator is one more block (:class:`_NetworkOperator`): it projects its copy
``y`` of the agents' injections onto the limits and prices the mismatch with ``kappa``; each agent adds
``kappa_i p_i + rho/2 (p_i - y_i)^2`` to its local cost, so its step still uses only its own data plus two
numbers from the operator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import osqp
import scipy.sparse as sp
from scipy.optimize import linprog

from testbed.domain.market.case import MarketCase
from testbed.domain.market.network import NetworkRows, network_rows
from testbed.domain.market.p2p import TradingGraph, build_graph, p2p_result
from testbed.domain.market.result import MarketResult, infeasible

BISECT_STEPS = 40


@dataclass(frozen=True)
class Edges:
    """Directed edges: edge 2e is pair e seen by its first agent, 2e+1 by its second."""

    owner: np.ndarray
    c: np.ndarray
    h: np.ndarray
    lb: np.ndarray
    ub: np.ndarray

    @staticmethod
    def of(g: TradingGraph) -> Edges:
        m = len(g.pi)

        def inter(u, v):
            out = np.empty(2 * m, dtype=np.result_type(u, v))
            out[0::2], out[1::2] = u, v
            return out

        return Edges(owner=inter(g.pi, g.pj), c=inter(g.c_ij, g.c_ji), h=inter(g.h_ij, g.h_ji),
                     lb=inter(g.x_lo, -g.x_hi), ub=inter(g.x_hi, -g.x_lo))


def _offers(t, c, h, lb, ub, mu_e, rho):
    u = t - (c + mu_e) / rho
    thr = h / rho
    return np.clip(np.sign(u) * np.maximum(np.abs(u) - thr, 0.0), lb, ub)


def local_solve(owner, n, a, b, lo, hi, c, h, lb, ub, t, rho, mu_guess=None):
    """Solve every agent's local problem at once; returns (offers per edge, multiplier per agent).

    Arrays ``a, b, lo, hi`` are per agent (length n); ``owner, c, h, lb, ub, t`` per directed edge.
    """
    big_m = np.maximum(np.abs(lo), np.abs(hi))
    k = rho * (np.abs(t).max(initial=0.0) + big_m + 1.0) + np.abs(c).max(initial=0.0) + h.max(initial=0.0)
    k = k + np.abs(b) + a * big_m
    g_lo, g_hi = np.minimum(b + a * lo, 0.0) - k, np.maximum(b + a * hi, 0.0) + k
    quad = a > 0
    inv_a = np.where(quad, 1.0 / np.where(quad, a, 1.0), 0.0)

    def excess(mu):  # sum of offers minus the agent's own response; decreasing in mu
        phi = np.bincount(owner, _offers(t, c, h, lb, ub, mu[owner], rho), minlength=n)
        psi = np.where(quad, np.clip((mu - b) * inv_a, lo, hi), np.where(mu < b, lo, hi))
        return phi - psi

    m_lo, m_hi = g_lo.copy(), g_hi.copy()
    if mu_guess is not None:  # warm start: a narrow bracket round the last multiplier where it holds
        w = 1e-4 * (1.0 + np.abs(mu_guess))
        e_lo, e_hi = excess(mu_guess - w), excess(mu_guess + w)
        ok = (e_lo >= 0) & (e_hi <= 0)
        m_lo, m_hi = np.where(ok, mu_guess - w, g_lo), np.where(ok, mu_guess + w, g_hi)
    for _ in range(BISECT_STEPS):
        mid = 0.5 * (m_lo + m_hi)
        pos = excess(mid) > 0
        m_lo, m_hi = np.where(pos, mid, m_lo), np.where(pos, m_hi, mid)
    mu = _refine(owner, n, a, b, lo, hi, c, h, lb, ub, t, rho, m_lo, m_hi, quad, inv_a)
    return _offers(t, c, h, lb, ub, mu[owner], rho), mu


def _refine(owner, n, a, b, lo, hi, c, h, lb, ub, t, rho, m_lo, m_hi, quad, inv_a):
    """Exact multiplier on the active set at the bracket's midpoint (kept if it stays in the bracket)."""
    mid = 0.5 * (m_lo + m_hi)
    u = t - (c + mid[owner]) / rho
    thr = h / rho
    soft = np.sign(u) * np.maximum(np.abs(u) - thr, 0.0)
    free = (soft != 0) & (soft > lb) & (soft < ub)
    const_e = np.where(free, t - c / rho - np.sign(u) * thr, np.clip(soft, lb, ub))
    a0 = np.bincount(owner, const_e, minlength=n)
    nf = np.bincount(owner, free.astype(float), minlength=n) / rho
    resp = (mid - b) * inv_a
    interior = quad & (resp > lo) & (resp < hi)
    psi_const = np.where(quad, np.clip(resp, lo, hi), np.where(mid < b, lo, hi))
    with np.errstate(divide="ignore", invalid="ignore"):
        mu_int = (a0 + b * inv_a) / (nf + inv_a)
        mu_out = (a0 - psi_const) / nf
    cand = np.where(interior, mu_int, mu_out)
    cand = np.where(~quad & (m_lo <= b) & (b <= m_hi), b, cand)
    tol = 1e-9 * (1.0 + np.abs(mid))
    good = np.isfinite(cand) & (cand >= m_lo - tol) & (cand <= m_hi + tol)
    return np.where(good, cand, mid)


@dataclass(frozen=True)
class AgentProblem:
    """One agent's private data: its cost, bounds, and per partner its premium, charge and allowed range."""

    cost_a: float
    cost_b: float
    p_min_kw: float
    p_max_kw: float
    premium: np.ndarray
    charge: np.ndarray
    lb_kw: np.ndarray
    ub_kw: np.ndarray


def agent_step(prob: AgentProblem, own_kw, partner_kw, price, rho: float,
               network: tuple[float, float] | None = None):
    """One negotiation round of one agent: update its prices from the last offers, then its offers.

    ``own_kw[k]``: the agent's last offer to partner k; ``partner_kw[k]``: partner k's last offer to it;
    ``price[k]``: their current price; ``network``: the operator's (kappa_i, y_i) when there are network
    limits. Returns (new offers, new prices).
    """
    own_kw, partner_kw = np.asarray(own_kw, float), np.asarray(partner_kw, float)
    price = np.asarray(price, float) - 0.5 * rho * (own_kw + partner_kw)
    t = 0.5 * (own_kw - partner_kw) + price / rho
    owner = np.zeros(len(t), int)
    one = lambda v: np.array([v], float)  # noqa: E731
    cost_a, cost_b = prob.cost_a, prob.cost_b
    if network is not None:
        kappa, y = network
        cost_a, cost_b = cost_a + rho, cost_b + kappa - rho * y
    offers, _ = local_solve(owner, 1, one(cost_a), one(cost_b), one(prob.p_min_kw),
                            one(prob.p_max_kw), prob.premium, prob.charge, prob.lb_kw, prob.ub_kw, t, rho)
    return offers, price


def agent_problems(g: TradingGraph) -> tuple[list[AgentProblem], list[np.ndarray]]:
    """Split the graph into each agent's private problem and the indices of its directed edges."""
    e = Edges.of(g)
    order = [np.flatnonzero(e.owner == i) for i in range(g.n)]
    probs = [AgentProblem(float(g.a[i]), float(g.b[i]), float(g.lo[i]), float(g.hi[i]), e.c[ix], e.h[ix],
                          e.lb[ix], e.ub[ix]) for i, ix in enumerate(order)]
    return probs, order


@dataclass
class Negotiation:
    offers_kw: np.ndarray  # per directed edge
    price: np.ndarray  # per directed edge
    iterations: int
    primal_residual: float
    dual_residual: float
    converged: bool
    rho: float


ADAPT_ROUNDS = 2000
TOL_KW = 1e-5
TOL_PRICE = 1e-7


class _NetworkOperator:
    """The network operator's block: it keeps a copy ``y`` of the injections of the agents it monitors,
    projected onto ``lower <= A y <= upper`` each round (OSQP), and a price ``kappa`` per agent for the
    mismatch between an agent's injection and that copy. Agents see ``kappa_i * p_i + rho/2 (p_i - y_i)^2``
    added to their cost: one number pair per agent per round."""

    def __init__(self, rows: NetworkRows, n: int) -> None:
        self.n = n
        self.solver = osqp.OSQP()
        self.solver.setup(P=sp.eye(n, format="csc"), q=np.zeros(n), A=sp.csc_matrix(rows.A), l=rows.lower,
                          u=rows.upper, eps_abs=1e-10, eps_rel=1e-10, polishing=False, verbose=False,
                          max_iter=200000)
        self.y = np.zeros(n)
        self.kappa = np.zeros(n)

    def cost_terms(self, a, b, rho):
        a2, b2 = a.copy(), b.copy()
        a2[: self.n] += rho
        b2[: self.n] += self.kappa - rho * self.y
        return a2, b2

    def update(self, inj: np.ndarray, rho: float) -> tuple[float, float]:
        """Project, update prices; returns (rms mismatch [kW], rho * rms change of the copy)."""
        self.solver.update(q=-(inj + self.kappa / rho))
        res = self.solver.solve(raise_error=False)
        y_old = self.y
        if res.x is not None and np.all(np.isfinite(res.x)):  # else keep the last copy (residuals show it)
            self.y = np.asarray(res.x)
        self.kappa = self.kappa + rho * (inj - self.y)
        mismatch = float(np.sqrt(np.mean((inj - self.y) ** 2)))
        return mismatch, float(rho * np.sqrt(np.mean((self.y - y_old) ** 2)))


def negotiate(g: TradingGraph, rho: float | None = None, tol_kw: float = TOL_KW, tol_price: float = TOL_PRICE,
              max_iter: int = 20000, adapt_every: int = 10, adapt_rho: bool = True,
              rows: NetworkRows | None = None) -> Negotiation:
    e = Edges.of(g)
    dso = None if rows is None or rows.empty else _NetworkOperator(rows, g.n_agents)
    m2 = len(e.owner)
    rev = np.arange(m2) ^ 1
    if rho is None:
        pos = g.a[: g.n_agents][g.a[: g.n_agents] > 0]
        rho = float(np.median(pos)) if len(pos) else 0.01
    rho_min, rho_max = rho * 1e-4, rho * 1e4
    p = np.zeros(m2)
    lam = np.full(m2, float(np.median(g.b[: g.n_agents])))
    mu = None
    z_old = np.zeros(m2)
    r = s = np.inf
    k = 0
    for k in range(1, max_iter + 1):
        lam = lam - 0.5 * rho * (p + p[rev])
        t = 0.5 * (p - p[rev]) + lam / rho
        a, b = (g.a, g.b) if dso is None else dso.cost_terms(g.a, g.b, rho)
        p, mu = local_solve(e.owner, g.n, a, b, g.lo, g.hi, e.c, e.h, e.lb, e.ub, t, rho, mu)
        z = 0.5 * (p - p[rev])
        r = float(np.sqrt(np.mean((p + p[rev]) ** 2))) if m2 else 0.0
        s = float(rho * np.sqrt(np.mean((z - z_old) ** 2))) if m2 else 0.0
        z_old = z
        if dso is not None:
            inj = np.bincount(e.owner, p, minlength=g.n)[: g.n_agents]
            r_net, s_net = dso.update(inj, rho)
            r, s = max(r, r_net), max(s, s_net)
        if r <= tol_kw and s <= tol_price:
            return Negotiation(p, lam - 0.5 * rho * (p + p[rev]), k, r, s, True, rho)
        if not (np.isfinite(r) and np.isfinite(s)):
            break
        if adapt_rho and k % adapt_every == 0:
            # residual balancing (Boyd et al. 2011, eq. 3.13) with both residuals in kW (the dual one
            # divided by rho), frozen after ADAPT_ROUNDS so that the fixed-rho convergence guarantee
            # applies to the tail
            if k <= ADAPT_ROUNDS and r > 10 * s / rho:
                rho = min(2.0 * rho, rho_max)
            elif k <= ADAPT_ROUNDS and s / rho > 10 * r:
                rho = max(0.5 * rho, rho_min)
    return Negotiation(p, lam, k, r, s, False, rho)


def _feasible(g: TradingGraph, rows: NetworkRows) -> bool:
    """Can the agents' bounds (and network limits) be met through the graph? (LP feasibility, HiGHS)."""
    m = len(g.pi)
    if m == 0:
        zero = np.zeros(g.n_agents)
        return bool(np.all((g.lo <= 0) & (g.hi >= 0))) and not rows.violations(zero, tol=0.0)
    B = g.incidence()
    A_ub, b_ub = [B, -B], [g.hi, -g.lo]
    if not rows.empty:
        AB = sp.csr_matrix(rows.A) @ B[: g.n_agents]
        A_ub += [AB, -AB]
        b_ub += [rows.upper, -rows.lower]
    res = linprog(np.zeros(m), A_ub=sp.vstack(A_ub).tocsr(), b_ub=np.concatenate(b_ub),
                  bounds=list(zip(np.where(np.isfinite(g.x_lo), g.x_lo, None),
                                  np.where(np.isfinite(g.x_hi), g.x_hi, None), strict=True)),
                  method="highs")
    return res.status == 0


def clear_admm(
    case: MarketCase, mechanism: str = "admm", partners: int | None = None, **opts
) -> MarketResult:
    g = build_graph(case, partners)
    rows = network_rows(case)
    if not _feasible(g, rows):
        return infeasible(mechanism, case.interval_h,
                          "the agents' bounds cannot be met through the trading graph"
                          + (" of an islanded community" if case.grid is None else "")
                          + ("" if rows.empty else " with the network limits"))
    neg = negotiate(g, rows=rows, **opts)
    x = 0.5 * (neg.offers_kw[0::2] - neg.offers_kw[1::2])
    x[np.abs(x) < opts.get("tol_kw", TOL_KW)] = 0.0  # below the stopping tolerance: negotiation noise
    pair_price = 0.5 * (neg.price[0::2] + neg.price[1::2])
    status = "optimal" if neg.converged else "not_converged"
    reason = "" if neg.converged else (
        f"stopped after {neg.iterations} rounds: primal residual {neg.primal_residual:.3g} kW, "
        f"dual residual {neg.dual_residual:.3g} per kWh")
    return p2p_result(case, g, mechanism, x, None, pair_price=pair_price, iterations=neg.iterations,
                      status=status, reason=reason, primal_residual=neg.primal_residual,
                      dual_residual=neg.dual_residual)
