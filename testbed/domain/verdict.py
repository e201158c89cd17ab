"""Verdicts as data (pure): every check of a run or a test is a :class:`Criterion` with its figure, and a
:class:`Verdict` is their conjunction.

``report.html``, ``verdict.json``, ``kpis.json`` and the exit status of ``fpp run --check`` and ``fpp test``
all come from one :class:`Verdict`:

- ``pass`` (exit 0): every criterion passed;
- ``fail`` (exit 1): at least one criterion failed;
- ``inconclusive`` (exit 1): no criterion failed, but at least one could not be judged (a figure is
  missing, or the run's timing did not allow a judgement); a CI pipeline must not take it for a pass;
- ``fault`` (exit 3): a device or a service failed, so the run ended early; the criteria judged on what was
  measured until then are kept.

The grid and market criteria of a scenario run are here too (:func:`grid_criteria`,
:func:`market_criteria`); other parts (contracts, services) add their own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from testbed.domain.errors import EXIT_FAULT, EXIT_OK, EXIT_VERDICT_FAILED

Status = Literal["pass", "fail", "inconclusive", "fault"]

#: Market interval outcomes that are not a failure of the market (an interval without orders is normal).
MARKET_OK = frozenset({"optimal", "cleared", "no_orders"})


@dataclass(frozen=True)
class Criterion:
    """One check: what is required, the figure measured against it, and whether it holds.

    ``passed`` is None when the criterion could not be judged (no figure). ``figure`` and ``limit`` are in
    ``unit``; ``detail`` is one line for people; ``group`` says which part of the run it checks (``grid``,
    ``market``, ``fpp``, ``service``...).
    """

    name: str
    passed: bool | None
    figure: float | None = None
    limit: float | None = None
    unit: str = ""
    detail: str = ""
    group: str = "grid"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The conjunction of criteria; ``fault`` names a device or service failure that ended the run early,
    ``inconclusive`` a reason no judgement can be given (both ``None`` normally)."""

    criteria: tuple[Criterion, ...] = ()
    fault: str | None = None
    inconclusive: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def status(self) -> Status:
        if self.fault is not None:
            return "fault"
        if any(c.passed is False for c in self.criteria):
            return "fail"
        if self.inconclusive is not None or any(c.passed is None for c in self.criteria):
            return "inconclusive"
        return "pass"

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def exit_code(self) -> int:
        return {"pass": EXIT_OK, "fail": EXIT_VERDICT_FAILED, "inconclusive": EXIT_VERDICT_FAILED}.get(
            self.status, EXIT_FAULT
        )

    def failed(self) -> list[Criterion]:
        return [c for c in self.criteria if c.passed is False]

    def with_criteria(self, more: Iterable[Criterion]) -> Verdict:
        return Verdict(tuple(self.criteria) + tuple(more), self.fault, self.inconclusive, self.notes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "fault": self.fault,
            "inconclusive": self.inconclusive,
            "notes": list(self.notes),
            "criteria": [c.as_dict() for c in self.criteria],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        return cls(
            criteria=tuple(Criterion(**c) for c in data.get("criteria", [])),
            fault=data.get("fault"),
            inconclusive=data.get("inconclusive"),
            notes=tuple(data.get("notes", [])),
        )

    def summary(self) -> str:
        """One line: the status and, when it did not pass, which criteria failed or why."""
        if self.status == "pass":
            return f"PASS ({len(self.criteria)} criteria)"
        if self.status == "fault":
            return f"FAULT: {self.fault}"
        if self.status == "inconclusive":
            why = self.inconclusive or ", ".join(c.name for c in self.criteria if c.passed is None)
            return f"INCONCLUSIVE: {why}"
        return "FAIL: " + "; ".join(f"{c.name} ({c.detail})" for c in self.failed())


def _finite(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def at_most(name: str, figure: Any, limit: float, unit: str, detail: str, group: str = "grid") -> Criterion:
    """``figure <= limit``; a missing or NaN figure cannot be judged (every step failed, no element)."""
    f = _finite(figure)
    return Criterion(name, None if f is None else f <= limit, f, limit, unit, detail, group)


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def grid_criteria(kpis: Mapping[str, Any], v_min_pu: float, v_max_pu: float) -> list[Criterion]:
    """Power flow, voltage band and thermal limits of a run, from its KPIs (:mod:`testbed.domain.kpis`)."""
    steps, failed = kpis["steps"], kpis["non_converged_steps"]
    outside = kpis["minutes_outside_voltage_limits"]
    v_lo, v_hi = _finite(kpis.get("v_min_pu")), _finite(kpis.get("v_max_pu"))
    line, trafo = _finite(kpis.get("peak_line_loading_pct")), _finite(kpis.get("peak_trafo_loading_pct"))
    return [
        Criterion(
            "power flow converged at every step", failed == 0, float(failed), 0.0, "steps",
            f"{failed} of {steps} steps did not converge",
        ),
        Criterion(
            f"voltages within {v_min_pu:g}..{v_max_pu:g} pu", outside == 0, float(outside), 0.0, "min",
            f"{_fmt(v_lo, '.4f')}..{_fmt(v_hi, '.4f')} pu; {outside:g} min outside the limits",
        ),
        at_most("lines within their rating", line, 100.0, "%", f"peak loading {_fmt(line)} %"),
        at_most("transformers within their rating", trafo, 100.0, "%", f"peak loading {_fmt(trafo)} %"),
    ]


def market_criteria(market: Mapping[str, Any]) -> list[Criterion]:
    """Every market interval cleared (an interval without orders is not a failure)."""
    status = market.get("interval_status", {})
    bad = sum(n for s, n in status.items() if s not in MARKET_OK)
    return [
        Criterion(
            "every market interval cleared", bad == 0, float(bad), 0.0, "intervals",
            ", ".join(f"{n} {s}" for s, n in sorted(status.items())) or "no intervals", group="market",
        )
    ]
