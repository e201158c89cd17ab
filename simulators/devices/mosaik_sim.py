"""mosaik simulator (API v3, in-process) for one device under a service test, stepped in simulated time, and a
probe that keeps every step's values.

Model ``Der`` — param ``driver``: an object with ``step(dt_s, *, f_hz, vm_pu, available_pct, p_set_kw)``
returning a reading with ``p_kw``, ``q_kvar``, ``soc``, ``valid``, ``fault`` (:class:`OpenDerDriver` for a
simulated device; :class:`hil.lockstep.LockStepDevice` for an emulated one over Modbus); optional
``controller`` (a :class:`~testbed.domain.services.frequency.ResponseController`: the setpoint follows the
service curve from the applied frequency, in the same step), ``sink`` and ``stop_after_invalid`` as for the
probe. Inputs ``f_hz``, ``vm_pu``, ``available_pct``, ``p_set_kw``; outputs ``p_kw``, ``q_kvar``, ``soc``,
``valid``, ``fault`` and the inputs it applied (``f_applied_hz``, ``vm_applied_pu``, ``p_set_applied_kw``).

Model ``Probe`` — takes any inputs and keeps one row per step (``t_s`` plus ``<attr>`` of each input, the first
source), appended to the param ``sink`` (a list, in-process) when given; param ``stop_after_invalid``: raise
:class:`DeviceStopped` after that many consecutive steps whose ``valid`` input was false (a device that stopped
answering ends the run instead of running on).
"""

from __future__ import annotations

from typing import Any

import mosaik_api_v3

from hil.behaviour import DerControls, GridInputs
from hil.lockstep import Reading
from hil.misbehaviour import TestedDer

META = {
    "api_version": "3.0",
    "type": "time-based",
    "models": {
        "Der": {
            "public": True,
            "params": ["driver", "controller", "sink", "stop_after_invalid"],
            "attrs": [
                "f_hz",
                "vm_pu",
                "available_pct",
                "p_set_kw",
                "p_kw",
                "q_kvar",
                "soc",
                "valid",
                "fault",
                "f_applied_hz",
                "vm_applied_pu",
                "p_set_applied_kw",
            ],
        },
        "Probe": {"public": True, "params": ["stop_after_invalid", "sink"], "attrs": [], "any_inputs": True},
    },
    "extra_methods": ["rows"],
}


class DeviceStopped(Exception):
    """The device gave invalid readings for too many consecutive steps."""


class OpenDerDriver:
    """A simulated device: OpenDER in-process (:class:`hil.misbehaviour.TestedDer`) with ``controls``."""

    def __init__(self, der: TestedDer, controls: DerControls) -> None:
        self.der = der
        der.controls = controls
        der.grid = GridInputs(f_hz=der.rating.f_nom_hz)

    def step(self, dt_s: float, *, f_hz=None, vm_pu=None, available_pct=None, p_set_kw=None) -> Reading:
        g, c = self.der.grid, self.der.controls
        if f_hz is not None:
            g.f_hz = f_hz
        if vm_pu is not None:
            g.vm_pu = vm_pu
        if available_pct is not None:
            g.available_pct = available_pct
        if p_set_kw is not None:
            c.p_set_kw = max(-self.der.rating.rated_kw, min(self.der.rating.rated_kw, p_set_kw))
        s = self.der.step(dt_s)
        return Reading(s.p_kw, s.q_kvar, s.soc, True)


def _first(attrs: dict, name: str) -> Any:
    values = attrs.get(name)
    return next(iter(values.values())) if values else None


class DeviceSimulator(mosaik_api_v3.Simulator):
    def __init__(self) -> None:
        super().__init__(META)
        self.devices: dict[str, Any] = {}
        self.probes: dict[str, dict] = {}
        self.out: dict[str, dict] = {}
        self.step_size = 1
        self.time_resolution = 1.0

    def init(self, sid: str, time_resolution: float = 1.0, step_size: int = 1) -> dict:
        self.step_size = step_size
        self.time_resolution = float(time_resolution)
        return self.meta

    def create(self, num: int, model: str, **params: Any) -> list[dict]:
        out = []
        for _ in range(num):
            if model == "Der":
                eid = f"der-{len(self.devices)}"
                self.devices[eid] = (params["driver"], params.get("controller"))
                self.out[eid] = {}
                if params.get("sink") is not None or params.get("stop_after_invalid"):
                    self.probes[eid] = self._probe(params)
            else:
                eid = f"probe-{len(self.probes)}"
                self.probes[eid] = self._probe(params)
            out.append({"eid": eid, "type": model})
        return out

    @staticmethod
    def _probe(params: dict) -> dict:
        sink = params.get("sink")
        return {"rows": [] if sink is None else sink, "limit": params.get("stop_after_invalid"), "invalid": 0}

    def step(self, time: int, inputs: dict, max_advance: int) -> int:
        dt_s = self.step_size * self.time_resolution
        t_s = time * self.time_resolution
        for eid, (driver, controller) in self.devices.items():
            a = inputs.get(eid, {})
            f, v, av, ps = (_first(a, n) for n in ("f_hz", "vm_pu", "available_pct", "p_set_kw"))
            if controller is not None and f is not None:
                ps = controller.setpoint_kw(t_s, f)
            r = driver.step(dt_s, f_hz=f, vm_pu=v, available_pct=av, p_set_kw=ps)
            self.out[eid] = {
                "p_kw": r.p_kw,
                "q_kvar": r.q_kvar,
                "soc": r.soc,
                "valid": r.valid,
                "fault": r.fault,
                "f_applied_hz": f,
                "vm_applied_pu": v,
                "p_set_applied_kw": ps,
            }
        for eid, probe in self.probes.items():
            if eid in self.out:
                row = {"t_s": t_s} | self.out[eid]
            else:
                a = inputs.get(eid, {})
                row = {"t_s": t_s} | {name: _first(a, name) for name in a}
            probe["rows"].append(row)
            if row.get("valid") is False:
                probe["invalid"] += 1
                if probe["limit"] and probe["invalid"] >= probe["limit"]:
                    raise DeviceStopped(
                        f"{probe['invalid']} consecutive invalid readings up to t = {t_s:.2f} s "
                        f"({row.get('fault') or 'no answer'})"
                    )
            else:
                probe["invalid"] = 0
        return time + self.step_size

    def get_data(self, outputs: dict) -> dict:
        return {eid: {a: self.out[eid].get(a) for a in attrs} for eid, attrs in outputs.items()}

    def rows(self) -> dict[str, list[dict]]:
        return {eid: p["rows"] for eid, p in self.probes.items()}
