"""Behaviour of an emulated IEEE 1547 DER (PV inverter or battery), computed by OpenDER (EPRI's ``opender``).

Pure: no sockets, no wall clock. The caller owns time and calls :meth:`DerBehaviour.step` with the step
length; the emulator calls it on its own wall-clock tick, tests call it directly.

OpenDER is a 60 Hz model (its frequency-droop and trip settings are written against 60 Hz). A device on a
system of another nominal frequency sees its frequency in per unit of that nominal:
``f_der = 60 × f / f_nom``, so the droop (5 % of nominal frequency for full power) keeps its per-unit
meaning; the 0.036 Hz deadband then corresponds to 0.030 Hz on a 50 Hz system.

OpenDER keeps its time step in a class attribute (``opender.DER.t_s``): :meth:`DerBehaviour.step` sets it
before every run, so devices with different steps can share one process as long as they step from one thread.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import opender

from testbed.domain.errors import UserError

log = logging.getLogger(__name__)

OPENDER_F_NOM_HZ = 60.0

# IEEE 1547-2018 Table 8, Category B default Volt-VAR curve (also OpenDER's default applied settings):
# (V pu, Q as a fraction of rated apparent power, positive = injection).
CAT_B_VOLT_VAR: tuple[tuple[float, float], ...] = ((0.92, 0.44), (0.98, 0.0), (1.02, 0.0), (1.08, -0.44))
CAT_B_VOLT_VAR_RESPONSE_S = 5.0
# IEEE 1547-2018 Table 10, default Volt-Watt settings: (V1 1.06 pu, P_rated), (V2 1.10 pu, the lesser of
# 0.2 P_rated and P_min), open-loop response time 10 s. (V pu, P as a fraction of rated active power.)
CAT_B_VOLT_WATT: tuple[tuple[float, float], ...] = ((1.06, 1.0), (1.10, 0.2))
CAT_B_VOLT_WATT_RESPONSE_S = 10.0


@dataclass(frozen=True)
class DerRating:
    """Nameplate of an emulated device.

    ``rated_kw`` active power rating [kW] (charge and discharge for a battery); ``rated_kva`` apparent power
    rating [kVA] (defaults to ``rated_kw``); ``capacity_kwh`` battery energy [kWh] (batteries only);
    ``v_nom`` nominal line-to-line voltage [V]; ``f_nom_hz`` nominal system frequency [Hz].
    """

    kind: str  # "pv" | "battery"
    rated_kw: float
    rated_kva: float | None = None
    capacity_kwh: float | None = None
    soc_init: float = 0.5
    v_nom: float = 400.0
    f_nom_hz: float = 50.0
    active_power_response_s: float = 1.0  # open-loop response time of WMaxLimPct / WSet [s]

    def problems(self) -> list[str]:
        out = []
        if self.kind not in ("pv", "battery"):
            out.append(f"kind {self.kind!r}: expected 'pv' or 'battery'")
        if not 0 < self.rated_kw <= 1e5:
            out.append(f"rated_kw {self.rated_kw}: must be > 0 and at most 100000 kW")
        if self.rated_kva is not None and not self.rated_kw <= self.rated_kva <= 1e5:
            out.append(f"rated_kva {self.rated_kva}: must be >= rated_kw {self.rated_kw} and at most 100000 kVA")
        if self.kind == "battery" and not (self.capacity_kwh and 0 < self.capacity_kwh <= 1e6):
            out.append(f"capacity_kwh {self.capacity_kwh}: a battery needs a capacity > 0 and at most 1e6 kWh")
        if not 0.0 <= self.soc_init <= 1.0:
            out.append(f"soc_init {self.soc_init}: must lie in 0..1")
        if self.f_nom_hz not in (50.0, 60.0):
            out.append(f"f_nom_hz {self.f_nom_hz}: expected 50 or 60")
        if not 0 < self.active_power_response_s <= 3600:
            out.append(f"active_power_response_s {self.active_power_response_s}: must be > 0")
        return out

    @property
    def kva(self) -> float:
        return self.rated_kva if self.rated_kva is not None else self.rated_kw


@dataclass
class DerControls:
    """Settings a client writes (SunSpec 704/705/711), in physical units.

    ``limit_pct`` active power limit [% of rated]; ``p_set_kw`` active power setpoint [kW], generator
    convention (> 0 discharges into the grid); ``volt_var`` curve points (V pu, Q fraction of rated kVA);
    ``volt_watt`` its two points (V pu, P fraction of rated power; SunSpec 706, OpenDER's PV_CURVE_*).
    """

    limit_enabled: bool = False
    limit_pct: float = 100.0
    p_set_enabled: bool = False
    p_set_kw: float = 0.0
    volt_var_enabled: bool = False
    volt_var: tuple[tuple[float, float], ...] = CAT_B_VOLT_VAR
    volt_var_response_s: float = CAT_B_VOLT_VAR_RESPONSE_S
    volt_watt_enabled: bool = False
    volt_watt: tuple[tuple[float, float], ...] = CAT_B_VOLT_WATT
    volt_watt_response_s: float = CAT_B_VOLT_WATT_RESPONSE_S
    droop_enabled: bool = True
    droop_db_hz: float = 0.036  # IEEE 1547-2018 default deadband (60 Hz basis)
    droop_k: float = 0.05  # 5 % droop
    droop_response_s: float = 5.0


@dataclass(frozen=True)
class DerState:
    """What the device measures at its terminals after a step (generator convention)."""

    t_s: float
    p_kw: float
    q_kvar: float
    vm_pu: float
    f_hz: float
    soc: float | None
    connected: bool
    status: str


@dataclass
class GridInputs:
    """What the (emulated) grid simulator and DC source apply: voltage [pu], frequency [Hz], available PV
    power [% of rating]."""

    vm_pu: float = 1.0
    f_hz: float = 50.0
    available_pct: float = 100.0


@dataclass
class DerBehaviour:
    """One emulated DER: OpenDER inside, controls and grid inputs outside."""

    rating: DerRating
    controls: DerControls = field(default_factory=DerControls)
    grid: GridInputs | None = None
    t_s: float = 0.0

    def __post_init__(self) -> None:
        problems = self.rating.problems()
        if problems:
            raise UserError("bad emulated device rating", problems)
        if self.grid is None:
            self.grid = GridInputs(f_hz=self.rating.f_nom_hz)
        self._der = self._build()
        self._applied: DerControls | None = None
        self._state = DerState(0.0, 0.0, 0.0, self.grid.vm_pu, self.grid.f_hz, self._soc(), True, "init")

    def _build(self) -> opender.DER:
        r = self.rating
        w = r.rated_kw * 1000.0
        va = r.kva * 1000.0
        q = 0.44 * va  # Category B reactive capability
        # NP_V_DC before NP_AC_V_NOM: OpenDER checks the DC voltage when the AC voltage is set
        common = dict(
            NP_V_DC=1.5 * r.v_nom * math.sqrt(2),
            NP_P_MAX=w,
            NP_VA_MAX=va,
            NP_Q_MAX_INJ=q,
            NP_Q_MAX_ABS=q,
            NP_AC_V_NOM=r.v_nom,
            NP_NORMAL_OP_CAT="CAT_B",
            AP_RT=r.active_power_response_s,
            NP_P_MAX_OVER_PF=w,
            NP_P_MAX_UNDER_PF=w,
        )
        if r.kind == "pv":
            return opender.DER_PV(**common)
        return opender.DER_BESS(
            **common,
            NP_P_MAX_CHARGE=w,
            NP_APPARENT_POWER_CHARGE_MAX=va,
            NP_BESS_CAPACITY=r.capacity_kwh * 1000.0,
            SOC_INIT=r.soc_init,
        )

    def _soc(self) -> float | None:
        return float(self._der.bess_soc) if self.rating.kind == "battery" else None

    def _apply_controls(self) -> None:
        c = self.controls
        f = self._der.der_file
        f.AP_LIMIT_ENABLE = bool(c.limit_enabled)
        f.AP_LIMIT = max(0.0, min(1.0, c.limit_pct / 100.0))
        f.QV_MODE_ENABLE = bool(c.volt_var_enabled)
        (v1, q1), (v2, q2), (v3, q3), (v4, q4) = c.volt_var
        f.QV_CURVE_V1, f.QV_CURVE_Q1, f.QV_CURVE_V2, f.QV_CURVE_Q2 = v1, q1, v2, q2
        f.QV_CURVE_V3, f.QV_CURVE_Q3, f.QV_CURVE_V4, f.QV_CURVE_Q4 = v3, q3, v4, q4
        f.QV_OLRT = c.volt_var_response_s
        f.PV_MODE_ENABLE = bool(c.volt_watt_enabled)
        (vw1, pw1), (vw2, pw2) = c.volt_watt
        f.PV_CURVE_V1, f.PV_CURVE_P1, f.PV_CURVE_V2, f.PV_CURVE_P2 = vw1, pw1, vw2, pw2
        f.PV_OLRT = c.volt_watt_response_s
        f.PF_MODE_ENABLE = bool(c.droop_enabled)
        f.PF_DBOF = f.PF_DBUF = c.droop_db_hz
        f.PF_KOF = f.PF_KUF = c.droop_k
        f.PF_OLRT = c.droop_response_s
        self._applied = DerControls(**vars(c))

    def step(self, dt_s: float) -> DerState:
        """Advance the device by ``dt_s`` seconds with the current controls and grid inputs."""
        if not dt_s > 0:
            raise ValueError(f"dt_s {dt_s}: a step must be > 0 s")
        if self._applied != self.controls:
            self._apply_controls()
        r, g, c = self.rating, self.grid, self.controls
        f_der = OPENDER_F_NOM_HZ * g.f_hz / r.f_nom_hz
        opender.DER.t_s = dt_s
        if r.kind == "pv":
            self._der.update_der_input(p_dc_pu=max(0.0, g.available_pct) / 100.0, v_pu=g.vm_pu, f=f_der)
        else:
            p_dem = c.p_set_kw if c.p_set_enabled else 0.0
            p_dem = max(-r.rated_kw, min(r.rated_kw, p_dem))
            self._der.update_der_input(p_dem_kw=p_dem, v_pu=g.vm_pu, f=f_der)
        self._der.run()
        self.t_s += dt_s
        self._state = DerState(
            t_s=self.t_s,
            p_kw=float(self._der.p_out_kw),
            q_kvar=float(self._der.q_out_kvar),
            vm_pu=g.vm_pu,
            f_hz=g.f_hz,
            soc=self._soc(),
            connected=self._der.der_status != "Trip",
            status=str(self._der.der_status),
        )
        return self._state

    @property
    def state(self) -> DerState:
        return self._state
