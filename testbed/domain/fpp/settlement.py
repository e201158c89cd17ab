"""Delivery and settlement arithmetic of a contract (pure).

Each member declares a *baseline* before the window: the power its meter would show without the contract
[kW, generator convention]. Its *response* is the metered power against that baseline, in the contract's
direction (up: ``p_meter - p_baseline``; down: ``p_baseline - p_meter``; both: ``p_meter - p_baseline``,
signed, positive up). The buyer's *instruction* over the window (``required_kw`` per step, >= 0 for up and
down contracts, signed for both) is what it dispatched; a contract held but never dispatched has an
instruction of zeros.

Per step the response is credited in the instructed direction up to the instruction (over-delivery and
response the wrong way earn nothing):

    credited_t = clip(response_t * sign(required_t), 0, |required_t|)
    performance factor pf = sum credited_t / sum |required_t|        (1 when nothing was dispatched)

and the contract pays (``T`` the window length [h], ``dt`` the step [h]):

    availability = availability_price_per_kw_h * capacity_kw * T
    utilisation  = utilisation_price_per_kwh * sum credited_t * dt
    penalty      = availability * (1 - pf)                        (pro_rata)
                 = availability if pf < pf_threshold else 0       (threshold)
                 = penalty_price_per_kwh * (required - delivered) kWh   (per_kwh)
    total        = availability + utilisation - penalty

Within a coalition (:func:`settle_members`) the instruction is split in proportion to the members' awarded
capacity; the coalition is credited on its summed response (a member's extra covers another's shortfall),
the utilisation payment is split by each member's response in the instructed direction, and the penalty by
each member's shortfall against its own part of the instruction, so a member that fails to deliver pays for
it and the others are not touched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from testbed.domain.errors import UserError
from testbed.domain.fpp.contract import Contract


def response_kw(p_meter_kw: np.ndarray, p_baseline_kw: np.ndarray | float, direction: str) -> np.ndarray:
    """Metered response against the baseline in the contract's direction [kW per step]."""
    meter = np.asarray(p_meter_kw, dtype=float)
    base = np.broadcast_to(np.asarray(p_baseline_kw, dtype=float), meter.shape)
    if direction == "down":
        return base - meter
    if direction in ("up", "both"):
        return meter - base
    raise ValueError(f"direction must be up, down or both, got {direction!r}")


def baseline_mean_kw(p_meter_before_kw: np.ndarray) -> float:
    """A flat baseline: the mean metered power over a period before the window [kW] (e.g. the last hour)."""
    p = np.asarray(p_meter_before_kw, dtype=float)
    if p.size == 0 or not np.isfinite(p).all():
        raise ValueError("the baseline needs finite metered power before the window")
    return float(p.mean())


def credited_kw(required_kw: np.ndarray, response: np.ndarray) -> np.ndarray:
    """Response credited per step: in the instructed direction and up to the instruction [kW]."""
    req = np.asarray(required_kw, dtype=float)
    return np.clip(np.asarray(response, dtype=float) * np.sign(req), 0.0, np.abs(req))


@dataclass(frozen=True)
class Settlement:
    """What the buyer pays for one contract (or what one coalition earns) [currency, kWh, 0..1]."""

    availability_payment: float
    utilisation_payment: float
    penalty: float
    required_kwh: float
    delivered_kwh: float
    performance_factor: float

    @property
    def total(self) -> float:
        return self.availability_payment + self.utilisation_payment - self.penalty


def _steps(contract: Contract, series: np.ndarray, step_s: float, name: str) -> list[str]:
    n = contract.duration_h * 3600.0 / step_s
    if abs(n - round(n)) > 1e-9:
        return [f"step_s: the window ({contract.duration_h} h) is not a whole number of {step_s} s steps"]
    if series.shape != (round(n),):
        return [f"{name}: needs one value per {step_s:g} s step of the window ({round(n)}), got shape {series.shape}"]
    if not np.isfinite(series).all():
        return [f"{name}: must be finite"]
    return []


def settle(contract: Contract, required_kw: np.ndarray, response: np.ndarray, step_s: float) -> Settlement:
    """Settle a contract on the instruction and the (counted) response, one value per ``step_s`` [s] step."""
    req = np.asarray(required_kw, dtype=float)
    res = np.asarray(response, dtype=float)
    problems = _steps(contract, req, step_s, "required_kw") + _steps(contract, res, step_s, "response")
    if contract.direction != "both" and (req < 0).any():
        problems.append(f"required_kw: instructions of a contract {contract.direction} are >= 0")
    if problems:
        raise UserError(f"cannot settle contract {contract.id!r}", problems)
    dt_h = step_s / 3600.0
    required_kwh = float(np.abs(req).sum() * dt_h)
    delivered_kwh = float(credited_kw(req, res).sum() * dt_h)
    pf = delivered_kwh / required_kwh if required_kwh > 0 else 1.0
    availability = contract.availability_revenue
    rule = contract.penalty
    if rule.kind == "pro_rata":
        penalty = availability * (1.0 - pf)
    elif rule.kind == "threshold":
        penalty = availability if pf < rule.pf_threshold else 0.0
    else:
        penalty = rule.penalty_price_per_kwh * (required_kwh - delivered_kwh)
    return Settlement(
        availability_payment=availability, utilisation_payment=contract.utilisation_price_per_kwh * delivered_kwh,
        penalty=penalty, required_kwh=required_kwh, delivered_kwh=delivered_kwh, performance_factor=pf,
    )


@dataclass(frozen=True)
class MemberDelivery:
    """One member's part of a coalition's delivery [kWh counted at the location, currency]."""

    required_kwh: float
    """its part of the instruction (in proportion to its award)"""
    delivered_kwh: float
    """its response in the instructed direction, up to its part"""
    contribution_kwh: float
    """its response in the instructed direction, uncapped (splits the utilisation payment)"""
    shortfall_kwh: float
    """its part minus its credited response (splits the penalty)"""
    utilisation_payment: float
    penalty: float

    @property
    def performance_factor(self) -> float:
        return self.delivered_kwh / self.required_kwh if self.required_kwh > 0 else 1.0


def settle_members(
    contract: Contract,
    awarded_kw: Mapping[str, float],
    sensitivity: Mapping[str, float],
    required_kw: np.ndarray,
    member_response_kw: Mapping[str, np.ndarray],
    step_s: float,
) -> tuple[Settlement, dict[str, MemberDelivery]]:
    """Settle a coalition and split utilisation and penalty among its members (module docstring).

    ``awarded_kw``: each member's counted capacity; ``sensitivity``: its share counted at the location;
    ``member_response_kw``: each member's response at its own meter (counted here with its sensitivity).
    """
    members = list(awarded_kw)
    problems = [f"member_response_kw: no response for {m!r}" for m in members if m not in member_response_kw]
    problems += [f"sensitivity: none for {m!r}" for m in members if m not in sensitivity]
    problems += [f"member_response_kw: {m!r} is not in the coalition"
                 for m in member_response_kw if m not in awarded_kw]
    total_award = float(sum(awarded_kw.values()))
    if total_award <= 0:
        problems.append("awarded_kw: the coalition holds no capacity")
    if problems:
        raise UserError(f"cannot settle the coalition of contract {contract.id!r}", problems)
    req = np.asarray(required_kw, dtype=float)
    counted = {m: sensitivity[m] * np.asarray(member_response_kw[m], dtype=float) for m in members}
    coalition = settle(contract, req, sum(counted.values()), step_s)
    dt_h = step_s / 3600.0
    parts = {}
    for m in members:
        share = req * (awarded_kw[m] / total_award)
        credited = credited_kw(share, counted[m])
        parts[m] = (float(np.abs(share).sum() * dt_h), float(credited.sum() * dt_h),
                    float(np.maximum(counted[m] * np.sign(req), 0.0).sum() * dt_h),
                    float((np.abs(share) - credited).sum() * dt_h))
    contributions = sum(p[2] for p in parts.values())
    shortfalls = sum(p[3] for p in parts.values())
    out = {}
    for m, (required, delivered, contribution, shortfall) in parts.items():
        out[m] = MemberDelivery(
            required_kwh=required, delivered_kwh=delivered, contribution_kwh=contribution, shortfall_kwh=shortfall,
            utilisation_payment=coalition.utilisation_payment * contribution / contributions if contributions else 0.0,
            penalty=coalition.penalty * shortfall / shortfalls if shortfalls else 0.0,
        )
    return coalition, out


def payouts(costs: Mapping[str, float], shares: Mapping[str, float],
            deliveries: Mapping[str, MemberDelivery]) -> dict[str, float]:
    """What each member receives [currency]: its cost of taking part, its share of the coalition's surplus
    (from :mod:`.sharing`), its part of the utilisation payment, less its part of the penalty. Summed over the
    members this is the coalition's :attr:`Settlement.total` when the shares add up to the surplus."""
    return {m: costs[m] + shares[m] + deliveries[m].utilisation_payment - deliveries[m].penalty for m in costs}
