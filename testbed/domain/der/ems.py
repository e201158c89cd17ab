"""A prosumer energy management system's bidding policy and setpoint rule. Pure: no MQTT, no clock.

The agent bids from its own state (forecast load and PV for the interval, its battery and state of charge)
and its owner's :class:`~testbed.domain.prosumer.Preferences`, then follows its trade with its own battery.
What the battery can hold over the interval comes from the one battery model
(:meth:`~testbed.domain.der.battery.BatterySpec.limits_kw`, losses included). Generator convention
throughout: net power > 0 exports.
"""

from __future__ import annotations

from dataclasses import dataclass

from testbed.domain.der.battery import BatterySpec
from testbed.domain.market.case import Order
from testbed.domain.prosumer import Preferences, Tariff


@dataclass(frozen=True)
class State:
    """What the EMS knows before the gate closes, for the interval it bids for."""

    load_kw: float
    """forecast mean household load over the interval [kW, >= 0]"""
    pv_kw: float
    """forecast mean PV output over the interval [kW, >= 0]"""
    soc: float = 0.0
    """battery state of charge now [0..1]"""
    battery: BatterySpec | None = None
    """the home's battery, if it has one"""


def battery_limits(s: State, interval_h: float) -> tuple[float, float]:
    """``(max discharge, max charge)`` power the battery can hold over the interval [kW, both >= 0]."""
    if s.battery is None:
        return 0.0, 0.0
    lo, hi = s.battery.limits_kw(s.soc, interval_h)
    return hi, -lo


def plan_net_kw(s: State, interval_h: float) -> float:
    """Net power after self-consumption: the battery first absorbs surplus and covers deficit."""
    net = s.pv_kw - s.load_kw
    dis, chg = battery_limits(s, interval_h)
    return net - min(net, chg) if net > 0 else net + min(-net, dis)


def bid(
    s: State,
    prefs: Preferences,
    tariff: Tariff,
    interval_h: float,
    *,
    agent: str,
    order_id: str,
    min_kw: float = 0.01,
) -> Order | None:
    """The agent's one order for the interval, or None when the planned net power is below ``min_kw``.

    Prices sit inside the retail spread [export, import price], so trading with a neighbour never beats the
    grid for either side by more than the spread. A buyer raises its bid by its ``green`` class premium.
    """
    net = plan_net_kw(s, interval_h)
    quantity = abs(net) * (1.0 - 0.5 * prefs.risk_aversion)
    if quantity < min_kw:
        return None
    imp, exp = tariff.import_price_per_kwh, tariff.export_price_per_kwh
    spread = max(0.0, tariff.spread_per_kwh)
    if net > 0:
        price, side = exp + 0.5 * spread * (1.0 - prefs.subsidy_share), "sell"
        energy_class = "green" if s.pv_kw > 0 else None
    else:
        price, side = min(imp, exp + 0.5 * spread + prefs.green_premium_per_kwh), "buy"
        energy_class = None
    return Order(
        id=order_id, agent=agent, side=side, quantity_kw=round(quantity, 6), price_per_kwh=round(price, 6),
        energy_class=energy_class,
    )


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


def offer_from_order(o: Order) -> tuple[float, float, float, float]:
    """The flexibility offer that mirrors an order: ``(p_min_kw, p_max_kw, cost_a, cost_b)``.

    A seller offers ``[0, q]``, a buyer ``[-q, 0]`` (generator convention), with marginal cost
    ``cost_a * p + cost_b``: the order's price plus a small slope (:data:`OFFER_COST_A`). Mechanisms that
    clear offers (pool, P2P, ADMM) then see the same willingness to trade as the auctions.
    """
    if o.side == "sell":
        return 0.0, o.quantity_kw, OFFER_COST_A, o.price_per_kwh
    return -o.quantity_kw, 0.0, OFFER_COST_A, o.price_per_kwh
