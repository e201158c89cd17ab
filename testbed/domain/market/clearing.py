"""One entry point for every mechanism of the registry (:mod:`.mechanisms`): :func:`clear`."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from testbed.domain.errors import UserError
from testbed.domain.market.auction import clear_auction
from testbed.domain.market.case import MarketCase, parse_case
from testbed.domain.market.mechanisms import DEFAULT_MECHANISM, get_mechanism
from testbed.domain.market.result import MarketResult

# pool, p2p and admm import cvxpy, osqp and scipy (~2 s): imported when a case is cleared with them.

log = logging.getLogger(__name__)


def clear(
    case: MarketCase | Mapping[str, Any], mechanism: str = DEFAULT_MECHANISM, **options: Any
) -> MarketResult:
    """Clear one interval of ``case`` with the named mechanism (one of :data:`MECHANISMS`).

    Options: ``segments`` (double auction: pieces per agent curve when orders are derived, default 4);
    ``solver`` (pool: ``"exact"`` price search, default, or ``"qp"``); ``partners`` (p2p/admm: each agent
    trades with the next k agents in case order, default everyone); ADMM: ``rho``, ``tol_kw``, ``tol_price``,
    ``max_iter``, ``adapt_every``, ``adapt_rho`` (see :mod:`testbed.domain.market.admm`).
    """
    m = get_mechanism(mechanism)
    bad = sorted(set(options) - set(m.options))
    if bad:
        raise UserError(f"{m.name}: unknown option(s)",
                        [f"{k}: not an option of {m.name} (known: {', '.join(m.options)})" for k in bad])
    case = parse_case(case)
    problems = _option_problems(options)
    if problems:
        raise UserError(f"{m.name}: invalid option(s)", problems)
    res = _RUN[m.name](case, m.name, options)
    log.info("%s: %s, total cost %s, %d trades, %d iterations", m.name, res.status, res.total_cost,
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


def _auction(case: MarketCase, name: str, o: Mapping[str, Any]) -> MarketResult:
    return clear_auction(case, name, segments=o.get("segments", 4))


def _pool(case: MarketCase, name: str, o: Mapping[str, Any]) -> MarketResult:
    from testbed.domain.market.pool import clear_pool, clear_pool_qp

    return clear_pool(case, name) if o.get("solver", "exact") == "exact" else clear_pool_qp(case, name)


def _p2p(case: MarketCase, name: str, o: Mapping[str, Any]) -> MarketResult:
    from testbed.domain.market.p2p import clear_p2p

    return clear_p2p(case, name, partners=o.get("partners"))


def _admm(case: MarketCase, name: str, o: Mapping[str, Any]) -> MarketResult:
    from testbed.domain.market.admm import clear_admm

    return clear_admm(case, name, partners=o.get("partners"), **{k: v for k, v in o.items() if k != "partners"})


_RUN = {"double-auction": _auction, "pay-as-bid": _auction, "pool": _pool, "p2p": _p2p, "admm": _admm}
