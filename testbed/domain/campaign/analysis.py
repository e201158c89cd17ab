"""What a campaign's results say (pure): target metrics read from an experiment's KPIs, whether their limits
are exceeded, and the hosting capacity of each strategy.

Hosting capacity (as in EPRI's "Distributed PV hosting capacity", 2012, and CIGRE TB 586): the largest
penetration a feeder takes before a limit is first exceeded. Here: for each group of experiments that share
the values of ``per`` (a strategy, e.g. with or without the market), the largest value of the penetration
parameter below the smallest value at which any experiment of the group (any season, any seed) exceeds any
target metric's limit. A group that never exceeds a limit has at least the largest value tried; one that
exceeds at the smallest has less than it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from testbed.domain.campaign.models import TargetMetric


def exceeded(metric: TargetMetric, value: Any) -> bool | None:
    """Whether ``value`` is beyond the metric's limit; None when it has no limit or no number to judge."""
    if metric.max is None and metric.min is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return None
    return (metric.max is not None and value > metric.max) or (metric.min is not None and value < metric.min)


@dataclass(frozen=True)
class HostingCapacity:
    """The hosting capacity of one strategy: ``value`` (None when the smallest value tried already exceeds a
    limit), ``first_exceeded_at`` (None when no value tried does) and the limits exceeded there."""

    group: dict[str, Any]
    parameter: str
    value: float | None
    first_exceeded_at: float | None
    exceeded_by: tuple[str, ...]
    tried: tuple[float, ...]

    def describe(self) -> str:
        if self.first_exceeded_at is None:
            return f"at least {self.tried[-1]:g} (no limit exceeded up to the largest value tried)"
        if self.value is None:
            return f"below {self.first_exceeded_at:g} (already exceeded at the smallest value tried)"
        return (f"{self.value:g} (limits first exceeded at {self.first_exceeded_at:g}: "
                f"{', '.join(self.exceeded_by)})")


def _group_key(value: Any) -> str:
    return repr(value)


def hosting_capacity(
    rows: Sequence[Mapping[str, Any]], parameter: str, per: Sequence[str], metrics: Sequence[TargetMetric]
) -> list[HostingCapacity]:
    """Hosting capacity per group of ``per`` from the rows of the finished experiments (each holds its
    parameters and its metrics by their kpi path)."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        if not isinstance(row.get(parameter), int | float):
            continue
        groups.setdefault(tuple(_group_key(row.get(p)) for p in per), []).append(row)
    out = []
    for _, members in sorted(groups.items()):
        tried = sorted({float(r[parameter]) for r in members})
        first, why = None, set()
        for x in tried:
            for r in (r for r in members if float(r[parameter]) == x):
                for m in metrics:
                    if exceeded(m, r.get(m.kpi)):
                        why.add(m.label)
            if why:
                first = x
                break
        below = [x for x in tried if first is None or x < first]
        out.append(
            HostingCapacity(
                group={p: members[0].get(p) for p in per},
                parameter=parameter,
                value=below[-1] if below else None,
                first_exceeded_at=first,
                exceeded_by=tuple(sorted(why)),
                tried=tuple(tried),
            )
        )
    return out
