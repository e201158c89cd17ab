"""Result of a clearing: dispatch, trades, prices, payments, and how the solver got there.

Money: ``payments`` and the totals are in currency for the whole interval (rate × ``interval_h``); prices
are in currency per kWh; powers in kW (generator convention). Budget balance, which every mechanism keeps:

    sum(payments) + grid_sales - grid_purchases - operator_revenue == 0

where ``operator_revenue`` is money the platform or the network operator keeps (network charges,
congestion rent of nodal prices, the bid-ask spread of pay-as-bid).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Status = Literal["optimal", "infeasible", "not_converged"]


class Trade(BaseModel):
    """``p_kw`` flows from ``seller`` to ``buyer``; the buyer pays ``price_per_kwh``.

    ``seller_price_per_kwh`` is set only when the seller receives a different price (pay-as-bid).
    ``energy_class`` is the seller's class (``grid`` for the upstream grid).
    """

    model_config = ConfigDict(extra="forbid")

    seller: str
    buyer: str
    p_kw: float = Field(gt=0.0)
    price_per_kwh: float
    energy_class: str | None = None
    seller_price_per_kwh: float | None = None


class MarketResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mechanism: str
    status: Status
    reason: str = ""
    interval_h: float
    total_cost: float | None = Field(
        default=None, description="agents' costs + grid purchases - grid sales [currency]"
    )
    objective: float | None = Field(
        default=None,
        description="what the mechanism minimises [currency]: total_cost - premiums + network charges",
    )
    price: float | None = Field(default=None, description="system price [currency/kWh]; None if not unique")
    agent_prices: dict[str, float] = Field(
        default_factory=dict, description="price each agent faces [currency/kWh] (nodal or mean trade price)"
    )
    dispatch_kw: dict[str, float] = Field(default_factory=dict)
    grid_import_kw: float = 0.0
    grid_purchases: float = 0.0
    grid_sales: float = 0.0
    trades: list[Trade] = Field(default_factory=list)
    payments: dict[str, float] = Field(default_factory=dict, description="> 0: the agent pays [currency]")
    operator_revenue: float = 0.0
    iterations: int = 0
    primal_residual: float | None = None
    dual_residual: float | None = None


TRADES = TypeAdapter(list[Trade])
"""Validates a list of trade dicts in pydantic-core: much faster than building Trade objects one by one."""


def infeasible(mechanism: str, interval_h: float, reason: str) -> MarketResult:
    return MarketResult(mechanism=mechanism, status="infeasible", reason=reason, interval_h=interval_h)
