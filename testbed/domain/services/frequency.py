"""Frequency-response services as data, and the response a frequency asks of a provider. Pure.

A service is a response curve (the share of the contracted power to deliver as a function of the frequency
deviation), the side of nominal it answers (``low``: under-frequency, the provider exports more; ``high``:
over-frequency, it exports less or absorbs; ``both``), its timing (initiation and full-delivery times, and
intermediate milestones where the rules give them), how long it must be sustained, and tolerances.

Conventions: frequency in Hz; the response in kW, generator convention (> 0 exports more: the answer to a low
frequency); the curve as (|Δf| [Hz], fraction of the contracted power) points, linear between points, flat
beyond the last one and zero inside the first (the deadband edge).

``verified`` says whether every published parameter of the definition was checked against its primary source
(the docstring of each definition names it); ``False`` marks a value taken from a secondary description that
a primary source here did not confirm. Tolerances marked "testbed" are the testbed's acceptance choices, not
published values; a test file may change them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from testbed.domain.errors import UserError

Side = Literal["low", "high", "both"]

#: EU SO GL (Regulation 2017/1485) Annex V: minimum frequency measurement accuracy for FCR, 10 mHz in every
#: synchronous area (CE, GB, IE/NI, Nordic).
SO_GL_MEASUREMENT_ACCURACY_HZ = 0.010


@dataclass(frozen=True)
class FrequencyService:
    """One frequency-response service.

    ``curve`` (|Δf| [Hz], fraction of contracted power) points, the first at the deadband edge with fraction 0;
    ``initiation_s`` the latest time after a frequency change at which the response must start changing [s];
    ``full_delivery_s`` the latest time by which it must deliver what the curve asks [s]; ``milestones``
    further (fraction of the requested change, latest time [s]) pairs; ``duration_s`` how long an
    energy-limited provider must sustain full delivery [s]; ``tolerance`` half-width of the accepted band
    around the required response [fraction of contracted power]; ``accuracy_hz`` frequency measurement
    accuracy the band allows for [Hz]; ``trigger_hz`` makes the service triggered (full activation once the
    frequency reaches it, held at least ``support_s`` seconds).
    """

    key: str
    name: str
    side: Side
    curve: tuple[tuple[float, float], ...]
    initiation_s: float
    full_delivery_s: float
    duration_s: float | None
    source: str
    verified: bool
    f_nom_hz: float = 50.0
    milestones: tuple[tuple[float, float], ...] = ()
    tolerance: float = 0.05
    accuracy_hz: float = SO_GL_MEASUREMENT_ACCURACY_HZ
    trigger_hz: float | None = None
    support_s: float = 0.0
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def deadband_hz(self) -> float:
        return self.curve[0][0] if self.trigger_hz is None else abs(self.f_nom_hz - self.trigger_hz)

    @property
    def full_deviation_hz(self) -> float:
        """|Δf| at which the curve first asks for its largest response [Hz]."""
        if self.trigger_hz is not None:
            return abs(self.f_nom_hz - self.trigger_hz)
        peak = max(f for _, f in self.curve)
        return next(df for df, f in self.curve if f == peak)

    def fraction(self, f_hz: np.ndarray | float) -> np.ndarray:
        """The response the curve asks for at frequency ``f_hz`` [fraction of contracted power, > 0 exports
        more]. A triggered service's instantaneous answer (see :class:`ResponseController` for its hold)."""
        f = np.asarray(f_hz, dtype=float)
        df = f - self.f_nom_hz
        if self.trigger_hz is not None:
            if self.side == "high":
                return np.where(f >= self.trigger_hz, -1.0, 0.0)
            return np.where(f <= self.trigger_hz, 1.0, 0.0)
        xs = np.array([p[0] for p in self.curve])
        ys = np.array([p[1] for p in self.curve])
        mag = np.interp(np.abs(df), xs, ys, left=0.0, right=ys[-1])
        out = np.zeros_like(df)
        if self.side in ("low", "both"):
            out = np.where(df < 0, mag, out)
        if self.side in ("high", "both"):
            out = np.where(df > 0, -mag, out)
        return out

    def with_nominal(self, f_nom_hz: float) -> FrequencyService:
        """The same service on a system of another nominal frequency (only for services defined relative to
        nominal; a triggered service keeps its absolute trigger)."""
        return replace(self, f_nom_hz=f_nom_hz)


class ResponseController:
    """Online response of a provider: the setpoint a frequency asks for, step by step (pure, stateful only for
    triggered services, which hold their activation ``support_s`` seconds after the frequency recovers).

    ``contracted_kw`` the contracted response [kW]; ``baseline_kw`` the provider's power without the service
    [kW, generator convention].
    """

    def __init__(self, service: FrequencyService, contracted_kw: float, baseline_kw: float = 0.0) -> None:
        if not contracted_kw > 0:
            raise ValueError(f"contracted_kw {contracted_kw}: must be > 0")
        self.service = service
        self.contracted_kw = contracted_kw
        self.baseline_kw = baseline_kw
        self._active_until_s = -np.inf

    def response_kw(self, t_s: float, f_hz: float) -> float:
        """The service response [kW] asked at time ``t_s`` [s] for frequency ``f_hz`` [Hz]."""
        frac = float(self.service.fraction(f_hz))
        if self.service.trigger_hz is not None:
            if frac != 0.0:
                self._active_until_s = t_s + self.service.support_s
            elif t_s < self._active_until_s:
                frac = -1.0 if self.service.side == "high" else 1.0
        return frac * self.contracted_kw

    def setpoint_kw(self, t_s: float, f_hz: float) -> float:
        return self.baseline_kw + self.response_kw(t_s, f_hz)


def held_fraction(service: FrequencyService, t_s: np.ndarray, f_hz: np.ndarray) -> np.ndarray:
    """:meth:`FrequencyService.fraction` over a whole record, with a triggered service's hold applied (the
    record's own timestamps ``t_s`` [s], ascending)."""
    frac = service.fraction(f_hz)
    if service.trigger_hz is None or service.support_s <= 0:
        return frac
    t = np.asarray(t_s, dtype=float)
    active = frac != 0.0
    last = np.where(active, t, -np.inf)
    last = np.maximum.accumulate(last)
    sign = -1.0 if service.side == "high" else 1.0
    return np.where(t - last < service.support_s, sign, 0.0)


# --- the services ------------------------------------------------------------------------------------------

_NESO_PAGE = (
    "NESO, 'New Dynamic Services (DC/DM/DR)', technical requirements table (initiation time, maximum time to full "
    "delivery, delivery duration)"
)


def _gb(
    key: str, name: str, side: Side, curve, initiation_s, full_s, duration_s, verified, curve_source
) -> FrequencyService:
    return FrequencyService(
        key=key,
        name=name,
        side=side,
        curve=curve,
        initiation_s=initiation_s,
        full_delivery_s=full_s,
        duration_s=duration_s,
        source=f"{_NESO_PAGE}; curve: {curve_source}",
        verified=verified,
        tolerance=0.03,
        notes=(
            "tolerance ±3 % of contracted power is the testbed's choice (NESO's performance-monitoring "
            "tolerances were not checked here)",
        ),
    )


_DC_CURVE = ((0.015, 0.0), (0.2, 0.05), (0.5, 1.0))
_DM_CURVE = ((0.015, 0.0), (0.1, 0.05), (0.2, 1.0))
_DR_CURVE = ((0.015, 0.0), (0.2, 1.0))
_DC_SRC = (
    "NESO DC service terms as coded by two independent open implementations: deadband ±0.015 Hz, 5 % at "
    "±0.2 Hz, 100 % at ±0.5 Hz (the primary service-terms document was not reachable here)"
)
_DMR_SRC = "UNVERIFIED: knee points from a secondary description; take them from NESO's DM/DR service terms"


def _services() -> dict[str, FrequencyService]:
    out: dict[str, FrequencyService] = {}
    for side, label in (("low", "low"), ("high", "high")):
        out[f"gb-dc-{label}"] = _gb(
            f"gb-dc-{label}", f"GB Dynamic Containment {label}", side, _DC_CURVE, 0.5, 1.0, 15 * 60.0, False, _DC_SRC
        )
        out[f"gb-dm-{label}"] = _gb(
            f"gb-dm-{label}", f"GB Dynamic Moderation {label}", side, _DM_CURVE, 0.5, 1.0, 30 * 60.0, False, _DMR_SRC
        )
        out[f"gb-dr-{label}"] = _gb(
            f"gb-dr-{label}", f"GB Dynamic Regulation {label}", side, _DR_CURVE, 2.0, 10.0, 60 * 60.0, False, _DMR_SRC
        )
    out["entsoe-fcr"] = FrequencyService(
        key="entsoe-fcr",
        name="ENTSO-E FCR (Continental Europe)",
        side="both",
        curve=((0.0, 0.0), (0.2, 1.0)),
        initiation_s=2.0,
        full_delivery_s=30.0,
        milestones=((0.5, 15.0),),
        duration_s=15 * 60.0,
        source=(
            "Regulation (EU) 2017/1485 (SO GL) Annex V: full activation at ±200 mHz within 30 s, measurement "
            "accuracy 10 mHz, deadband plus insensitivity at most 10 mHz (checked); UNVERIFIED here: initial "
            "delay ≤ 2 s (Regulation (EU) 2016/631 Art. 15(2)(d)), 50 % within 15 s (UCTE Operation Handbook "
            "Policy 1), 15 min delivery of limited energy reservoirs (SO GL Art. 156)"
        ),
        verified=False,
        tolerance=0.05,
        notes=("the ±10 mHz insensitivity is allowed for by evaluating the curve at f ± 10 mHz",),
    )
    for hz, t_act in ((49.7, 1.3), (49.6, 1.0), (49.5, 0.7)):
        key = f"nordic-ffr-{hz:.1f}"
        out[key] = FrequencyService(
            key=key,
            name=f"Nordic FFR (activation at {hz:.1f} Hz)",
            side="low",
            curve=((round(50.0 - hz, 3), 1.0),),
            initiation_s=t_act,
            full_delivery_s=t_act,
            duration_s=5.0,
            trigger_hz=hz,
            support_s=5.0,
            source=(
                "Fingrid, Fast Frequency Reserve technical requirements: activation at 49.7/49.6/49.5 Hz with "
                "full activation within 1.3/1.0/0.7 s; support at least 5 s when deactivating at most 20 % of "
                "the capacity per second (else 30 s); ready again within 15 min (checked against Fingrid's FFR "
                "pages)"
            ),
            verified=True,
            tolerance=0.05,
        )
    out["nordic-fcr-n"] = FrequencyService(
        key="nordic-fcr-n",
        name="Nordic FCR-N",
        side="both",
        curve=((0.0, 0.0), (0.1, 1.0)),
        initiation_s=10.0,
        full_delivery_s=180.0,
        duration_s=None,
        source=(
            "Fingrid, frequency containment reserves, technical requirements table (pre-2023): full activation "
            "within 3 min of a ±0.1 Hz step, deadband at most ±0.01 Hz (checked); initiation 10 s is the "
            "testbed's choice. The harmonised 2023 Nordic requirements (dynamic performance and stability from "
            "sine tests) are not implemented"
        ),
        verified=False,
        tolerance=0.05,
    )
    for side, key, label, knee in (
        ("low", "nordic-fcr-d-up", "upwards", "49.9 → 49.5 Hz"),
        ("high", "nordic-fcr-d-down", "downwards", "50.1 → 50.5 Hz"),
    ):
        out[key] = FrequencyService(
            key=key,
            name=f"Nordic FCR-D {label}",
            side=side,
            curve=((0.1, 0.0), (0.5, 1.0)),
            initiation_s=2.0,
            full_delivery_s=30.0,
            milestones=((0.5, 5.0),),
            duration_s=None,
            source=(
                f"Fingrid, frequency containment reserves, technical requirements table (pre-2023): activation "
                f"{knee}, 50 % within 5 s and 100 % within 30 s of a step (checked); initiation 2 s is the "
                "testbed's choice"
            ),
            verified=False,
            tolerance=0.05,
        )
    out["ieee1547-droop"] = ieee1547_droop(60.0)
    out["ieee1547-droop-50hz"] = ieee1547_droop(50.0)
    return out


def ieee1547_droop(f_nom_hz: float, db_hz_60: float = 0.036, k: float = 0.05, olrt_s: float = 5.0) -> FrequencyService:
    """IEEE 1547-2018 §6.5.2.7 frequency droop (Table 24 defaults for Categories I–III: deadband 0.036 Hz,
    droop 5 %, small-signal open-loop response time 5 s) on a system of ``f_nom_hz``: full rated power change
    at ``db + k·f_nom`` Hz. The deadband is given on the 60 Hz basis and scaled to ``f_nom_hz`` (0.030 Hz at
    50 Hz), as the emulated devices apply it. Scored with IEEE 1547.1 §5.15 rules (±1.5·MRA, 90 % at OLRT)."""
    db = db_hz_60 * f_nom_hz / 60.0
    return FrequencyService(
        key="ieee1547-droop" if f_nom_hz == 60.0 else f"ieee1547-droop-{f_nom_hz:g}hz",
        name=f"IEEE 1547-2018 frequency droop ({f_nom_hz:g} Hz)",
        side="both",
        curve=((db, 0.0), (db + k * f_nom_hz, 1.0)),
        initiation_s=olrt_s,
        full_delivery_s=olrt_s,
        duration_s=None,
        f_nom_hz=f_nom_hz,
        source="IEEE 1547-2018 §6.5.2.7 and Table 24 (defaults 0.036 Hz, 5 %, 5 s), as OpenDER and Sandia's "
        "svp_1547.1 implement them; scoring IEEE 1547.1-2020 §5.15",
        verified=True,
        tolerance=0.05,
        accuracy_hz=0.01,
    )


FREQUENCY_SERVICES: dict[str, FrequencyService] = _services()


def frequency_service(key: str, where: str = "service") -> FrequencyService:
    """The service named ``key``; a :class:`UserError` naming the known ones otherwise."""
    try:
        return FREQUENCY_SERVICES[key]
    except KeyError:
        raise UserError(
            f"{where}: unknown frequency service {key!r}", [f"known: {', '.join(sorted(FREQUENCY_SERVICES))}"]
        ) from None


def knee_points(service: FrequencyService) -> Iterable[tuple[float, float]]:
    """(f [Hz], response fraction) at each curve point on the sides the service answers (for tests and docs)."""
    for df, frac in service.curve:
        if service.side in ("low", "both"):
            yield service.f_nom_hz - df, frac
        if service.side in ("high", "both"):
            yield service.f_nom_hz + df, -frac
