"""Service offers: what one member offers for a contract, and how its agent decides (pure).

An offer is the member's own decision, not a command: its agent looks at its battery and its owner's
preferences and offers the capacity it can hold for the *whole* window (energy- and power-limited, with a
reserve kept for the home), with the uncertainty of that capacity, at a price; or it declines, saying why.

Units: power in kW, energy in kWh, prices per kW per hour of availability [currency/(kW·h)] and per kWh,
state of charge as a fraction of ``capacity_kwh``. ``capacity_kw`` of an offer is at the member's meter;
the contract counts ``sensitivity * capacity_kw`` of it (:meth:`Contract.sensitivity_at`).

Battery model for the decision (the round-trip efficiency ``eta`` is split equally between charging and
discharging, as in :mod:`testbed.domain.der.battery`): holding ``p`` kW of discharge for ``T`` hours draws
``p * T / sqrt(eta)`` kWh from the cells, holding ``p`` kW of charge stores ``p * T * sqrt(eta)`` kWh. So

    up_kw(soc)   = clip((soc - floor) * capacity_kwh * sqrt(eta) / T, 0, p_max),  floor = max(soc_min, reserve_soc)
    down_kw(soc) = clip((soc_max - soc) * capacity_kwh / (sqrt(eta) * T), 0, p_max)
    both_kw(soc) = min(up_kw, down_kw)

with ``p_max = power_kw * max_power_share``. The state of charge at the window start is a forecast
``soc ± soc_sd``; the offer's mean and standard deviation are the exact moments of the piecewise-linear
function above of a Gaussian ``soc``, and the home's own net-load forecast error during the window
(``net_load_sd_kw``, seen by the meter the delivery is measured at) adds independently to the variance.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from statistics import NormalDist
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from testbed.domain.errors import UserError
from testbed.domain.fpp.contract import Contract, ServiceKind, Window, _problems

OFFER_SCHEMA_VERSION = 1

Name = Annotated[str, Field(min_length=1, max_length=200)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


class ServiceOffer(BaseModel):
    """One member's offer for one contract."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    schema_version: Literal[1] = OFFER_SCHEMA_VERSION
    id: Name
    """unique offer id; resending the same id is the same offer (idempotent)"""
    contract_id: Name
    member: Name
    """the prosumer making the offer (must be the sender)"""
    bus: Name
    capacity_kw: Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
    """mean capacity the member can hold for the whole window, at its meter [kW]"""
    capacity_sd_kw: NonNegative
    """standard deviation of the forecast error of that capacity [kW]"""
    price_per_kw_h: NonNegative
    """the member's ask for holding 1 kW for 1 h [currency/(kW·h)]: its cost of taking part"""
    window: Window | None = None
    """None: the contract's whole window; if given it must be that window (partial windows are not offered)"""
    sensitivity: Annotated[float, Field(gt=0.0, le=1.0, allow_inf_nan=False)] | None = None
    """if given, it must match the contract's sensitivity at ``bus``"""

    def cost(self, contract: Contract) -> float:
        """The member's cost of holding its capacity over the contract window [currency]."""
        return self.price_per_kw_h * self.capacity_kw * contract.duration_h


def offer_problems(offer: ServiceOffer, contracts: Mapping[str, Contract], sender: str | None = None) -> list[str]:
    """Why a well-formed offer cannot be accepted (empty when it can): unknown contract, another member's
    id, a window outside the contract, a bus that does not count, a capacity below the contract's minimum."""
    problems = []
    if sender is not None and offer.member != sender:
        problems.append(f"member: {offer.member!r} is not the sender {sender!r} (an offer is made by its member)")
    contract = contracts.get(offer.contract_id)
    if contract is None:
        problems.append(f"contract_id: unknown contract {offer.contract_id!r}")
        return problems
    if offer.window is not None and offer.window != contract.window:
        what = "lies outside" if not contract.window.contains(offer.window) else "covers only part of"
        problems.append(f"window: [{offer.window.start}, {offer.window.end}) {what} the contract window "
                        f"[{contract.window.start}, {contract.window.end})")
    s = contract.sensitivity_at(offer.bus)
    if s == 0.0:
        problems.append(f"bus: {offer.bus!r} is not eligible for contract {contract.id!r}")
    elif offer.sensitivity is not None and not math.isclose(offer.sensitivity, s, rel_tol=1e-9, abs_tol=1e-12):
        problems.append(f"sensitivity: {offer.sensitivity} differs from the contract's {s} at bus {offer.bus!r}")
    elif s * offer.capacity_kw < contract.min_offer_kw - 1e-12:
        problems.append(f"capacity_kw: counts {s * offer.capacity_kw:g} kW at the location, below the contract's "
                        f"min_offer_kw {contract.min_offer_kw:g}")
    return problems


def parse_offer(data: Mapping[str, Any] | ServiceOffer, contracts: Mapping[str, Contract],
                sender: str | None = None) -> ServiceOffer:
    """Validate an offer against the known contracts; raise :class:`UserError` listing every problem."""
    if isinstance(data, ServiceOffer):
        offer = data
    else:
        if not isinstance(data, Mapping):
            raise UserError("service offer is invalid", [f"(offer): expected a mapping, not {type(data).__name__}"])
        try:
            offer = ServiceOffer.model_validate(dict(data))
        except ValidationError as exc:
            raise UserError("service offer is invalid", _problems(exc, "")) from None
    problems = offer_problems(offer, contracts, sender)
    if problems:
        raise UserError(f"service offer {offer.id!r} is invalid", problems)
    return offer


# --- the agent's decision --------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatteryLimits:
    """A home battery as plain numbers (to be replaced by the unified battery model of ``testbed.domain.der``)."""

    capacity_kwh: float
    power_kw: float
    round_trip_efficiency: float
    soc_min: float
    soc_max: float
    soc: float
    """state of charge expected at the window start [0..1]"""

    def problems(self) -> list[str]:
        out = []
        for name in ("capacity_kwh", "power_kw"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v >= 0):
                out.append(f"{name}: must be a finite number >= 0, got {v}")
        if not (0 < self.round_trip_efficiency <= 1):
            out.append(f"round_trip_efficiency: must be in (0, 1], got {self.round_trip_efficiency}")
        if not (0 <= self.soc_min <= self.soc_max <= 1):
            out.append(f"soc_min/soc_max: need 0 <= soc_min <= soc_max <= 1, got {self.soc_min}, {self.soc_max}")
        if not (0 <= self.soc <= 1):
            out.append(f"soc: must be in [0, 1], got {self.soc}")
        return out


def window_limits(*, capacity_kwh: float, power_kw: float, round_trip_efficiency: float, soc_min: float,
                  soc_max: float, soc_start: float, own_kw: np.ndarray, step_h: float,
                  committed_soc: float = 0.0) -> BatteryLimits:
    """The battery as a home's agent sees it for a contract window: the home comes first.

    ``soc_start`` is the state of charge forecast for the window's start under the home's own controller and
    ``committed_soc`` what contracts the member already holds earlier in the day will have added (< 0: used);
    ``own_kw`` is the battery power the home's own controller is forecast to use in each step of the window
    [kW, > 0 discharging] and ``step_h`` the step [h]. The agent counts the state of charge left after the home's
    own use, ``soc_start + committed_soc - sum(own_kw) * step_h / capacity_kwh`` (clipped to 0..1), and the power
    the home leaves, ``power_kw - max |own_kw|``.
    """
    own = np.asarray(own_kw, dtype=float)
    soc = soc_start + committed_soc - float(own.sum()) * step_h / capacity_kwh
    return BatteryLimits(capacity_kwh=capacity_kwh, power_kw=max(0.0, power_kw - float(np.abs(own).max(initial=0.0))),
                         round_trip_efficiency=round_trip_efficiency, soc_min=soc_min, soc_max=soc_max,
                         soc=float(min(max(soc, 0.0), 1.0)))


class OfferPreferences(BaseModel):
    """What the owner allows its agent to offer.

    - ``services``: service kinds the owner takes part in (None: all).
    - ``reserve_soc``: state of charge kept for the home, never offered [0..1].
    - ``max_power_share``: share of the battery's power that may be committed [0..1].
    - ``availability_premium_per_kw_h``: what the owner wants for holding 1 kW for 1 h [currency/(kW·h)].
    - ``degradation_cost_per_kwh``: cost of cycling the battery [currency/kWh of throughput].

    The agent asks ``availability_premium_per_kw_h + degradation_cost_per_kwh * expected_utilisation`` per
    kW per hour and declines a contract whose availability plus expected utilisation pay is below that.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    services: tuple[ServiceKind, ...] | None = None
    reserve_soc: Fraction = 0.0
    max_power_share: Fraction = 1.0
    availability_premium_per_kw_h: NonNegative = 0.0
    degradation_cost_per_kwh: NonNegative = 0.0


@dataclass(frozen=True)
class Decline:
    """The agent does not offer; ``reason`` says why (for the owner's log and the platform's statistics)."""

    contract_id: str
    member: str
    reason: str


def headroom_kw(battery: BatteryLimits, direction: str, duration_h: float, prefs: OfferPreferences,
                soc: float | None = None) -> float:
    """Power the battery can hold for ``duration_h`` hours in ``direction`` at state of charge ``soc`` [kW]."""
    soc = battery.soc if soc is None else soc
    p_max = battery.power_kw * prefs.max_power_share
    if battery.capacity_kwh <= 0 or p_max <= 0:
        return 0.0
    k_up, k_down, floor = _slopes(battery, duration_h, prefs)
    up = min(max((soc - floor) * k_up, 0.0), p_max)
    down = min(max((battery.soc_max - soc) * k_down, 0.0), p_max)
    return {"up": up, "down": down}.get(direction, min(up, down))


def _slopes(battery: BatteryLimits, duration_h: float, prefs: OfferPreferences) -> tuple[float, float, float]:
    eta_half = math.sqrt(battery.round_trip_efficiency)
    k_up = battery.capacity_kwh * eta_half / duration_h
    k_down = battery.capacity_kwh / (eta_half * duration_h)
    return k_up, k_down, max(battery.soc_min, prefs.reserve_soc)


def decide_offer(
    contract: Contract,
    *,
    member: str,
    bus: str,
    battery: BatteryLimits,
    prefs: OfferPreferences,
    soc_sd: float = 0.0,
    net_load_sd_kw: float = 0.0,
    offer_id: str | None = None,
) -> ServiceOffer | Decline:
    """The agent's offer for ``contract`` from its battery and its owner's preferences, or why it declines.

    ``soc_sd``: standard deviation of the state-of-charge forecast at the window start [fraction];
    ``net_load_sd_kw``: standard deviation of the home's net-load forecast error during the window [kW].
    """
    problems = battery.problems()
    if not (math.isfinite(soc_sd) and soc_sd >= 0):
        problems.append(f"soc_sd: must be >= 0, got {soc_sd}")
    if not (math.isfinite(net_load_sd_kw) and net_load_sd_kw >= 0):
        problems.append(f"net_load_sd_kw: must be >= 0, got {net_load_sd_kw}")
    if problems:
        raise UserError(f"cannot decide an offer for member {member!r}", problems)

    def decline(reason: str) -> Decline:
        return Decline(contract.id, member, reason)

    kind = contract.service.kind
    if prefs.services is not None and kind not in prefs.services:
        return decline(f"the owner does not take part in {kind}")
    s = contract.sensitivity_at(bus)
    if s == 0.0:
        return decline(f"bus {bus!r} does not count for this contract")
    u = contract.expected_utilisation
    ask = prefs.availability_premium_per_kw_h + prefs.degradation_cost_per_kwh * u
    pay = contract.availability_price_per_kw_h + contract.utilisation_price_per_kwh * u
    if ask > pay:
        return decline(f"the contract pays {pay:.4g} per kW·h, the owner asks {ask:.4g}")
    mean_kw, sd_kw = _capacity_moments(battery, contract.direction, contract.duration_h, prefs, soc_sd)
    sd_kw = math.sqrt(sd_kw * sd_kw + net_load_sd_kw * net_load_sd_kw)
    if mean_kw <= 1e-9:
        return decline("no headroom: the battery cannot hold any power for the whole window")
    if s * mean_kw < contract.min_offer_kw:
        return decline(f"{s * mean_kw:.3g} kW counts at the location, below the contract's minimum "
                       f"{contract.min_offer_kw:g} kW")
    return ServiceOffer(
        id=offer_id or f"{contract.id}:{member}", contract_id=contract.id, member=member, bus=bus,
        capacity_kw=round(mean_kw, 9), capacity_sd_kw=round(sd_kw, 9), price_per_kw_h=ask, sensitivity=s,
    )


def _capacity_moments(battery: BatteryLimits, direction: str, duration_h: float, prefs: OfferPreferences,
                      soc_sd: float) -> tuple[float, float]:
    """Mean and standard deviation [kW] of :func:`headroom_kw` when the state of charge is N(soc, soc_sd)."""
    if soc_sd == 0.0:
        return headroom_kw(battery, direction, duration_h, prefs), 0.0
    p_max = battery.power_kw * prefs.max_power_share
    if battery.capacity_kwh <= 0 or p_max <= 0:
        return 0.0, 0.0
    k_up, k_down, floor = _slopes(battery, duration_h, prefs)
    # headroom is piecewise linear in soc; its knots are where a limit starts or stops binding
    knots = {floor, floor + p_max / k_up, battery.soc_max, battery.soc_max - p_max / k_down,
             (floor * k_up + battery.soc_max * k_down) / (k_up + k_down)}  # the last: up = down
    xs = sorted(knots)
    ys = [headroom_kw(battery, direction, duration_h, prefs, soc=x) for x in xs]
    return piecewise_linear_normal_moments(xs, ys, battery.soc, soc_sd)


def piecewise_linear_normal_moments(xs: list[float], ys: list[float], mean: float, sd: float) -> tuple[float, float]:
    """Exact mean and standard deviation of ``h(X)`` for ``X ~ N(mean, sd^2)``, where ``h`` interpolates
    ``(xs, ys)`` linearly and is constant beyond the first and last knot (``xs`` increasing)."""
    nd = NormalDist(mean, sd)
    edges = [-math.inf, *xs, math.inf]
    m1 = m2 = 0.0
    for k in range(len(edges) - 1):
        lo, hi = edges[k], edges[k + 1]
        if hi <= lo:
            continue
        if k == 0 or k == len(edges) - 2 or xs[k] == xs[k - 1]:
            yk = ys[0] if k == 0 else ys[-1] if k == len(edges) - 2 else ys[k]
            alpha, beta = yk, 0.0
        else:
            beta = (ys[k] - ys[k - 1]) / (xs[k] - xs[k - 1])
            alpha = ys[k - 1] - beta * xs[k - 1]
        p, e1, e2 = _truncated_moments(nd, lo, hi)
        m1 += alpha * p + beta * e1
        m2 += alpha * alpha * p + 2 * alpha * beta * e1 + beta * beta * e2
    return m1, math.sqrt(max(m2 - m1 * m1, 0.0))


def _truncated_moments(nd: NormalDist, lo: float, hi: float) -> tuple[float, float, float]:
    """``P(lo < X < hi)``, ``E[X; lo < X < hi]`` and ``E[X^2; lo < X < hi]`` for ``X ~ nd``."""
    m, s = nd.mean, nd.stdev
    std = NormalDist()
    a = (lo - m) / s if math.isfinite(lo) else -math.inf
    b = (hi - m) / s if math.isfinite(hi) else math.inf
    pa, pb = (std.cdf(a) if math.isfinite(a) else 0.0), (std.cdf(b) if math.isfinite(b) else 1.0)
    fa, fb = (std.pdf(a) if math.isfinite(a) else 0.0), (std.pdf(b) if math.isfinite(b) else 0.0)
    afa, bfb = (a * fa if math.isfinite(a) else 0.0), (b * fb if math.isfinite(b) else 0.0)
    p = pb - pa
    e1 = m * p + s * (fa - fb)
    e2 = (m * m + s * s) * p + 2 * m * s * (fa - fb) + s * s * (afa - bfb)
    return p, e1, e2
