"""Frequency sources for the co-simulation (pure: no mosaik).

- :class:`SignalPlayer`: plays a :class:`~testbed.domain.services.signals.TestSignal` (steps, ramps, sines, loss
  of infeed, a recorded series, IEEE 1547.1 step sequences);
- :class:`SingleAreaModel`: a single-area power system whose frequency answers its power balance, so that the
  response of devices (and of a federation of them) changes the frequency it sees (closed loop).

The single-area model is the aggregated swing equation (Kundur, *Power System Stability and Control*, 1994,
§11.1.2 and §11.1.4), with frequency deviation ``Δf`` in per unit of nominal, powers in per unit of the system
base ``s_base_mw``:

    2H · dΔf/dt = ΔP_gov + ΔP_resp − ΔP_loss(t) − D · Δf
    T_g · dΔP_gov/dt = −(share / R) · Δf − ΔP_gov            (only with a governor: ``r_pu`` given)

``H`` inertia constant [s], ``D`` load damping [pu power / pu frequency], ``ΔP_resp`` the power the connected
devices deliver (generator convention), ``ΔP_loss`` the lost infeed from ``t_loss_s`` on. Without governor and
response, a step loss ``ΔP`` gives ``Δf(t) = −(ΔP/D)·(1 − exp(−D·t/2H))``: an initial RoCoF of
``−ΔP·f0/(2H)`` and a settling frequency ``f0·(1 − ΔP/D)``, the nadir of that case.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from testbed.domain.services.signals import TestSignal


class SignalPlayer:
    """What a test signal applies at time ``t_s`` [s]."""

    def __init__(self, signal: TestSignal) -> None:
        self.signal = signal

    def at(self, t_s: float) -> tuple[float, float, float]:
        """(f [Hz], V [pu], available PV power [% of rating])."""
        f, v, a = self.signal.sample(t_s)
        return float(f), float(v), float(a)


@dataclass
class SingleAreaModel:
    """Single-area swing equation (module docstring). ``s_base_mw`` system base [MW]; ``h_s`` inertia [s];
    ``d_pu`` load damping; ``loss_mw`` infeed lost at ``t_loss_s`` [s]; ``r_pu``/``t_gov_s``/``gov_share``: an
    optional aggregate governor (droop [pu], time constant [s], share of the base it acts for)."""

    f_nom_hz: float = 50.0
    s_base_mw: float = 30000.0
    h_s: float = 4.0
    d_pu: float = 1.0
    loss_mw: float = 0.0
    t_loss_s: float = 1.0
    r_pu: float | None = None
    t_gov_s: float = 5.0
    gov_share: float = 1.0
    substep_s: float = 0.01

    def __post_init__(self) -> None:
        problems = [
            f"{n} {getattr(self, n)}: must be > 0"
            for n in ("s_base_mw", "h_s", "f_nom_hz", "substep_s")
            if not getattr(self, n) > 0
        ]
        if self.d_pu < 0:
            problems.append(f"d_pu {self.d_pu}: must be >= 0")
        if problems:
            raise ValueError("; ".join(problems))
        self.t_s = 0.0
        self.df_pu = 0.0
        self.p_gov_pu = 0.0

    @property
    def f_hz(self) -> float:
        return self.f_nom_hz * (1.0 + self.df_pu)

    def rocof_hz_per_s(self, p_resp_pu: float = 0.0) -> float:
        return self.f_nom_hz * self._derivs(self.t_s, self.df_pu, self.p_gov_pu, p_resp_pu)[0]

    def _derivs(self, t: float, df: float, pg: float, p_resp: float) -> tuple[float, float]:
        loss = self.loss_mw / self.s_base_mw if t >= self.t_loss_s else 0.0
        ddf = (pg + p_resp - loss - self.d_pu * df) / (2.0 * self.h_s)
        dpg = 0.0 if self.r_pu is None else (-(self.gov_share / self.r_pu) * df - pg) / self.t_gov_s
        return ddf, dpg

    def step(self, dt_s: float, p_response_mw: float = 0.0) -> float:
        """Advance ``dt_s`` seconds with the devices delivering ``p_response_mw`` (held over the step);
        classical RK4 on sub-steps of at most ``substep_s``. Returns the frequency [Hz]."""
        n = max(1, math.ceil(dt_s / self.substep_s - 1e-9))
        h = dt_s / n
        pr = p_response_mw / self.s_base_mw
        for _ in range(n):
            t, y1, y2 = self.t_s, self.df_pu, self.p_gov_pu
            k1 = self._derivs(t, y1, y2, pr)
            k2 = self._derivs(t + h / 2, y1 + h / 2 * k1[0], y2 + h / 2 * k1[1], pr)
            k3 = self._derivs(t + h / 2, y1 + h / 2 * k2[0], y2 + h / 2 * k2[1], pr)
            k4 = self._derivs(t + h, y1 + h * k3[0], y2 + h * k3[1], pr)
            self.df_pu = y1 + h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
            self.p_gov_pu = y2 + h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
            self.t_s = t + h
        return self.f_hz

    def nadir_without_response_hz(self, duration_s: float, step_s: float) -> float:
        """The lowest frequency of a fresh copy of this system over ``duration_s`` with nothing responding,
        stepped as a run steps it (``step_s``) [Hz]."""
        alone = SingleAreaModel(self.f_nom_hz, self.s_base_mw, self.h_s, self.d_pu, self.loss_mw, self.t_loss_s,
                                self.r_pu, self.t_gov_s, self.gov_share, self.substep_s)
        lowest = alone.f_hz
        for _ in range(int(round(duration_s / step_s))):
            lowest = min(lowest, alone.step(step_s))
        return float(lowest)

    def analytic_no_response_hz(self, t_s: float) -> float:
        """The closed-form frequency for a step loss without governor or response (module docstring)."""
        dp = self.loss_mw / self.s_base_mw
        tau = t_s - self.t_loss_s
        if tau <= 0:
            return self.f_nom_hz
        if self.d_pu == 0:
            return self.f_nom_hz * (1.0 - dp * tau / (2.0 * self.h_s))
        return self.f_nom_hz * (1.0 - dp / self.d_pu * (1.0 - math.exp(-self.d_pu * tau / (2.0 * self.h_s))))
