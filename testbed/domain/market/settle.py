"""Shared settlement arithmetic: agent arrays, costs, grid money, matching of flows into trades."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from testbed.domain.market.case import GRID_ID, MarketCase
from testbed.domain.market.result import TRADES, MarketResult

TRADE_MIN_KW = 1e-6
"""Solver output (QP, ADMM) below this many kW is numerical noise and is not reported as a trade."""
MATCH_MIN_KW = 1e-9
"""Pieces of an exact matching below this are rounding residue of the cumulative sums."""


@dataclass(frozen=True)
class AgentArrays:
    ids: tuple[str, ...]
    a: np.ndarray
    b: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    classes: tuple[str | None, ...]

    def cost_rate(self, p_kw: np.ndarray) -> np.ndarray:
        """Each agent's cost rate [currency/h] at injections ``p_kw``."""
        return 0.5 * self.a * p_kw * p_kw + self.b * p_kw


def agent_arrays(case: MarketCase) -> AgentArrays:
    ag = case.agents
    return AgentArrays(
        ids=tuple(a.id for a in ag),
        a=np.array([a.cost_a for a in ag], float),
        b=np.array([a.cost_b for a in ag], float),
        lo=np.array([a.p_min_kw for a in ag], float),
        hi=np.array([a.p_max_kw for a in ag], float),
        classes=tuple(a.energy_class for a in ag),
    )


def match_flows(sell_q: np.ndarray, buy_q: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair sellers and buyers in list order (a merit-order sweep over cumulative quantities).

    Returns (seller index, buyer index, kW) with at most len(sell)+len(buy)-1 pieces; the sums per seller
    and per buyer equal ``sell_q`` and ``buy_q`` (whose totals must agree).
    """
    cs = np.cumsum(sell_q)
    cb = np.cumsum(buy_q)
    total = min(cs[-1] if len(cs) else 0.0, cb[-1] if len(cb) else 0.0)
    if total <= MATCH_MIN_KW:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0)
    edges = np.unique(np.concatenate([[0.0], cs[cs < total], cb[cb < total], [total]]))
    mid = 0.5 * (edges[:-1] + edges[1:])
    q = np.diff(edges)
    # a midpoint of two edges one rounding step apart can round onto the last edge: clamp
    si = np.minimum(np.searchsorted(cs, mid, side="right"), len(cs) - 1)
    bi = np.minimum(np.searchsorted(cb, mid, side="right"), len(cb) - 1)
    keep = q > MATCH_MIN_KW
    return si[keep], bi[keep], q[keep]


def grid_money(case: MarketCase, import_kw: float, export_kw: float) -> tuple[float, float]:
    """(purchases, sales) in currency for the interval at the grid tariff."""
    if case.grid is None:
        return 0.0, 0.0
    h = case.interval_h
    return case.grid.import_price_per_kwh * import_kw * h, case.grid.export_price_per_kwh * export_kw * h


def uniform_result(
    case: MarketCase,
    mechanism: str,
    arr: AgentArrays,
    p_kw: np.ndarray,
    import_kw: float,
    export_kw: float,
    price: float | None,
    agent_price: np.ndarray,
    iterations: int = 0,
    reason: str = "",
) -> MarketResult:
    """Result of a mechanism where each agent is paid ``agent_price`` for its injection (pool, nodal pool).

    Trades are a merit-order matching of sellers (and grid import) to buyers (and grid export); the buyer
    pays its own price and the seller receives its own (equal unless prices are nodal).
    """
    h = case.interval_h
    purchases, sales = grid_money(case, import_kw, export_kw)
    payments = -agent_price * p_kw * h
    operator = float(payments.sum() + sales - purchases)
    cost = float(arr.cost_rate(p_kw).sum() * h + purchases - sales)
    imp_price = case.grid.import_price_per_kwh if case.grid else 0.0
    exp_price = case.grid.export_price_per_kwh if case.grid else 0.0
    sell_q = np.concatenate([np.maximum(p_kw, 0.0), [import_kw]])
    buy_q = np.concatenate([np.maximum(-p_kw, 0.0), [export_kw]])
    names = arr.ids + (GRID_ID,)
    classes = arr.classes + (GRID_ID,)
    sell_price = np.concatenate([agent_price, [imp_price]])
    buy_price = np.concatenate([agent_price, [exp_price]])
    si, bi, q = match_flows(sell_q, buy_q)
    bps, sps = buy_price[bi].tolist(), sell_price[si].tolist()
    trades = TRADES.validate_python([
        {"seller": names[s], "buyer": names[b], "p_kw": x, "price_per_kwh": bp, "energy_class": classes[s],
         "seller_price_per_kwh": None if abs(bp - sp) < 1e-12 else sp}
        for s, b, x, bp, sp in zip(si.tolist(), bi.tolist(), q.tolist(), bps, sps, strict=True)])
    return MarketResult(
        mechanism=mechanism, status="optimal", reason=reason, interval_h=h, total_cost=cost, objective=cost,
        price=price, agent_prices=dict(zip(arr.ids, agent_price.tolist(), strict=True)),
        dispatch_kw=dict(zip(arr.ids, p_kw.tolist(), strict=True)),
        grid_import_kw=float(import_kw - export_kw),
        grid_purchases=purchases, grid_sales=sales, trades=trades,
        payments=dict(zip(arr.ids, payments.tolist(), strict=True)), operator_revenue=operator,
        iterations=iterations,
    )
