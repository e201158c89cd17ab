"""The coordination strategies ``fpp compare`` knows, as a small registry (pure data).

Each strategy is the same co-simulation of one scenario (feeder, day, homes, seed) with only the coordination
changed. A strategy that is not available yet stays in the registry with the reason, so asking for it gives
one clear error instead of a silent skip; adding one is one entry here and its branch in the orchestration
(:mod:`testbed.orchestration.compare.strategy_run`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from testbed.domain.errors import UserError


@dataclass(frozen=True)
class Strategy:
    """``name`` as on the command line; ``coordination``: ``none`` (each home's own controller), ``tariff``
    (a price signal each home optimises against), ``schedule`` (an operator's setpoints for every device) or
    ``market`` (the P2P platform); ``unavailable``: why it cannot run yet (empty when it can)."""

    name: str
    coordination: str
    description: str
    unavailable: str = ""


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        Strategy("retail", "none", "no coordination: each home's controller self-consumes, retail tariff"),
        Strategy("tou", "tariff", "time-of-use tariff: each home optimises its battery and EV against it"),
        Strategy("central", "schedule", "one operator with full information schedules every battery and EV"),
        Strategy("p2p", "market", "the P2P market of the platform (the scenario's mechanism)"),
        Strategy("fpp", "market", "the P2P market plus the scenario's grid-service contracts (services:)"),
    )
}
DEFAULT_STRATEGIES = ("retail", "tou", "central", "p2p")


def parse_strategies(text: str | Sequence[str]) -> tuple[str, ...]:
    """Strategy names from ``"retail,tou,..."`` (or a list), checked: UserError naming every unknown name, or
    the first strategy that is not available yet. ``retail`` and ``central`` are added when missing: the
    welfare efficiency is measured between them."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip()]
    if not names:
        raise UserError("--strategies: give at least one strategy", [f"known: {', '.join(STRATEGIES)}"])
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise UserError(
            f"--strategies: unknown strateg{'y' if len(unknown) == 1 else 'ies'} {', '.join(map(repr, unknown))}",
            [f"known: {', '.join(STRATEGIES)}"],
        )
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise UserError(f"--strategies: {', '.join(dupes)} given more than once")
    for n in names:
        if STRATEGIES[n].unavailable:
            raise UserError(f"--strategies: strategy {n!r} is not available yet: {STRATEGIES[n].unavailable}")
    for needed in ("central", "retail"):
        if needed not in names:
            names.insert(0, needed)
    return tuple(names)
