"""Turn one interval's accepted orders and offers into a market case, clear it, and settle it.

The clearing itself is the market library's (:mod:`testbed.domain.market`); this module only translates between
the platform's messages and the library's ``MarketCase``/``MarketResult`` and computes each prosumer's
settlement and the green-energy provenance. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from testbed.domain.market.mechanisms import get_mechanism
from testbed.domain.prosumer import Tariff
from testbed.platform.protocol import FlexOffer, Order

ENERGY_CLASSES = {"green": "renewable generation behind the seller's meter", "grey": "any other source"}


@dataclass
class Outcome:
    status: str
    reason: str
    price_per_kwh: float | None
    trades: list[tuple[str, str, float, float, str | None]] = field(default_factory=list)
    """``(seller, buyer, p_kw, price_per_kwh, energy_class)``"""
    dispatch_kw: dict[str, float] = field(default_factory=dict)
    payments: dict[str, float] = field(default_factory=dict)
    """> 0: the prosumer pays, for the whole interval [currency]"""


def clear_interval(
    orders: list[Order],
    offers: list[FlexOffer],
    classes: dict[str, str | None],
    buses: dict[str, str | None],
    tariff: Tariff | None,
    interval_h: float,
    mechanism: str,
) -> Outcome:
    """Clear one interval with the market library.

    ``offers`` in arrival order: for each prosumer only its last offer counts (a later offer amends an
    earlier one). The auctions clear the orders; with no orders they clear the offers (the market library
    cuts each cost curve into orders). The other mechanisms clear the offers only.

    Orders go into the book sorted by (prosumer, msg_id) and agents sorted by id, so the result does not
    depend on the order in which messages happened to arrive (the auction breaks price ties by book order,
    P2P picks partners by agent order). ``classes``/``buses``: each prosumer's registered class and bus.
    """
    orders = sorted(orders, key=lambda o: (o.prosumer, o.msg_id))
    last_offer: dict[str, FlexOffer] = {}
    for o in offers:
        last_offer[o.prosumer] = o
    last_offer = dict(sorted(last_offer.items()))
    clears_orders = get_mechanism(mechanism).clears == "orders"
    use_orders = clears_orders and bool(orders)
    if not use_orders and not last_offer:
        what = "orders or flexibility offers" if clears_orders else "flexibility offers"
        return Outcome("no_orders", f"no {what} for this interval ({mechanism})", None)

    from testbed.domain.market import Agent, EnergyClass, MarketCase, clear
    from testbed.domain.market import Order as MarketOrder

    grid = tariff
    agents: list[Any] = []
    market_orders: list[Any] = []
    if use_orders:
        sells: dict[str, float] = {}
        buys: dict[str, float] = {}
        for o in orders:
            book = sells if o.side == "sell" else buys
            book[o.prosumer] = book.get(o.prosumer, 0.0) + o.quantity_kw
            market_orders.append(
                MarketOrder(
                    id=f"{o.prosumer}/{o.msg_id}",
                    agent=o.prosumer,
                    side=o.side,
                    quantity_kw=o.quantity_kw,
                    price_per_kwh=o.price_per_kwh,
                    # a sell order delivers its seller's class unless it names one
                    energy_class=(o.energy_class or classes.get(o.prosumer))
                    if o.side == "sell"
                    else o.energy_class,
                )
            )
        for pid in sorted({o.prosumer for o in orders}):
            agents.append(
                _agent(
                    Agent,
                    pid,
                    -buys.get(pid, 0.0),
                    sells.get(pid, 0.0),
                    0.0,
                    0.0,
                    buses.get(pid),
                    classes.get(pid),
                )
            )
    else:
        for pid, o in last_offer.items():
            lo, hi = min(o.p_min_kw, o.p_max_kw), max(o.p_min_kw, o.p_max_kw)
            agents.append(
                _agent(
                    Agent, pid, lo, hi, o.cost_a, o.cost_b, buses.get(pid), o.energy_class or classes.get(pid)
                )
            )
    used = {a.energy_class for a in agents} | {o.energy_class for o in market_orders}
    declared = {c: EnergyClass(description=ENERGY_CLASSES[c]) for c in sorted(used - {None})}
    case = MarketCase(interval_h=interval_h, grid=grid, agents=agents, orders=market_orders, classes=declared)
    res = clear(case, mechanism=mechanism)
    return Outcome(
        status=res.status,
        reason=res.reason,
        price_per_kwh=res.price,
        trades=[
            (t.seller, t.buyer, float(t.p_kw), float(t.price_per_kwh), t.energy_class) for t in res.trades
        ],
        dispatch_kw={k: float(v) for k, v in res.dispatch_kw.items()},
        payments={k: float(v) for k, v in res.payments.items()},
    )


def _agent(
    cls: Any,
    pid: str,
    p_min: float,
    p_max: float,
    a: float,
    b: float,
    bus: str | None,
    energy_class: str | None,
) -> Any:
    kw: dict[str, Any] = dict(id=pid, p_min_kw=p_min, p_max_kw=p_max, cost_a=a, cost_b=b)
    if bus is not None:
        kw["bus"] = bus
    if energy_class is not None:
        kw["energy_class"] = energy_class
    return cls(**kw)


def imbalance_amount(
    e_export_kwh: float, e_import_kwh: float, e_trade_kwh: float, tariff: Tariff | None
) -> float:
    """What a prosumer pays [currency] for the gap between metered and traded net energy.

    Generator convention: ``e_trade_kwh`` > 0 is energy the prosumer sold. Exporting more than sold is paid
    at the retail export price, importing more than bought (or delivering less than sold) at the import
    price. An islanded community (no tariff) settles imbalance at zero.
    """
    if tariff is None:
        return 0.0
    gap = (e_export_kwh - e_import_kwh) - e_trade_kwh
    if gap >= 0:
        return -gap * tariff.export_price_per_kwh
    return -gap * tariff.import_price_per_kwh


def retail_bill(e_export_kwh: float, e_import_kwh: float, tariff: Tariff) -> float:
    """The same metered interval billed at the plain retail tariff, net per interval [currency]."""
    net = e_export_kwh - e_import_kwh
    return -net * tariff.export_price_per_kwh if net >= 0 else -net * tariff.import_price_per_kwh
