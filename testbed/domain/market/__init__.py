"""P2P energy market engine: pure clearing library (no I/O, no clocks).

    from testbed.domain.market import MarketCase, Agent, Order, GridTariff, MarketResult, Trade, clear, MECHANISMS

Mechanisms: uniform-price double auction and pay-as-bid (:mod:`.auction`), the pool welfare optimum
(:mod:`.pool`), P2P with product differentiation as a central QP (:mod:`.p2p`) and as a distributed ADMM
negotiation (:mod:`.admm`). The case format is in :mod:`.case`, results in :mod:`.result`; docs/market.md
explains both with a worked example.
"""

from testbed.domain.market.case import (
    GRID_ID,
    Agent,
    EnergyClass,
    GridTariff,
    LineLimit,
    MarketCase,
    Network,
    Order,
    Preferences,
    VoltageLimit,
    parse_case,
)
from testbed.domain.market.clearing import MECHANISMS, clear
from testbed.domain.market.result import MarketResult, Trade

__all__ = [
    "GRID_ID", "MECHANISMS", "Agent", "EnergyClass", "GridTariff", "LineLimit", "MarketCase", "MarketResult",
    "Network", "Order", "Preferences", "Trade", "VoltageLimit", "clear", "parse_case",
]
