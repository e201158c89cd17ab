"""The one registry of market mechanisms (pure data, cheap to import).

Every part of the testbed that names a mechanism (the scenario schema, ``fpp market clear``, ``fpp platform``,
the platform's clearing and the market bridge's agents) reads :data:`MECHANISMS` and :data:`DEFAULT_MECHANISM`
from here; :func:`testbed.domain.market.clearing.clear` runs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from testbed.domain.errors import UserError


@dataclass(frozen=True)
class Mechanism:
    """A clearing mechanism: its name, what it clears (explicit ``orders``, or flexibility ``offers``: cost
    curves over a power range), what it does, and the options it accepts."""

    name: str
    clears: Literal["orders", "offers"]
    description: str
    options: tuple[str, ...]


MECHANISMS: dict[str, Mechanism] = {
    m.name: m
    for m in (
        Mechanism("double-auction", "orders", "uniform-price double auction", ("segments",)),
        Mechanism("pay-as-bid", "orders", "double auction, each trade at its bid's price", ("segments",)),
        Mechanism("pool", "offers", "pool welfare optimum with one uniform price", ("solver",)),
        Mechanism("p2p", "offers", "P2P trades with product differentiation (central QP)", ("partners",)),
        Mechanism(
            "admm", "offers", "P2P trades negotiated by consensus ADMM",
            ("partners", "rho", "tol_kw", "tol_price", "max_iter", "adapt_every", "adapt_rho"),
        ),
    )
}
MECHANISM_NAMES: tuple[str, ...] = tuple(MECHANISMS)
DEFAULT_MECHANISM = "double-auction"


def get_mechanism(name: str, where: str = "mechanism") -> Mechanism:
    """The mechanism called ``name``; :class:`UserError` naming ``where`` and the known names otherwise."""
    if name not in MECHANISMS:
        raise UserError(f"unknown mechanism {name!r}", [f"{where}: choose one of {', '.join(MECHANISMS)}"])
    return MECHANISMS[name]
