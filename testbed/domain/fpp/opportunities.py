"""Finding what a DSO needs from a forecast power flow: congestion-relief and voltage-support contracts (pure).

The orchestration layer runs a power flow of the next day on the members' forecasts and hands the results
here as arrays, with the network sensitivities of the market's linearised network model
(:mod:`testbed.domain.market.network`: ``flow_kw = base + ptdf @ injection_kw``,
``vm_pu = v0 + dvdp @ injection_kw``, injections in kW, generator convention). This module turns every
forecast limit violation into a contract:

- **Congestion relief** on an element whose flow ``f`` exceeds its rating ``L``: the overload is
  ``|f| - L`` [kW]. Injecting ``dp`` kW at bus ``b`` changes the flow by ``ptdf[e, b] * dp``, so it relieves
  the element by ``-sign(f) * ptdf[e, b]`` per kW: buses where that is positive help by exporting more (*up*),
  buses where it is negative by importing more (*down*). The contract takes the direction of the most
  effective bus; each bus's sensitivity is its relief per kW in that direction, and only buses reaching
  ``min_sensitivity`` are eligible. The capacity is the largest overload in the window (times
  ``1 + margin``) in kW of relief, so a member counts ``sensitivity * kW`` (:meth:`Contract.sensitivity_at`).
- **Voltage support** at a bus whose voltage leaves ``[v_min_pu, v_max_pu]``: an under-voltage is corrected by
  exporting more (*up*), an over-voltage by importing more (*down*). With ``dvdp[k, b]`` the voltage change at
  the worst bus ``k`` per kW at bus ``b`` and ``r = max_b dvdp[k, b]`` (the most effective bus), the capacity is
  the largest deviation divided by ``r`` [kW at the most effective bus] and bus ``b``'s sensitivity is
  ``dvdp[k, b] / r``. One contract covers every bus out of band in the same window, sized on the worst one
  (a simplification: buses on other branches may need their own sensitivities).

Violations in consecutive steps form one window; windows closer than ``merge_gap_s`` are merged; each window
is a separate contract, identified deterministically from its element (or bus) and start.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from testbed.domain.errors import UserError
from testbed.domain.fpp.contract import Contract, PenaltyRule, parse_contract

if TYPE_CHECKING:  # the market package imports its solvers; the network model is only read here
    from testbed.domain.market.case import Network


class DsoTerms(BaseModel):
    """What the DSO offers for the contracts it advertises (prices, firmness, penalty) and how they are sized."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    availability_price_per_kw_h: float = Field(ge=0)
    utilisation_price_per_kwh: float = Field(ge=0)
    penalty: PenaltyRule
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    confidence: float = Field(ge=0.5, lt=1.0)
    min_sensitivity: float = Field(0.5, gt=0, le=1)
    """a bus must relieve at least this share of its kW (relative to the best bus for voltage) to count"""
    margin: float = Field(0.0, ge=0)
    """capacity = largest overload * (1 + margin)"""
    merge_gap_s: float = Field(0.0, ge=0)
    """violations separated by at most this long a gap [s] form one window"""
    expected_utilisation: float = Field(1.0, ge=0, le=1)
    id_prefix: str = Field("dso", min_length=1)


@dataclass(frozen=True)
class Forecast:
    """A day-ahead forecast power flow: one row per step of ``step_s`` seconds from ``start``.

    ``flow_kw`` [steps x elements] is the signed flow of each monitored element, ``limit_kw`` its rating;
    ``vm_pu`` [steps x monitored buses] the forecast voltages, within ``[v_min_pu, v_max_pu]`` (one value or
    one per monitored bus); ``ptdf`` [elements x buses] the flow change per kW injected at each bus and
    ``dvdp_pu_per_kw`` [monitored buses x buses] the voltage change per kW injected. ``buses`` are the buses
    members can be at (the columns of the sensitivities).
    """

    start: datetime
    step_s: float
    elements: Sequence[str]
    flow_kw: np.ndarray
    limit_kw: np.ndarray
    buses: Sequence[str]
    ptdf: np.ndarray
    monitored_buses: Sequence[str] = ()
    vm_pu: np.ndarray | None = None
    dvdp_pu_per_kw: np.ndarray | None = None
    v_min_pu: float | np.ndarray = 0.9
    v_max_pu: float | np.ndarray = 1.1

    def problems(self) -> list[str]:
        t = np.shape(self.flow_kw)[0] if np.ndim(self.flow_kw) == 2 else -1
        e, b, m = len(self.elements), len(self.buses), len(self.monitored_buses)
        vm = np.zeros((t, 0)) if self.vm_pu is None else self.vm_pu
        dvdp = np.zeros((0, b)) if self.dvdp_pu_per_kw is None else self.dvdp_pu_per_kw
        shapes = {"flow_kw": (self.flow_kw, (t, e)), "limit_kw": (self.limit_kw, (e,)), "ptdf": (self.ptdf, (e, b)),
                  "vm_pu": (vm, (t, m)), "dvdp_pu_per_kw": (dvdp, (m, b))}
        out = [f"{name}: shape {np.shape(arr)}, expected {want}" for name, (arr, want) in shapes.items()
               if np.shape(arr) != want]
        out += [f"{name}: must be finite" for name, (arr, want) in shapes.items()
                if np.shape(arr) == want and not np.isfinite(np.asarray(arr, float)).all()]
        if self.step_s <= 0:
            out.append(f"step_s: must be > 0, got {self.step_s}")
        if np.shape(self.limit_kw) == (e,) and (np.asarray(self.limit_kw) <= 0).any():
            out.append("limit_kw: ratings must be > 0")
        if not (np.asarray(self.v_min_pu) < np.asarray(self.v_max_pu)).all():
            out.append(f"v_min_pu ({self.v_min_pu}) must be below v_max_pu ({self.v_max_pu})")
        return out


def forecast_from_network(network: Network, start: datetime, step_s: float, flow_kw: np.ndarray,
                          vm_pu: np.ndarray | None = None, buses: Sequence[str] | None = None) -> Forecast:
    """A :class:`Forecast` whose elements, ratings and sensitivities are the market's linearised network
    (``network.lines`` give the elements, their ``limit_kw`` and PTDF rows; ``network.voltages`` the monitored
    buses, their dV/dP rows and voltage bands). ``flow_kw`` has one column per line, ``vm_pu`` one per
    monitored bus, in the network's order; ``buses`` defaults to every bus a sensitivity names."""
    if buses is None:
        named = [b for line in network.lines for b in line.ptdf] + [b for v in network.voltages
                                                                      for b in v.dv_dp_pu_per_kw]
        buses = list(dict.fromkeys(named))
    voltages = network.voltages
    return Forecast(
        start=start, step_s=step_s, elements=[line.id for line in network.lines], flow_kw=np.asarray(flow_kw, float),
        limit_kw=np.array([line.limit_kw for line in network.lines]), buses=list(buses),
        ptdf=np.array([[line.ptdf.get(b, 0.0) for b in buses] for line in network.lines]).reshape(-1, len(buses)),
        monitored_buses=[v.bus for v in voltages],
        vm_pu=None if vm_pu is None else np.asarray(vm_pu, float),
        dvdp_pu_per_kw=np.array([[v.dv_dp_pu_per_kw.get(b, 0.0) for b in buses] for v in voltages]).reshape(
            -1, len(buses)),
        v_min_pu=np.array([v.v_min_pu for v in voltages]), v_max_pu=np.array([v.v_max_pu for v in voltages]),
    )


def runs(flags: np.ndarray, max_gap_steps: int = 0) -> list[tuple[int, int]]:
    """``[start, end)`` step ranges where ``flags`` is true, merging runs separated by <= ``max_gap_steps``."""
    idx = np.flatnonzero(np.asarray(flags, dtype=bool))
    if idx.size == 0:
        return []
    out = []
    start = prev = int(idx[0])
    for i in idx[1:]:
        if i - prev - 1 > max_gap_steps:
            out.append((start, prev + 1))
            start = int(i)
        prev = int(i)
    out.append((start, prev + 1))
    return out


def find_dso_contracts(forecast: Forecast, terms: DsoTerms) -> list[Contract]:
    """Every congestion-relief and voltage-support contract the forecast calls for (module docstring)."""
    problems = forecast.problems()
    if problems:
        raise UserError("the forecast power flow cannot be used to find contracts", problems)
    gap = int(terms.merge_gap_s // forecast.step_s)
    contracts = []
    flow = np.asarray(forecast.flow_kw, dtype=float)
    limit = np.asarray(forecast.limit_kw, dtype=float)
    ptdf = np.asarray(forecast.ptdf, dtype=float)
    for e, element in enumerate(forecast.elements):
        over = np.abs(flow[:, e]) - limit[e]
        for sign in (1.0, -1.0):  # overloads in either flow direction are separate windows
            for lo, hi in runs((over > 0) & (np.sign(flow[:, e]) == sign), gap):
                relief = -sign * ptdf[e]  # kW of relief per kW injected at each bus
                peak = int(lo + np.argmax(over[lo:hi]))
                origin = (f"forecast power flow: {element} carries {abs(flow[peak, e]):.1f} kW against a rating of "
                          f"{limit[e]:.1f} kW ({abs(flow[peak, e]) / limit[e]:.0%}) at step {peak}")
                service = {"kind": "congestion_relief", "element": element, "limit_kw": float(limit[e])}
                c = _contract(forecast, terms, lo, hi, float(over[lo:hi].max()), relief, service, origin, element)
                if c is not None:
                    contracts.append(c)
    if forecast.vm_pu is None or not len(forecast.monitored_buses):
        return contracts
    vm = np.asarray(forecast.vm_pu, dtype=float)
    dvdp = np.asarray(forecast.dvdp_pu_per_kw, dtype=float)
    v_min = np.broadcast_to(np.asarray(forecast.v_min_pu, dtype=float), vm.shape[1:])
    v_max = np.broadcast_to(np.asarray(forecast.v_max_pu, dtype=float), vm.shape[1:])
    for low in (True, False):
        dev = (v_min - vm) if low else (vm - v_max)  # > 0 out of band [pu]
        for lo, hi in runs((dev > 0).any(axis=1), gap):
            window = dev[lo:hi]
            step, k = np.unravel_index(int(np.argmax(window)), window.shape)
            best = float(dvdp[k].max())
            if best <= 0:
                continue
            sens = dvdp[k] / best * (1.0 if low else -1.0)  # up helps under-voltage, down over-voltage
            bad = [forecast.monitored_buses[j] for j in np.flatnonzero((window > 0).any(axis=0))]
            name = forecast.monitored_buses[k]
            band = (float(v_min[k]), float(v_max[k]))
            origin = (f"forecast power flow: {name} at {vm[lo + step, k]:.4f} pu, outside [{band[0]}, {band[1]}] pu "
                      f"at step {lo + step}")
            service = {"kind": "voltage_support", "buses": bad,
                       **({"v_min_pu": band[0]} if low else {"v_max_pu": band[1]})}
            c = _contract(forecast, terms, lo, hi, float(window.max()) / best, sens, service, origin, name)
            if c is not None:
                contracts.append(c)
    return contracts


def _contract(forecast: Forecast, terms: DsoTerms, lo: int, hi: int, need_kw: float, relief: np.ndarray,
              service: dict[str, Any], origin: str, subject: str) -> Contract | None:
    """One contract for steps ``[lo, hi)`` needing ``need_kw`` of relief, where ``relief[b]`` is the relief per
    kW *exported* at bus ``b``; None (with no contract) when no bus reaches ``min_sensitivity``."""
    up, down = np.maximum(relief, 0.0), np.maximum(-relief, 0.0)
    direction, sens = ("up", up) if up.max() >= down.max() else ("down", down)
    eligible = {forecast.buses[b]: round(float(min(sens[b], 1.0)), 6)
                for b in np.flatnonzero(sens >= terms.min_sensitivity)}
    if not eligible:
        return None
    start = forecast.start + timedelta(seconds=lo * forecast.step_s)
    end = forecast.start + timedelta(seconds=hi * forecast.step_s)
    return parse_contract({
        "id": f"{terms.id_prefix}-{service['kind'].replace('_', '-')}-{subject}-{start:%Y%m%dT%H%M}",
        "buyer": "dso", "service": service, "window": {"start": start, "end": end}, "direction": direction,
        "capacity_kw": round(need_kw * (1.0 + terms.margin), 6),
        "location": {"eligible_buses": eligible, "min_sensitivity": terms.min_sensitivity},
        "confidence": terms.confidence, "availability_price_per_kw_h": terms.availability_price_per_kw_h,
        "utilisation_price_per_kwh": terms.utilisation_price_per_kwh, "penalty": terms.penalty.model_dump(),
        "currency": terms.currency, "expected_utilisation": terms.expected_utilisation, "origin": origin,
    })
