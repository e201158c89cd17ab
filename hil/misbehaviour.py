"""Emulated devices that fail service tests on purpose, so that every criterion's fail path can be tested. Pure.

:class:`TestedDer` is a :class:`hil.behaviour.DerBehaviour` that follows active-power setpoints with a first-order
response (90 % of a change after the rating's ``active_power_response_s``; OpenDER's battery model follows
``WSet`` at once) and, with a :class:`Misbehaviour`, departs from IEEE 1547 and from what a client programmed:

- ``p_response_s``: active power follows setpoints, frequency droop and Volt-Watt this slowly [s, 90 % time];
- ``q_response_s``: reactive power follows the Volt-VAR curve this slowly, whatever response time was written;
- ``deadband_hz`` / ``droop``: the frequency droop applies this deadband [Hz, 60 Hz basis as OpenDER] or this
  droop [per unit] instead of what was written to model 711;
- ``volt_var_offset_pu``: the Volt-VAR curve's voltages are shifted by this much [pu];
- ``volt_watt_offset_pu``: the Volt-Watt curve's voltages are shifted by this much [pu];
- ``stop_following_after_s``: after this device time [s] the output freezes (it answers, but no longer follows
  setpoints, frequency or voltage);
- ``stop_answering_after_s``: after this device time [s] the device stops answering Modbus requests (the
  emulator holds every request; a client times out).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

from hil.behaviour import DerBehaviour, DerRating, DerState


@dataclass(frozen=True)
class Misbehaviour:
    p_response_s: float | None = None
    q_response_s: float | None = None
    deadband_hz: float | None = None
    droop: float | None = None
    volt_var_offset_pu: float | None = None
    volt_watt_offset_pu: float | None = None
    stop_following_after_s: float | None = None
    stop_answering_after_s: float | None = None

    def problems(self) -> list[str]:
        out = []
        for name in ("p_response_s", "q_response_s", "droop"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v > 0):
                out.append(f"{name} {v}: must be a finite number > 0")
        for name in ("deadband_hz", "stop_following_after_s", "stop_answering_after_s"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                out.append(f"{name} {v}: must be a finite number >= 0")
        return out

    @property
    def any(self) -> bool:
        return any(v is not None for v in vars(self).values())


class _Without(logging.Filter):
    """Drops log records whose message contains ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


class TestedDer(DerBehaviour):
    """A DER under test: setpoint response with a first-order lag, its over-voltage trip at the widest
    setting (as IEEE 1547.1 sets it for voltage tests), and the misbehaviours of the module docstring
    (``misbehaviour`` None: a compliant device)."""

    __test__ = False

    def __init__(self, rating: DerRating, misbehaviour: Misbehaviour | None = None, **kwargs) -> None:
        self.misbehaviour = misbehaviour or Misbehaviour()
        if self.misbehaviour.p_response_s is not None:
            rating = replace(rating, active_power_response_s=self.misbehaviour.p_response_s)
        self._p_lagged: float | None = None
        super().__init__(rating, **kwargs)

    def _apply_controls(self) -> None:
        super()._apply_controls()
        m, f = self.misbehaviour, self._der.der_file
        # IEEE 1547.1-2020 §5.14 (voltage regulation tests): the EUT's voltage trip settings are set to the
        # widest range of adjustability first, so that a step to V_high does not trip it. IEEE 1547-2018
        # Table 12 (Category II): OV1 adjustable up to 1.20 pu and 13 s. OpenDER also ceases to energize
        # momentarily from MC_HVRT_V1 (1.10 pu by default): widened with them.
        f.OV1_TRIP_V, f.OV1_TRIP_T = 1.20, 13.0
        if f.MC_HVRT_V1 != 1.20:
            quiet = _Without("momentary cessation voltage threshold")  # OpenDER warns that this is allowed
            logging.getLogger().addFilter(quiet)
            try:
                f.MC_HVRT_V1 = 1.20
            finally:
                logging.getLogger().removeFilter(quiet)
        if m.q_response_s is not None:
            f.QV_OLRT = m.q_response_s
        if m.deadband_hz is not None:
            f.PF_DBOF = f.PF_DBUF = m.deadband_hz
        if m.droop is not None:
            f.PF_KOF = f.PF_KUF = m.droop
        if m.p_response_s is not None:
            f.PF_OLRT = m.p_response_s
            f.PV_OLRT = m.p_response_s
        if m.volt_var_offset_pu is not None:
            off = m.volt_var_offset_pu
            f.QV_CURVE_V1, f.QV_CURVE_V2 = f.QV_CURVE_V1 + off, f.QV_CURVE_V2 + off
            f.QV_CURVE_V3, f.QV_CURVE_V4 = f.QV_CURVE_V3 + off, f.QV_CURVE_V4 + off
        if m.volt_watt_offset_pu is not None:
            f.PV_CURVE_V1 += m.volt_watt_offset_pu
            f.PV_CURVE_V2 += m.volt_watt_offset_pu

    @property
    def silent(self) -> bool:
        """True once the device has stopped answering (``stop_answering_after_s``)."""
        after = self.misbehaviour.stop_answering_after_s
        return after is not None and self.t_s >= after

    def step(self, dt_s: float) -> DerState:
        after = self.misbehaviour.stop_following_after_s
        if after is not None and self.t_s >= after:
            self.t_s += dt_s
            self._state = replace(self._state, t_s=self.t_s, vm_pu=self.grid.vm_pu, f_hz=self.grid.f_hz)
            return self._state
        c = self.controls
        target = c.p_set_kw if c.p_set_enabled else 0.0
        if self._p_lagged is None:
            self._p_lagged = target
        tau = self.rating.active_power_response_s / math.log(10.0)
        self._p_lagged += (target - self._p_lagged) * (1.0 - math.exp(-dt_s / tau))
        asked = c.p_set_kw
        c.p_set_kw = self._p_lagged
        if self._applied is not None and self._applied.p_set_kw != c.p_set_kw:
            self._applied.p_set_kw = c.p_set_kw  # the setpoint is read at each step: no need to re-apply controls
        try:
            return super().step(dt_s)
        finally:
            c.p_set_kw = asked
