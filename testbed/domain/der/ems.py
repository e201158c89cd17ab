"""A prosumer energy management system's bidding policy and setpoint rule. Pure: no MQTT, no clock.

The agent bids from its own state (forecast load and PV for the interval, battery state of charge) and
its owner's preferences, then follows its trade with its own battery. Generator convention throughout:
net power > 0 exports.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field


class Preferences(BaseModel):
    """What the owner wants from the market.

    - ``green_premium_per_kwh``: extra the owner will pay per kWh for energy bought (its bids rise by it).
    - ``subsidy_share``: 0..1, how much of the retail spread a seller gives to its buyers: 0 asks the middle
      of the spread, 1 asks only the retail export price (neighbours get all the gain).
    - ``risk_aversion``: 0..1, the share of forecast surplus or deficit held back from the market against
      forecast error (0 bids all of it, 1 half of it).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    green_premium_per_kwh: float = Field(0.0, ge=0, le=1)
    subsidy_share: float = Field(0.0, ge=0, le=1)
    risk_aversion: float = Field(0.0, ge=0, le=1)


@dataclass(frozen=True)
class State:
    """What the EMS knows before the gate closes, for the interval it bids for."""

    load_kw: float
    """forecast mean household load over the interval [kW, >= 0]"""
    pv_kw: float
    """forecast mean PV output over the interval [kW, >= 0]"""
    soc: float = 0.0
    """battery state of charge now [0..1]"""
    capacity_kwh: float = 0.0
    p_batt_max_kw: float = 0.0
    soc_min: float = 0.1
    soc_max: float = 0.9


@dataclass(frozen=True)
class Bid:
    side: str
    quantity_kw: float
    price_per_kwh: float
    energy_class: str | None


def battery_limits(s: State, interval_h: float) -> tuple[float, float]:
    """``(max discharge, max charge)`` power the battery can hold over the interval [kW, both >= 0]."""
    if s.capacity_kwh <= 0 or s.p_batt_max_kw <= 0:
        return 0.0, 0.0
    dis = max(0.0, (s.soc - s.soc_min) * s.capacity_kwh / interval_h)
    chg = max(0.0, (s.soc_max - s.soc) * s.capacity_kwh / interval_h)
    return min(s.p_batt_max_kw, dis), min(s.p_batt_max_kw, chg)


def plan_net_kw(s: State, interval_h: float) -> float:
    """Net power after self-consumption: the battery first absorbs surplus and covers deficit."""
    net = s.pv_kw - s.load_kw
    dis, chg = battery_limits(s, interval_h)
    return net - min(net, chg) if net > 0 else net + min(-net, dis)


def bid(
    s: State,
    prefs: Preferences,
    import_price: float,
    export_price: float,
    interval_h: float,
    min_kw: float = 0.01,
) -> Bid | None:
    """One order for the interval, or None when the planned net power is below ``min_kw``.

    Prices sit inside the retail spread [export_price, import_price], so trading with a neighbour never
    beats the grid for either side by more than the spread.
    """
    net = plan_net_kw(s, interval_h)
    quantity = abs(net) * (1.0 - 0.5 * prefs.risk_aversion)
    if quantity < min_kw:
        return None
    spread = max(0.0, import_price - export_price)
    if net > 0:
        price = export_price + 0.5 * spread * (1.0 - prefs.subsidy_share)
        return Bid("sell", round(quantity, 6), round(price, 6), "green" if s.pv_kw > 0 else None)
    price = min(import_price, export_price + 0.5 * spread + prefs.green_premium_per_kwh)
    return Bid("buy", round(quantity, 6), round(price, 6), None)


def battery_setpoint_kw(s: State, p_trade_kw: float, interval_h: float) -> float:
    """Battery power (> 0 discharges) that makes the net power meet the traded one, within limits.

    Without a trade (``p_trade_kw`` = 0) it falls back to self-consumption.
    """
    net = s.pv_kw - s.load_kw
    dis, chg = battery_limits(s, interval_h)
    want = p_trade_kw - net if p_trade_kw != 0 else -net
    return max(-chg, min(dis, want))


OFFER_COST_A = 1e-3
"""Quadratic cost term of offers [currency/(kW²·h)]: small, so the pool optimum is unique."""


def offer_from_bid(b: Bid) -> tuple[float, float, float, float]:
    """The flexibility offer that mirrors an order: ``(p_min_kw, p_max_kw, cost_a, cost_b)``.

    A seller offers ``[0, q]``, a buyer ``[-q, 0]`` (generator convention), with marginal cost
    ``cost_a * p + cost_b``: the order's price plus a small slope (:data:`OFFER_COST_A`). Mechanisms that
    clear offers (pool, P2P, ADMM) then see the same willingness to trade as the auctions.
    """
    if b.side == "sell":
        return 0.0, b.quantity_kw, OFFER_COST_A, b.price_per_kwh
    return -b.quantity_kw, 0.0, OFFER_COST_A, b.price_per_kwh
