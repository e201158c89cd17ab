"""P2P market with product differentiation: the trading graph and its central QP.

Each pair ``e = (i, j)`` of the trading graph carries one variable ``x_e`` = kW that i sells to j (negative:
j sells to i); agent i's injection is the sum of its trades, ``p = B @ x`` (B: +1 for i, -1 for j). The
upstream grid takes part as two agents: ``grid`` import (sells only, cost ``import_price_per_kwh``) and export
(buys only, pays ``export_price_per_kwh``), both unbounded in practice. Per-trade terms, after Sorin, Bobo and
Pinson, "Consensus-based approach to peer-to-peer electricity markets with product differentiation",
IEEE Trans. Power Syst. 34(2), 2019:

- preferences: agent i's valuation of its bilateral exchange with partner j is ``c_ij * p_ij``, where
  ``c_ij = class_premium_per_kwh[class of j] + partner_premium_per_kwh[j]``; buying (p_ij < 0) is worth
  ``c_ij`` per kWh to i
  (a prosumer selling to such a partner gives up the same premium: the linear model keeps the problem convex);
- network charges: each side pays ``0.5 * charge_per_kwh_per_distance * distance(bus_i, bus_j)`` per kWh;
- eligibility: a class with ``eligible_buyers`` can only be sold to those buyers;
- sides: in an interval every agent is a seller or a buyer. Pure producers (p_min >= 0) sell, pure consumers
  (p_max <= 0) buy; a prosumer takes its ``role`` if given, else the side of its pool dispatch (>= 0: seller),
  and its bounds are cut to that side. Trades only go from sellers to buyers (and grid import to buyers,
  sellers to grid export). Without sides, a prosumer could buy green energy and sell "local" energy at the
  same time around a cycle of trades, and the linear premiums would make the welfare unbounded. Because
  the pool dispatch stays feasible, P2P with no premiums and no charges reaches the pool's welfare.

    minimise  sum_i C_i(p_i) + sum_e (c_ij - c_ji) x_e + (h_ij + h_ji) |x_e|
    s.t.      p = B x,  lo <= p <= hi,  x_lo <= x <= x_hi,  (network rows on p)

The trade price of a pair is the seller's marginal value ``mu_s + c_sb + h_sb`` (= the buyer's
``mu_b + c_bs - h_bs`` at the optimum), where ``mu = -dual(p == B x)``; grid trades are at the tariff.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from testbed.domain.market.case import GRID_ID, MarketCase
from testbed.domain.market.network import network_rows
from testbed.domain.market.pool import clear_pool
from testbed.domain.market.result import TRADES, MarketResult, infeasible
from testbed.domain.market.settle import TRADE_MIN_KW, agent_arrays, grid_money


@dataclass(frozen=True)
class TradingGraph:
    """Agents (the case's, then grid import and grid export if there is a grid) and their trading pairs."""

    names: tuple[str, ...]
    classes: tuple[str | None, ...]
    n_agents: int  # the case's agents; grid agents follow
    a: np.ndarray
    b: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    pi: np.ndarray  # pair: first agent
    pj: np.ndarray  # pair: second agent
    c_ij: np.ndarray  # first agent's premium coefficient on its own side p_ij = x
    c_ji: np.ndarray  # second agent's coefficient on p_ji = -x
    h_ij: np.ndarray  # charge per kWh paid by the first agent
    h_ji: np.ndarray
    x_lo: np.ndarray
    x_hi: np.ndarray
    tariff: np.ndarray  # fixed price of grid pairs, nan for peer pairs

    @property
    def n(self) -> int:
        return len(self.names)

    def incidence(self) -> sp.csr_matrix:
        m = len(self.pi)
        rows = np.concatenate([self.pi, self.pj])
        cols = np.concatenate([np.arange(m), np.arange(m)])
        vals = np.concatenate([np.ones(m), -np.ones(m)])
        return sp.csr_matrix((vals, (rows, cols)), shape=(self.n, m))


def _peer_pairs(n: int, partners: int | None) -> tuple[np.ndarray, np.ndarray]:
    if partners is None or partners >= n - 1:
        i, j = np.triu_indices(n, 1)
        return i, j
    # ring in case order: each agent with the next `partners` agents (wrapping round)
    i = np.repeat(np.arange(n), partners)
    j = (i + np.tile(np.arange(1, partners + 1), n)) % n
    lo_, hi_ = np.minimum(i, j), np.maximum(i, j)
    key = np.unique(lo_ * n + hi_)
    return key // n, key % n


def build_graph(case: MarketCase, partners: int | None = None) -> TradingGraph:
    arr = agent_arrays(case)
    n = len(arr.ids)
    names, classes = list(arr.ids), list(arr.classes)
    a, b, lo, hi = (list(x) for x in (arr.a, arr.b, arr.lo, arr.hi))
    if case.grid is not None:
        big = float(np.abs(arr.lo).sum() + np.abs(arr.hi).sum()) + 1.0
        names += [GRID_ID, GRID_ID]
        classes += [GRID_ID, GRID_ID]
        a += [0.0, 0.0]
        b += [case.grid.import_price_per_kwh, case.grid.export_price_per_kwh]
        lo += [0.0, -big]
        hi += [big, 0.0]
    a, b, lo, hi = (np.asarray(x, float) for x in (a, b, lo, hi))
    seller = _sides(case, arr.lo, arr.hi)
    lo[:n] = np.where(seller, np.maximum(arr.lo, 0.0), arr.lo)
    hi[:n] = np.where(seller, arr.hi, np.minimum(arr.hi, 0.0))
    # who may sell to whom among peers
    pi, pj = _peer_pairs(n, partners)
    eligible_ok = _eligibility(case)
    sell_ij = seller[pi] & ~seller[pj] & (hi[pi] > 0) & (lo[pj] < 0) & eligible_ok(pi, pj)
    sell_ji = seller[pj] & ~seller[pi] & (hi[pj] > 0) & (lo[pi] < 0) & eligible_ok(pj, pi)
    keep = sell_ij | sell_ji
    pi, pj, sell_ij, sell_ji = pi[keep], pj[keep], sell_ij[keep], sell_ji[keep]
    x_lo = np.where(sell_ji, -np.inf, 0.0)
    x_hi = np.where(sell_ij, np.inf, 0.0)
    tariff = np.full(len(pi), np.nan)
    if case.grid is not None:
        gi, ge = n, n + 1
        buyers = np.flatnonzero(~seller & (lo[:n] < 0))
        sellers = np.flatnonzero(seller & (hi[:n] > 0))
        pi = np.concatenate([pi, buyers, sellers])
        pj = np.concatenate([pj, np.full(len(buyers), gi), np.full(len(sellers), ge)])
        x_lo = np.concatenate([x_lo, np.full(len(buyers), -np.inf), np.zeros(len(sellers))])
        x_hi = np.concatenate([x_hi, np.zeros(len(buyers)), np.full(len(sellers), np.inf)])
        tariff = np.concatenate([tariff, np.full(len(buyers), case.grid.import_price_per_kwh),
                                 np.full(len(sellers), case.grid.export_price_per_kwh)])
    c_ij, c_ji = _premiums(case, names, classes, pi, pj)
    h = _charges(case, pi, pj, n)
    return TradingGraph(tuple(names), tuple(classes), n, a, b, lo, hi, pi, pj, c_ij, c_ji, h, h.copy(),
                        x_lo, x_hi, tariff)


def _sides(case: MarketCase, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """True for agents that sell this interval (see the module docstring)."""
    seller = lo >= 0
    stated = np.array([a.role is not None for a in case.agents])
    seller = np.where(stated, [a.role == "seller" for a in case.agents], seller)
    open_ = ~stated & (lo < 0) & (hi > 0)
    if open_.any():
        pool = clear_pool(case)
        if pool.status == "optimal":
            p = np.array([pool.dispatch_kw[a.id] for a in case.agents])
            seller = np.where(open_, p >= 0, seller)
    return seller


def _eligibility(case: MarketCase):
    restricted = {k: set(v.eligible_buyers) for k, v in case.classes.items() if v.eligible_buyers is not None}
    pos = {a.id: i for i, a in enumerate(case.agents)}
    n = len(case.agents)
    allowed = None
    if restricted:
        # allowed[s, b] only built for restricted sellers: a dict seller -> boolean array over buyers
        allowed = {}
        for s, ag in enumerate(case.agents):
            if ag.energy_class in restricted:
                row = np.zeros(n, bool)
                row[[pos[x] for x in restricted[ag.energy_class]]] = True
                allowed[s] = row

    def ok(sellers: np.ndarray, buyers: np.ndarray) -> np.ndarray:
        res = np.ones(len(sellers), bool)
        if allowed:
            for s, row in allowed.items():
                m = sellers == s
                res[m] = row[buyers[m]]
        return res

    return ok


def _premiums(case, names, classes, pi, pj):
    """c_ij: the first agent's premium for energy from the second, and c_ji the other way round."""
    prefs = [a.preferences for a in case.agents] + [None] * (len(names) - len(case.agents))

    def coef(me: np.ndarray, other: np.ndarray) -> np.ndarray:
        out = np.zeros(len(me))
        for k in np.flatnonzero([prefs[m] is not None for m in me.tolist()]):
            pr = prefs[me[k]]
            o = other[k]
            out[k] = pr.class_premium_per_kwh.get(classes[o], 0.0) + pr.partner_premium_per_kwh.get(names[o], 0.0)
        return out

    return coef(pi, pj), coef(pj, pi)


def _charges(case: MarketCase, pi: np.ndarray, pj: np.ndarray, n: int) -> np.ndarray:
    net = case.network
    h = np.zeros(len(pi))
    if net is None or net.charge_per_kwh_per_distance == 0:
        return h
    buses = [a.bus for a in case.agents]
    peer = np.flatnonzero((pi < n) & (pj < n))
    for k in peer.tolist():
        h[k] = 0.5 * net.charge_per_kwh_per_distance * net.bus_distance(buses[pi[k]], buses[pj[k]])
    return h


def p2p_result(case: MarketCase, g: TradingGraph, mechanism: str, x: np.ndarray, mu: np.ndarray | None,
               pair_price: np.ndarray | None = None, iterations: int = 0, **extra) -> MarketResult:
    """Settle pair trades ``x``: prices from agents' marginal values ``mu`` (or given ``pair_price``)."""
    h_int = case.interval_h
    x = np.where(np.abs(x) < TRADE_MIN_KW, 0.0, x)
    n = g.n_agents
    p_all = g.incidence() @ x
    if pair_price is None:
        seller_side_i = mu[g.pi] + g.c_ij + g.h_ij  # i sells (x > 0)
        buyer_side_j = mu[g.pj] + g.c_ji - g.h_ji
        seller_side_j = mu[g.pj] + g.c_ji + g.h_ji  # j sells (x < 0)
        buyer_side_i = mu[g.pi] + g.c_ij - g.h_ij
        pair_price = np.where(x >= 0, 0.5 * (seller_side_i + buyer_side_j),
                              0.5 * (seller_side_j + buyer_side_i))
    pair_price = np.where(np.isnan(g.tariff), pair_price, g.tariff)
    # money: the seller receives price*kWh from the buyer; each side pays its charge to the operator
    pay = np.zeros(g.n)
    np.add.at(pay, g.pi, (-pair_price * x + g.h_ij * np.abs(x)) * h_int)
    np.add.at(pay, g.pj, (pair_price * x + g.h_ji * np.abs(x)) * h_int)
    value = np.zeros(g.n)  # preference value: c * p on each side
    np.add.at(value, g.pi, g.c_ij * x)
    np.add.at(value, g.pj, -g.c_ji * x)
    charges = float(((g.h_ij + g.h_ji) * np.abs(x)).sum() * h_int)
    grid_pairs = ~np.isnan(g.tariff)
    imp = float(-x[grid_pairs & (x < 0)].sum())
    exp = float(x[grid_pairs & (x > 0)].sum())
    purchases, sales = grid_money(case, imp, exp)
    p = p_all[:n]
    arr_cost = 0.5 * g.a[:n] * p * p + g.b[:n] * p
    cost = float(arr_cost.sum() * h_int + purchases - sales)
    objective = cost + float(value[:n].sum() * h_int) + charges
    avg = {}
    traded = np.flatnonzero(x != 0)
    vol = np.zeros(g.n)
    money = np.zeros(g.n)
    sel = np.where(x > 0, g.pi, g.pj)[traded]
    buy = np.where(x > 0, g.pj, g.pi)[traded]
    kw = np.abs(x[traded])
    pr = pair_price[traded]
    trades = TRADES.validate_python([
        {"seller": g.names[s], "buyer": g.names[b], "p_kw": q, "price_per_kwh": c,
         "energy_class": g.classes[s]}
        for s, b, q, c in zip(sel.tolist(), buy.tolist(), kw.tolist(), pr.tolist(), strict=True)])
    for who in (sel, buy):
        np.add.at(vol, who, kw)
        np.add.at(money, who, kw * pr)
    for i in range(n):
        avg[g.names[i]] = float(money[i] / vol[i]) if vol[i] > 0 else float(mu[i] if mu is not None else 0.0)
    payments = pay[:n]
    if "price" not in extra:  # volume-weighted mean trade price
        vols = np.abs(x)
        extra["price"] = float((pair_price * vols).sum() / vols.sum()) if vols.sum() > 0 else None
    return MarketResult(
        mechanism=mechanism, status=extra.pop("status", "optimal"), reason=extra.pop("reason", ""),
        interval_h=h_int, total_cost=cost, objective=objective, price=extra.pop("price", None),
        agent_prices=avg,
        dispatch_kw=dict(zip(g.names[:n], p.tolist(), strict=True)), grid_import_kw=imp - exp,
        grid_purchases=purchases, grid_sales=sales, trades=trades,
        payments=dict(zip(g.names[:n], payments.tolist(), strict=True)),
        operator_revenue=float(payments.sum() + sales - purchases), iterations=iterations, **extra,
    )


def solve_p2p_qp(case: MarketCase, g: TradingGraph):
    """Central QP (cvxpy + Clarabel). Returns (status, x, mu, problem)."""
    rows = network_rows(case)
    m = len(g.pi)
    x = cp.Variable(m)
    p = cp.Variable(g.n)
    B = g.incidence()
    link = p == B @ x
    cons = [link, p >= g.lo, p <= g.hi]
    fin_lo, fin_hi = np.isfinite(g.x_lo), np.isfinite(g.x_hi)
    if fin_lo.any():
        cons.append(x[np.flatnonzero(fin_lo)] >= g.x_lo[fin_lo])
    if fin_hi.any():
        cons.append(x[np.flatnonzero(fin_hi)] <= g.x_hi[fin_hi])
    if not rows.empty:
        flow = rows.A @ p[: g.n_agents]
        cons += [flow >= rows.lower, flow <= rows.upper]
    lin = g.c_ij - g.c_ji
    charge = g.h_ij + g.h_ji
    obj = 0.5 * cp.sum(cp.multiply(g.a, cp.square(p))) + g.b @ p + lin @ x
    if charge.any():
        obj = obj + charge @ cp.abs(x)
    prob = cp.Problem(cp.Minimize(obj), cons)
    prob.solve(solver=cp.CLARABEL)
    if prob.status not in ("optimal", "optimal_inaccurate"):
        return prob.status, None, None, prob
    # L = f + y (p - B x): stationarity in p_i gives C_i'(p_i) + ... = -y_i, the agent's marginal value
    mu = -np.asarray(link.dual_value)
    return prob.status, np.asarray(x.value), mu, prob


def clear_p2p(case: MarketCase, mechanism: str = "p2p", partners: int | None = None) -> MarketResult:
    g = build_graph(case, partners)
    if len(g.pi) == 0 and np.any((g.lo > 0) | (g.hi < 0)):
        return infeasible(mechanism, case.interval_h, "no agent can trade with any other, yet some must")
    status, x, mu, prob = solve_p2p_qp(case, g)
    if x is None:
        return infeasible(mechanism, case.interval_h, _p2p_reason(case, status))
    iters = int(prob.solver_stats.num_iters or 0)
    return p2p_result(case, g, mechanism, x, mu, iterations=iters)


def _p2p_reason(case: MarketCase, status: str) -> str:
    parts = []
    if case.grid is None:
        parts.append("the islanded community cannot balance within the agents' bounds and trading graph")
    else:
        parts.append("the agents' bounds cannot be met through the trading graph")
    if case.network is not None and case.network.has_limits:
        parts.append("with the network limits")
    return " ".join(parts) + f" (solver status {status})"
