"""Members following their awards with their own batteries, and their meters over the windows (pure).

A :class:`Schedule` is one member's part of one contract: from step ``start`` on, for ``len(meter_kw)``
steps, the home aims its net power (generator convention) at ``baseline_kw + meter_kw[i]``: its declared
baseline plus its part of the buyer's instruction at its own meter. The home's battery does it within its
limits (the fleet's ``p_service_target_kw``, which wins over a market trade's target); a member marked
``fails`` does not follow (a device fault) and its home keeps its own controller. Whether it follows or not,
its meter is read over the window: the delivery report it sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Schedule:
    member: str
    """the member's id in the world (the fleet's id)"""
    contract_id: str
    start: int
    """first step of the window"""
    baseline_kw: float
    meter_kw: tuple[float, ...]
    """its part of the instruction at its meter, one value per step of the window [kW]"""
    fails: bool = False

    @property
    def end(self) -> int:
        return self.start + len(self.meter_kw)


@dataclass
class Delivery:
    """Targets per step and metered power per schedule."""

    schedules: list[Schedule]
    metered: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def targets(self, step: int) -> dict[str, float]:
        """Net-power targets of the members that follow a schedule at ``step`` [kW]."""
        out: dict[str, float] = {}
        for s in self.schedules:
            if s.start <= step < s.end and not s.fails:
                out[s.member] = out.get(s.member, 0.0) + s.baseline_kw + s.meter_kw[step - s.start]
        return out

    def meter(self, step: int, p_kw: dict[str, float]) -> None:
        """Record each scheduled member's metered net power of ``step`` [kW]."""
        for s in self.schedules:
            if s.start <= step < s.end and s.member in p_kw:
                self.metered.setdefault((s.member, s.contract_id), []).append(float(p_kw[s.member]))
