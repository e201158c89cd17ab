"""Bills and the comparison's metrics (pure).

Every strategy's energy is valued at the same price basis (:mod:`testbed.domain.compare.tariff`); what
changes between strategies is the dispatch and who settles with whom:

- :func:`meter_bills` (``retail``, ``tou``): each home settles its own meter with the supplier, step by step:
  ``bill = sum_t dt * (import_price * max(-p, 0) - export_price * max(p, 0))``;
- :func:`market_bills` (``p2p``): each home pays its trades at the market price (``-price * p_trade * dt``,
  > 0 paid) and settles the rest of its meter (``p - p_trade``) with the supplier as above; the trade
  payments cancel over the community when the market balances;
- :func:`community_bills` (``central``): the operator settles the community's summed meter with the supplier
  and passes the cost on at the marginal price of each step (the import price when the community imports,
  the export price when it exports), so the bills add up to the community's cost exactly.

Amounts > 0 are paid by the home. The **community cost** of a strategy is the sum of its bills.
"""

from __future__ import annotations

import numpy as np

from testbed.domain.compare.tariff import Prices


def meter_bills(p_kw: np.ndarray, prices: Prices, dt_h: float) -> np.ndarray:
    """(n,) each home's bill for net powers ``p_kw`` (T, n), generator convention."""
    imp = np.maximum(-p_kw, 0.0)
    exp = np.maximum(p_kw, 0.0)
    return dt_h * (prices.import_per_kwh @ imp - prices.export_per_kwh @ exp)


def market_bills(
    p_kw: np.ndarray, p_trade_kw: np.ndarray, trade_price_per_kwh: np.ndarray, prices: Prices, dt_h: float
) -> np.ndarray:
    """(n,) bills with trades: ``p_trade_kw`` (T, n, > 0 sold) at ``trade_price_per_kwh`` (T,; NaN where no
    price, which needs no trade), the rest of each meter with the supplier."""
    price = np.nan_to_num(np.asarray(trade_price_per_kwh, dtype=float), nan=0.0)
    if np.any(np.isnan(trade_price_per_kwh) & np.any(np.abs(p_trade_kw) > 1e-12, axis=1)):
        raise ValueError("a step has trades but no market price")
    payments = -dt_h * (price @ p_trade_kw)
    return payments + meter_bills(p_kw - p_trade_kw, prices, dt_h)


def community_bills(p_kw: np.ndarray, prices: Prices, dt_h: float) -> np.ndarray:
    """(n,) each home's share of the community's cost at its connection (marginal price of each step)."""
    total = p_kw.sum(axis=1)
    price = np.where(total < 0, prices.import_per_kwh, prices.export_per_kwh)
    return -dt_h * (price @ p_kw)


def community_cost_at_connection(p_kw: np.ndarray, prices: Prices, dt_h: float) -> float:
    """The community's cost when it settles its summed meter with the supplier (the central objective)."""
    total = p_kw.sum(axis=1)
    return float(dt_h * (prices.import_per_kwh @ np.maximum(-total, 0) - prices.export_per_kwh @ np.maximum(total, 0)))


def welfare_efficiency(retail_cost: float, cost: float, central_cost: float) -> float | None:
    """``(retail - cost) / (retail - central)``: 0 for retail, 1 for the welfare optimum; None when central
    gains nothing over retail (the ratio is undefined)."""
    gap = retail_cost - central_cost
    if abs(gap) < 1e-9:
        return None
    return (retail_cost - cost) / gap


def gini(values: np.ndarray) -> float | None:
    """Gini coefficient of ``values`` (mean absolute difference over twice the absolute mean): 0 when every
    home gains the same; None when the mean is 0 (no gain to spread). With losses among the gains it can
    exceed 1."""
    x = np.asarray(values, dtype=float)
    if x.size == 0 or abs(x.mean()) < 1e-12:
        return None
    diffs = np.abs(x[:, None] - x[None, :]).sum() if x.size <= 4000 else _sorted_mad_sum(x)
    return float(diffs / (2 * x.size**2 * abs(x.mean())))


def _sorted_mad_sum(x: np.ndarray) -> float:
    s = np.sort(x)
    n = s.size
    return float(2 * np.sum((2 * np.arange(1, n + 1) - n - 1) * s))


def spread_of_gains(bills: np.ndarray, retail_bills: np.ndarray) -> dict[str, float | int | None]:
    """How a strategy's gains over retail (retail bill - bill, per home) are spread."""
    gains = retail_bills - bills
    return {
        "gini": gini(gains),
        "homes_worse_off": int(np.sum(gains < -1e-6)),
        "worst_loss": float(max(0.0, -gains.min())) if gains.size else 0.0,
        "best_gain": float(max(0.0, gains.max())) if gains.size else 0.0,
    }


def exchange_peaks(ext_grid_p_kw: np.ndarray) -> dict[str, float]:
    """Peak import and export at the transformer [kW] from the feeder exchange (> 0 imports)."""
    ext = np.asarray(ext_grid_p_kw, dtype=float)
    ext = ext[np.isfinite(ext)]
    return {
        "peak_import_kw": float(max(ext.max(initial=0.0), 0.0)),
        "peak_export_kw": float(max((-ext).max(initial=0.0), 0.0)),
    }


def minutes_outside_limits(
    vm_pu: np.ndarray, loading_pct: np.ndarray, v_min_pu: float, v_max_pu: float, dt_h: float
) -> float:
    """Minutes during which any bus voltage was outside ``[v_min_pu, v_max_pu]`` or any line or transformer
    loaded above 100 % (``vm_pu`` (T, buses), ``loading_pct`` (T, elements))."""
    with np.errstate(invalid="ignore"):
        bad_v = np.any((vm_pu < v_min_pu) | (vm_pu > v_max_pu), axis=1) if vm_pu.size else False
        bad_l = np.any(loading_pct > 100.0, axis=1) if loading_pct.size else False
    return float(np.sum(np.logical_or(bad_v, bad_l)) * dt_h * 60.0)
