"""P2P energy market engine: pure clearing library (no I/O, no clocks).

    from testbed.domain.market import MarketCase, Agent, Order, Tariff, MarketResult, Trade, clear, MECHANISMS

Mechanisms: uniform-price double auction and pay-as-bid (:mod:`.auction`), the pool welfare optimum
(:mod:`.pool`), P2P with product differentiation as a central QP (:mod:`.p2p`) and as a distributed ADMM
negotiation (:mod:`.admm`); their registry is :mod:`.mechanisms`. The case format is in :mod:`.case`, results
in :mod:`.result`; docs/market.md explains both with a worked example.

Names are imported on first use, so that reading the registry (the scenario schema, the CLI) does not pay
for the solvers.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "GRID_ID": "case", "Agent": "case", "EnergyClass": "case", "LineLimit": "case", "MarketCase": "case",
    "Network": "case", "Order": "case", "VoltageLimit": "case", "parse_case": "case",
    "clear": "clearing",
    "DEFAULT_MECHANISM": "mechanisms", "MECHANISMS": "mechanisms", "MECHANISM_NAMES": "mechanisms",
    "Mechanism": "mechanisms", "get_mechanism": "mechanisms",
    "MarketResult": "result", "Trade": "result",
}
_DOMAIN = {"Preferences": "testbed.domain.prosumer", "Tariff": "testbed.domain.prosumer"}
__all__ = sorted([*_WHERE, *_DOMAIN])


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    if name in _DOMAIN:
        return getattr(importlib.import_module(_DOMAIN[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
