"""Grid-service contracts as data: what a buyer asks a federated power plant for (pure, no I/O).

A contract names its buyer, its service, a window, a direction, a capacity, where on the network it counts,
how firm the capacity must be, what it pays and how under-delivery is penalised. It is plain, versioned data
(:data:`CONTRACT_SCHEMA_VERSION`); :func:`parse_contract` validates a mapping (from a scenario's calendar, the
platform's forecast power flow or a message) and raises one :class:`~testbed.domain.errors.UserError` that
lists every problem with its field path, such as ``window.end: must be after window.start``.

Units and conventions
- Power in kW; *up* means more export or less import at the member's meter (generator convention), *down*
  means less export or more import, *both* means the member holds the capacity either way.
- ``capacity_kw`` is counted at the contract's location: a member at a bus with sensitivity ``s`` (the share
  of its kW that acts on the element or bus concerned, dimensionless, 0 < s <= 1) counts ``s`` times its kW.
  Frequency response and energy blocks are system-wide: every bus counts with ``s = 1``.
- ``confidence`` is the probability with which the coalition's capacity must be available: the firm capacity
  is the (1 - confidence) quantile of the pooled forecast (:mod:`testbed.domain.fpp.pooling`).
- Prices: ``availability_price_per_kw_h`` [currency/(kW·h)] pays for holding ``capacity_kw`` over the
  window; ``utilisation_price_per_kwh`` [currency/kWh] pays for energy delivered when dispatched; the penalty
  rule (:class:`PenaltyRule`) says how a performance factor below 1 reduces the payment
  (:mod:`testbed.domain.fpp.settlement`).

Times are local and naive (no time zone), as in scenario files; the orchestration layer maps them to
simulation time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, NaiveDatetime, ValidationError, model_validator

from testbed.domain.errors import UserError
from testbed.domain.scenario.loader import validation_problems

CONTRACT_SCHEMA_VERSION = 1
"""Version of the contract format; bump it when a field changes meaning."""

SERVICE_PRODUCT_PATTERN = r"^[a-z0-9]+(-[a-z0-9]+)*$"
"""A frequency-response product is named by a lower-case slug such as ``gb-dc-low`` or ``fcr``; the product
definitions themselves (curves, timing, scoring) live with the service definitions, not here."""

Buyer = Literal["tso", "dso", "supplier", "wholesale"]
ServiceKind = Literal["frequency_response", "congestion_relief", "voltage_support", "energy_block"]
Direction = Literal["up", "down", "both"]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Window(_Model):
    """The period the capacity is held, ``[start, end)`` in local time."""

    start: NaiveDatetime
    end: NaiveDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"end ({self.end.isoformat()}) must be after start ({self.start.isoformat()})")
        return self

    @property
    def duration_h(self) -> float:
        """Length of the window [h]."""
        return (self.end - self.start).total_seconds() / 3600.0

    def contains(self, other: Window) -> bool:
        return self.start <= other.start and other.end <= self.end


class FrequencyResponse(_Model):
    """Frequency response of a named product (e.g. ``gb-dc-low``), defined by the service definitions."""

    kind: Literal["frequency_response"] = "frequency_response"
    product: str = Field(pattern=SERVICE_PRODUCT_PATTERN, max_length=64)


class CongestionRelief(_Model):
    """Keep a network element (a line or transformer, e.g. ``trafo:0``) within its rating."""

    kind: Literal["congestion_relief"] = "congestion_relief"
    element: Name
    limit_kw: Positive | None = None
    """the element's rating the relief is sized against [kW] (documentation; sizing is in ``capacity_kw``)"""


class VoltageSupport(_Model):
    """Keep the voltage at some buses within a band."""

    kind: Literal["voltage_support"] = "voltage_support"
    buses: list[Name] = Field(min_length=1)
    v_min_pu: Positive | None = None
    v_max_pu: Positive | None = None


class EnergyBlock(_Model):
    """Deliver ``capacity_kw`` for the whole window (energy ``capacity_kw * duration_h`` [kWh])."""

    kind: Literal["energy_block"] = "energy_block"


Service = Annotated[FrequencyResponse | CongestionRelief | VoltageSupport | EnergyBlock, Field(discriminator="kind")]
SERVICE_KINDS: tuple[str, ...] = ServiceKind.__args__
LOCAL_SERVICES = ("congestion_relief", "voltage_support")


class Location(_Model):
    """Where a member must be to count, and how much of its kW counts there.

    ``eligible_buses`` maps each bus that can help to its sensitivity [dimensionless, 0 < s <= 1]: for
    congestion relief the magnitude of the element flow change per kW injected at the bus (a PTDF entry),
    for voltage support the bus's dV/dP on the supported bus relative to the most effective bus. A bus must
    reach ``min_sensitivity`` to be listed; a member elsewhere does not count.
    """

    eligible_buses: dict[Name, Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]] = Field(min_length=1)
    min_sensitivity: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)]

    @model_validator(mode="after")
    def _listed_buses_reach_minimum(self) -> Location:
        low = sorted(b for b, s in self.eligible_buses.items() if s < self.min_sensitivity)
        if low:
            raise ValueError(
                f"buses {low} have a sensitivity below min_sensitivity {self.min_sensitivity}: leave them out"
            )
        return self


class PenaltyRule(_Model):
    """How under-delivery reduces the payment; ``pf`` is the performance factor (0..1).

    - ``pro_rata``: the availability payment is scaled by ``pf`` (penalty = availability * (1 - pf)).
    - ``threshold``: full availability payment if ``pf >= pf_threshold``, none below it.
    - ``per_kwh``: full availability payment, minus ``penalty_price_per_kwh`` for every kWh not delivered.
    """

    kind: Literal["pro_rata", "threshold", "per_kwh"]
    pf_threshold: Fraction | None = None
    penalty_price_per_kwh: NonNegative | None = None

    @model_validator(mode="after")
    def _fields_of_kind(self) -> PenaltyRule:
        problems = []
        if self.kind == "threshold" and self.pf_threshold is None:
            problems.append("pf_threshold is needed for a threshold rule")
        if self.kind != "threshold" and self.pf_threshold is not None:
            problems.append(f"pf_threshold applies to threshold rules only, not {self.kind}")
        if self.kind == "per_kwh" and self.penalty_price_per_kwh is None:
            problems.append("penalty_price_per_kwh is needed for a per_kwh rule")
        if self.kind != "per_kwh" and self.penalty_price_per_kwh is not None:
            problems.append(f"penalty_price_per_kwh applies to per_kwh rules only, not {self.kind}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Contract(_Model):
    """One grid-service contract. See the module docstring for units and conventions."""

    schema_version: Literal[1] = CONTRACT_SCHEMA_VERSION
    id: Name
    buyer: Buyer
    service: Service
    window: Window
    direction: Direction
    capacity_kw: Positive
    location: Location | None = None
    """None for system-wide services (frequency response, energy block): every bus counts fully."""
    confidence: Annotated[float, Field(ge=0.5, lt=1.0, allow_inf_nan=False)]
    availability_price_per_kw_h: NonNegative
    utilisation_price_per_kwh: NonNegative
    penalty: PenaltyRule
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    """ISO 4217 code, e.g. ``EUR`` or ``GBP``."""
    expected_utilisation: Fraction = 1.0
    """the share of the window the buyer expects to dispatch [0..1]; members price their cycling with it.
    1.0 (the default) is the worst case: dispatched throughout."""
    min_offer_kw: NonNegative = 0.0
    """the smallest offer the buyer accepts from one member [kW, counted at the location]"""
    origin: str | None = Field(default=None, max_length=500)
    """where the contract came from (a calendar entry, the forecast overload it answers), for the ledger"""

    @property
    def duration_h(self) -> float:
        """Length of the window [h]."""
        return self.window.duration_h

    @property
    def availability_revenue(self) -> float:
        """What the buyer pays for holding the full capacity over the window [currency]."""
        return self.availability_price_per_kw_h * self.capacity_kw * self.duration_h

    def sensitivity_at(self, bus: str | None) -> float:
        """Share of a member's kW at ``bus`` that counts [0..1]; 0 where the member does not count."""
        if self.location is None:
            return 1.0
        if bus is None:
            return 0.0
        return float(self.location.eligible_buses.get(bus, 0.0))


_UNION_TAG = re.compile(r"^service\.(" + "|".join(SERVICE_KINDS) + r")(\.|:)")


def _problems(exc: ValidationError, prefix: str) -> list[str]:
    out = []
    for p in validation_problems(exc):
        p = _UNION_TAG.sub(lambda m: "service" + m.group(2), p)  # drop pydantic's union tag from the path
        if p.startswith("(top level)"):
            p = p[len("(top level)"):].lstrip(":").strip()
            out.append(f"{prefix}: {p}" if prefix else p)
        else:
            out.append(f"{prefix}.{p}" if prefix else p)
    return out


def _cross_problems(data: Mapping[str, Any], prefix: str) -> list[str]:
    """Rules between fields, checked on the raw values (where they have the right types) so that they are
    reported together with the field problems."""
    at = (lambda field: f"{prefix}.{field}") if prefix else (lambda field: field)
    service = data.get("service") if isinstance(data.get("service"), Mapping) else {}
    kind = service.get("kind")
    problems = []
    if kind in LOCAL_SERVICES and data.get("location") is None:
        problems.append(f"{at('location')}: a {kind} contract needs a location (the buses that can help)")
    if kind == "energy_block" and data.get("direction") == "both":
        problems.append(f"{at('direction')}: an energy block is either up or down, not both")
    lo, hi = service.get("v_min_pu"), service.get("v_max_pu")
    if kind == "voltage_support" and _number(lo) and _number(hi) and lo >= hi:
        problems.append(f"{at('service.v_max_pu')}: {hi} must be above v_min_pu {lo}")
    floor, cap = data.get("min_offer_kw"), data.get("capacity_kw")
    if _number(floor) and _number(cap) and 0 < cap < floor:
        problems.append(f"{at('min_offer_kw')}: {floor} exceeds capacity_kw {cap}")
    return problems


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def contract_problems(data: Any, prefix: str = "") -> list[str]:
    """Every problem of one contract given as a mapping, each with its field path (empty when valid)."""
    if isinstance(data, Contract):
        return []
    if not isinstance(data, Mapping):
        return [f"{prefix or '(contract)'}: expected a mapping, not {type(data).__name__}"]
    try:
        Contract.model_validate(dict(data))
        problems = []
    except ValidationError as exc:
        problems = _problems(exc, prefix)
    return problems + _cross_problems(data, prefix)


def parse_contract(data: Mapping[str, Any] | Contract) -> Contract:
    """Validate one contract; raise :class:`UserError` listing every problem with its field path."""
    if isinstance(data, Contract):
        return data
    problems = contract_problems(data)
    if problems:
        name = data.get("id") if isinstance(data, Mapping) else None
        raise UserError(f"contract {name!r} is invalid" if isinstance(name, str) else "contract is invalid",
                        problems)
    return Contract.model_validate(dict(data))


def parse_contracts(items: Any, where: str = "contracts") -> list[Contract]:
    """Validate a list of contracts (a scenario calendar); every problem of every contract at once, with
    paths such as ``contracts[2].window.end``; ids must be unique."""
    if not isinstance(items, list):
        raise UserError(f"{where} is invalid", [f"{where}: expected a list of contracts"])
    problems: list[str] = []
    for k, item in enumerate(items):
        problems += contract_problems(item, f"{where}[{k}]")
    ids = [item.get("id") if isinstance(item, Mapping) else getattr(item, "id", None) for item in items]
    for name in sorted({i for i in ids if isinstance(i, str) and ids.count(i) > 1}):
        problems.append(f"{where}{[k for k, i in enumerate(ids) if i == name]}.id: duplicate id {name!r}")
    if problems:
        raise UserError(f"{where}: {len(problems)} problem(s)", problems)
    return [parse_contract(item) for item in items]
