"""Test signals: what the grid simulator applies at the device's terminals over a test. Pure.

A :class:`TestSignal` gives, at any time ``t_s`` [s] from the start of the test, the frequency [Hz], the
voltage [pu] and the available primary power of a PV device [% of rating]; ``events_s`` are the times of its
steps (where timing criteria start counting), and ``steps`` the held set points of an IEEE 1547.1 step test.

Builders: :func:`frequency_steps`, :func:`frequency_ramp`, :func:`frequency_sine`, :func:`loss_of_infeed`,
:func:`recorded` (a series already read; reading a CSV file is an adapter's job), :func:`ieee1547_voltage_steps`
(the §5.14 Volt-VAR and Volt-Watt sequences at 100 %, 66 % and 20 % of rated power) and
:func:`ieee1547_frequency_steps` (the §5.15 frequency-droop sequence).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from testbed.domain.services.voltage import MRA_V_PU, Characteristic

#: IEEE 1547.1-2020 §5.14.4 / §5.15: the tests repeat at these shares of rated power.
POWER_LEVELS = (1.0, 0.66, 0.2)


@dataclass(frozen=True)
class Waveform:
    """A scalar function of time: ``kind`` ``"hold"`` (each value held until the next time), ``"linear"``
    (interpolated), or ``"sine"`` (``values`` = offset, amplitude, period [s], start [s], cycles)."""

    kind: str
    t_s: tuple[float, ...]
    values: tuple[float, ...]

    def at(self, t_s: np.ndarray | float) -> np.ndarray:
        t = np.asarray(t_s, dtype=float)
        if self.kind == "sine":
            offset, amp, period, start, cycles = self.values
            phase = (t - start) / period
            on = (phase >= 0) & (phase <= cycles)
            return np.where(on, offset + amp * np.sin(2 * np.pi * phase), offset)
        ts = np.asarray(self.t_s)
        vs = np.asarray(self.values)
        if self.kind == "linear":
            return np.interp(t, ts, vs)
        idx = np.clip(np.searchsorted(ts, t, side="right") - 1, 0, len(vs) - 1)
        return vs[idx]

    @classmethod
    def constant(cls, value: float) -> Waveform:
        return cls("hold", (0.0,), (float(value),))


@dataclass(frozen=True)
class HeldStep:
    """One held set point of a step test: from ``t_start_s`` to ``t_end_s`` [s] the input is ``x`` (V [pu] or
    f [Hz]) at ``level`` (share of rated power); ``label`` names it in reports."""

    t_start_s: float
    t_end_s: float
    x: float
    level: float
    label: str


@dataclass(frozen=True)
class TestSignal:
    name: str
    duration_s: float
    f_hz: Waveform
    vm_pu: Waveform = field(default_factory=lambda: Waveform.constant(1.0))
    available_pct: Waveform = field(default_factory=lambda: Waveform.constant(100.0))
    events_s: tuple[float, ...] = ()
    steps: tuple[HeldStep, ...] = ()

    __test__ = False  # not a pytest class

    def sample(self, t_s: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(f [Hz], V [pu], available [%]) at ``t_s``."""
        return self.f_hz.at(t_s), self.vm_pu.at(t_s), self.available_pct.at(t_s)

    def f_range(self) -> tuple[float, float]:
        """Least and largest frequency the signal applies [Hz]."""
        if self.f_hz.kind == "sine":
            offset, amp = self.f_hz.values[:2]
            return offset - abs(amp), offset + abs(amp)
        return float(min(self.f_hz.values)), float(max(self.f_hz.values))

    def v_range(self) -> tuple[float, float]:
        return float(min(self.vm_pu.values)), float(max(self.vm_pu.values))


def frequency_steps(
    points: Sequence[tuple[float, float]], duration_s: float, name: str = "frequency steps"
) -> TestSignal:
    """Held frequencies: ``points`` (t [s], f [Hz]), the first at t = 0. Every change is an event."""
    ts = tuple(float(t) for t, _ in points)
    fs = tuple(float(f) for _, f in points)
    events = tuple(t for i, t in enumerate(ts) if i > 0 and fs[i] != fs[i - 1])
    return TestSignal(name, float(duration_s), Waveform("hold", ts, fs), events_s=events)


def frequency_ramp(
    f_start_hz: float, f_end_hz: float, t_start_s: float, ramp_s: float, duration_s: float
) -> TestSignal:
    """``f_start_hz`` until ``t_start_s``, then linear to ``f_end_hz`` over ``ramp_s`` seconds, then held."""
    w = Waveform(
        "linear", (0.0, t_start_s, t_start_s + ramp_s, duration_s), (f_start_hz, f_start_hz, f_end_hz, f_end_hz)
    )
    return TestSignal("frequency ramp", float(duration_s), w, events_s=(float(t_start_s),))


def frequency_sine(
    f_nom_hz: float, amplitude_hz: float, period_s: float, t_start_s: float, cycles: float, duration_s: float
) -> TestSignal:
    """``f_nom_hz + amplitude_hz·sin(2π(t − t_start)/period)`` for ``cycles`` periods, nominal outside."""
    w = Waveform("sine", (), (f_nom_hz, amplitude_hz, period_s, t_start_s, cycles))
    return TestSignal("frequency sine", float(duration_s), w, events_s=(float(t_start_s),))


def loss_of_infeed(
    f_nom_hz: float,
    t_event_s: float,
    rocof_hz_per_s: float,
    nadir_hz: float,
    settle_hz: float,
    recovery_s: float,
    duration_s: float,
    points: int = 60,
) -> TestSignal:
    """A loss-of-infeed frequency trace: nominal until ``t_event_s``; falls at ``rocof_hz_per_s`` to
    ``nadir_hz``; then recovers exponentially (time constant ``recovery_s / 3``) towards ``settle_hz``. A test
    shape (its parameters are the test's), not a system simulation: for that, use the single-area model of
    ``simulators.frequency``."""
    t_nadir = t_event_s + (f_nom_hz - nadir_hz) / rocof_hz_per_s
    tau = recovery_s / 3.0
    tail_t = np.linspace(t_nadir, max(duration_s, t_nadir), points)
    tail_f = settle_hz + (nadir_hz - settle_hz) * np.exp(-(tail_t - t_nadir) / tau)
    ts = (0.0, float(t_event_s), *map(float, tail_t))
    fs = (f_nom_hz, f_nom_hz, *map(float, tail_f))
    return TestSignal("loss of infeed", float(duration_s), Waveform("linear", ts, fs), events_s=(float(t_event_s),))


def recorded(t_s: Sequence[float], f_hz: Sequence[float], name: str = "recorded frequency") -> TestSignal:
    """A recorded frequency series (times from 0 [s], ascending; linear between samples)."""
    ts = tuple(float(t) for t in t_s)
    return TestSignal(name, ts[-1], Waveform("linear", ts, tuple(float(f) for f in f_hz)))


def swing_no_response(
    f_nom_hz: float, s_base_mw: float, h_s: float, d_pu: float, loss_mw: float, t_loss_s: float, duration_s: float,
    points: int = 2001,
) -> TestSignal:
    """The frequency of a single-area system after losing ``loss_mw`` at ``t_loss_s`` with no response:
    ``2H dΔf/dt = −ΔP − D Δf``, so ``Δf(τ) = −(ΔP/D)(1 − e^(−Dτ/2H))`` (``−ΔP τ / 2H`` for D = 0), per unit
    (Kundur 1994 §11.1). What a closed-loop test's system would do alone; the event is the loss."""
    t = np.linspace(0.0, duration_s, points)
    tau = np.maximum(t - t_loss_s, 0.0)
    dp = loss_mw / s_base_mw
    df = -dp * tau / (2.0 * h_s) if d_pu == 0 else -(dp / d_pu) * (1.0 - np.exp(-d_pu * tau / (2.0 * h_s)))
    f = f_nom_hz * (1.0 + df)
    return TestSignal(f"closed loop: {loss_mw:g} MW lost of {s_base_mw:g} MW at {t_loss_s:g} s, no response",
                      float(duration_s), Waveform("linear", tuple(map(float, t)), tuple(map(float, f))),
                      events_s=(float(t_loss_s),))


def _volt_var_sequence(c: Characteristic, a: float, v_low: float, v_high: float, v_ref: float) -> list[float]:
    """IEEE 1547.1-2020 §5.14.4 steps: through V3/V4 up to Vhigh and back, to Vref, then the mirror through
    V2/V1 down to Vlow and back, to Vref."""
    v1, v2, v3, v4 = c.v_points
    up = [v3 - a, v3 + a, (v3 + v4) / 2, v4 - a, v4 + a, v_high - a]
    down = [v2 + a, v2 - a, (v1 + v2) / 2, v1 + a, v1 - a, v_low + a]
    return up + up[-2::-1] + [v_ref] + down + down[-2::-1] + [v_ref]


def _volt_watt_sequence(c: Characteristic, a: float, v_low: float, v_high: float) -> list[float]:
    """IEEE 1547.1-2020 §5.14.6 steps: from Vlow up through V1 and V2 to Vhigh and back down."""
    v1, v2 = c.v_points
    up = [v_low + a, v1 - a, v1 + a, (v1 + v2) / 2, v2 - a, v2 + a, v_high - a]
    return up + up[-2::-1]


def ieee1547_voltage_steps(
    c: Characteristic,
    *,
    levels: Sequence[float] = POWER_LEVELS,
    hold_s: float | None = None,
    v_low: float = 0.88,
    v_high: float = 1.10,
    v_ref: float = 1.0,
    settle_s: float | None = None,
) -> TestSignal:
    """The IEEE 1547.1 Volt-VAR (``c.quantity == "q"``) or Volt-Watt step sequence at each power level.

    Steps are at ``a = 1.5·MRA_V`` either side of the knee points, clipped to the device's ``v_low``..``v_high``
    [pu] (consecutive duplicates dropped); each is held ``hold_s`` seconds (default 2 × the response time, so
    that a measurement at one response time and a steady state both fall inside it). Before each power level
    the signal holds ``v_ref`` for ``settle_s`` seconds (default ``hold_s``).
    """
    hold = 2.0 * c.tr_s if hold_s is None else float(hold_s)
    settle = hold if settle_s is None else float(settle_s)
    a = 1.5 * MRA_V_PU
    seq = (
        _volt_var_sequence(c, a, v_low, v_high, v_ref)
        if c.quantity == "q"
        else _volt_watt_sequence(c, a, v_low, v_high)
    )
    seq = [round(min(max(v, v_low), v_high), 4) for v in seq]
    seq = [v for i, v in enumerate(seq) if i == 0 or v != seq[i - 1]]
    ts, vs, avail_t, avail_v, steps, events = [], [], [], [], [], []
    t = 0.0
    for level in levels:
        ts.append(t)
        vs.append(v_ref if c.quantity == "q" else seq[0])
        avail_t.append(t)
        avail_v.append(100.0 * level)
        t += settle
        for i, v in enumerate(seq):
            ts.append(t)
            vs.append(v)
            events.append(t)
            steps.append(HeldStep(t, t + hold, v, level, f"{round(100 * level)} % step {i + 1}: {v:.3f} pu"))
            t += hold
    return TestSignal(
        f"IEEE 1547.1 {c.name} steps",
        t,
        Waveform.constant(50.0),
        Waveform("hold", tuple(ts), tuple(vs)),
        Waveform("hold", tuple(avail_t), tuple(avail_v)),
        tuple(events),
        tuple(steps),
    )


def ieee1547_frequency_steps(
    f_nom_hz: float, db_hz: float, k: float, *, hold_s: float, levels: Sequence[float] = (1.0,), side: str = "high"
) -> TestSignal:
    """IEEE 1547.1-2020 §5.15.2 frequency-droop steps on one side of nominal (as OpenDER's own test of it
    writes them): nominal, the deadband edge, 5 % of the droop's span beyond it, 2 % of nominal (61.2 Hz on a
    60 Hz system, short of the over-frequency trip), back by 5 % of the span, the deadband edge, nominal; at
    each level (share of rated power the DER starts from)."""
    sign = 1.0 if side == "high" else -1.0
    span = k * f_nom_hz * 0.05
    far = 0.02 * f_nom_hz
    seq = [0.0, db_hz, db_hz + span, far, far - span, db_hz, 0.0]
    seq = [f_nom_hz + sign * x for x in seq]
    ts, fs, avail_t, avail_v, steps, events = [], [], [], [], [], []
    t = 0.0
    for level in levels:
        avail_t.append(t)
        avail_v.append(100.0 * level)
        for i, f in enumerate(seq):
            ts.append(t)
            fs.append(round(f, 4))
            if i:
                events.append(t)
            steps.append(
                HeldStep(t, t + hold_s, round(f, 4), level, f"{round(100 * level)} % step {i + 1}: {f:.3f} Hz")
            )
            t += hold_s
    return TestSignal(
        "IEEE 1547.1 frequency-droop steps",
        t,
        Waveform("hold", tuple(ts), tuple(fs)),
        Waveform.constant(1.0),
        Waveform("hold", tuple(avail_t), tuple(avail_v)),
        tuple(events),
        tuple(steps),
    )
