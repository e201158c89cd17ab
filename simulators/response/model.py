"""A coalition of prosumers' batteries answering a frequency at the fast step (pure: no mosaik).

Each member has contracted ``contracted_kw`` of its battery's power for a frequency service. At the start of
each baseline period it declares its baseline: the power its home's own controller asks of the battery at that
moment, limited to what the contract leaves (``±(rated_kw − contracted_kw)``), held through the period. At
every tick it asks its inverter for ``baseline + response(f)`` (the service's curve, from the frequency of the
tick) and reads what the inverter delivers (a device driver: OpenDER in-process,
:class:`simulators.devices.mosaik_sim.OpenDerDriver`). The delivered response is what it delivers above its
baseline.

The fleet steps slower: it sees each member's mean power over the slow step just ended (the energy its meter
counts) and its state of charge at the end of it.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from testbed.domain.services.frequency import ResponseController


class Driver(Protocol):
    def step(self, dt_s: float, *, f_hz=None, vm_pu=None, available_pct=None, p_set_kw=None) -> Any: ...


@dataclass
class Member:
    """One responding battery: ``pid`` its prosumer, ``index`` its position in the fleet's arrays."""

    pid: str
    index: int
    rated_kw: float
    contracted_kw: float
    controller: ResponseController
    driver: Driver
    baseline_kw: float = 0.0
    p_kw: float = 0.0
    soc: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.contracted_kw <= self.rated_kw:
            raise ValueError(f"member {self.pid}: contracted_kw {self.contracted_kw} must be in (0, {self.rated_kw}]")

    def declare(self, home_kw: float) -> None:
        """The baseline for the next period: the home's wish within what the contract leaves."""
        room = self.rated_kw - self.contracted_kw
        self.baseline_kw = float(min(room, max(-room, home_kw)))


class Samples:
    """The coalition's record, one value per tick, kept compact (8 bytes a value, a day at 20 Hz with 24
    members is ~0.5 GB): ``t_s`` the time at the end of the tick [s] (when the power was read), ``f_hz`` the
    frequency applied during it, ``delivered_kw`` the summed response above the baselines, ``required_kw`` the
    summed response the curve asked; :meth:`member_kw` each member's delivered response."""

    def __init__(self, n_members: int) -> None:
        self.n_members = n_members
        self.t_s = array("d")
        self.f_hz = array("d")
        self.delivered_kw = array("d")
        self.required_kw = array("d")
        self._member_kw = array("d")

    def add(self, t_s: float, f_hz: float, required_kw: float, member_kw: np.ndarray) -> None:
        """One tick's row."""
        self.t_s.append(t_s)
        self.f_hz.append(f_hz)
        self.delivered_kw.append(float(member_kw.sum()))
        self.required_kw.append(required_kw)
        self._member_kw.extend(member_kw)

    def member_kw(self) -> np.ndarray:
        """Each member's delivered response [kW], ticks × members."""
        return np.frombuffer(self._member_kw, dtype=float).reshape(-1, self.n_members)


class Coalition:
    """The members stepped together (module docstring). ``tick_s`` the fast step [s]; ``ticks_per_step`` fast
    steps per slow (fleet) step; ``baseline_ticks`` fast steps per baseline period."""

    def __init__(self, members: list[Member], tick_s: float, ticks_per_step: int, baseline_ticks: int) -> None:
        if not members:
            raise ValueError("a coalition needs at least one member")
        if baseline_ticks % ticks_per_step:
            raise ValueError(f"baseline_ticks {baseline_ticks}: not a whole number of slow steps ({ticks_per_step})")
        self.members = members
        self.tick_s = float(tick_s)
        self.ticks_per_step = int(ticks_per_step)
        self.baseline_ticks = int(baseline_ticks)
        self.samples = Samples(len(members))
        self._window_kw = np.zeros(len(members))
        self._window_n = 0
        self.mean_kw = np.zeros(len(members))

    def tick(self, tick: int, f_hz: float, home_kw: np.ndarray | None) -> None:
        """Step every member through tick ``tick`` at frequency ``f_hz``; ``home_kw`` the fleet's battery powers
        (its latest slow step, in fleet order; None when not known)."""
        t_s = tick * self.tick_s
        if tick % self.baseline_ticks == 0 and home_kw is not None:
            for m in self.members:
                m.declare(float(home_kw[m.index]))
        if tick % self.ticks_per_step == 0:
            self._window_kw[:] = 0.0
            self._window_n = 0
        delivered = np.empty(len(self.members))
        required = 0.0
        for i, m in enumerate(self.members):
            ask = m.controller.response_kw(t_s, f_hz)
            required += ask
            r = m.driver.step(self.tick_s, f_hz=f_hz, p_set_kw=m.baseline_kw + ask)
            m.p_kw = float(r.p_kw) if r.p_kw is not None else float("nan")
            m.soc = r.soc
            delivered[i] = m.p_kw - m.baseline_kw
            self._window_kw[i] += m.p_kw
        self._window_n += 1
        self.mean_kw = self._window_kw / self._window_n
        self.samples.add(t_s + self.tick_s, float(f_hz), required, delivered)

    @property
    def delivered_kw(self) -> float:
        """The summed response delivered in the last tick [kW]."""
        return self.samples.delivered_kw[-1] if self.samples.delivered_kw else 0.0

    @property
    def contracted_kw(self) -> float:
        return float(sum(m.contracted_kw for m in self.members))
