"""Double auction of one interval: merit order, uniform price (pay-as-clear) or pay-as-bid.

Bids are sorted by price from high to low, asks from low to high (ties keep the order of the book), and the
traded quantity ``Q`` is the largest quantity at which the bid curve is still at or above the ask curve.
Orders strictly inside the merit order are filled; orders at the marginal price level share the remainder
pro rata to their quantity.

Uniform price: any price in the clearing interval leaves no filled order wishing it had not traded and no
unfilled order wishing to trade: ``[max(marginal ask, best rejected bid), min(marginal bid, best rejected
ask)]``, where a partly filled level counts as rejected at its own price. The price is the interval's
midpoint (the finite end if one end is unbounded; None on an empty or non-crossing book).

Pay-as-bid: the same fills; each buyer pays its bid, each seller receives its ask, and the spread is kept
by the platform (``operator_revenue``).

With a grid tariff the grid is one more ask (unlimited, at the import price) and one more bid (unlimited, at
the export price), so the price stays within the tariff band.

Orders from agents (when the case has no ``orders``): each agent's flexible range is cut into ``segments``
equal pieces priced at the marginal cost ``cost_a*p + cost_b`` at the piece's midpoint: pieces in
``[max(p_min,0), p_max]`` are asks, pieces in ``[p_min, min(p_max,0)]`` are bids. A must-run part
(``p_min > 0`` or ``p_max < 0``) is a market order (price-taking, always filled in a crossing book), so
derived orders keep every agent within its bounds.
"""

from __future__ import annotations

import numpy as np

from testbed.domain.market.case import GRID_ID, MarketCase
from testbed.domain.market.result import TRADES, MarketResult, Trade, infeasible
from testbed.domain.market.settle import agent_arrays, grid_money, match_flows

TIE_TOL = 1e-12
MIN_ORDER_KW = 1e-9
"""Orders (explicit or derived) smaller than this are left out of the book."""


def agent_orders(case: MarketCase, segments: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Orders derived from agents' marginal cost curves: (agent index, is_sell, quantity_kw, price).

    Must-run parts get price -inf (asks) or +inf (bids).
    """
    arr = agent_arrays(case)
    n = len(arr.ids)
    idx = np.arange(n)
    out_i, out_s, out_q, out_p = [], [], [], []
    # must-run parts
    must_sell = np.maximum(arr.lo, 0.0)
    must_buy = np.maximum(-arr.hi, 0.0)
    for must, sell, price in ((must_sell, True, -np.inf), (must_buy, False, np.inf)):
        m = must > 0
        out_i.append(idx[m])
        out_s.append(np.full(m.sum(), sell))
        out_q.append(must[m])
        out_p.append(np.full(m.sum(), price))
    # flexible parts: sell range [s0, s1], buy range [b0, b1] (b0 <= b1 <= 0)
    ranges = ((np.maximum(arr.lo, 0.0), arr.hi, True), (arr.lo, np.minimum(arr.hi, 0.0), False))
    for start, end, sell in ranges:
        width = end - start
        m = width > 0
        for k in range(segments):
            mid = start + (k + 0.5) * width / segments
            out_i.append(idx[m])
            out_s.append(np.full(m.sum(), sell))
            out_q.append(width[m] / segments)
            out_p.append(arr.a[m] * mid[m] + arr.b[m])
    return (np.concatenate(out_i).astype(int), np.concatenate(out_s).astype(bool), np.concatenate(out_q),
            np.concatenate(out_p))


def _book(case: MarketCase, segments: int):
    if case.orders:
        pos = {a.id: i for i, a in enumerate(case.agents)}
        o = case.orders
        return (np.array([pos[x.agent] for x in o], int), np.array([x.side == "sell" for x in o], bool),
                np.array([x.quantity_kw for x in o], float), np.array([x.price_per_kwh for x in o], float),
                [x.energy_class for x in o])
    i, s, q, p = agent_orders(case, segments)
    classes = [case.agents[k].energy_class for k in i.tolist()]
    return i, s, q, p, classes


def _fill_side(q: np.ndarray, price: np.ndarray, total: float, descending: bool):
    """Fill one side sorted by merit order up to ``total`` with pro-rata ties at the marginal level.

    Returns (order of merit as indices, filled quantities in that order, marginal price, partly filled?,
    price of the best unfilled level or None).
    """
    key = -price if descending else price
    order = np.argsort(key, kind="stable")
    qs, ps = q[order], price[order]
    filled = np.zeros(len(qs))
    if total <= 0 or len(qs) == 0:
        return order, filled, None, False, (float(ps[0]) if len(ps) else None)
    cum = np.cumsum(qs)
    k = int(np.searchsorted(cum, total, side="left"))  # total is a cumulative sum of one side
    k = min(k, len(qs) - 1)
    marginal = ps[k]
    with np.errstate(invalid="ignore"):  # inf - inf at a level of market orders
        level = (ps == marginal) | (np.abs(ps - marginal) <= TIE_TOL)
    better = (ps > marginal + TIE_TOL) if descending else (ps < marginal - TIE_TOL)
    filled[better] = qs[better]
    rest = total - filled.sum()
    level_q = qs[level].sum()
    filled[level] = qs[level] * min(1.0, rest / level_q)
    partly = rest < level_q - TIE_TOL * max(1.0, level_q)
    worse = ~(better | level)
    nxt = float(ps[worse][0]) if worse.any() else None
    return order, filled, float(marginal), bool(partly), nxt


def _traded_quantity(bq, bp, aq, ap) -> float:
    """Largest Q with bid curve(Q) >= ask curve(Q) (both step functions evaluated left of Q)."""
    if len(bq) == 0 or len(aq) == 0:
        return 0.0
    ob, oa = np.argsort(-bp, kind="stable"), np.argsort(ap, kind="stable")
    cb, ca = np.cumsum(bq[ob]), np.cumsum(aq[oa])
    pb, pa = bp[ob], ap[oa]
    ends = np.unique(np.concatenate([cb, ca]))
    ends = ends[ends <= min(cb[-1], ca[-1]) * (1 + 1e-15)]
    starts = np.concatenate([[0.0], ends[:-1]])
    mid = 0.5 * (starts + ends)
    ib = np.minimum(np.searchsorted(cb, mid, side="left"), len(cb) - 1)
    ia = np.minimum(np.searchsorted(ca, mid, side="left"), len(ca) - 1)
    ok = pb[ib] >= pa[ia] - TIE_TOL
    # the curves cross once: feasible segments form a prefix
    n_ok = int(np.argmin(ok)) if not ok.all() else len(ok)
    return float(ends[n_ok - 1]) if n_ok else 0.0


def clear_auction(case: MarketCase, mechanism: str = "double-auction", segments: int = 4) -> MarketResult:
    pay_as_bid = mechanism == "pay-as-bid"
    h = case.interval_h
    arr = agent_arrays(case)
    owner, is_sell, q, price, classes = _book(case, segments)
    keep = q >= MIN_ORDER_KW  # a zero-width step would not move the cumulative curves
    owner, is_sell, q, price = owner[keep], is_sell[keep], q[keep], price[keep]
    classes = [c for c, k in zip(classes, keep.tolist(), strict=True) if k]
    names = list(arr.ids)
    if case.grid is not None:
        big = float(q.sum()) + max(1.0, float(np.abs(arr.lo).sum() + np.abs(arr.hi).sum()))
        g = len(names)
        names.append(GRID_ID)
        owner = np.concatenate([owner, [g, g]])
        is_sell = np.concatenate([is_sell, [True, False]])
        q = np.concatenate([q, [big, big]])
        price = np.concatenate([price, [case.grid.import_price_per_kwh, case.grid.export_price_per_kwh]])
        classes = list(classes) + [GRID_ID, None]
    bids, asks = np.flatnonzero(~is_sell), np.flatnonzero(is_sell)
    total = _traded_quantity(q[bids], price[bids], q[asks], price[asks])
    must = (np.isinf(price) & (price > 0) & ~is_sell) | (np.isinf(price) & (price < 0) & is_sell)
    must_b, must_a = q[must & ~is_sell].sum(), q[must & is_sell].sum()
    if total < max(must_b, must_a) - 1e-9:
        short = "demand" if must_b > must_a else "production"
        return infeasible(mechanism, h, f"must-run {short} of {max(must_b, must_a):g} kW cannot be matched: "
                          f"only {total:g} kW can trade in an islanded community")
    ob, fb, mb, part_b, next_b = _fill_side(q[bids], price[bids], total, descending=True)
    oa, fa, ma, part_a, next_a = _fill_side(q[asks], price[asks], total, descending=False)
    bid_ids, ask_ids = bids[ob], asks[oa]
    clearing = _uniform_price(mb, part_b, next_b, ma, part_a, next_a) if total > 0 else None
    # dispatch: sells minus buys per agent (the grid column is the grid's own)
    n = len(arr.ids)
    net = np.zeros(len(names))
    np.add.at(net, owner[ask_ids], fa)
    np.subtract.at(net, owner[bid_ids], fb)
    p = net[:n]
    grid_imp = grid_exp = 0.0
    if case.grid is not None:  # the grid's own ask and bid can only meet at equal tariffs: keep the net
        g_net = float(fa[owner[ask_ids] == n].sum() - fb[owner[bid_ids] == n].sum())
        grid_imp, grid_exp = max(g_net, 0.0), max(-g_net, 0.0)
    si, bi, x = match_flows(fa, fb)
    oa_k, ob_k = ask_ids[si], bid_ids[bi]
    seller, buyer = owner[oa_k], owner[ob_k]
    fill = 0.0 if clearing is None else clearing
    if pay_as_bid:
        bp, sp = _limit(price[ob_k], price[oa_k], fill), _limit(price[oa_k], price[ob_k], fill)
    else:
        bp = sp = np.full(len(x), fill)
    pay = np.zeros(len(names))
    np.add.at(pay, buyer, bp * x * h)
    np.subtract.at(pay, seller, sp * x * h)
    trades = _aggregate(names, classes, seller, buyer, oa_k, bp, sp, x, pay_as_bid)
    purchases, sales = grid_money(case, grid_imp, grid_exp)
    payments = pay[:n]
    operator = float(payments.sum() + sales - purchases)
    cost = float(arr.cost_rate(p).sum() * h + purchases - sales)
    agent_price = {names[i]: (clearing if clearing is not None else 0.0) for i in range(n)}
    return MarketResult(
        mechanism=mechanism, status="optimal", interval_h=h, total_cost=cost, objective=cost,
        price=None if pay_as_bid else clearing, agent_prices=agent_price,
        reason=_reason(total, clearing),
        dispatch_kw=dict(zip(arr.ids, p.tolist(), strict=True)), grid_import_kw=grid_imp - grid_exp,
        grid_purchases=purchases, grid_sales=sales, trades=trades,
        payments=dict(zip(arr.ids, payments.tolist(), strict=True)), operator_revenue=operator, iterations=0,
    )


def _limit(own: np.ndarray, other: np.ndarray, clearing: float) -> np.ndarray:
    """Pay-as-bid price of each piece: the order's own limit; a market order (infinite limit) takes the
    counterparty's, or the clearing price when both are market orders (0 when there is none)."""
    return np.where(np.isfinite(own), own, np.where(np.isfinite(other), other, clearing))


def _aggregate(names, classes, seller, buyer, ask_k, bp, sp, x, pay_as_bid: bool) -> list[Trade]:
    """One trade per (seller, buyer, prices, class) from the matched pieces; self-matches are dropped."""
    cls_names = sorted({c or "" for c in classes})
    cls_idx = {c: i for i, c in enumerate(cls_names)}
    cls = np.array([cls_idx[classes[k] or ""] for k in ask_k.tolist()], dtype=float)
    keep = seller != buyer
    rows = np.column_stack([seller, buyer, bp, sp, cls])[keep]
    if len(rows) == 0:
        return []
    keys, inv = np.unique(rows, axis=0, return_inverse=True)
    kw = np.bincount(inv.ravel(), weights=x[keep], minlength=len(keys))
    rows = [{"seller": names[int(s)], "buyer": names[int(b)], "p_kw": q, "price_per_kwh": p_buy,
             "energy_class": cls_names[int(c)] or None,
             "seller_price_per_kwh": p_sell if pay_as_bid else None}
            for (s, b, p_buy, p_sell, c), q in zip(keys.tolist(), kw.tolist(), strict=True)]
    return TRADES.validate_python(rows)


def _uniform_price(mb, part_b, next_b, ma, part_a, next_a) -> float | None:
    lows = [ma] + [mb if part_b else next_b]
    highs = [mb] + [ma if part_a else next_a]
    lows = [x for x in lows if x is not None and np.isfinite(x)]
    highs = [x for x in highs if x is not None and np.isfinite(x)]
    low = max(lows) if lows else None
    high = min(highs) if highs else None
    if low is None and high is None:
        return None
    if low is None or high is None:
        return low if high is None else high
    if low > high:  # only rounding can get here; the midpoint is still between the marginal orders
        low, high = high, low
    return 0.5 * (low + high)


def _reason(total: float, clearing: float | None) -> str:
    if total <= 0:
        return "the book does not cross: nothing trades"
    if clearing is None:
        return "only market orders trade: no price is determined and trades are settled at 0"
    return ""
