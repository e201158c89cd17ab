"""One entry point for every mechanism: :func:`clear`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from testbed.domain.errors import UserError
from testbed.domain.market.admm import clear_admm
from testbed.domain.market.auction import clear_auction
from testbed.domain.market.case import MarketCase, parse_case
from testbed.domain.market.p2p import clear_p2p
from testbed.domain.market.pool import clear_pool, clear_pool_qp
from testbed.domain.market.result import MarketResult

log = logging.getLogger(__name__)

MECHANISMS = ("double-auction", "pay-as-bid", "pool", "p2p", "admm")

# options each mechanism accepts (anything else is a mistake, not silently ignored)
OPTIONS: dict[str, tuple[str, ...]] = {
    "double-auction": ("segments",),
    "pay-as-bid": ("segments",),
    "pool": ("solver",),
    "p2p": ("partners",),
    "admm": ("partners", "rho", "tol_kw", "tol_price", "max_iter", "adapt_every", "adapt_rho"),
}


def clear(case: MarketCase | Mapping[str, Any], mechanism: str = "pool", **options: Any) -> MarketResult:
    """Clear one interval of ``case`` with ``mechanism`` (one of :data:`MECHANISMS`).

    Options: ``segments`` (double auction: pieces per agent curve when orders are derived, default 4);
    ``solver`` (pool: ``"exact"`` price search, default, or ``"qp"``); ``partners`` (p2p/admm: each agent
    trades with the next k agents in case order, default everyone); ADMM: ``rho``, ``tol_kw``, ``tol_price``,
    ``max_iter``, ``adapt_every``, ``adapt_rho`` (see :mod:`testbed.domain.market.admm`).
    """
    if mechanism not in MECHANISMS:
        raise UserError(f"unknown mechanism {mechanism!r}",
                        [f"mechanism: choose one of {', '.join(MECHANISMS)}"])
    bad = sorted(set(options) - set(OPTIONS[mechanism]))
    if bad:
        raise UserError(f"{mechanism}: unknown option(s)",
                        [f"{k}: not an option of {mechanism} (known: {', '.join(OPTIONS[mechanism])})"
                         for k in bad])
    case = parse_case(case)
    problems = _option_problems(options)
    if problems:
        raise UserError(f"{mechanism}: invalid option(s)", problems)
    if mechanism in ("double-auction", "pay-as-bid"):
        res = clear_auction(case, mechanism, segments=options.get("segments", 4))
    elif mechanism == "pool":
        solver = options.get("solver", "exact")
        res = clear_pool(case, mechanism) if solver == "exact" else clear_pool_qp(case, mechanism)
    elif mechanism == "p2p":
        res = clear_p2p(case, mechanism, partners=options.get("partners"))
    else:
        opts = {k: v for k, v in options.items() if k != "partners"}
        res = clear_admm(case, mechanism, partners=options.get("partners"), **opts)
    log.info("%s: %s, total cost %s, %d trades, %d iterations", mechanism, res.status, res.total_cost,
             len(res.trades), res.iterations)
    return res


def _option_problems(o: Mapping[str, Any]) -> list[str]:
    out = []
    seg = o.get("segments", 4)
    if not isinstance(seg, int) or seg < 1:
        out.append(f"segments: {seg!r} must be an integer >= 1")
    if o.get("solver", "exact") not in ("exact", "qp"):
        out.append(f"solver: {o['solver']!r} must be 'exact' or 'qp'")
    k = o.get("partners")
    if k is not None and (not isinstance(k, int) or k < 1):
        out.append(f"partners: {k!r} must be an integer >= 1")
    for name in ("rho", "tol_kw", "tol_price"):
        v = o.get(name)
        if v is not None and not (isinstance(v, int | float) and v > 0):
            out.append(f"{name}: {v!r} must be a number > 0")
    for name in ("max_iter", "adapt_every"):
        v = o.get(name)
        if v is not None and not (isinstance(v, int) and v >= 1):
            out.append(f"{name}: {v!r} must be an integer >= 1")
    return out
